"""The examples in the docstrings run and print what they say."""

import doctest

import pytest

import qdq
from qdq import _api, _codes, _stream, _threads


@pytest.mark.parametrize("module", [_api, _codes, _stream, _threads], ids=lambda m: m.__name__)
def test_docstring_examples(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE,
                                      extraglobs={"qdq": qdq})
    assert failures == 0


def test_dask_docstring_examples(tmp_path, monkeypatch):
    pytest.importorskip("dask")
    import qdq.dask

    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(qdq.dask, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0 and tried > 0


def test_every_public_function_has_a_docstring():
    for name in qdq.__all__:
        obj = getattr(qdq, name)
        assert obj.__doc__ and len(obj.__doc__) > 40, name
