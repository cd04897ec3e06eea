"""Sphinx configuration of qdq's documentation.

Build: ``pip install ".[docs]"`` then
``python -m sphinx -W --keep-going -b html docs docs/_build/html``. The guide's
pages are Markdown (MyST), the API reference reStructuredText.
Nothing is fetched from the network (no intersphinx). The docstrings'
examples are doctests run by the test suite (tests/test_docs.py, against the
installed build), so the build does not run them again.
"""

import contextlib
import io
import os
import sys

# Document the installed qdq: the checkout's qdq/ holds no compiled kernels
# unless it was built in place, and ``python -m sphinx`` puts the working
# directory first on sys.path. (An editable install maps to the checkout anyway.)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PATH = sys.path[:]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
try:
    import qdq
except ImportError:  # an editable install through a path entry: the checkout is the build
    for _name in [m for m in sys.modules if m == "qdq" or m.startswith("qdq.")]:
        del sys.modules[_name]
    sys.path[:] = _PATH
    import qdq

project = "qdq"
author = "The qdq developers"
copyright = "the qdq developers (MIT licence)"
version = release = qdq.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
# The guide's pages are Markdown (MyST); links to a section use its heading's slug.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Every documented object is validated; -W turns a violation into an error.
# Left out, with the reason:
#   ES01  extended summary: a one-line summary is enough for small methods.
#   SA01  See Also: not every object has a natural neighbour to point to.
#   PR03  parameter order: arguments of one type shared by one description
#         ("signed_input, range_given, narrow_range : bool", numpydoc's
#         ``x1, x2 : type`` form) are documented together even when the
#         signature interleaves them (the op's argument order is TensorFlow's).
numpydoc_validation_checks = {"all", "ES01", "SA01", "PR03"}


def _cli_help(*argv: str) -> str:
    """What ``qdq ARGV --help`` prints (80 columns)."""
    import qdq.cli.main

    os.environ["COLUMNS"] = "80"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        qdq.cli.main.main([*argv, "--help"])
    return out.getvalue()


def _skip_member(app, what, name, obj, skip, options):
    """Properties are described in their class's Attributes section."""
    if what == "class" and isinstance(obj, property):
        return True
    return None


def setup(app):
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class CliHelp(SphinxDirective):
        """``.. qdq-cli-help:: [COMMAND]``: the command's ``--help``, generated."""

        optional_arguments = 1

        def run(self):
            text = _cli_help(*self.arguments)
            return [nodes.literal_block(text, text, language="text")]

    app.add_directive("qdq-cli-help", CliHelp)
    app.connect("autodoc-skip-member", _skip_member)

