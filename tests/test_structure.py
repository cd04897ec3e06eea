"""The package's layout rules, checked on its source (see docs/architecture.md).

- the layer contract: each layer imports only the layers below it
  (``_ext <- _io <- _core <- _calibrate <- _stream <- _checkpoint <-
  {dask, torch, jax, _interop, _reference} <- qdq/__init__.py <- cli``);
- imports by name at run time (``importlib.import_module``, ``__import__``, and
  the adapters' module paths ``qdq/__init__.py`` registers) count as imports,
  and only ``qdq/__init__.py`` may name a module that way;
- no import cycle between qdq's modules;
- no import inside a function, except of optional dependencies;
- no module imports an underscore name from another qdq module;
- every package directory is packaged.
"""

import ast
import importlib.machinery
import os

import pytest

import qdq

PACKAGE = os.path.dirname(qdq.__file__)
OPTIONAL = {"ml_dtypes", "tqdm", "dask", "distributed", "matplotlib", "torch", "jax",
            "xarray", "safetensors", "threadpoolctl"}

#: The layers, lowest first; a module may import its own layer and those below.
LAYERS = [
    ("_ext", ["qdq._ext"]),
    ("_io", ["qdq._io"]),
    ("_core", ["qdq._core"]),
    ("_calibrate", ["qdq._calibrate"]),
    ("_stream", ["qdq._stream"]),
    ("_checkpoint", ["qdq._checkpoint"]),
    ("adapters", ["qdq.dask", "qdq.torch", "qdq.jax", "qdq._interop", "qdq._reference"]),
    ("__init__", ["qdq"]),
    ("cli", ["qdq.cli", "qdq.__main__"]),
]


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
COMPILED = {"qdq._ext." + f.split(".")[0] for f in os.listdir(os.path.join(PACKAGE, "_ext"))
            if f.endswith((".pyx", *importlib.machinery.EXTENSION_SUFFIXES))}
KNOWN = set(MODULES) | COMPILED


def layer_of(module):
    """The index of a qdq module's layer (a package's modules share its layer)."""
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or
                                                                len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best[0]


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


def _parents(tree):
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _inside_function(node, parents):
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _string_args(call):
    return [a.value for a in call.args if isinstance(a, ast.Constant)
            and isinstance(a.value, str)]


def _call_name(call):
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)


def _imports(module):
    """(top-level imports, imports inside functions, imports by name at run time)."""
    tree = ast.parse(open(MODULES[module]).read())
    parents = _parents(tree)
    top, nested, by_name = [], [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (nested if _inside_function(node, parents) else top).extend(_resolve(module, node))
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            if name in ("import_module", "__import__"):
                by_name.append(("call", node.lineno, _string_args(node), node.args))
            elif name == "register":  # the adapters' module paths (qdq/__init__.py)
                by_name.extend(("register", node.lineno, [s], node.args)
                               for s in _string_args(node) if s.startswith("qdq."))
    return top, nested, by_name


def _edges(module):
    """The qdq modules ``module`` depends on, with how (import, by name)."""
    top, nested, by_name = _imports(module)
    out = set()
    for target, name in top + nested:
        if target and (target == "qdq" or target.startswith("qdq.")):
            sub = f"{target}.{name}" if name and f"{target}.{name}" in KNOWN else target
            if sub != module:
                out.add(sub)
    for _, _, strings, _ in by_name:
        out.update(s for s in strings if s in KNOWN)
    return out


def test_found_the_package():
    assert "qdq._core.op" in MODULES and "qdq._io.safetensors" in MODULES
    assert "qdq._ext.kernels" in COMPILED


def test_every_module_is_in_a_layer():
    for m in MODULES:
        layer_of(m)


def test_layer_contract():
    """No arrow runs back up: a module imports its own layer and the layers below."""
    bad = []
    for m in MODULES:
        for d in _edges(m):
            if d in KNOWN and layer_of(d) > layer_of(m):
                bad.append(f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})")
    assert not bad, bad


def test_imports_by_name_only_in_the_package_init():
    """``importlib`` and registered module paths are imports: only ``qdq/__init__.py`` has them.

    Elsewhere a module may import by name only a path it was handed (a
    variable, as the registry does), never a literal.
    """
    bad = []
    for m in MODULES:
        _, _, by_name = _imports(m)
        for how, line, strings, args in by_name:
            if m == "qdq":
                continue
            if strings or how == "register" and any(isinstance(a, ast.Constant) for a in args):
                bad.append(f"{m}:{line}: {how} {strings}")
    assert not bad, bad


def test_the_package_init_registers_the_adapters():
    _, _, by_name = _imports("qdq")
    registered = {s for how, _, strings, _ in by_name if how == "register" for s in strings}
    assert registered == {"qdq.dask", "qdq._interop.xarray", "qdq._interop.dlpack"}
    assert registered <= set(MODULES)


def test_no_import_cycle():
    graph = {m: {d for d in _edges(m) if d in MODULES} for m in MODULES}
    state = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            # a package's __init__ re-exports its submodules: not their dependency
            if d == m.rsplit(".", 1)[0]:
                continue
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_imports_inside_functions_are_optional_dependencies():
    bad = []
    for m in MODULES:
        _, nested, _ = _imports(m)
        for target, _name in nested:
            if target.split(".")[0] not in OPTIONAL:
                bad.append(f"{m}: {target}")
    assert not bad, bad


def test_no_underscore_names_across_modules():
    bad = []
    for m in MODULES:
        top, nested, _ = _imports(m)
        for target, name in top + nested:
            if target and target.startswith("qdq") and name and name.startswith("_") \
                    and f"{target}.{name}" not in KNOWN and name != "__version__":
                bad.append(f"{m}: {name} from {target}")
    assert not bad, bad


def test_one_underscore_per_path():
    """Privacy at package level: a private package's modules carry no underscore of their own."""
    bad = [m for m in KNOWN if m.count("._") > 1
           or (m.count("._") == 1 and not m.split(".")[1].startswith("_")
               and m.split(".")[-1].startswith("_") and not m.endswith("__main__"))]
    assert not bad, bad


def test_every_subpackage_is_packaged():
    """``pip install .`` (not editable) ships every package directory."""
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
