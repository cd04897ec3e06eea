"""Names from a checkpoint never reach the terminal raw (issue 24 item 10); ``--json`` is exact.

A downloaded checkpoint chooses its tensor and shard names: ESC/CSI/OSC sequences could
erase or forge lines of the report or set the terminal's title, CR and LF forge lines,
bidi overrides reorder what is shown.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from qdq._core.diagnostics import terminal_text
from qdq._io.safetensors_writer import write_arrays
from qdq._stream.progress import Progress
from qdq.cli.main import main

HOSTILE = [
    "\x1b]0;owned\x07title",           # OSC: set the window title
    "\x1b[2K\rqdq: all good",          # CSI erase line, CR, a forged line
    "a\nb.weight",                     # LF
    "\x9b31mred",                      # C1 CSI
    "\u202egnp.weight",                # bidi override
    "\u2066iso\u2069.x\u200f",         # bidi isolate, RLM
    "del\x7f\x08bs",                   # DEL, backspace
    "\x1b\\st\x90dcs\x9d",             # ST, DCS, OSC (C1)
]


def _controls(text: str) -> list[str]:
    """Characters a terminal would act on (line ends aside)."""
    return [c for c in text if not c.isprintable() and c != "\n"]


def test_terminal_text_escapes_every_control():
    for name in HOSTILE:
        safe = terminal_text(name)
        assert not _controls(safe), repr(safe)
    assert terminal_text("model.layers.0.mlp.weight é中😀") == "model.layers.0.mlp.weight é中😀"
    assert terminal_text("\x1b[31m\r\n\t") == "\\x1b[31m\\r\\n\\t"
    assert terminal_text("\ud800") == "\\ud800"  # printable even: UTF-8 cannot encode it


@pytest.fixture
def ckpt(tmp_path):
    src = tmp_path / "src.safetensors"
    arrays = {n: np.full((2, 3), i + 1.0, np.float32) for i, n in enumerate(HOSTILE)}
    with open(src, "wb") as f:
        write_arrays(f, arrays, {"format": "pt"})
    return src


@pytest.mark.parametrize("command", ["info", "run"])
def test_tables_escape_names(ckpt, tmp_path, capsys, command):
    dst = tmp_path / "out\x1b[8m.safetensors"
    args = ["info", str(ckpt), "-q"] if command == "info" else \
        ["run", str(ckpt), str(dst), "-q"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert not _controls(out) and not _controls(err), repr(out)
    for name in HOSTILE:
        assert terminal_text(name) in out
    assert len(out.splitlines()) == len(HOSTILE) + 2 + (command == "run")  # no forged line


@pytest.mark.parametrize("command", ["info", "run"])
def test_json_keeps_names_exact(ckpt, tmp_path, capsys, command):
    args = ["info", str(ckpt), "-q", "--json"] if command == "info" else \
        ["run", str(ckpt), str(tmp_path / "o.safetensors"), "-q", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in doc["tensors"]] == HOSTILE


def test_progress_notes_are_escaped():
    out = io.StringIO()
    p = Progress(100, "qdq checkpoint", True, file=out)
    p._bar = None  # the plain line (tqdm, when installed, is given the same escaped note)
    for name in HOSTILE:
        p.set_note(name)
        p.update(10)
    p.close()
    text = out.getvalue().replace("\x1b[K", "").replace("\r", "")  # the bar's own controls
    assert not _controls(text), repr(text)
    assert terminal_text(HOSTILE[-1]) in text  # (drawn at most every so often)


def test_error_lines_escape_file_names(tmp_path, capsys):
    """A shard name from a hostile index reaches the error line escaped, on one line."""
    d = tmp_path / "ckpt"
    d.mkdir()
    shard = "\x1b]0;owned\x07\x1b[2K.safetensors"
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"w": shard}}))
    assert main(["info", str(d), "-q"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("qdq: error: ") and err.count("\n") == 1
    assert not _controls(err), repr(err)
    assert terminal_text(shard) in err


def test_export_and_compressed_info_escape_module_and_file_names(tmp_path, capsys):
    """The export's summary (files copied) and ``qdq info`` on a compressed-tensors checkpoint
    (module names, the format from config.json) show names escaped; ``--json`` is exact."""
    src = tmp_path / "model"
    src.mkdir()
    module = "layers.0\x1b]0;owned\x07\x1b[2K\r.mlp"
    with open(src / "model.safetensors", "wb") as f:
        write_arrays(f, {f"{module}.weight": np.linspace(-1, 1, 64 * 32,
                                                         dtype=np.float32).reshape(64, 32)})
    (src / "config.json").write_text('{"model_type": "llama"}')
    (src / "tok\x1b[31m.json").write_text("{}")
    out = tmp_path / "w8"
    assert main(["quantize", str(src), str(out), "-q"]) == 0
    text, err = capsys.readouterr()
    assert not _controls(text) and not _controls(err), repr(text)
    assert terminal_text("tok\x1b[31m.json") in text
    assert main(["info", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert not _controls(text), repr(text)
    assert terminal_text(module) in text
    assert main(["info", str(out), "-q", "--json"]) == 0
    assert [m["module"] for m in json.loads(capsys.readouterr().out)["modules"]] == [module]
