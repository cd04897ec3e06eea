"""The qdq command line: run, info, demo, and one-line errors."""

import json
import os
import shutil
import subprocess
import textwrap
import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, run_python

import qdq


def run_qdq(*args, cwd=None):
    import tempfile

    return run_python(["-m", "qdq", *args], cwd=cwd or tempfile.gettempdir())


@pytest.fixture
def tensor(tmp_path):
    x = (np.random.default_rng(0).standard_normal((64, 48)) * 3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, tmp_path


def _op(x, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(x, *a, **k)


def test_run(tensor):
    x, d = tensor
    r = run_qdq("run", d / "x.npy", d / "y.npy", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "range [" in r.stdout and "scale" in r.stdout and "GB/s" in r.stdout
    assert_bits_equal(np.load(d / "y.npy"), _op(x))
    r = run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--num-bits", "4", "--unsigned",
                "--range", "-1", "2.5", "--round-mode", "HALF_UP", "--axis", "-1",
                "--chunk-mb", "0.001")
    assert r.returncode == 0, r.stderr
    assert "48 channels along axis 1" in r.stdout
    assert_bits_equal(np.load(d / "y.npy"), _op(x, -1.0, 2.5, signed_input=False, num_bits=4,
                                                range_given=True, round_mode="HALF_UP", axis=-1))
    r = run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--narrow-range", "--axis", "0")
    assert_bits_equal(np.load(d / "y.npy"), _op(x, narrow_range=True, axis=0))


def test_run_raw_file(tensor):
    x, d = tensor
    x.tofile(d / "x.bin")
    r = run_qdq("run", d / "x.bin", d / "y.npy", "-q", "--dtype", "float32", "--shape", "64,48")
    assert r.returncode == 0, r.stderr
    assert_bits_equal(np.load(d / "y.npy"), _op(x))


def test_info(tensor):
    x, d = tensor
    r = run_qdq("info", d / "x.npy", "-q")
    assert r.returncode == 0, r.stderr
    out = _op(x).astype(np.float64) - x
    sqnr = 10 * np.log10(np.square(x.astype(np.float64)).sum() / np.square(out).sum())
    assert f"data range [{float(x.min())!r}, {float(x.max())!r}]" in r.stdout
    assert f"max abs {np.abs(out).max():.6g}" in r.stdout
    assert f"SQNR {sqnr:.2f} dB" in r.stdout
    assert "clipped 0" in r.stdout
    r = run_qdq("info", d / "x.npy", "-q", "--range", "-1", "1")
    clipped = int(((x < -128 / 127) | (x > 1)).sum())
    assert f"clipped {clipped:,}" in r.stdout
    assert os.listdir(d) == ["x.npy"]  # info writes nothing


def test_demo(tmp_path):
    r = run_qdq("demo", "--size", "3MiB", "--dir", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    assert "bit-identical" in r.stdout and "SQNR" in r.stdout and "GB/s" in r.stdout
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, status, message", [
    # usage errors: the command line alone is wrong (exit 2, nothing opened)
    (["run", "x.npy", "y.npy", "--num-bits", "70"], 2,
     "--num-bits must be in 1..61 for signed output, got 70"),
    (["run", "x.npy", "y.npy", "--num-bits", "63", "--unsigned"], 2,
     "--num-bits must be in 1..62 for unsigned output (--unsigned), got 63"),
    (["run", "x.npy", "y.npy", "--range", "3", "-3"], 2,
     "invalid --range: MIN (3.0) must be <= MAX (-3.0)"),
    (["info", "x.npy", "--dtype", "float32"], 2,
     "a raw binary SRC needs both --dtype and --shape"),
    (["info", "x.npy", "--shape", "64,48"], 2,
     "a raw binary SRC needs both --dtype and --shape"),
    (["run", "x.npy", "y.npy", "--offset", "16"], 2,
     "--offset applies to raw binary files (with --dtype and --shape)"),
    (["run", "x.npy", "y.npy", "--order", "F"], 2, "--order applies to raw binary files"),
    (["run", "x.npy", "y.npy", "--block-size", "4"], 2, "--block-size needs --axis"),
    (["run", "x.npy", "y.npy", "--block-size", "0", "--axis", "1"], 2,
     "--block-size must be a positive int, got 0"),
    (["run", "x.npy", "y.npy", "--calibrate", "median"], 2,
     "--calibrate: unknown calibration method 'median'"),
    (["info", "x.npy", "--calibrate", "mse", "--range", "0", "1"], 2,
     "--calibrate takes the range from the data's histogram: it goes with neither --range "
     "nor --block-size"),
    (["run", "missing.npy", "y.npy", "--num-bits", "99"], 2, "--num-bits"),  # nothing opened
    # failures: found once the files are opened (exit 1)
    (["run", "missing.npy", "y.npy"], 1, "missing.npy: No such file or directory"),
    (["run", "x.npy", "y.npy", "--axis", "5"], 1,
     "--axis 5 is out of bounds for a tensor of 2 dimensions"),
    (["run", "notnpy.npy", "y.npy"], 1,
     "notnpy.npy is not a .npy file (bad magic string); for a raw binary file give --dtype "
     "and --shape"),
    (["run", "x.npy", "y.txt"], 1, "DST 'y.txt' must be a .npy path"),
    (["info", "x.npy", "--dtype", "float32", "--shape", "5,5"], 1,
     "but shape (5, 5) of float32 needs 100"),
    (["info", "x.npy", "--dtype", "int8", "--shape", "3200"], 1,
     "uint16 bits with --bfloat16-bits"),
    (["run", "x.npy", "no-such-dir/y.npy"], 1,
     "no-such-dir/y.npy: No such file or directory"),
    (["dequantize", "x.npy", "y.npy"], 1, "x.params.json: No such file or directory"),
])
def test_errors_are_one_line_in_command_line_words(tensor, args, status, message):
    x, d = tensor
    (d / "notnpy.npy").write_text("hello")
    r = run_qdq(*args, "-q", cwd=d)
    assert r.returncode == status, r.stderr
    assert message in r.stderr
    assert r.stderr.startswith("qdq: error:") and r.stderr.count("\n") == 1
    assert "qdq: error: qdq" not in r.stderr and "Traceback" not in r.stderr
    for word in ("dtype=", "shape=", "offset=", "num_bits", "signed_input", "block_size",
                 "input_min", "bfloat16_bits", "[Errno", "array of dimension"):
        assert word not in r.stderr, r.stderr
    assert not (d / "y.npy").exists()


def test_usage_errors():
    r = run_qdq("run")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run_qdq("demo", "--size", "lots")
    assert r.returncode == 2 and "not a size" in r.stderr
    r = run_qdq("run", "x.npy", "y.npy", "--no-such-option")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = run_qdq("--version")
    assert r.returncode == 0 and qdq.__version__ in r.stdout
    assert "kernels" in r.stdout and ("OpenMP" in r.stdout)


def test_help_gives_examples_and_the_exit_statuses():
    from qdq.cli.main import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    assert (EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED) == (0, 1, 2, 130)
    for cmd in ([], ["run"], ["info"], ["quantize"], ["dequantize"], ["demo"]):
        r = run_qdq(*cmd, "--help")
        assert r.returncode == 0, r.stderr
        assert "examples:\n  qdq " in r.stdout, cmd
        status = r.stdout[r.stdout.index("exit status:"):]
        for line in ("  0    success", "  1    failure", "  2    usage error", "  130  "):
            assert line in status, (cmd, status)


def test_error_lines_say_qdq_once_and_keep_notes():
    from qdq.cli.report import error_lines

    exc = ValueError("qdq: per-channel axis: axis 3 is out of bounds for array of dimension 2")
    exc.add_note("qdq: the run was writing in place on the source, which cannot be atomic")
    assert error_lines(exc, True) == [
        "qdq: error: --axis 3 is out of bounds for a tensor of 2 dimensions",
        "qdq: note: the run was writing in place on the source, which cannot be atomic"]
    assert error_lines(OSError(28, "No space left on device", "y.npy"), True) == [
        "qdq: error: y.npy: No space left on device"]
    assert error_lines(ValueError("rule 'w': num_bits must be an integer"), False) == [
        "qdq: error: rule 'w': num_bits must be an integer"]


INTERRUPT_CLI = textwrap.dedent("""
    import sys
    from qdq._core import engine as _engine
    from qdq.cli import main as cli
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    _engine.run_block = interrupt
    sys.exit(cli.main(["run", sys.argv[1], sys.argv[2], "-q"]))
""")


def test_interrupted_run_exits_130_and_leaves_nothing(tensor):
    x, d = tensor
    r = run_python(["-c", INTERRUPT_CLI, d / "x.npy", d / "y.npy"], cwd=d)
    assert r.returncode == 130 and r.stderr == "qdq: interrupted\n", r.stderr
    assert os.listdir(d) == ["x.npy"]


DISK_FULL_CLI = textwrap.dedent("""
    import errno, os, sys
    from qdq.cli import main as cli
    from qdq._io import atomic
    def full(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
    atomic.AtomicFile.sync = full  # a full disk shows at the latest when the file is synced
    sys.exit(cli.main(["run", sys.argv[1], sys.argv[2], "-q"]))
""")


def test_disk_full_exits_1_and_leaves_nothing(tensor):
    x, d = tensor
    r = run_python(["-c", DISK_FULL_CLI, d / "x.npy", d / "y.npy"], cwd=d)
    assert r.returncode == 1, r.stderr
    assert r.stderr == f"qdq: error: {d / 'y.npy'}: No space left on device\n"
    assert os.listdir(d) == ["x.npy"]


def test_demo_mismatch_exits_1(tmp_path):
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from qdq import _reference
        from qdq.cli import main as cli
        real = _reference.quantize_and_dequantize
        _reference.quantize_and_dequantize = lambda x: real(x) + np.float32(1)
        sys.exit(cli.main(["demo", "--size", "1MiB", "--dir", sys.argv[1], "-q"]))
    """)
    r = run_python(["-c", script, tmp_path], cwd=tmp_path)
    assert r.returncode == 1 and "MISMATCH" in r.stdout, r.stdout + r.stderr
    assert os.listdir(tmp_path) == []


def _json_doc(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # stdout is the JSON object and nothing else


PARAMS_KEYS = {"dtype", "num_bits", "signed_input", "narrow_range", "round_mode", "axis",
               "block_size", "code_min", "code_max", "count", "scale_min", "scale_max",
               "range_min", "range_max"}


def test_info_json(tensor):
    x, d = tensor
    doc = _json_doc(run_qdq("info", d / "x.npy", "-q", "--json", "--num-bits", "4"))
    assert set(doc) == {"src", "dtype", "shape", "elements", "nan", "range", "params", "error",
                        "minmax_error", "blocks"}
    assert (doc["dtype"], doc["shape"], doc["elements"], doc["nan"]) == (
        "float32", [64, 48], x.size, 0)
    assert doc["range"] == {"source": "data", "min": float(x.min()), "max": float(x.max())}
    p = qdq.quantization_params(x.min(), x.max(), np.float32, num_bits=4)
    assert set(doc["params"]) == PARAMS_KEYS
    assert doc["params"]["scale_min"] == doc["params"]["scale_max"] == float(p.scale)
    assert (doc["params"]["range_min"], doc["params"]["range_max"]) == (
        float(p.min_range), float(p.max_range))
    assert (doc["params"]["code_min"], doc["params"]["code_max"], doc["params"]["count"]) == (
        -8, 7, 1)
    err = _op(x, num_bits=4).astype(np.float64) - x
    assert doc["error"]["max_abs"] == float(np.abs(err).max())
    assert doc["error"]["clipped"] == 0 and doc["error"]["nonfinite_outputs"] == 0
    assert doc["minmax_error"] is None and doc["blocks"] is None
    doc = _json_doc(run_qdq("info", d / "x.npy", "-q", "--json", "--range", "-1", "1"))
    assert doc["range"] == {"source": "given", "min": -1.0, "max": 1.0}
    assert doc["error"]["clipped"] == int(((x < -128 / 127) | (x > 1)).sum())
    doc = _json_doc(run_qdq("info", d / "x.npy", "-q", "--json", "--calibrate", "mse"))
    assert doc["range"]["source"] == "calibrated:mse"
    assert set(doc["minmax_error"]) == {"max_abs", "sqnr_db"}
    doc = _json_doc(run_qdq("info", d / "x.npy", "-q", "--json", "--axis", "1",
                            "--block-size", "16"))
    assert doc["params"]["count"] == 48 * 64 // 16 and doc["blocks"]["count"] == 192
    assert set(doc["blocks"]) == {"count", "worst_max_abs_error", "min_sqnr_db",
                                  "mean_sqnr_db"}
    assert os.listdir(d) == ["x.npy"]


def test_info_json_of_an_all_nan_file_is_strict_json(tmp_path):
    np.save(tmp_path / "n.npy", np.full((3, 4), np.nan, np.float32))
    r = run_qdq("info", tmp_path / "n.npy", "-q", "--json")
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert doc["error"]["sqnr_db"] == "nan" and doc["range"]["min"] == "nan"
    assert doc["nan"] == 12


def test_run_json(tensor):
    from _util import dead_pid

    x, d = tensor
    stale = d / f".y.npy.{dead_pid()}.a1b2c3.qdq-tmp"
    stale.write_bytes(b"partial")
    doc = _json_doc(run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--json", "--axis", "0"))
    assert set(doc) == {"src", "dst", "bytes", "range_seconds", "write_seconds", "params",
                        "float16_overflow", "removed_temporaries"}
    assert doc["float16_overflow"] == 0
    assert doc["src"] == str(d / "x.npy") and doc["dst"] == str(d / "y.npy")
    assert doc["bytes"] == x.nbytes and doc["removed_temporaries"] == [str(stale)]
    assert doc["range_seconds"] >= 0 and doc["write_seconds"] >= 0
    assert doc["params"]["axis"] == 0 and doc["params"]["count"] == 64
    assert_bits_equal(np.load(d / "y.npy"), _op(x, axis=0))
    doc = _json_doc(run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--json", "--range", "-1",
                            "1"))
    assert doc["range_seconds"] is None  # a given range: one pass


def test_console_script_installed():
    exe = shutil.which("qdq")
    if exe is None:
        pytest.skip("the qdq console script is not on PATH (package not installed)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout


CLI_BATCH = textwrap.dedent("""
    import contextlib, io, json, sys
    from qdq.cli import main as cli
    results = []
    for argv in json.loads(sys.argv[1]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code
        results.append([code, out.getvalue(), err.getvalue()])
    print(json.dumps(results))
""")


def _cli(cwd, *calls):
    """Run CLI commands in one child process: [(exit status, stdout, stderr)] per call."""
    r = run_python(["-c", CLI_BATCH, json.dumps([[str(a) for a in c] for c in calls])],
                   cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [tuple(x) for x in json.loads(r.stdout.strip().splitlines()[-1])]


def _main(cwd, *args):
    """One CLI command in a child process: (exit status, stdout, stderr)."""
    return _cli(cwd, args)[0]


def _one_line_error(code, err, *words, status=1):
    assert code == status, err
    assert err.startswith("qdq") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("name", ["w.bin", "w.npy"])
def test_run_raw_in_place_keeps_the_header(tmp_path, name):
    x = np.linspace(-3, 5, 8, dtype=np.float32)
    path = tmp_path / name
    path.write_bytes(bytes(range(16)) + x.tobytes())
    r = run_qdq("run", path, path, "-q", "--dtype", "float32", "--shape", "8", "--offset", "16")
    assert r.returncode == 0, r.stderr
    data = path.read_bytes()
    assert len(data) == 48 and data[:16] == bytes(range(16))
    assert_bits_equal(np.frombuffer(data[16:], np.float32), _op(x))


def test_stale_temporaries_of_the_destination_are_removed(tensor):
    from _util import dead_pid

    x, d = tensor
    pid = dead_pid()
    stale = [d / f".y.npy.{pid}.a1b2c3.qdq-tmp", d / f".c.npy.{pid}.d4e5f6.qdq-tmp",
             d / f".c.params.json.{pid}.g7h8i9.qdq-tmp", d / f".z.npy.{pid}.j0k1l2.qdq-tmp"]
    running = d / f".y.npy.{os.getpid()}.m3n4o5.qdq-tmp"  # this process: still running
    for p in stale + [running]:
        p.write_bytes(b"partial")
    results = _cli(d, ["run", d / "x.npy", d / "y.npy", "-q"],
                   ["quantize", d / "x.npy", d / "c.npy", "-q"],
                   ["dequantize", d / "c.npy", d / "z.npy", "-q"])
    for (code, out, err), removed in zip(results, (stale[:1], stale[1:3], stale[3:]),
                                         strict=True):
        assert code == 0, err
        for p in removed:
            assert f"removed {p}" in out
    assert running.exists()
    assert sorted(os.listdir(d)) == sorted(["x.npy", "y.npy", "c.npy", "c.params.json", "z.npy",
                                            running.name])


SIGNAL_CLI = textwrap.dedent("""
    import os, signal, sys
    from qdq._core import engine as _engine
    from qdq.cli import main as cli
    real = _engine.run_block
    n = [0]
    def slow(*a, **k):
        n[0] += 1
        if n[0] == 3:
            os.kill(os.getpid(), getattr(signal, sys.argv[3]))
        return real(*a, **k)
    _engine.run_block = slow
    sys.exit(cli.main(["run", sys.argv[1], sys.argv[2], "-q", "--chunk-mb", "0.004"]))
""")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1"])
def test_termination_signals_during_run_leave_nothing(tmp_path, sig):
    import signal

    x = np.random.default_rng(1).standard_normal((400, 100)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    before = (tmp_path / "x.npy").read_bytes()
    r = run_python(["-c", SIGNAL_CLI, tmp_path / "x.npy", tmp_path / "y.npy", sig],
                   cwd=tmp_path)
    assert r.returncode == 128 + getattr(signal, sig), r.stderr
    assert (tmp_path / "x.npy").read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npy"]


def _bad_params():
    from _params_cases import BAD_FIELDS

    return [(f, v, w) for f, v, _, w in BAD_FIELDS]


@pytest.fixture(scope="module")
def codes_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("codes")
    np.save(d / "x.npy", np.linspace(-1, 1, 60, dtype=np.float32).reshape(6, 10))
    assert _main(d, "quantize", d / "x.npy", d / "c.npy", "-q")[0] == 0
    return d


@pytest.mark.parametrize("field, value, word", _bad_params(),
                         ids=[f"{f}={v!r}"[:30] for f, v, _ in _bad_params()])
def test_dequantize_with_hand_edited_params_is_one_line(codes_dir, tmp_path, field, value,
                                                        word):
    params = json.loads((codes_dir / "c.params.json").read_text())
    params[field] = value
    (tmp_path / "p.json").write_text(json.dumps(params))
    code, _, err = _main(tmp_path, "dequantize", codes_dir / "c.npy", tmp_path / "y.npy",
                         "--params", tmp_path / "p.json", "-q")
    _one_line_error(code, err, word)
    assert os.listdir(tmp_path) == ["p.json"]


def test_dequantize_with_a_broken_params_file_is_one_line(codes_dir, tmp_path):
    texts = ["", "[]", "{", "not json", '{"qdq_params": 1}', "\xff\xfe"]
    for k, text in enumerate(texts):
        (tmp_path / f"p{k}.json").write_text(text)
    results = _cli(tmp_path, *[["dequantize", codes_dir / "c.npy", tmp_path / "y.npy", "-q",
                                "--params", tmp_path / f"p{k}.json"] for k in range(len(texts))])
    for code, _, err in results:
        _one_line_error(code, err)
    assert not (tmp_path / "y.npy").exists()


def test_dequantize_params_deeply_nested_or_repeated_is_one_line(codes_dir, tmp_path):
    """Issue 24 item 11: a RecursionError traceback; a repeated key was taken (last wins)."""
    good = (codes_dir / "c.params.json").read_text()
    texts = {"deep-list.json": "[" * 100_000 + "]" * 100_000,
             "deep-object.json": '{"a":' * 100_000 + "1" + "}" * 100_000,
             "deep-field.json": good.replace('"axis": null', '"axis": ' + "[" * 50_000
                                             + "]" * 50_000),
             "repeated.json": good.replace('"axis": null', '"axis": null, "axis": 0')}
    assert texts["repeated.json"] != good
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    results = _cli(tmp_path, *[["dequantize", codes_dir / "c.npy", tmp_path / "y.npy", "-q",
                                "--params", tmp_path / name] for name in texts])
    for (code, _, err), name in zip(results, texts, strict=True):
        word = "repeats the key 'axis'" if name == "repeated.json" else "nested too deeply"
        _one_line_error(code, err, name, word)
    assert not (tmp_path / "y.npy").exists()


def test_bad_chunk_sizes_are_usage_errors(tensor):
    x, d = tensor
    values = ["0", "-5", "1e-9", "inf", "nan", "-inf", "lots"]
    calls = [cmd + [f"--chunk-mb={v}"] for v in values
             for cmd in (["run", d / "x.npy", d / "y.npy"], ["info", d / "x.npy"],
                         ["dequantize", d / "c.npy", d / "y.npy"])]
    for (code, _, err), call in zip(_cli(d, *calls), calls, strict=True):
        assert code == 2 and "--chunk-mb" in err and "Traceback" not in err, (call, err)
    assert os.listdir(d) == ["x.npy"]


def test_negative_range_bounds(tensor):
    x, d = tensor
    bounds = [("-1e3", "1e3"), ("-inf", "0"), ("-1", "-0.5"), ("-.5", "2")]
    calls = []
    for k, (lo, hi) in enumerate(bounds):
        calls += [["run", d / "x.npy", d / f"y{k}.npy", "-q", "--range", lo, hi],
                  ["info", d / "x.npy", "-q", "--range", lo, hi, "--axis", "1"]]
    results = _cli(d, *calls)
    for k, (lo, hi) in enumerate(bounds):
        (code, _, err), (code2, out2, err2) = results[2 * k:2 * k + 2]
        assert code == 0 and code2 == 0 and "clipped" in out2, err + err2
        assert_bits_equal(np.load(d / f"y{k}.npy"), _op(x, float(lo), float(hi),
                                                         range_given=True))


def test_empty_tensor_along_its_empty_axis(tmp_path):
    e = tmp_path / "e.npy"
    np.save(e, np.zeros((0, 4), np.float32))
    results = _cli(tmp_path, ["run", e, tmp_path / "y.npy", "-q", "--axis", "0"],
                   ["info", e, "-q", "--axis", "0"],
                   ["quantize", e, tmp_path / "c.npy", "-q", "--axis", "0"],
                   ["dequantize", tmp_path / "c.npy", tmp_path / "d.npy", "-q"])
    for code, _, err in results:
        assert code == 0 and err == "", err
    assert "0 channels along axis 0" in results[1][1]
    assert np.load(tmp_path / "y.npy").shape == (0, 4)
    assert np.load(tmp_path / "d.npy").shape == (0, 4)


def test_info_of_an_all_nan_file(tmp_path):
    np.save(tmp_path / "n.npy", np.full((3, 4), np.nan, np.float32))
    results = _cli(tmp_path, ["info", tmp_path / "n.npy", "-q"],
                   ["info", tmp_path / "n.npy", "-q", "--axis", "1"])
    for code, out, err in results:
        assert code == 0, err
        assert "SQNR n/a (no finite outputs)" in out and "inf dB" not in out
        assert "12 NaN" in out and "[inf, -inf] (NaN ignored)" not in out
    assert "data range [nan, nan]" in results[0][1]


def test_offset_with_a_npy_source_is_an_error(tensor):
    x, d = tensor
    code, _, err = _main(d, "run", d / "x.npy", d / "y.npy", "-q", "--offset", "16")
    _one_line_error(code, err, "--offset applies to raw binary files", status=2)
    assert not (d / "y.npy").exists()
