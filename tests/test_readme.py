"""The Python examples of the README and of every docs/ page run as written (training shortened)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [path for path in PAGES if "```python\n" in path.read_text()]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(path, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    code = "\n".join(blocks)
    code = code.replace("iterations=300", "iterations=20").replace(".run()", ".run(progress=False)")
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    exec(compile(code, str(path), "exec"), {"__name__": "__doc_example__"})


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_is_one_the_tests_run(path):
    # a block fenced as ```py, ```python3 or ```pycon would be shown on the site but never run
    other_fences = re.findall(r"^```(?:py|python3|pycon|ipython)\b.*$", path.read_text(), re.M)
    assert not other_fences, f"{path.name}: fence the examples as ```python so that the tests run them: {other_fences}"


def test_the_guide_pages_have_examples():
    guide = {"README.md", "integrators.md", "gradients.md", "stability.md", "p4inv.md", "hollow.md"}
    guide |= {"robustness.md", "dynamics.md"}
    assert guide <= {path.name for path in EXAMPLES}
