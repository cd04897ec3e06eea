"""Test configuration: hypothesis profiles and the instruction-set fixture."""

import glob
import importlib.machinery
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
# Test the installed package: a checkout's qdq/ has no compiled kernels unless
# built in place, so keep the checkout off sys.path in that case.
if not any(glob.glob(os.path.join(ROOT, "qdq", "_ext", "kernels" + suffix))
           for suffix in importlib.machinery.EXTENSION_SUFFIXES):
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]

settings.register_profile("dev", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("QDQ_HYPOTHESIS_PROFILE", "dev"))


def _isa_levels():
    from qdq._core import engine as _engine

    return list(range(_engine.isa_available() + 1))


ISA_IDS = ("baseline", "avx2", "avx512", "avx512bf16")


@pytest.fixture(params=_isa_levels(), ids=lambda level: ISA_IDS[level])
def isa(request):
    """Run a test once per instruction-set level this CPU supports, every compiled kernel
    (op, codes, gradient, error statistics, histogram, calibration searches) at that level:
    baseline, AVX2+F16C, AVX-512 F/BW/VL, and AVX-512 with AVX512-BF16 (qdq/_ext/csrc/cpu.h)."""
    from qdq._core import engine as _engine

    _engine.set_isa(request.param)
    try:
        yield request.param
    finally:
        _engine.set_isa(-1)
