"""The sdl command line, driven as a user would: subprocesses, files on disk, exit codes."""

import csv
import json
import multiprocessing
import os
import re
import signal
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
        # combinations that used to pass validation and crash once the run folder existed
        (
            "gradient={mode: otd, recovery: reverse}",
            "recovery='reverse' needs a time-reversible method (Φ_-h = Φ_h⁻¹); 'heun' is not",
        ),
        ("gradient={mode: otd, recovery: binomial, snapshots: 0}", "gradient: snapshots must be a positive int, got 0"),
        (
            "integrator={name: backward_euler, solver: jacobi_newton}",
            "solver='jacobi_newton' needs a field that is sdl.fields.DimwiseDifferentiable",
        ),
        (
            "model.momentum=linear",
            "model.momentum: 'linear' needs a field on (q, p) pairs (model.field: hamiltonian); got 'resnet'",
        ),
        ("task=regression", "task.kind: 'regression' is not valid; valid choices: classification, density"),
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
    half = _sdl(
        "train",
        str(tiny_config),
        "--runs",
        "b",
        "--no-progress",
        "--set",
        "plots=[]",
        "--set",
        "train.iterations=10",
        cwd=tmp_path,
    )
    assert straight.returncode == 0 and half.returncode == 0
    half_run = _only_run(tmp_path / "b")
    resumed = _sdl(
        "train", "--resume", str(half_run), "--runs", "c", "--no-progress", "--set", "train.iterations=20", cwd=tmp_path
    )
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
    assert all(e <= nu + 1e-6 for e, nu in zip(stats["max_real_eigenvalue"], stats["one_sided_lipschitz"], strict=True))
    assert (analysis / "layer_stability.png").stat().st_size > 1000


def test_sweep_runs_the_grid_and_writes_one_table(tmp_path, tiny_config):
    result = _sdl(
        "sweep",
        str(tiny_config),
        "--grid",
        "integrator=euler,rk4",
        "--set",
        "plots=[]",
        "--runs",
        "runs",
        "--jobs",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "runs").glob("sweep-tiny-*")
    table = (sweep / "results.md").read_text()
    assert "integrator=euler" in table and "integrator=rk4" in table
    assert (sweep / "results.csv").is_file() and (sweep / "results.png").stat().st_size > 1000
    assert len([p for p in sweep.iterdir() if p.is_dir()]) == 2
    # each row holds the accuracies its own run logged last, and the runs differ (not one run copied)
    with (sweep / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == ["integrator=euler", "integrator=rk4"]
    for row in rows:
        logged = json.loads((tmp_path / row["run"] / "metrics.json").read_text())
        for key in ("train_accuracy", "val_accuracy"):
            assert float(row[key]) == logged[key][-1] and 0 < float(row[key]) <= 1
            assert f"{float(row[key]):.4g}" in table
    euler, rk4 = (json.loads((tmp_path / row["run"] / "metrics.json").read_text()) for row in rows)
    assert euler["loss"] != rk4["loss"]


def test_list_names_integrators_fields_and_data(capsys):
    from sdl.data import dataset_names, density_names, get_system, system_names
    from sdl.data.energies import energy_names
    from sdl.integrators import get, names
    from sdl.models import activation_names
    from sdl.tasks import TASKS
    from sdl.tasks.dynamics import FIELD_MODELS, MAP_MODELS

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    headings = [line for line in out.splitlines() if not line.startswith(" ")]
    assert headings == [
        "integrators:",
        "tasks:",
        "fields (classification):",
        "constraints (model.constraint):",
        "data sets (classification):",
        "densities (density):",
        "energies (boltzmann):",
        "systems (dynamics):",
        "models (dynamics):",
        "activations:",
    ]
    lines = out.splitlines()
    for name in names():
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        assert line.startswith(f"  {name:20s} order {get(name).order}")
    assert "  verlet               order 2, symplectic, needs (q, p), reversible" in lines
    assert "  rk4                  order 4" in lines  # no empty traits, no stray commas
    assert "  " + ", ".join(TASKS) in lines and "  " + ", ".join(dataset_names()) in lines
    assert "  " + ", ".join(energy_names()) + " (phi4: data.lattice L, d = L²)" in lines
    for name in system_names():
        assert f"  {name:20s} recipes: {', '.join(get_system(name).recipes)}" in lines
    assert "  " + ", ".join(density_names()) in lines and "  " + ", ".join(activation_names()) in lines
    assert "  fields: " + ", ".join(FIELD_MODELS) + "; one-step maps: " + ", ".join(MAP_MODELS) in lines
    for word in (
        "verlet",
        "order 2, symplectic, needs (q, p), reversible",
        "gradient_flow",
        "spiral2d",
        "softplus",
        "density",
        "nonexpansive",
        "antisymmetric",
        "digits",
        "two_moons",
    ):
        assert word in out


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
    with pytest.raises(
        ConfigError, match=r"model.field: 'spline' is not valid; valid choices: resnet, gradient_flow, hamiltonian"
    ):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of keys at the top level"):
        load_config(path)


@pytest.fixture
def short_run(tmp_path, tiny_config):
    """A finished 4-iteration run in tmp_path/first; returns its folder."""
    code = cli.main(
        [
            "train",
            str(tiny_config),
            "--runs",
            str(tmp_path / "first"),
            "--no-progress",
            "--set",
            "plots=[]",
            "--set",
            "train.iterations=4",
            "--set",
            "train.log_every=2",
        ]
    )
    assert code == 0
    return _only_run(tmp_path / "first")


def _user_error(capsys, argv, message):
    """``sdl argv`` exits 2 with ``message`` on one line."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_applies_the_new_learning_rate_and_weight_decay(tmp_path, short_run):
    assert (
        cli.main(
            [
                "train",
                "--resume",
                str(short_run),
                "--runs",
                str(tmp_path / "next"),
                "--no-progress",
                "--set",
                "train.iterations=6",
                "--set",
                "train.lr=0.001",
                "--set",
                "train.weight_decay=0.1",
            ]
        )
        == 0
    )
    state = torch.load(_only_run(tmp_path / "next") / "checkpoint.pt", weights_only=True)
    assert {(g["lr"], g["weight_decay"]) for g in state["optimizer"]["param_groups"]} == {(0.001, 0.1)}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.optimizer=sgd", "cannot change on resume: train.optimizer 'adam' → 'sgd'"),
        ("train.loss=cross_entropy", "cannot change on resume: train.loss 'squared' → 'cross_entropy'"),
        ("model.width=4", "cannot change on resume: model.width 2 → 4"),
        ("data.seed=3", "cannot change on resume: data.seed 0 → 3"),
    ],
)
def test_resume_refuses_changes_it_cannot_apply(tmp_path, short_run, capsys, override, message):
    _user_error(
        capsys,
        ["train", "--resume", str(short_run), "--runs", str(tmp_path / "next"), "--set", "train.iterations=6", "--set", override],
        message,
    )
    assert not (tmp_path / "next").exists()


def test_a_run_saved_with_cuda_or_an_old_style_name_opens_on_this_machine(tmp_path, short_run):
    """Only what describes the run itself must still be valid: a cuda run resumes and is analysed
    here with --set device=cpu (or device auto), and a name older rules allowed is made safe."""
    config = yaml.safe_load((short_run / "config.yaml").read_text())
    config["name"], config["device"] = "my run", "cuda"
    (short_run / "config.yaml").write_text(yaml.safe_dump(config))
    if not torch.cuda.is_available():
        assert cli.main(["analyse", str(short_run)]) == 0
    assert (
        cli.main(
            [
                "train",
                "--resume",
                str(short_run),
                "--runs",
                str(tmp_path / "next"),
                "--no-progress",
                "--set",
                "train.iterations=6",
                "--set",
                "device=cpu",
                "--set",
                "name=my_run",
            ]
        )
        == 0
    )


def test_resuming_a_finished_run_is_refused(tmp_path, short_run, capsys):
    _user_error(
        capsys,
        ["train", "--resume", str(short_run), "--runs", str(tmp_path / "next")],
        "the run is already at iteration 4 ≥ train.iterations=4; raise it with --set train.iterations=N, N > 4",
    )
    assert not (tmp_path / "next").exists()


def test_damaged_run_folders_are_one_line_errors(tmp_path, short_run, capsys):
    resume = ["train", "--resume", str(short_run), "--runs", str(tmp_path / "next"), "--set", "train.iterations=6"]
    (short_run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    for argv in (resume, ["analyse", str(short_run)]):
        _user_error(capsys, argv, f"checkpoint.pt in {str(short_run)!r} is unreadable or corrupted:")
    (short_run / "config.yaml").write_text("name: [tiny\n")
    for argv in (resume, ["analyse", str(short_run)]):
        _user_error(capsys, argv, f"{short_run / 'config.yaml'}:2:1: not valid YAML:")
    assert not (tmp_path / "next").exists() and not list(short_run.glob("analysis-*"))


def test_a_checkpoint_that_does_not_fit_its_config_is_a_user_error(short_run, capsys):
    config = yaml.safe_load((short_run / "config.yaml").read_text())
    config["model"]["width"] = 4
    (short_run / "config.yaml").write_text(yaml.safe_dump(config))
    _user_error(
        capsys, ["analyse", str(short_run)], f"checkpoint.pt in {str(short_run)!r} does not fit the model of its config.yaml"
    )
    assert not list(short_run.glob("analysis-*"))


def test_run_names_stay_inside_runs(tmp_path, tiny_config, capsys):
    for name in ("../escape", "a/b", "''"):
        _user_error(
            capsys,
            ["train", str(tiny_config), "--runs", str(tmp_path / "runs"), "--set", f"name={name}"],
            "is not a valid run name",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_runs_must_be_a_folder_and_config_a_file(tmp_path, tiny_config, capsys):
    _user_error(capsys, ["train", str(tiny_config), "--runs", str(tiny_config)], "is a file, not a folder")
    _user_error(capsys, ["train", str(tiny_config), "--runs", str(tiny_config / "sub")], "is a file, not a folder")
    _user_error(capsys, ["train", str(tmp_path)], f"config file {str(tmp_path)!r} is a folder")


def test_duplicate_keys_are_refused(tmp_path, tiny_config, capsys):
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text(tiny_config.read_text() + "name: again\n")
    _user_error(capsys, ["train", str(duplicate), "--runs", str(tmp_path / "runs")], "duplicate key 'name'")
    _user_error(
        capsys,
        [
            "sweep",
            str(tiny_config),
            "--runs",
            str(tmp_path / "runs"),
            "--grid",
            "integrator=euler,rk4",
            "--grid",
            "integrator=heun",
        ],
        "--grid 'integrator=heun': integrator is already a grid axis",
    )
    assert not (tmp_path / "runs").exists()


def test_a_failing_sweep_job_is_a_row_of_the_table(tmp_path, tiny_config, job_fails_at_lr, capsys):
    job_fails_at_lr(0.01)
    code = cli.main(
        [
            "sweep",
            str(tiny_config),
            "--grid",
            "train.lr=0.05,0.01",
            "--set",
            "plots=[]",
            "--set",
            "train.iterations=2",
            "--runs",
            str(tmp_path / "runs"),
            "--jobs",
            "1",
        ]
    )
    assert code == 1
    (sweep,) = (tmp_path / "runs").glob("sweep-tiny-*")
    rows = (sweep / "results.csv").read_text()
    assert "train.lr=0.01" in rows and "RuntimeError: boom" in rows and "train.lr=0.05" in rows
    (good,) = sweep.glob("tiny-0.05-*")
    assert (good / "checkpoint.pt").is_file()


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the patched step reaches the workers by fork")
def test_a_worker_that_dies_is_a_row_and_the_finished_jobs_are_kept(tmp_path, tiny_config, job_fails_at_lr):
    """A killed worker breaks the whole process pool; the jobs in flight are run again alone, so the
    one that kills its own worker becomes a row, and every other job still finishes."""
    job_fails_at_lr(0.01, lambda: os.kill(os.getpid(), signal.SIGKILL))  # as the out-of-memory killer would
    code = cli.main(
        [
            "sweep",
            str(tiny_config),
            "--grid",
            "train.lr=0.05,0.01,0.02",
            "--set",
            "plots=[]",
            "--set",
            "train.iterations=2",
            "--runs",
            str(tmp_path / "runs"),
            "--jobs",
            "2",
        ]
    )
    assert code == 1
    (sweep,) = (tmp_path / "runs").glob("sweep-tiny-*")
    with (sweep / "results.csv").open() as handle:
        rows = {row["label"]: row for row in csv.DictReader(handle)}
    assert rows["train.lr=0.01"]["note"] == "worker process died (killed, or out of memory)"
    for label in ("train.lr=0.05", "train.lr=0.02"):
        assert rows[label]["note"] == "" and Path(rows[label]["run"], "checkpoint.pt").is_file()
        assert 0 <= float(rows[label]["val_accuracy"]) <= 1


def test_the_non_expansive_digits_config_trains_and_is_certified(tmp_path):
    """The shipped robustness config runs from the command line, and its network's logit map is
    1-Lipschitz by the proven bound (lift: the padding isometry, every layer under the step rule,
    an orthogonal head)."""
    from sdl.experiment import load_run
    from sdl.stability import lipschitz_bound

    config = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "digits_robust.yaml"
    assert (
        cli.main(
            ["train", str(config), "--runs", str(tmp_path), "--no-progress", "--set", "train.iterations=3", "--set", "plots=[]"]
        )
        == 0
    )
    _, task, model = load_run(_only_run(tmp_path))
    assert task.data.x_train.shape[1] == 64 and model.num_classes == 10
    assert lipschitz_bound(model) == pytest.approx(1.0, abs=1e-6)


def test_refine_writes_a_new_run_that_resumes_at_twice_the_depth(tmp_path, short_run, capsys):
    before = sorted(p.name for p in short_run.iterdir())
    assert cli.main(["refine", str(short_run), "--factor", "2", "--runs", str(tmp_path / "fine")]) == 0
    refined = _only_run(tmp_path / "fine")
    assert sorted(p.name for p in short_run.iterdir()) == before  # the old run is untouched
    config = yaml.safe_load((refined / "config.yaml").read_text())
    assert config["model"]["steps"] == 6 and config["refinement"] == {"factor": 2, "interpolation": "constant"}
    state = torch.load(refined / "checkpoint.pt", weights_only=True)
    old = torch.load(short_run / "checkpoint.pt", weights_only=True)
    assert torch.equal(state["model"]["field.weight"], old["model"]["field.weight"].repeat_interleave(2, 0))
    record = json.loads((refined / "refinement.json").read_text())
    assert record["steps"] == [3, 6] and set(record["before"]) == set(record["after"]) == {"train_accuracy", "val_accuracy"}
    assert (
        cli.main(
            ["train", "--resume", str(refined), "--runs", str(tmp_path / "more"), "--no-progress", "--set", "train.iterations=2"]
        )
        == 0
    )  # multilevel: training goes on at 6 layers
    _user_error(capsys, ["refine", str(short_run), "--interpolation", "cubic"], "valid choices: constant, linear")


def test_the_command_reference_in_the_docs_is_the_parsers_help():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    page = reference.PAGE.read_text()
    made_with = page.split("(Python ", 1)[1].split(")", 1)[0]
    if made_with != reference.python_version():
        pytest.skip(f"docs/cli-reference.md was made with Python {made_with}; argparse lays help out differently here")
    assert page == reference.render(), "docs/cli-reference.md is out of date: run python scripts/cli_reference.py"
    for command in ("train", "analyse", "refine", "sweep", "tune", "list"):
        assert f"## `sdl {command}`" in page


def test_version_and_a_missing_command(capsys):
    import sdl

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"sdl {sdl.__version__}\n"
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2 and "the following arguments are required: command" in capsys.readouterr().err


def test_train_analyse_and_refine_print_where_their_results_went(tmp_path, tiny_config, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(tiny_config), "--set", "plots=[history]", "--set", "train.iterations=2"]) == 0
    run = _only_run(tmp_path / "runs").relative_to(tmp_path)  # --runs is ./runs unless given
    printed = capsys.readouterr()
    assert printed.out == f"run folder: {run}\nplots:      {run / 'plots'}\n"
    assert re.search(r"\b2/2\b", printed.err)  # the progress bar, on unless --no-progress
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["iterations"] == 2 and config["plots"] == ["history"]  # the --set overrides
    assert cli.main(["analyze", str(run)]) == 0  # the American spelling too
    (analysis,) = run.glob("analysis-*")  # a new folder per analysis
    assert capsys.readouterr().out == f"analysis: {analysis}\n"
    assert cli.main(["refine", str(run), "--runs", str(tmp_path / "fine")]) == 0
    refined = _only_run(tmp_path / "fine")
    expected = f"run folder: {refined}  (continue training: sdl train --resume {refined} --set train.iterations=N)\n"
    assert capsys.readouterr().out == expected
    assert yaml.safe_load((refined / "config.yaml").read_text())["model"]["steps"] == 6  # --factor 2 by default
    assert cli.main(["train", "--runs", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == "sdl train: error: train needs a CONFIG file, or --resume RUN_DIR\n"
