"""The README's Python examples run as written."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks():
    if not os.path.exists(README):  # tests run from an installed copy without the README
        return []
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("code", _blocks(), ids=lambda c: c.splitlines()[0][:40])
def test_readme_example(code, tmp_path, monkeypatch):
    for optional in ("torch", "jax", "xarray"):  # not test dependencies: skipped when absent
        if re.search(rf"^(import|from) {optional}\b", code, flags=re.M):
            pytest.importorskip(optional)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
