"""The stub of the compiled module cannot drift from it (mypy's stubtest)."""

import pytest
from _util import run_python


@pytest.mark.parametrize("module", ["qdq._ext.kernels", "qdq._ext.testing", "qdq._ext.histogram",
                                    "qdq._ext.dlpack", "qdq._ext.bufcache",
                                    "qdq._ext.search"])
def test_kernels_stub_matches_the_module(tmp_path, module):
    pytest.importorskip("mypy")

    res = run_python(["-m", "mypy.stubtest", module], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_package_is_typed():
    import importlib.resources

    assert importlib.resources.files("qdq").joinpath("py.typed").is_file()
    assert importlib.resources.files("qdq").joinpath("_ext").joinpath("kernels.pyi").is_file()
