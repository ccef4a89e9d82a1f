"""The documentation site builds with warnings as errors, and a broken cross-reference fails it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_site_builds_strict_with_api_reference_and_gallery(tmp_path):
    result = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "integrators" / "index.html").read_text()
    assert 'id="sdl.integrators.ButcherTableau"' in api and "Cooper" in api  # rendered from the docstring
    home = (tmp_path / "site" / "index.html").read_text()
    assert "The library in five examples" in home and "--8&lt;--" not in home  # README included, markers gone
    gallery = sorted(p.name for p in (ROOT / "docs" / "gallery").glob("*.png"))
    assert gallery and all((tmp_path / "site" / "gallery" / name).is_file() for name in gallery)


def test_a_broken_cross_reference_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("See [`odeint`][sdl.no_such_function].\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nnav: [index.md]\n")
    result = _mkdocs_build(config, tmp_path / "site")
    assert result.returncode != 0
    assert "sdl.no_such_function" in result.stdout + result.stderr
