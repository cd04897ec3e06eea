"""Count numpydoc's validation findings over qdq's documented API.

``python docs/check_docstrings.py [-v]``: every object docs/api.rst documents
(``qdq.__all__`` and its classes' public methods, the checkpoint report's
classes, ``qdq.dask.__all__``; properties and dataclass fields are described
in their class's sections), through ``numpydoc.validate``; prints the counts
per check, for all checks and for those docs/conf.py enforces (the Sphinx
build fails on any of those). Exits 1 if an enforced check fails.
"""

import ast
import collections
import inspect
import os
import sys

import numpydoc.validate

import qdq
import qdq._checkpoint.report
import qdq.dask


def enforced_checks() -> set:
    """The checks of conf.py's ``numpydoc_validation_checks`` ("all" minus the rest)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "numpydoc_validation_checks" for t in node.targets):
            listed = ast.literal_eval(node.value)
            return numpydoc.validate.get_validation_checks(listed)
    raise SystemExit("conf.py sets no numpydoc_validation_checks")


def documented() -> list:
    """The names of the objects the API reference documents."""
    names = []

    def add_class(prefix, cls):
        names.append(prefix)
        for member, value in vars(cls).items():
            if not member.startswith("_") and (
                    inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod))):
                names.append(f"{prefix}.{member}")

    for name in qdq.__all__:
        obj = getattr(qdq, name)
        if obj is qdq.quantize_and_dequantize and name != "quantize_and_dequantize":
            continue  # an alias
        if inspect.isclass(obj):
            add_class(f"qdq.{name}", obj)
        else:
            names.append(f"qdq.{name}")
    for name in ("CheckpointReport", "TensorRecord"):
        add_class(f"qdq._checkpoint.report.{name}", getattr(qdq._checkpoint.report, name))
    names += [f"qdq.dask.{name}" for name in qdq.dask.__all__]
    return names


def main() -> int:
    checks = enforced_checks()
    names = documented()
    every, enforced = collections.Counter(), collections.Counter()
    without_examples = 0
    for name in names:
        errors = numpydoc.validate.validate(name)["errors"]
        without_examples += any(code == "EX01" for code, _ in errors)
        for code, message in errors:
            every[code] += 1
            if code in checks:
                enforced[code] += 1
                if "-v" in sys.argv:
                    print(f"{name}: {code} {message}")
    print(f"{len(names)} objects, {without_examples} without an Examples section")
    print(f"all checks: {sum(every.values())} findings {dict(every.most_common())}")
    print(f"enforced checks: {sum(enforced.values())} findings {dict(enforced.most_common())}")
    return 1 if enforced else 0


if __name__ == "__main__":
    sys.exit(main())
