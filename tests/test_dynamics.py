"""Learning dynamics (task: dynamics): the losses, windows and metrics measured against the exact
field, configs that cannot run refused by name, and runs that train, resume, analyse and keep
their data under the run folder."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from sdl.config import ConfigError, config_from_dict
from sdl.experiment import analyse_run, build, load_run, run_job
from sdl.fields import PairField
from sdl.solve import resolve_solve
from sdl.tasks.dynamics import FieldFlow
from sdl.training import Trainer


class ExactField(nn.Module, PairField):
    """The system's own field, scaled by ``speed`` (1: exact)."""

    def __init__(self, system, speed: float = 1.0) -> None:
        super().__init__()
        self.system, self.dim, self.speed = system, system.dim, speed

    def forward(self, t, y):
        dq, dp = self.system.field(t, y)
        return self.speed * dq, self.speed * dp


def _config(**sections):
    raw = {
        "task": {"kind": "dynamics"},
        "dtype": "float64",
        "plots": [],
        "model": {"hidden": 16},
        "train": {"iterations": 20, "log_every": 10, "lr": 1e-3},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(raw)


def _exact_model(task, method="rk4", substeps=4, speed=1.0):
    return FieldFlow(ExactField(task.system, speed), resolve_solve(method, "dto", pair=True), substeps)


@pytest.mark.parametrize("loss,horizon", [("derivative", 1), ("trajectory", 1), ("trajectory", 4)])
def test_the_exact_field_scores_zero_on_clean_data_and_the_noise_floor_on_noisy(loss, horizon):
    clean = _config(task={"loss": loss, "horizon": horizon}, data={"noise": 0.0})
    task, _ = build(clean)
    exact = _exact_model(task)
    batch = task.batch(None, torch.Generator())
    assert task.data_loss(exact, batch).item() < 1e-12  # windows and targets line up
    wrong = _exact_model(task, speed=1.05)
    assert task.data_loss(wrong, batch).item() > 1e-5
    noisy, _ = build(_config(task={"loss": loss, "horizon": horizon}))  # σ = 0.1 on q and p
    floor = noisy.data_loss(exact, noisy.batch(None, torch.Generator())).item()
    # derivatives: |f(x + ε) - f(x)|² = 4|ε|² per coordinate for H = q² + p²; states: |ε_{k+j} - Φ ε_k|² ≈ 2σ²
    expected = 4 * 0.01 if loss == "derivative" else 2 * 0.01
    assert floor == pytest.approx(expected, rel=0.15)


def test_windows_of_the_trajectory_loss():
    task, _ = build(_config(task={"loss": "trajectory", "horizon": 3}))
    inputs, targets = task.train_set
    assert inputs.shape == (25 * (30 - 3), 2) and targets.shape == (25 * 27, 3, 2)
    train = task.train_set
    torch.testing.assert_close(targets[0, 0], train[0][1])  # the next window starts at the first target
    batch = task.batch(7, torch.Generator().manual_seed(0))
    assert batch[0].shape == (7, 2) and batch[1].shape == (7, 3, 2)


def test_rollout_metrics_against_the_exact_solution():
    task, _ = build(_config(data={"system": "pendulum"}))
    assert task.steps == round(20.0 / (3 / 44)) and task.exact.shape == (task.steps + 1, 15, 2)
    exact_metrics = task.evaluate(_exact_model(task))[1]
    assert exact_metrics["energy_mse"] < 1e-12 and exact_metrics["rollout_mse"] < 1e-10
    slow = task.evaluate(_exact_model(task, speed=0.9))[1]  # same orbits, wrong phase
    assert slow["rollout_mse"] > 1e-2 and slow["energy_mse"] < 1e-10
    euler = task.evaluate(_exact_model(task, "euler", 1))[1]  # Euler spirals out: energy grows
    assert euler["energy_mse"] > 1e-2


def test_long_horizon_energy_error_bounded_for_verlet_and_drifting_for_euler():
    task, _ = build(_config(task={"long_time": 300.0}))
    verlet = task.analyse(_exact_model(task, "verlet", 1))
    euler = task.analyse(_exact_model(task, "euler", 1))
    assert verlet["long_time"] == pytest.approx(300.0, abs=0.11)
    assert verlet["energy_growth"] < 1.5 and verlet["energy_error_max"] < 0.05
    assert euler["energy_growth"] > 10


def test_the_hnn_evaluation_states_and_the_sympnets_single_start():
    task, _ = build(_config())
    x0 = task.exact[0].numpy()
    assert (np.abs(x0) >= 0.2).all() and (np.abs(x0) <= 1.0).all()  # ±[0.2, 1], the HNN notebooks' states
    sympnets, _ = build(_config(task={"loss": "trajectory"}, data={"system": "pendulum_sympnets"}, model={"model": "la_sympnet"}))
    assert sympnets.exact.shape[1] == 1 and sympnets.h == pytest.approx(0.1)  # one start, (q, p) = (1, 0)


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"model": {"model": "la_sympnet"}}, "task.loss: 'derivative' needs a field; model.model 'la_sympnet' is a one-step map"),
        (
            {"data": {"system": "double_pendulum", "recipe": "hnn"}},
            "data.recipe (of double_pendulum): 'hnn' is not valid; valid choices: sympnets",
        ),
        ({"data": {"system": "spring"}}, "data.system: 'spring' is not valid; valid choices: mass_spring, pendulum"),
        (
            {"model": {"model": "transformer"}},
            "model.model: 'transformer' is not valid; valid choices: hnn, separable_hnn, mlp_field, la_sympnet",
        ),
        ({"task": {"loss": "energy"}}, "task.loss: 'energy' is not valid; valid choices: derivative, trajectory"),
        ({"task": {"horizon": 0}}, "task.horizon: 0 must be ≥ 1"),
        (
            {"model": {"model": "hnn"}, "integrator": "implicit_midpoint", "gradient": {"mode": "otd", "recovery": "reverse"}},
            None,
        ),  # runs: implicit midpoint is time-reversible
        (
            {"model": {"model": "mlp_field"}, "integrator": "euler", "gradient": {"mode": "otd", "recovery": "reverse"}},
            "integrator and gradient do not fit model.model: mlp_field: recovery='reverse' needs a time-reversible method",
        ),
    ],
)
def test_configs_that_cannot_run_are_refused_by_name(raw, message):
    if message is None:
        _config(**raw)
        return
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        _config(**raw)


def test_a_horizon_longer_than_the_trajectories_is_refused_and_leaves_no_run_folder(tmp_path):
    config = _config(task={"loss": "trajectory", "horizon": 30})
    with pytest.raises(ConfigError, match=r"task.horizon: 30 data steps do not fit in trajectories of 29 steps"):
        run_job(config, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "model,loss,integrator",
    [
        ("hnn", "derivative", "rk4"),
        ("separable_hnn", "trajectory", "verlet"),
        ("mlp_field", "trajectory", "rk4"),
        ("la_sympnet", "trajectory", "rk4"),
        ("g_sympnet", "trajectory", "rk4"),
        ("mlp_map", "trajectory", "rk4"),
    ],
)
def test_every_model_learns(model, loss, integrator):
    lr = 3e-2 if model == "g_sympnet" else 3e-3  # its gradient modules start at 0.01 N(0, 1): small gradients
    config = _config(
        task={"loss": loss},
        model={"model": model, "layers": 2},
        integrator=integrator,
        data={"noise": 0.0},
        train={"iterations": 60, "log_every": 60, "lr": lr},
    )
    task, net = build(config)
    trainer = Trainer(net, task, config.train)
    before = trainer.evaluate()["test_loss"]
    after = trainer.run(progress=False)["test_loss"][-1]
    assert after < 0.7 * before, (before, after)


def test_a_run_keeps_its_data_resumes_and_analyses(tmp_path, monkeypatch):
    config = _config(
        task={"loss": "trajectory", "long_time": 50.0},
        model={"model": "g_sympnet"},
        plots=["history", "phase", "energy", "hamiltonian"],
    )
    first = run_job(config, tmp_path, progress=False)
    cached = list((first.run_dir / "data").iterdir())
    assert [p.name for p in cached] == ["mass_spring-hnn-seed0-noise0.1.npz"]
    assert {p.name for p in (first.run_dir / "plots").iterdir()} == {"history.png", "phase.png", "energy.png"}  # no H to draw
    import sdl.data.systems as systems

    def no_solver(*args, **kwargs):
        raise AssertionError("the run's data must be read back, not solved again")

    monkeypatch.setattr(systems, "_generate", no_solver)
    load_run(first.run_dir)
    monkeypatch.undo()
    longer = config_from_dict({**config.to_dict(), "train": {**config.to_dict()["train"], "iterations": 30}})
    resumed = run_job(longer, tmp_path, resume_from=first.run_dir, progress=False)
    assert resumed.history["iteration"] == [10, 20, 30]
    out = analyse_run(resumed.run_dir)
    stats = json.loads((out / "analysis.json").read_text())
    assert {"energy_error_first", "energy_error_last", "energy_growth", "energy_mse", "rollout_mse"} <= set(stats)
    assert stats["long_time"] == pytest.approx(50.0, abs=0.11)


def test_sdl_list_names_the_systems_their_recipes_and_the_models(capsys):
    from sdl.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "double_pendulum      recipes: sympnets" in out
    assert "fields: hnn, separable_hnn, mlp_field; one-step maps: la_sympnet, g_sympnet, mlp_map" in out


def test_only_learned_hamiltonians_have_contours(tmp_path):
    for model, drawn in (("hnn", True), ("separable_hnn", True), ("mlp_field", False)):
        config = _config(model={"model": model})
        task, net = build(config)
        task.plots(tmp_path / model, net, {}, ["hamiltonian"], "t")
        assert (tmp_path / model / "hamiltonian.png").exists() == drawn


def test_the_extrapolation_script_splits_the_evaluation_states_by_radius(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = run_job(_config(train={"iterations": 5, "log_every": 5}), tmp_path, progress=False).run_dir
    out = subprocess.run(
        [sys.executable, str(root / "experiments" / "dynamics_extrapolation.py"), str(run)],
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    row = out.stdout.strip().splitlines()[-1]
    inside, outside = (int(cell.split("(")[1].rstrip(") ")) for cell in row.split("|")[3:5])
    assert inside + outside == 15 and inside > 0 and outside > 0


def test_the_extrapolation_script_scores_the_mean_field_of_an_ensemble(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runs = [
        run_job(_config(model={"seed": seed}, train={"iterations": 5, "log_every": 5}), tmp_path, progress=False).run_dir
        for seed in (0, 1)
    ]
    script = [sys.executable, str(root / "experiments" / "dynamics_extrapolation.py"), "--ensemble"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([*script, *map(str, runs), str(runs[0])], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split("|")[2] for line in out.stdout.strip().splitlines()[2:]]
    assert len(rows) == 4 and rows[0] != rows[1] and rows[0] == rows[2]
    # the mean of (f0, f1, f0) is neither member: its energy error differs from both
    assert rows[3] not in rows[:2]
    other = run_job(_config(data={"seed": 1}, train={"iterations": 5, "log_every": 5}), tmp_path, progress=False).run_dir
    refused = subprocess.run([*script, str(runs[0]), str(other)], env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "same data" in refused.stderr


def test_the_energy_windows_script_prints_one_row_per_window(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = run_job(_config(train={"iterations": 5, "log_every": 5}), tmp_path, progress=False).run_dir
    out = subprocess.run(
        [sys.executable, str(root / "experiments" / "energy_windows.py"), str(run), "--time", "30", "--windows", "4"],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "–" in line]
    assert len(rows) == 4 and rows[0].startswith("| 0–") and rows[-1].split("|")[1].strip().endswith("30")
    assert all(float(row.split("|")[3]) >= float(row.split("|")[2]) for row in rows)  # max ≥ mean


def test_refine_refuses_a_run_without_layers(tmp_path, capsys):
    from sdl import cli

    run = run_job(_config(train={"iterations": 2, "log_every": 2}), tmp_path / "runs", progress=False).run_dir
    assert cli.main(["refine", str(run), "--runs", str(tmp_path / "fine")]) == 2
    assert "refine needs a run of an ODE-network" in capsys.readouterr().err
    assert not (tmp_path / "fine").exists()
