"""The examples in every module's docstrings run and print what they say.

(The doctests of the installed package, module by module: the same as
``pytest --doctest-modules`` over ``qdq/``, but against the installed build,
since the checkout's ``qdq/`` holds no compiled kernels.)
"""

import doctest
import importlib
import pkgutil

import pytest

import qdq

_OPTIONAL = {"qdq.dask": "dask", "qdq.torch": "torch", "qdq.jax": "jax"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(qdq.__path__, "qdq.")
                 if m.name != "qdq.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    if name in _OPTIONAL:
        pytest.importorskip(_OPTIONAL[name])
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE,
                                      extraglobs={"qdq": qdq})
    assert failures == 0


def test_every_public_function_has_a_docstring():
    for name in qdq.__all__:
        obj = getattr(qdq, name)
        assert obj.__doc__ and len(obj.__doc__) > 40, name
