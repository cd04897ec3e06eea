"""The code blocks of qdq's Markdown pages (README.md, docs/*.md): found, run, compared.

The convention (written for authors in docs/development.md, "Code blocks in the pages"):

* A ```python block runs. A page's blocks run in order, in one namespace and in one
  temporary working directory, so a block may use what an earlier block of its page made.
  What a block prints is compared with the ```text block right after it (only blank lines
  between), or with nothing when no ```text block follows.
* A ```console block holds commands, each on a line starting with ``$ `` (a line ending with
  ``\\`` continues on the next), each followed by what it prints (stdout and stderr, as a
  terminal shows them). The commands run with bash in the page's working directory, with the
  running Python's ``bin`` directory first on ``PATH`` (so ``qdq`` and ``python`` are the ones
  under test) and ``LC_ALL=C``; each must exit with status 0 (shown, when it is not, with
  ``; echo "exit status $?"``). Without bash (Windows) they are skipped.
* In expected output, ``...`` stands for any text (doctest's ELLIPSIS), and spaces at the end
  of a line are ignored. The pages use ``...`` only for what changes between runs or
  platforms: timings, speeds, temporary paths, the version, the last digits of a logarithm
  printed in full.
* A block that cannot run in a test carries a marker on the line before it,
  ``<!-- not run: REASON[, REASON] -->``, with each REASON one of :data:`NOT_RUN`; every
  line of a marked block must be of a kind its reasons name (so the marker cannot hide an
  example that could run).
* A ```python block that imports one of :data:`OPTIONAL` is skipped when that package is not
  installed (the main test job has none of them); ``.ci/run``'s interop stage installs them
  and sets ``QDQ_DOCS_REQUIRE_ALL=1``, which turns such a skip into a failure.
* The MyST directives of :data:`DIRECTIVES` (```{toctree}, ```{qdq-cli-help},
  ```{include}) are no code; any other directive breaks the convention.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import traceback

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Packages whose absence skips a block (they are not test dependencies).
OPTIONAL = ("torch", "jax", "xarray", "transformers", "compressed_tensors")

#: The reasons a block may not run, each with the pattern every non-blank line of such a
#: block must match (for "synopsis" and "not code": what the whole block must be).
NOT_RUN = {
    # installs or builds qdq, or fetches something
    "install": re.compile(r"^(pip3? (install|wheel)|python3? -m (pip|venv|build)|git clone"
                          r"|auditwheel|cd )"),
    # minutes of work: the test suite, a benchmark, the sanitizers, the lint, the docs build
    "long": re.compile(r"(pytest|benchmarks/|\.ci/|sphinx|ruff|mypy|cython-lint)"),
    # needs TensorFlow, which is never a dependency of qdq or of its tests
    "tensorflow": re.compile(r"(tensorflow|/tmp/tf/)"),
    # a usage synopsis with placeholders, not a command
    "synopsis": re.compile(r"^qdq [a-z]+ .*[A-Z]{3,}|\[--"),
    # pseudo-code, a diagram or a file's contents: a ```text block
    "not code": None,
}

DIRECTIVES = ("{toctree}", "{qdq-cli-help}", "{include}")
_MARKER = re.compile(r"^<!-- not run: ([a-z ,]+) -->$")
_FENCE = re.compile(r"^(`{3,})([^`\s]*)[^`]*$")
_INDENTED_FENCE = re.compile(r"^\s+`{3,}[^`]*$")


@dataclasses.dataclass
class Block:
    """One fenced block of a page."""

    page: str          # the page's path, relative to the repository
    line: int          # the line of its opening fence (1-based)
    lang: str          # the info string's first word
    text: str          # its content, with a final newline
    not_run: tuple = ()  # the reasons of its marker
    output: Block | None = None  # the ```text block holding what a ```python block prints
    is_output: bool = False  # a ```text block that is the output of the block before it

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def fence_count(path: str) -> int:
    """The number of fenced blocks in a page, counted without the parser."""
    with open(path) as f:
        return sum(1 for line in f if line.startswith("```")) // 2


def parse(path: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order."""
    with open(path) as f:
        lines = f.read().splitlines()
    page = os.path.relpath(path, ROOT)
    blocks: list[Block] = []
    i = prev_end = 0  # prev_end: the closing fence of the block before
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, lang, start = m.group(1), m.group(2), i
        i += 1
        while i < len(lines) and lines[i] != ticks:  # an unclosed block: see problems()
            i += 1
        text = "".join(line + "\n" for line in lines[start + 1:i])
        marker = _MARKER.match(lines[start - 1]) if start else None
        reasons = tuple(r.strip() for r in marker.group(1).split(",")) if marker else ()
        block = Block(page, start + 1, lang, text, reasons)
        prev = blocks[-1] if blocks else None
        if (lang == "text" and not reasons and prev is not None and prev.lang == "python"
                and not prev.not_run and prev.output is None
                and all(not line.strip() for line in lines[prev_end + 1:start])):
            prev.output, block.is_output = block, True
        blocks.append(block)
        prev_end = i
        i += 1
    return blocks


def problems(path: str) -> list[str]:
    """What keeps a page from being parsed as the convention says: fences indented or unclosed."""
    with open(path) as f:
        lines = f.read().splitlines()
    page = os.path.relpath(path, ROOT)
    found = [f"{page}:{n}: a fence must start its line" for n, line in enumerate(lines, 1)
             if _INDENTED_FENCE.match(line)]
    fences = [n for n, line in enumerate(lines, 1) if _FENCE.match(line)]
    closing = [n for n, line in enumerate(lines, 1) if re.fullmatch(r"`{3,}", line)]
    if len(fences) % 2 or len(closing) * 2 != len(fences):
        found.append(f"{page}: {len(fences)} fences, {len(closing)} of them closing: "
                     "a block is not closed, or a fence sits inside a block")
    return found


def runnable(blocks: list[Block]) -> list[Block]:
    """The blocks that run: ```python and ```console blocks without a marker."""
    return [b for b in blocks if b.lang in ("python", "console") and not b.not_run]


def check_page(path: str, blocks: list[Block]) -> None:
    """Every block of a page follows the convention, and the parser found every fence."""
    found = problems(path) + [f"{b.id}: {why}" for b in blocks if (why := check_block_kind(b))]
    assert not found, found
    assert len(blocks) == fence_count(path), "a fence the parser did not see"


def check_outcome(outcome: Outcome) -> None:
    """Pass, skip or fail a block's test as its run went."""
    if outcome.status == "skipped":
        pytest.skip(outcome.message)
    assert outcome.status == "passed", outcome.message


def check_block_kind(block: Block) -> str | None:
    """Why a block breaks the convention, or None."""
    if block.lang in DIRECTIVES or block.is_output:
        return None
    if block.not_run:
        unknown = [r for r in block.not_run if r not in NOT_RUN]
        if unknown:
            return f"unknown reason {unknown} (known: {sorted(NOT_RUN)})"
        if "not code" in block.not_run:
            return None if block.lang == "text" else "'not code' is for ```text blocks"
        patterns = [NOT_RUN[r] for r in block.not_run]
        for line in block.text.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and not any(
                    p.search(line) for p in patterns):
                return f"line {line!r} is none of {block.not_run}"
        return None
    if block.lang in ("python", "console"):
        return None
    if block.lang.startswith("{"):
        return f"the directive {block.lang} is not one of {DIRECTIVES}"
    return f"a ```{block.lang} block must run (python, console) or be marked not run"


def matches(want: str, got: str) -> bool:
    """``got`` equals ``want`` with ``...`` standing for any text, trailing spaces ignored."""
    want, got = _strip(want), _strip(got)
    pattern = ".*?".join(re.escape(part) for part in want.split("..."))
    return re.fullmatch(pattern, got, flags=re.S) is not None


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n" if text else ""


def missing_optional(block: Block) -> list[str]:
    """The optional packages a ```python block imports that are not installed."""
    imported = re.findall(r"^\s*(?:import|from) (\w+)", block.text, flags=re.M)
    return [m for m in OPTIONAL if m in imported and not _installed(m)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a module set to None
        return False


def _commands(text: str) -> list[tuple[str, str]]:
    """A ```console block's (command, expected output) pairs."""
    pairs: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"expected a command ('$ ...'), found {lines[i]!r}")
        command = lines[i][2:]
        while command.endswith("\\"):  # bash joins the lines
            i += 1
            command += "\n" + lines[i]
        i += 1
        out = []
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i] + "\n")
            i += 1
        pairs.append((command, "".join(out)))
    return pairs


@dataclasses.dataclass
class Outcome:
    status: str    # "passed", "failed", "skipped"
    message: str = ""


def _run_python(block: Block, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.text, block.id, "exec"), namespace)
    return out.getvalue()


def _run_console(block: Block, cwd: str) -> str | None:
    """None when every command printed what the block says; otherwise the difference."""
    env = dict(os.environ, COLUMNS="80", LC_ALL="C",  # C: ls sorts byte by byte everywhere
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for command, want in _commands(block.text):
        run = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, text=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=600)
        if run.returncode != 0:
            return f"$ {command}\nexit status {run.returncode}:\n{run.stdout}"
        if not matches(want, run.stdout):
            return f"$ {command}\nexpected:\n{want}got:\n{run.stdout}"
    return None


def run_page(path: str, workdir: str) -> dict[int, Outcome]:
    """Run a page's blocks in order in ``workdir``: each runnable block's outcome by line."""
    outcomes: dict[int, Outcome] = {}
    namespace: dict = {"__name__": "__main__"}
    first_failure = None
    old = os.getcwd()
    os.chdir(workdir)
    try:
        for block in parse(path):
            if block.not_run or block.is_output or block.lang not in ("python", "console"):
                continue
            if first_failure is not None:
                outcomes[block.line] = Outcome("failed", f"not run: {first_failure} failed")
                continue
            if block.lang == "python" and missing_optional(block):
                why = f"needs {', '.join(missing_optional(block))}"
                if os.environ.get("QDQ_DOCS_REQUIRE_ALL") == "1":
                    outcomes[block.line] = Outcome("failed", why + " (QDQ_DOCS_REQUIRE_ALL=1)")
                else:
                    outcomes[block.line] = Outcome("skipped", why)
                continue
            try:
                if block.lang == "python":
                    got = _run_python(block, namespace)
                    want = block.output.text if block.output else ""
                    problem = (None if matches(want, got) else
                               f"expected output:\n{want}got:\n{got}")
                elif shutil.which("bash") is None:
                    outcomes[block.line] = Outcome("skipped", "needs bash")
                    continue
                else:
                    problem = _run_console(block, workdir)
            except Exception:  # noqa: BLE001 - reported as the block's failure
                problem = "raised:\n" + traceback.format_exc()
            if problem:
                first_failure = block.id
                outcomes[block.line] = Outcome("failed", problem)
            else:
                outcomes[block.line] = Outcome("passed")
    finally:
        os.chdir(old)
    return outcomes
