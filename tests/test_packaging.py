"""Packaging: one version, ``python -m sdl`` is ``sdl``, and scripts/setup.sh honours the chosen torch index.

The built wheel itself is checked by scripts/wheel_smoke.sh (run by scripts/test.sh).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sdl
from sdl import cli

ROOT = Path(__file__).resolve().parents[1]


def _python_m_sdl(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sdl", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_the_version_has_one_source():
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sdl.__version__"}


def test_version_flag_prints_the_package_version(tmp_path):
    result = _python_m_sdl("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sdl {sdl.__version__}\n"


def test_python_m_sdl_is_the_sdl_command(tmp_path, capsys):
    result = _python_m_sdl("list", cwd=tmp_path)
    assert result.returncode == cli.main(["list"]) == 0
    assert result.stdout == capsys.readouterr().out
    missing = _python_m_sdl("train", "no-such-config.yaml", cwd=tmp_path)
    assert missing.returncode == cli.USER_ERROR and "no-such-config.yaml" in missing.stderr


def _setup_pip_calls(tmp_path, env_update):
    """Run scripts/setup.sh in a copy of the checkout whose .venv/bin/python only logs its arguments."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls.log"}\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SDL_TORCH_INDEX_URL"} | env_update
    subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], env=env, check=True, timeout=60)
    return [line for line in (tmp_path / "calls.log").read_text().splitlines() if "--upgrade pip" not in line]


@pytest.mark.parametrize("index", [None, "https://download.pytorch.org/whl/cpu"])
def test_setup_installs_torch_from_the_index_named_in_the_environment(tmp_path, index):
    calls = _setup_pip_calls(tmp_path, {} if index is None else {"SDL_TORCH_INDEX_URL": index})
    *torch_calls, project = calls
    assert project.startswith("-m pip install") and "-c constraints.txt -e .[" in project and "--index-url" not in project
    if index is None:
        assert torch_calls == []
    else:  # torch alone, pinned, from that index, before anything can pull it from pip's usual index
        assert torch_calls == [f"-m pip install --quiet -c constraints.txt --index-url {index} --no-deps torch"]
