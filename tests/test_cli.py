"""The sdl command line, driven as a user would: subprocesses, files on disk, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sdl import cli
from sdl.config import ConfigError, load_config
from sdl.training import Trainer, TrainingDiverged

TINY = {
    "name": "tiny",
    "data": {"name": "spiral2d", "n": 60, "seed": 0},
    "model": {"field": "resnet", "width": 2, "steps": 3, "t_final": 0.6},
    "integrator": "heun",
    "train": {"iterations": 20, "lr": 0.05, "log_every": 10},
    "plots": ["history", "decision_boundary", "transitions", "parameters", "layer_stability"],
}


def _sdl(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "sdl.cli", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _only_run(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


def test_train_writes_every_promised_file(tmp_path, tiny_config):
    result = _sdl("train", str(tiny_config), "--runs", "runs", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = _only_run(tmp_path / "runs")
    assert f"run folder: {run.relative_to(tmp_path)}" in result.stdout
    for name in ("config.yaml", "checkpoint.pt", "metrics.json", "metrics.csv"):
        assert (run / name).stat().st_size > 0, name
    for plot in TINY["plots"]:
        assert (run / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iteration"] == [10, 20]
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["integrator"]["name"] == "heun" and resolved["train"]["iterations"] == 20
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["iteration"] == 20

    # a second run never touches the first
    again = _sdl("train", str(tiny_config), "--runs", "runs", "--no-progress", "--set", "plots=[]", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 20


@pytest.mark.parametrize(
    "override, message",
    [
        ("integrator=rk5", "integrator.name: 'rk5' is not valid; valid choices: euler, midpoint"),
        ("train.lr=fast", "train.lr: 'fast' must be float, got str"),
        ("model.depth=3", "model.depth: unknown key; valid keys of model: field, width"),
        ("data.name=moons", "data.name: 'moons' is not valid; valid choices: spiral2d"),
        ("integrator=verlet", "'verlet' is a splitting method for (q, p) states and needs model.field: hamiltonian"),
        ("train.optimizer=rmsprop", "unknown optimizer 'rmsprop'; valid choices: adam, sgd, lbfgs, gd"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path, tiny_config, override, message):
    result = _sdl("train", str(tiny_config), "--runs", "runs", "--set", override, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing started


def test_missing_config_file_is_a_user_error(tmp_path):
    result = _sdl("train", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "config file 'nope.yaml' does not exist" in result.stderr


def test_resume_equals_uninterrupted(tmp_path, tiny_config):
    straight = _sdl("train", str(tiny_config), "--runs", "a", "--no-progress", "--set", "plots=[]", cwd=tmp_path)
    half = _sdl("train", str(tiny_config), "--runs", "b", "--no-progress", "--set", "plots=[]", "--set", "train.iterations=10", cwd=tmp_path)
    assert straight.returncode == 0 and half.returncode == 0
    half_run = _only_run(tmp_path / "b")
    resumed = _sdl("train", "--resume", str(half_run), "--runs", "c", "--no-progress", "--set", "train.iterations=20", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    full = torch.load(_only_run(tmp_path / "a") / "checkpoint.pt", weights_only=True)
    cont = torch.load(_only_run(tmp_path / "c") / "checkpoint.pt", weights_only=True)
    assert cont["iteration"] == full["iteration"] == 20
    for key, value in full["model"].items():
        assert torch.equal(value, cont["model"][key]), key
    assert full["history"] == cont["history"]
    assert torch.load(half_run / "checkpoint.pt", weights_only=True)["iteration"] == 10  # untouched


def test_analyse_writes_diagnostics(tmp_path, tiny_config):
    assert _sdl("train", str(tiny_config), "--runs", "runs", "--no-progress", "--set", "plots=[]", cwd=tmp_path).returncode == 0
    run = _only_run(tmp_path / "runs")
    result = _sdl("analyse", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (analysis,) = run.glob("analysis-*")
    stats = json.loads((analysis / "analysis.json").read_text())
    assert len(stats["max_real_eigenvalue"]) == len(stats["one_sided_lipschitz"]) == 3
    assert all(e <= nu + 1e-6 for e, nu in zip(stats["max_real_eigenvalue"], stats["one_sided_lipschitz"]))
    assert (analysis / "layer_stability.png").stat().st_size > 1000


def test_sweep_runs_the_grid_and_writes_one_table(tmp_path, tiny_config):
    result = _sdl("sweep", str(tiny_config), "--grid", "integrator=euler,rk4", "--set", "plots=[]", "--runs", "runs", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "runs").glob("sweep-tiny-*")
    table = (sweep / "results.md").read_text()
    assert "integrator=euler" in table and "integrator=rk4" in table
    assert (sweep / "results.csv").is_file() and (sweep / "results.png").stat().st_size > 1000
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 2


def test_list_names_integrators_fields_and_data():
    result = _sdl("list", cwd=".")
    assert result.returncode == 0
    for word in ("verlet", "order 2, symplectic, needs (q, p), reversible", "gradient_flow", "spiral2d", "softplus"):
        assert word in result.stdout


def test_diverged_training_exits_1_and_keeps_last_good_checkpoint(tmp_path, tiny_config, monkeypatch, capsys):
    original = Trainer.step

    def failing_step(self):
        if self.iteration == 15:
            raise TrainingDiverged("the loss became nan at iteration 15; lower the learning rate")
        return original(self)

    monkeypatch.setattr(Trainer, "step", failing_step)
    code = cli.main(["train", str(tiny_config), "--runs", str(tmp_path / "runs"), "--no-progress", "--set", "plots=[]"])
    assert code == 1
    assert "training stopped: the loss became nan at iteration 15" in capsys.readouterr().err
    run = _only_run(tmp_path / "runs")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 10


def test_every_shipped_experiment_config_is_valid():
    configs = sorted(Path(__file__).resolve().parents[1].glob("experiments/configs/*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_config_errors_name_key_and_choices(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {field: spline}\n")
    with pytest.raises(ConfigError, match="model.field: 'spline' is not valid; valid choices: resnet, gradient_flow, hamiltonian"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of keys at the top level"):
        load_config(path)
