"""The stub of the compiled module cannot drift from it (mypy's stubtest)."""

import os
import subprocess
import sys

import pytest


def test_kernels_stub_matches_the_module(tmp_path):
    pytest.importorskip("mypy")
    import qdq

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(qdq.__file__)))
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest", "qdq._kernels"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr


def test_package_is_typed():
    import importlib.resources

    assert importlib.resources.files("qdq").joinpath("py.typed").is_file()
    assert importlib.resources.files("qdq").joinpath("_kernels.pyi").is_file()
