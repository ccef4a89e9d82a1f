"""The README's Python examples run as written (training shortened)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 5
    code = "\n".join(blocks)
    shortened = code.replace("iterations=300", "iterations=20").replace(".run()", ".run(progress=False)")
    assert shortened != code  # the training example is still there to shorten
    exec(compile(shortened, str(README), "exec"), {})
