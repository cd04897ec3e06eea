"""``qdq run`` and ``qdq info`` on safetensors checkpoints."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _ckpt_cases import load_all, save_sharded, tensors
from _util import assert_bits_equal

import qdq
from qdq.cli.checkpoint import parse_rule
from qdq.cli.main import main

pytest.importorskip("safetensors")
pytest.importorskip("ml_dtypes")


@pytest.fixture
def ckpt(tmp_path):
    arrays = tensors()
    weight_map = save_sharded(tmp_path / "src", arrays, shards=2)
    return tmp_path / "src", arrays, weight_map


def test_run_with_rules_and_skip(ckpt, tmp_path, capsys):
    src, arrays, weight_map = ckpt
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps([["layer2.*.r[234]", {"num_bits": 3, "axis": 0}],
                                      ["layer2.*", None]]))
    rc = main(["run", str(src), str(tmp_path / "dst"), "-q",
               "--rule", "layer1.*.r[234]:num_bits=4,block_size=2,axis=-1",
               "--rule", "layer1.*:copy", "--rules", str(rules_file),
               "--skip", "layer3.*", "--num-bits", "6", "--narrow-range"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("tensor") and "wrote" in out and "GB/s" in out
    got = {}
    for shard in set(weight_map.values()):
        got.update(load_all(tmp_path / "dst" / shard))
    x = arrays["layer1.bfloat16.r3"]
    assert_bits_equal(got["layer1.bfloat16.r3"],
                      qdq.quantize_and_dequantize(x, num_bits=4, block_size=2, axis=2,
                                                  narrow_range=True))
    x = arrays["layer2.float32.r4"]
    assert_bits_equal(got["layer2.float32.r4"],
                      qdq.quantize_and_dequantize(x, num_bits=3, axis=0, narrow_range=True))
    x = arrays["layer0.float16.r2"]
    assert_bits_equal(got["layer0.float16.r2"],
                      qdq.quantize_and_dequantize(x, num_bits=6, narrow_range=True))
    for name in ("layer1.bfloat16.r1", "layer2.float32.r1", "layer3.float64.r3", "ids.int64"):
        assert got[name].tobytes() == arrays[name].tobytes()


def test_info_table_json_and_nothing_written(ckpt, capsys):
    src, arrays, _ = ckpt
    before = sorted(os.listdir(src))
    assert main(["info", str(src), "-q", "--axis", "-1"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["tensor", "shape", "dtype", "settings"]
    assert "layer2.float32.r2" in table and "axis 1" in table and "quantized" in table
    assert main(["info", str(src), "-q", "--json", "--skip", "embed.*"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {t["name"]: t for t in doc["tensors"]}
    assert set(by_name) == set(arrays)
    assert by_name["embed.weight"]["action"] == "copy"
    rec = by_name["layer2.float32.r2"]
    y = qdq.quantize_and_dequantize(arrays["layer2.float32.r2"])
    assert rec["max_abs_error"] == float(np.abs(y.astype(np.float64)
                                                - arrays["layer2.float32.r2"]).max())
    assert rec["status"] == "analyzed" and doc["totals"]["tensors"] == len(arrays)
    assert sorted(os.listdir(src)) == before


def test_info_plot(ckpt, tmp_path, capsys):
    src, _, _ = ckpt
    png = tmp_path / "sqnr.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(["info", str(src), "-q", "--plot", str(png)]) == 1
        assert "needs matplotlib" in capsys.readouterr().err
        return
    assert main(["info", str(src), "-q", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, status, message", [
    (["--rule", "x:bits=3"], 2, "is not key=value"),
    (["--rule", "nocolon"], 2, "expected PATTERN"),
    (["--rule", "x:num_bits=four"], 2, "num_bits must be an integer"),
    (["--rule", "x:narrow_range=maybe"], 2, "true or false"),
    (["--rule", "x:num_bits=99"], 2, "rule 'x': num_bits must be in 1..61"),
    (["--num-bits", "99"], 2, "--num-bits must be in 1..61 for signed output, got 99"),
    (["--range", "-1", "1"], 2, "--range applies to .npy"),
    (["--calibrate", "mse", "--axis", "-1", "--block-size", "2"], 2,
     "the options: calibrate takes the range from the data's histogram"),
    (["--calibrate", "nope"], 2, "nope"),
    (["--dtype", "float32"], 2, "--dtype applies to .npy"),
    (["--workers", "0"], 2, "not a count of at least 1"),
    (["--rule", "layer0.*:axis=5"], 1, "out of bounds"),  # found in the headers
])
def test_bad_arguments_are_clear_errors(ckpt, tmp_path, capsys, args, status, message):
    src, _, _ = ckpt
    try:
        code = main(["run", str(src), str(tmp_path / "dst"), "-q", *args])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == status
    err = capsys.readouterr().err
    assert message in err
    assert "qdq: error: qdq" not in err and "Traceback" not in err
    assert not (tmp_path / "dst").exists()


def test_rules_file_errors(ckpt, tmp_path, capsys):
    src, _, _ = ckpt
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert main(["run", str(src), str(tmp_path / "d"), "-q", "--rules", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text("[1, 2]")
    assert main(["run", str(src), str(tmp_path / "d"), "-q", "--rules", str(bad)]) == 1
    assert "pairs" in capsys.readouterr().err
    assert main(["run", str(src), str(tmp_path / "d"), "-q", "--rules",
                 str(tmp_path / "missing.json")]) == 1
    assert capsys.readouterr().err == f"qdq: error: {tmp_path / 'missing.json'}: No such file " \
                                      "or directory\n"


@pytest.mark.parametrize("text, word", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ('[["x", ' + "[" * 50_000 + "]" * 50_000 + "]]", "nested too deeply"),
    ('{"layer0.*": {"num_bits": 4}, "layer0.*": null}', "repeats the key 'layer0.*'"),
    ('{"layer0.*": {"num_bits": 4, "num_bits": 8}}', "repeats the key 'num_bits'"),
    ('[["layer0.*", {"axis": 0, "axis": -1}]]', "repeats the key 'axis'"),
    ('[["layer0.*", {"num_bits": NaN}]]', "not valid JSON"),
], ids=["deep-list", "deep-object", "deep-settings", "repeated-pattern", "repeated-setting",
        "repeated-in-list", "nan"])
def test_rules_file_deep_or_repeated_is_one_error_line(ckpt, tmp_path, capsys, text, word):
    """Issue 24 item 11: a RecursionError traceback; a repeated key was taken (last wins)."""
    src, _, _ = ckpt
    rules = tmp_path / "rules.json"
    rules.write_text(text)
    for command in (["run", str(src), str(tmp_path / "dst")], ["info", str(src)]):
        assert main([*command, "-q", "--rules", str(rules)]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("qdq: error: ") and err.count("\n") == 1, err
        assert str(rules) in err and word in err, err
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("command", ["quantize", "run", "info"])
def test_a_deep_model_config_is_one_error_line(tmp_path, capsys, command):
    """A model directory's config.json is read (export, compressed info) as the rules are:
    deep nesting is one error line naming it, not a RecursionError traceback."""
    src = tmp_path / "model"
    save_sharded(src, {"l.weight": np.ones((4, 8), np.float32)}, shards=1)
    (src / "config.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    args = [command, str(src)] + ([] if command == "info" else [str(tmp_path / "out")])
    rc = main([*args, "-q"])
    out, err = capsys.readouterr()
    if command == "run":  # the dense run copies config.json as it is, without parsing it
        assert rc == 0, err
        return
    assert rc == 1 and err.startswith("qdq: error: ") and err.count("\n") == 1, err
    assert "config.json" in err and "nested too deeply" in err, err
    assert not (tmp_path / "out").exists()


def test_an_export_refuses_a_config_it_could_not_write_back_first(tmp_path, capsys):
    src = tmp_path / "model"
    save_sharded(src, {"l.weight": np.ones((4, 8), np.float32)}, shards=1)
    (src / "config.json").write_text('{"model_type": "llama", "name": "x\\ud800"}')
    assert main(["quantize", str(src), str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "config.json" in err and "lone surrogate" in err, err
    assert not (tmp_path / "out").exists()


def test_run_json(ckpt, tmp_path, capsys):
    src, arrays, weight_map = ckpt
    assert main(["run", str(src), str(tmp_path / "dst"), "-q", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # the JSON object and nothing else
    assert set(doc) == {"tensors", "totals", "shards_written", "shards_skipped", "files_copied"}
    assert sorted(doc["shards_written"]) == sorted(str(tmp_path / "dst" / f)
                                                   for f in set(weight_map.values()))
    assert {t["name"] for t in doc["tensors"]} == set(arrays)
    assert doc["totals"]["tensors"] == len(arrays)


def test_checkpoint_to_a_npy_path_is_refused(ckpt, tmp_path, capsys):
    src, _, _ = ckpt
    assert main(["run", str(src), str(tmp_path / "out.npy"), "-q"]) == 2
    assert "not a .npy path" in capsys.readouterr().err
    assert not (tmp_path / "out.npy").exists()


def test_parse_rule():
    assert parse_rule("a:b:num_bits=2, axis=none, signed_input=false, round_mode=half_up") == (
        "a:b", {"num_bits": 2, "axis": None, "signed_input": False, "round_mode": "HALF_UP"})
    assert parse_rule("*:COPY") == ("*", None)


def test_single_file_run(tmp_path, capsys):
    from safetensors.numpy import save_file

    w = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    save_file({"w": w}, tmp_path / "m.safetensors")
    assert main(["run", str(tmp_path / "m.safetensors"), str(tmp_path / "q.safetensors"),
                 "-q", "--num-bits", "4", "--axis", "0"]) == 0
    assert_bits_equal(load_all(tmp_path / "q.safetensors")["w"],
                      qdq.quantize_and_dequantize(w, num_bits=4, axis=0))
    assert "1 file(s) written" in capsys.readouterr().out
