"""docs/qat.md: every Python example runs and prints exactly the text block after it.

Skipped when the page is absent (an installed copy of the tests) or when an
example's framework (torch, JAX) is not installed.
"""

import contextlib
import io
import os
import re

import pytest

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "docs", "qat.md")


def _examples():
    if not os.path.exists(PAGE):
        return []
    with open(PAGE) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", text, flags=re.S)


def test_the_page_has_examples():
    if not os.path.exists(PAGE):
        pytest.skip("docs/qat.md is not here")
    assert len(_examples()) >= 6


@pytest.mark.parametrize("code, printed", _examples(), ids=lambda v: v.splitlines()[0][:40])
def test_example_prints_what_the_page_says(code, printed, tmp_path, monkeypatch):
    for optional in ("torch", "jax"):
        if re.search(rf"^(import|from) {optional}\b", code, flags=re.M):
            pytest.importorskip(optional)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, PAGE, "exec"), {})
    assert out.getvalue() == printed
