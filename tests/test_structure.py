"""The package's layout rules, checked on its source (see "How qdq is built" in the README).

- no import cycle between qdq's modules;
- no import inside a function, except of optional dependencies;
- no module imports an underscore name from another qdq module;
- no Python module over about 500 lines.
"""

import ast
import importlib.machinery
import os

import pytest

import qdq

PACKAGE = os.path.dirname(qdq.__file__)
OPTIONAL = {"ml_dtypes", "tqdm", "dask", "distributed", "matplotlib", "torch", "jax",
            "xarray", "safetensors", "threadpoolctl"}
MAX_LINES = 520


def _modules():
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                name = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
                out[name] = path
    return out


MODULES = _modules()
# compiled modules: their sources (a checkout) or their built files (an installed wheel)
COMPILED = {"qdq." + f.split(".")[0] for f in os.listdir(PACKAGE)
            if f.endswith((".pyx", *importlib.machinery.EXTENSION_SUFFIXES))}


def _resolve(module, node):
    """The absolute module names an import node refers to."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    base = module.split(".")
    is_pkg = MODULES[module].endswith("__init__.py")
    if node.level:
        base = base[:len(base) - node.level + (1 if is_pkg else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    return [(target, a.name) for a in node.names]


def _imports(module):
    tree = ast.parse(open(MODULES[module]).read())
    top, nested = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            inside = any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef))
                         for p in _parents(tree, node))
            (nested if inside else top).extend(_resolve(module, node))
    return top, nested


def _parents(tree, target):
    stack = [(tree, [])]
    while stack:
        node, chain = stack.pop()
        for child in ast.iter_child_nodes(node):
            if child is target:
                return chain + [node]
            stack.append((child, chain + [node]))
    return []


def _internal(target):
    if target in MODULES:
        return target
    parent = target.rsplit(".", 1)[0]
    return parent if parent in MODULES and target not in MODULES else None


def test_found_the_package():
    assert "qdq._op" in MODULES and "qdq._io.sources" in MODULES


def test_no_import_cycle():
    graph = {}
    for m in MODULES:
        top, nested = _imports(m)
        deps = set()
        for target, name in top + nested:
            if target and target.startswith("qdq"):
                sub = f"{target}.{name}" if name and f"{target}.{name}" in MODULES else target
                if sub in MODULES and sub != m:
                    deps.add(sub)
        graph[m] = deps
    # a package's __init__ re-exports: its edges to submodules are not dependencies of them
    state = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            if d == "qdq" or (d.endswith("__init__")):
                continue
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state and m != "qdq":
            visit(m, [])


def test_imports_inside_functions_are_optional_dependencies():
    bad = []
    for m in MODULES:
        _, nested = _imports(m)
        for target, _name in nested:
            if target.split(".")[0] not in OPTIONAL:
                bad.append(f"{m}: {target}")
    assert not bad, bad


def test_no_underscore_names_across_modules():
    bad = []
    for m in MODULES:
        top, nested = _imports(m)
        for target, name in top + nested:
            if target and target.startswith("qdq") and name and name.startswith("_") \
                    and f"{target}.{name}" not in (MODULES.keys() | COMPILED) \
                    and name != "__version__":
                bad.append(f"{m}: {name} from {target}")
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    with open(MODULES[module]) as f:
        n = sum(1 for _ in f)
    assert n <= MAX_LINES, f"{module} has {n} lines"


def test_every_subpackage_is_packaged():
    """``pip install .`` (not editable) ships every package directory (qdq._io included)."""
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(PACKAGE)
    pyproject = os.path.join(root, "pyproject.toml")
    if not os.path.exists(pyproject):
        pytest.skip("not a source checkout")
    with open(pyproject, "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(d, root).replace(os.sep, ".") for d, _, files in os.walk(PACKAGE)
             if "__init__.py" in files}
    assert found <= listed, f"pyproject.toml's packages lack {sorted(found - listed)}"
