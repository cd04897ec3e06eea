"""README.md: its code blocks run and print what it shows; it stays short; CI does what it says.

The conventions of the code blocks are in tests/_pages.py (and docs/development.md).
"""

import os
import re

import _pages
import pytest

README = os.path.join(_pages.ROOT, "README.md")
CI = os.path.join(_pages.ROOT, ".ci", "run")
if not os.path.exists(README):  # tests run from an installed copy without the README
    pytest.skip("no README.md beside the tests", allow_module_level=True)

BLOCKS = _pages.parse(README)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return _pages.run_page(README, str(tmp_path_factory.mktemp("readme")))


@pytest.mark.parametrize("block", _pages.runnable(BLOCKS), ids=lambda b: b.id)
def test_block(block, outcomes):
    _pages.check_outcome(outcomes[block.line])


def test_blocks_follow_the_convention():
    _pages.check_page(README, BLOCKS)


def test_every_runnable_block_ran(outcomes):
    assert sorted(outcomes) == [b.line for b in _pages.runnable(BLOCKS)]


def test_readme_is_short():
    with open(README) as f:
        assert len(f.read().splitlines()) <= 250


def _quick_start():
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    blocks = [b for b in BLOCKS if f"```bash\n{b.text}```" in section]
    assert len(blocks) == 1, "the quick start is one block"
    return [line.split("#")[0].strip() for line in blocks[0].text.splitlines()]


def test_quick_start_is_two_commands_ci_runs():
    """Two commands: install and run the demo; install the tests and run them, as .ci/run does."""
    demo, tests = _quick_start()
    assert demo == "pip install . && qdq demo"
    install, run = tests.split(" && ")
    if not os.path.exists(CI):
        pytest.skip("no .ci/run beside the tests")
    with open(CI) as f:
        ci = f.read()
    # .ci/run's first stages: the README's install command, then its test command.
    assert re.search(rf'^{re.escape(install)}$', ci, flags=re.M), install
    assert re.search(rf'^{re.escape(run)}$', ci, flags=re.M), run
    assert ci.index(f"\n{install}\n") < ci.index(f"\n{run}\n")


def test_links_to_the_docs_exist():
    if not os.path.isdir(os.path.join(_pages.ROOT, "docs")):
        pytest.skip("no docs/ beside the tests")
    with open(README) as f:
        links = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", f.read())
    assert links
    missing = [link for link in links if not os.path.exists(os.path.join(_pages.ROOT, link))]
    assert not missing, missing
