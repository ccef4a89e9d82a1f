"""Sweeps on the local backend: resume, and what stays out of the way (Ray is never imported)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdl import cli
from sdl.training import Trainer

TINY = {
    "name": "tiny",
    "data": {"name": "spiral2d", "n": 60, "seed": 0},
    "model": {"field": "resnet", "width": 2, "steps": 3, "t_final": 0.6},
    "integrator": "heun",
    "train": {"iterations": 2, "lr": 0.05, "log_every": 1},
    "plots": [],
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _rows(folder: Path) -> dict[str, dict]:
    with (folder / "results.csv").open() as handle:
        return {row["label"]: row for row in csv.DictReader(handle)}


def test_the_local_backend_never_imports_ray(tmp_path, tiny_config):
    args = ["sweep", str(tiny_config), "--grid", "train.lr=0.05,0.01", "--jobs", "1", "--runs", str(tmp_path)]
    code = f"import sys; from sdl import cli; code = cli.main({args!r}); print(code, 'ray' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.stdout.split()[-2:] == ["0", "False"], result.stderr


def test_resume_runs_only_the_jobs_without_a_finished_run_and_overwrites_nothing(tmp_path, tiny_config, monkeypatch, capsys):
    original = Trainer.step

    def step(self):
        if self.config.lr == 0.01:
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(Trainer, "step", step)
    args = ["sweep", str(tiny_config), "--grid", "train.lr=0.05,0.01", "--jobs", "1", "--runs", str(tmp_path / "runs")]
    assert cli.main(args) == 1
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    good = Path(_rows(folder)["train.lr=0.05"]["run"])
    checkpoint = (good / "checkpoint.pt").read_bytes()
    capsys.readouterr()

    monkeypatch.setattr(Trainer, "step", original)
    assert cli.main(["sweep", "--resume", str(folder), "--jobs", "1"]) == 0
    rows = _rows(folder)
    assert [row["note"] for row in rows.values()] == ["", ""]
    assert Path(rows["train.lr=0.05"]["run"]) == good and (good / "checkpoint.pt").read_bytes() == checkpoint
    assert Path(rows["train.lr=0.01"]["run"]).parent == folder
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 3  # the failed attempt's folder is kept too
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sdl sweep: ")]
    assert progress == ["sdl sweep: 2/2 train.lr=0.01: done"]  # the finished job did not run again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--resume", "{tmp}"], "no sweep.yaml in"),
        (["sweep", "{config}", "--resume", "{tmp}"], "give no CONFIG, --grid or --set"),
        (["sweep", "{config}", "--grid", "integrator=euler,rk4", "--address", "10.0.0.1:6379"], "it needs --backend ray"),
        (["sweep", "{config}", "--grid", "integrator=euler,rk4", "--jobs", "0"], "--jobs 0: must be ≥ 1"),
        (["sweep"], "sweep needs a CONFIG file, or --resume SWEEP_DIR"),
    ],
)
def test_bad_sweep_options_are_user_errors(tmp_path, tiny_config, capsys, args, message):
    args = [a.format(tmp=tmp_path, config=tiny_config) for a in args]
    assert cli.main([*args, "--runs", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_pool_that_breaks_between_two_submits_loses_no_job(monkeypatch):
    """A worker may die after one job finished and before the next is submitted: ``submit`` itself
    raises. The job stays waiting and runs on a fresh pool; every job is reported exactly once."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from sdl import sweep

    class PoolThatBreaksOnItsSecondSubmit:
        breaks_left = 1

        def __init__(self, max_workers):
            self.submits = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, job):
            self.submits += 1
            if self.submits == 2 and PoolThatBreaksOnItsSecondSubmit.breaks_left:
                PoolThatBreaksOnItsSecondSubmit.breaks_left -= 1
                raise BrokenProcessPool("a child process terminated abruptly")
            future = Future()
            future.set_result(fn(job))
            return future

    monkeypatch.setattr(sweep, "ProcessPoolExecutor", PoolThatBreaksOnItsSecondSubmit)
    monkeypatch.setattr(sweep, "run_job_safely", lambda job: sweep.JobOutcome(job.label, run=f"runs/{job.label}"))
    jobs = [sweep.Job(config={}, root=".", label=f"job{i}") for i in range(4)]
    reports: list[tuple[int, str]] = []
    sweep.ProcessPoolBackend(workers=2).run(jobs, lambda index, outcome: reports.append((index, outcome.label)))
    assert PoolThatBreaksOnItsSecondSubmit.breaks_left == 0
    assert sorted(reports) == [(i, f"job{i}") for i in range(4)]
