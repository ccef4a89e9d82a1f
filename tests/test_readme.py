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
    namespace = {"__name__": "__doc_example__"}
    exec(compile(code, str(path), "exec"), namespace)
    if path.name == "README.md":
        _check_readme_results(namespace)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_is_one_the_tests_run(path):
    # a block fenced as ```py, ```python3 or ```pycon would be shown on the site but never run
    other_fences = re.findall(r"^```(?:py|python3|pycon|ipython)\b.*$", path.read_text(), re.M)
    assert not other_fences, f"{path.name}: fence the examples as ```python so that the tests run them: {other_fences}"


def test_the_guide_pages_have_examples():
    guide = {"README.md", "integrators.md", "gradients.md", "stability.md", "p4inv.md", "hollow.md"}
    guide |= {"robustness.md", "dynamics.md"}
    assert guide <= {path.name for path in EXAMPLES}


def _check_readme_results(ns):
    """What the README's examples say they compute, checked on the values they left behind."""
    import torch

    q, p = ns["q"], ns["p"]
    assert q.shape == p.shape == (11, 1)
    energy = p.square() / 2 - torch.cos(q)  # Verlet keeps the pendulum's energy to O(h²)
    assert (energy - energy[0]).abs().max() < 1e-2
    losses = ns["history"]["loss"]
    assert len(losses) >= 2 and all(map(torch.isfinite, torch.tensor(losses)))
    assert ns["zs"].shape == (16, 64, 2) and all(w.grad is not None and w.grad.abs().sum() > 0 for w in ns["field"].parameters())
    assert len(ns["stats"].one_sided_lipschitz) == 15
    f, div = ns["f"], ns["div"]
    assert f.shape == (4, 8) and div.shape == (4,)
    torch.testing.assert_close(ns["logdet"] + ns["logdet_inverse"], torch.zeros_like(ns["logdet"]), rtol=0, atol=1e-5)
    torch.testing.assert_close(ns["layer"](ns["x"])[0], ns["y"], rtol=0, atol=1e-5)  # the inverse inverts
