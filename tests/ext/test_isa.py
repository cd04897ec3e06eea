"""One instruction-set system for every compiled kernel (qdq/_ext/csrc/cpu.h).

One probe, one scale of levels (0 baseline, 1 AVX2+F16C, 2 AVX-512 F/BW/VL, 3 with
AVX512-BF16), one level in use that the op's kernels, the histogram and the calibration
searches all follow, set through :func:`qdq._core.engine.set_isa`;
:func:`~qdq._core.engine.isa_name` says what each kernel runs. The bits of every level
against level 0 are tested with the kernels themselves (the ``isa`` fixture of conftest.py
and the tests that loop over the levels).
"""

from __future__ import annotations

import pathlib
import re

import pytest

from qdq._core import engine as _engine
from qdq._ext import histogram as _histkernel
from qdq._ext import kernels as _kernels
from qdq._ext import search as _search

EXT = pathlib.Path(__file__).resolve().parents[2] / "qdq" / "_ext"


@pytest.fixture
def restore_isa():
    yield
    _engine.set_isa(-1)


def test_every_module_follows_the_one_level(restore_isa):
    best = _engine.isa_available()
    for level in range(best + 1):
        assert _engine.set_isa(level) == level
        assert _engine.get_isa() == _kernels.get_isa() == _histkernel.get_isa() == level
        assert _search.get_isa() == level
    # set in the kernels module directly: the histogram and the searches follow too
    _kernels.set_isa(0)
    assert _histkernel.get_isa() == 0 and _search.get_isa() == 0


def test_set_isa_caps_at_the_best_available(restore_isa):
    best = _engine.isa_available()
    assert 0 <= best <= 3
    assert _engine.set_isa(99) == best and _engine.get_isa() == best
    _engine.set_isa(0)
    assert _engine.set_isa(-1) == best and _histkernel.get_isa() == best


@pytest.mark.parametrize("level", range(4))
def test_isa_name_says_what_each_kernel_runs(restore_isa, level):
    if level > _engine.isa_available():
        pytest.skip(f"the CPU or build has no level {level}")
    _engine.set_isa(level)
    name = _engine.isa_name()
    assert name.startswith(f"level {level} ({_engine.ISA_LEVELS[level]}): ")
    every = {"op", "bfloat16 op", "error statistics", "histogram", "calibration search"}
    for kernel in every:
        assert f"{kernel} " in name
    kernels = dict(_kernels.kernel_isa(level) + _histkernel.kernel_isa(level)
                   + _search.kernel_isa(level))
    assert set(kernels) == every
    # each kernel runs a copy of this level or below
    for isa in kernels.values():
        assert _engine.ISA_LEVELS.index(isa) <= level
    if level == 0:
        assert set(kernels.values()) == {"baseline"}
    assert _engine.isa_name() in _engine.build_info()


@pytest.mark.skipif(not EXT.joinpath("csrc", "cpu.h").is_file(),
                    reason="the C sources are not in this installation")
def test_one_probe_and_no_target_clones():
    sources = {p.name: p.read_text() for p in [*EXT.glob("csrc/*.h"), *EXT.glob("*.pyx")]}
    probes = sorted(n for n, s in sources.items() if "__builtin_cpu_supports" in s)
    assert probes == ["cpu.h"]
    assert not [n for n, s in sources.items() if "target_clones" in s]
    # every instruction-set copy is compiled with cpu.h's target attributes
    targets = sorted(n for n, s in sources.items() if re.search(r"target\(\"", s))
    assert targets == ["cpu.h"]
    # no C with intrinsics inside a Cython string: the histogram's C is in csrc/
    for name, text in sources.items():
        if name.endswith(".pyx"):
            assert "_mm" not in text and "#include <immintrin.h>" not in text, name
    assert '"csrc/hist.h"' in sources["histogram.pyx"]
