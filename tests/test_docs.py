"""The documentation runs and tells the truth.

- The examples in every module's docstrings run and print what they say (the
  doctests of the installed package, module by module: the same as
  ``pytest --doctest-modules`` over ``qdq/``, but against the installed build,
  since the checkout's ``qdq/`` holds no compiled kernels), and every object of
  the public API has one.
- Every code block of the guide's pages (docs/*.md) runs and prints what the
  page shows (the conventions: tests/_pages.py, docs/development.md).
- The guide's index lists every page; the paths and module names the pages
  give exist; the architecture page's layer table and module list are the code's.
"""

import doctest
import glob
import importlib
import os
import pkgutil
import re

import _pages
import pytest

import qdq
import qdq._checkpoint.report

_OPTIONAL = {"qdq.dask": "dask", "qdq.torch": "torch", "qdq.jax": "jax"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(qdq.__path__, "qdq.")
                 if m.name != "qdq.__main__")
DOCS = os.path.join(_pages.ROOT, "docs")
SOURCE = os.path.join(_pages.ROOT, "qdq")  # the checkout's sources (absent beside a wheel)
PAGES = sorted(glob.glob(os.path.join(DOCS, "*.md")))
PAGE_BLOCKS = {page: _pages.parse(page) for page in PAGES}
needs_docs = pytest.mark.skipif(not PAGES, reason="no docs/ beside the tests")
needs_source = pytest.mark.skipif(not os.path.isdir(os.path.join(SOURCE, "_ext", "csrc")),
                                  reason="no source checkout beside the tests")

#: Objects of the public API without an example of their own, and why.
NO_EXAMPLE = {
    # the autograd Function behind qdq.torch.quantize_and_dequantize, whose example runs it
    "qdq.torch.QuantizeAndDequantizeFunction",
    # data, not callables (a typing alias and a tuple hold no docstring of their own); the
    # examples of qdq.torch.quantize_and_dequantize and qdq.jax.quantize_and_dequantize use them
    "qdq.torch.Backend",
    "qdq.jax.STATIC_ARGNAMES",
}


def _public_api():
    """(name, object) of everything the API reference documents."""
    out = [(f"qdq.{n}", getattr(qdq, n)) for n in qdq.__all__]
    out += [(f"qdq._checkpoint.report.{n}", getattr(qdq._checkpoint.report, n))
            for n in ("CheckpointReport", "TensorRecord")]
    for module in _OPTIONAL:
        try:  # the adapters of packages that are not installed are left out
            mod = importlib.import_module(module)
        except ImportError:
            continue
        out += [(f"{module}.{n}", getattr(mod, n)) for n in mod.__all__]
    return out


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    """A module's examples pass, and one that defines public API runs at least one."""
    if name in _OPTIONAL:
        pytest.importorskip(_OPTIONAL[name])
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE,
                                      extraglobs={"qdq": qdq})
    assert failures == 0
    public = [n for n, obj in _public_api() if getattr(obj, "__module__", None) == name]
    if public:
        assert tried >= 1, f"{name} defines {public} but ran no example"


def test_every_public_object_has_an_example():
    finder = doctest.DocTestFinder(recurse=False)
    missing = [name for name, obj in _public_api() if name not in NO_EXAMPLE
               and not any(t.examples for t in finder.find(obj, name))]
    assert not missing, missing


def test_every_public_function_has_a_docstring():
    for name in qdq.__all__:
        obj = getattr(qdq, name)
        assert obj.__doc__ and len(obj.__doc__) > 40, name


# -- the pages' code blocks ---------------------------------------------------------------

@pytest.fixture(scope="module")
def page_outcomes(tmp_path_factory):
    """Each page's blocks run once, in order, in a directory of its own."""
    done = {}

    def run(page):
        if page not in done:
            name = os.path.splitext(os.path.basename(page))[0]
            done[page] = _pages.run_page(page, str(tmp_path_factory.mktemp(name)))
        return done[page]

    return run


@pytest.mark.parametrize("page, block", [pytest.param(p, b, id=b.id) for p in PAGES
                                         for b in _pages.runnable(PAGE_BLOCKS[p])])
def test_block(page, block, page_outcomes):
    _pages.check_outcome(page_outcomes(page)[block.line])


@needs_docs
@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_blocks_follow_the_convention(page):
    _pages.check_page(page, PAGE_BLOCKS[page])


@needs_docs
@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_every_runnable_block_ran(page, page_outcomes):
    assert sorted(page_outcomes(page)) == [b.line for b in _pages.runnable(PAGE_BLOCKS[page])]


@needs_docs
def test_the_pages_hold_examples():
    """The guide's pages hold the examples they held when this test was written, or more."""
    ran = {os.path.basename(p): len(_pages.runnable(PAGE_BLOCKS[p])) for p in PAGES}
    assert sum(ran.values()) >= 30, ran
    assert all(ran[page] >= 1 for page in (
        "semantics.md", "streaming.md", "codes.md", "blocks.md", "calibration.md",
        "checkpoints.md", "interop.md", "dask.md", "cli.md")), ran


# -- the index, the API reference, the paths, the architecture ---------------------------------

@needs_docs
def test_the_api_reference_documents_every_public_name():
    with open(os.path.join(DOCS, "api.rst")) as f:
        documented = set(re.findall(r"^\.\. (?:auto)?(?:function|class):: (\w+)", f.read(),
                                    flags=re.M))
    assert not set(qdq.__all__) - documented, sorted(set(qdq.__all__) - documented)


@needs_docs
def test_the_index_lists_every_page():
    with open(os.path.join(DOCS, "index.md")) as f:
        index = f.read()
    entries = [line for block in re.findall(r"```\{toctree\}\n(.*?)```", index, flags=re.S)
               for line in block.splitlines() if line and not line.startswith(":")]
    pages = {os.path.splitext(os.path.basename(p))[0]
             for ext in ("md", "rst") for p in glob.glob(os.path.join(DOCS, f"*.{ext}"))}
    listed = set(entries)
    assert pages - {"index"} <= listed, f"not in the index: {pages - {'index'} - listed}"
    absent = {e for e in entries if e not in pages}
    assert not absent, f"listed but absent: {absent}"


_PATH = re.compile(r"(?<![\w/.])((?:qdq|tests|benchmarks|docs|\.ci)/[\w./*-]*\w)")
_MODULE = re.compile(r"(?<![\w/.])(qdq\._[a-z]\w*(?:\.\w+)*)")


def _page_texts():
    for path in PAGES + [os.path.join(_pages.ROOT, "README.md")]:
        if os.path.exists(path):
            with open(path) as f:
                yield os.path.relpath(path, _pages.ROOT), f.read()


@needs_docs
@needs_source
def test_paths_and_modules_the_pages_name_exist():
    """``qdq/...``, ``tests/...``, ``benchmarks/...`` paths and ``qdq._x.y`` modules are real."""
    bad = []
    for page, text in _page_texts():
        for path in set(_PATH.findall(text)):
            if not glob.glob(os.path.join(_pages.ROOT, path)):
                bad.append(f"{page}: {path}")
        for name in set(_MODULE.findall(text)):
            try:
                importlib.import_module(name)
            except ImportError:
                module, _, attr = name.rpartition(".")
                try:
                    if hasattr(importlib.import_module(module), attr):
                        continue
                except ImportError:
                    pass
                bad.append(f"{page}: {name}")
    assert not bad, bad


def _section(text, heading):
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def _table_rows(section):
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|\-\s]+", line)]


def _names(cell):
    return [n.strip().strip("`") for n in cell.split(",") if n.strip()]


@needs_docs
@needs_source
def test_architecture_page_matches_the_code():
    """The layer table is tests/test_structure.py's LAYERS; the module list is every module."""
    import test_structure

    with open(os.path.join(DOCS, "architecture.md")) as f:
        text = f.read()
    rows = _table_rows(_section(text, "Layers"))
    assert rows[0][:2] == ["layer", "packages and modules"] and rows[0][3] == "may import"
    layers = [(row[0].strip("`"), _names(row[1])) for row in rows[1:]]
    assert layers == [(name, list(prefixes)) for name, prefixes in test_structure.LAYERS]
    for i, row in enumerate(rows[1:]):
        below = [name for name, _ in test_structure.LAYERS[:i]]
        may = [] if row[3] == "nothing of qdq" else _names(row[3])
        assert may == below, f"layer {row[0]} may import {below}, the page says {row[3]}"

    listed = [row[0].strip("`") for row in _table_rows(_section(text, "Modules"))
              if row[0] != "module"]
    assert len(listed) == len(set(listed)), "a module listed twice"
    root = _pages.ROOT
    actual = {os.path.relpath(p, root) for pattern in ("**/*.py", "_ext/*.pyx", "_ext/csrc/*.h")
              for p in glob.glob(os.path.join(SOURCE, pattern), recursive=True)}
    assert not actual - set(listed), f"modules the page leaves out: {sorted(actual - set(listed))}"
    assert not set(listed) - actual, f"listed, not in qdq/: {sorted(set(listed) - actual)}"
