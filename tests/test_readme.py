"""The Python examples of the README and docs/ run as written (training shortened)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_examples_run(path, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    assert blocks, f"{path.name} has no Python example"
    code = "\n".join(blocks)
    code = code.replace("iterations=300", "iterations=20").replace(".run()", ".run(progress=False)")
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    exec(compile(code, str(path), "exec"), {"__name__": "__doc_example__"})
