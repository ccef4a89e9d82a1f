"""Sweeps on the local backend: resume, and what stays out of the way (Ray is never imported)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sdl import cli

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


def test_resume_runs_only_the_jobs_without_a_finished_run_and_overwrites_nothing(
    tmp_path, tiny_config, job_fails_at_lr, monkeypatch, capsys
):
    job_fails_at_lr(0.01)
    args = ["sweep", str(tiny_config), "--grid", "train.lr=0.05,0.02,0.01", "--jobs", "1", "--runs", str(tmp_path / "runs")]
    assert cli.main(args) == 1
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    good = Path(_rows(folder)["train.lr=0.05"]["run"])
    checkpoint = (good / "checkpoint.pt").read_bytes()
    capsys.readouterr()

    monkeypatch.undo()
    assert cli.main(["sweep", "--resume", str(folder), "--jobs", "1"]) == 0
    rows = _rows(folder)
    assert [row["note"] for row in rows.values()] == ["", "", ""]
    assert Path(rows["train.lr=0.05"]["run"]) == good and (good / "checkpoint.pt").read_bytes() == checkpoint
    assert Path(rows["train.lr=0.01"]["run"]).parent == folder
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 4  # the failed attempt's folder is kept too
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sdl sweep: ")]
    assert progress == ["sdl sweep: 3/3 train.lr=0.01: done"]  # the two finished jobs did not run again


_GIVE_NO = "sweep --resume SWEEP_DIR takes the jobs of SWEEP_DIR; give no CONFIG, --grid or --set"
_GIVE_NO_TUNE = "tune --resume TUNE_DIR takes the search of TUNE_DIR; give no"
_ALL_TUNE_OPTIONS = ["--spec", "s.yaml", "--set", "a=1", "--mode", "max", "--samples", "2", "--no-early-stop"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--resume", "{tmp}"], "no sweep.yaml in '{tmp}'; is it a sweep folder written by 'sdl sweep'?"),
        (["sweep", "{config}", "--resume", "{tmp}"], _GIVE_NO),
        (["sweep", "--resume", "{tmp}", "--grid", "integrator=euler,rk4"], _GIVE_NO),
        (["sweep", "--resume", "{tmp}", "--set", "train.lr=0.1"], _GIVE_NO),
        (
            ["sweep", "{config}", "--grid", "integrator=euler,rk4", "--address", "10.0.0.1:6379"],
            "--address 10.0.0.1:6379: joins a Ray cluster; it needs --backend ray",
        ),
        (["sweep", "{config}", "--grid", "integrator=euler,rk4", "--jobs", "0"], "--jobs 0: must be ≥ 1"),
        (["sweep"], "sweep needs a CONFIG file, or --resume SWEEP_DIR"),
        # tune: refused before Ray starts
        (["tune", "--resume", "{tmp}"], "no tune.yaml and ray/tune in '{tmp}'; is it a tune folder written by 'sdl tune'?"),
        (["tune", "{config}", "--resume", "{tmp}"], f"{_GIVE_NO_TUNE} CONFIG"),
        (["tune", "--resume", "{tmp}", "--metric", "loss", "--space", "train.lr=grid:1,2"], f"{_GIVE_NO_TUNE} --space, --metric"),
        (["tune", "--resume", "{tmp}", *_ALL_TUNE_OPTIONS], f"{_GIVE_NO_TUNE} --spec, --set, --mode, --samples, --no-early-stop"),
        (["tune"], "tune needs a CONFIG file, or --resume TUNE_DIR"),
    ],
)
def test_bad_sweep_and_tune_options_are_one_line_user_errors_before_anything_runs(tmp_path, tiny_config, capsys, args, message):
    args = [a.format(tmp=tmp_path, config=tiny_config) for a in args]
    assert cli.main([*args, "--runs", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == f"sdl {args[0]}: error: {message.format(tmp=tmp_path)}\n"
    assert not (tmp_path / "runs").exists()


def test_a_pool_that_breaks_between_two_submits_loses_no_job(monkeypatch):
    """A worker may die after one job finished and before the next is submitted: ``submit`` itself
    raises. The job stays waiting and runs on a fresh pool; every job is reported exactly once."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from sdl import sweep

    class PoolThatBreaksOnItsSecondSubmit:
        breaks_left = 1

        def __init__(self, max_workers, **options):
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


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_ctrl_c_stops_the_pool_workers_exits_130_and_resume_runs_exactly_the_missing_jobs(tmp_path, capsys):
    """Two jobs of 300 iterations run in the pool when SIGINT reaches the sweep's own process (a
    terminal's Ctrl-C reaches the workers too, and they ignore it); the short job's row is on disk.
    The sweep terminates its workers at once, the interrupted jobs' run folders (with a mid-training
    checkpoint) get no row, and --resume runs exactly those two."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "log_every": 25}}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    args = ["sweep", str(config), "--grid", "train.iterations=2,300,301", "--jobs", "2", "--runs", str(tmp_path / "runs")]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sdl.cli", *args], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the short job has its row and both long jobs a checkpoint
            folders = list((tmp_path / "runs").glob("sweep-tiny-*"))
            table = folders[0] / "results.csv" if folders else None
            long_runs = [p for p in folders[0].glob("tiny-30*") if (p / "metrics.json").is_file()] if folders else []
            if table and table.is_file() and len(table.read_text().splitlines()) == 2 and len(long_runs) == 2:
                break
            time.sleep(0.02)
        workers = _children(sweep.pid)
        os.kill(sweep.pid, signal.SIGINT)
        _, stderr = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, stderr
    assert f"sdl sweep --resume {folders[0]}" in stderr
    assert len(workers) >= 2 and not any(_alive(pid) for pid in workers)  # the pool's workers stopped with it
    (folder,) = folders
    assert list(_rows(folder)) == ["train.iterations=2"]  # no row for a job that did not finish
    finished = Path(_rows(folder)["train.iterations=2"]["run"])
    checkpoint = (finished / "checkpoint.pt").read_bytes()
    interrupted = {p.name: (p / "checkpoint.pt").read_bytes() for p in folder.glob("tiny-30*")}
    assert len(interrupted) == 2  # both stopped part-way: fewer than their 12 logged evaluations
    assert all(len(json.loads((folder / name / "metrics.json").read_text())["iteration"]) < 12 for name in interrupted)

    capsys.readouterr()
    assert cli.main(["sweep", "--resume", str(folder), "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    progress = sorted(line.split(" ", 3)[3] for line in err.splitlines() if line.startswith("sdl sweep: "))
    assert progress == ["train.iterations=300: done", "train.iterations=301: done"], err  # exactly the missing jobs
    rows = _rows(folder)
    assert list(rows) == ["train.iterations=2", "train.iterations=300", "train.iterations=301"]
    assert Path(rows["train.iterations=2"]["run"]) == finished and (finished / "checkpoint.pt").read_bytes() == checkpoint
    assert {Path(rows[label]["run"]).name for label in list(rows)[1:]}.isdisjoint(interrupted)  # new folders
    assert all((folder / name / "checkpoint.pt").read_bytes() == data for name, data in interrupted.items())  # kept


class _FakeTune:
    """Stands in for ``sdl.tune.tune`` (which starts Ray): records its arguments, writes the table and
    returns ``rows`` and ``best`` (or raises ``error``), so the CLI's part of `sdl tune` is checked alone."""

    def __init__(self, rows=(), best="best", error=None):
        self.rows, self.best, self.error, self.calls = list(rows), best, error, []

    def __call__(self, base_raw, spec, out, **options):
        self.calls.append((base_raw, spec, Path(out), options))
        if self.error is not None:
            raise self.error
        (Path(out) / "results.md").write_text("| label | loss |\n")
        return self.rows, (Path(out) / "best.yaml" if self.best else None)


def _record_plot_titles(monkeypatch) -> list:
    """``sdl.plots.plot_sweep`` made to record (path, title, metrics) of each plot instead of drawing it."""
    import sdl.plots

    titles = []
    monkeypatch.setattr(sdl.plots, "plot_sweep", lambda metrics, path, title: titles.append((path, title, metrics)))
    return titles


def _fake_tune(monkeypatch, **kwargs) -> _FakeTune:
    import sdl.tune

    fake = _FakeTune(**kwargs)
    monkeypatch.setattr(sdl.tune, "tune", fake)
    return fake


def test_tune_hands_the_merged_config_and_search_to_tune_and_prints_the_table_and_best(
    tmp_path, tiny_config, monkeypatch, capsys
):
    from sdl.sweep import JobOutcome

    rows = [JobOutcome("train.lr=0.1", run=str(tmp_path / "a"), metrics={"loss": 0.5}), JobOutcome("train.lr=1.0", note="boom")]
    fake = _fake_tune(monkeypatch, rows=rows)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"space": {"integrator": {"choice": ["euler", "rk4"]}}, "metric": "val_loss", "samples": 2}))
    args = ["tune", str(tiny_config), "--spec", str(spec), "--space", "train.lr=grid:0.1,1.0", "--metric", "loss"]
    args += ["--mode", "max", "--samples", "3", "--no-early-stop", "--set", "train.iterations=5", "--set", "name=search"]
    args += ["--jobs", "2", "--address", "127.0.0.1:6379", "--runs", str(tmp_path / "runs")]
    titles = _record_plot_titles(monkeypatch)
    assert cli.main(args) == 0

    ((base_raw, spec, out, options),) = fake.calls
    assert base_raw["name"] == "search" and base_raw["train"]["iterations"] == 5 and base_raw["integrator"]["name"] == "heun"
    assert [(d.key, d.kind, d.values) for d in spec.space] == [
        ("integrator", "choice", ("euler", "rk4")),  # the spec file's axes first, then --space
        ("train.lr", "grid", (0.1, 1.0)),
    ]
    assert (spec.metric, spec.mode, spec.samples, spec.early_stop) == ("loss", "max", 3, False)  # options beat the file
    assert out.parent == tmp_path / "runs" and out.name.startswith("tune-search-")
    assert options == {"address": "127.0.0.1:6379", "jobs": 2, "verbose": False, "resume": False}
    best = out / "best.yaml"
    expected = f"| label | loss |\ntune folder: {out}\nbest config: {best}  (run it with: sdl train {best})\n"
    assert capsys.readouterr().out == expected
    metrics = {"train.lr=0.1": {"loss": 0.5}, "train.lr=1.0": {}}
    assert titles == [(out / "results.png", "search: loss", metrics)]  # one trial finished, so there is a plot


def test_tune_defaults_leave_the_search_settings_to_the_spec(tmp_path, tiny_config, monkeypatch):
    fake = _fake_tune(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["tune", str(tiny_config), "--space", "train.lr=choice:0.1", "--metric", "loss"]) == 0
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"space": {"train.lr": {"grid": [0.1, 0.2]}}, "metric": "loss"}))
    assert cli.main(["tune", str(tiny_config), "--spec", str(spec_file)]) == 0  # a space from the file alone
    (_, spec, out, options), (_, from_file, _, _) = fake.calls
    assert (spec.mode, spec.samples, spec.early_stop) == ("min", 4, True)
    assert options["jobs"] is None and options["resume"] is False
    assert out.parent == Path("runs")  # --runs is ./runs unless given
    assert [(d.key, d.values) for d in from_file.space] == [("train.lr", (0.1, 0.2))]


def test_tune_with_no_finished_trial_or_no_metric_exits_1_without_a_plot(tmp_path, tiny_config, monkeypatch, capsys):
    from sdl.sweep import JobOutcome

    _fake_tune(monkeypatch, rows=[JobOutcome("train.lr=0.1", note="boom")], best=None)
    args = ["tune", str(tiny_config), "--space", "train.lr=choice:0.1", "--metric", "loss", "--runs", str(tmp_path / "runs")]
    assert cli.main(args) == 1
    assert "sdl tune: no trial reported loss" in capsys.readouterr().err
    (out,) = (tmp_path / "runs").iterdir()
    assert not (out / "results.png").exists()


def test_tune_ctrl_c_exits_130_and_prints_the_resume_command(tmp_path, tiny_config, monkeypatch, capsys):
    _fake_tune(monkeypatch, error=KeyboardInterrupt())
    args = ["tune", str(tiny_config), "--space", "train.lr=choice:0.1", "--metric", "loss", "--runs", str(tmp_path / "runs")]
    assert cli.main(args) == 130
    (out,) = (tmp_path / "runs").iterdir()
    err = capsys.readouterr().err
    assert f"finished trials are in {out}/results.csv" in err and f"run the others with: sdl tune --resume {out}" in err


def test_tune_resume_reads_the_search_of_the_folder_and_resumes_it(tmp_path, monkeypatch, capsys):
    from sdl.tune import TuneSpec, _save, parse_dimension

    folder = tmp_path / "tune-tiny"
    (folder / "ray" / "tune").mkdir(parents=True)
    spec = TuneSpec(space=(parse_dimension("train.lr=grid:0.1,0.2"),), metric="loss", mode="max", samples=3, early_stop=False)
    _save(folder, TINY, spec)
    fake = _fake_tune(monkeypatch)
    assert cli.main(["tune", "--resume", str(folder), "--jobs", "1"]) == 0
    ((base_raw, resumed, out, options),) = fake.calls
    assert base_raw == TINY and resumed == spec and out == folder
    assert options == {"address": None, "jobs": 1, "verbose": False, "resume": True}


def test_tune_jobs_below_one_is_a_user_error(tmp_path, tiny_config, capsys):
    args = [
        "tune",
        str(tiny_config),
        "--space",
        "train.lr=choice:0.1",
        "--metric",
        "loss",
        "--jobs",
        "0",
        "--runs",
        str(tmp_path),
    ]
    assert cli.main(args) == 2
    assert "--jobs 0: must be ≥ 1" in capsys.readouterr().err


def test_a_two_axis_grid_runs_every_combination_in_order_under_the_set_name(tmp_path, tiny_config, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", str(tiny_config), "--grid", "integrator=euler,rk4", "--grid", "train.lr=0.05,0.1"]
    argv += ["--set", "name=grid", "--set", "plots=[]", "--jobs", "1"]
    assert cli.main(argv) == 0
    (folder,) = Path("runs").glob("sweep-grid-*")  # --runs is ./runs unless given
    combinations = [(i, lr) for i in ("euler", "rk4") for lr in (0.05, 0.1)]
    labels = [f"integrator={i}, train.lr={lr}" for i, lr in combinations]
    rows = _rows(folder)
    assert list(rows) == labels
    for label, (integrator, lr) in zip(labels, combinations, strict=True):
        run = Path(rows[label]["run"])
        assert run.name.startswith(f"grid-{integrator}-{lr}-")
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["integrator"]["name"] == integrator and config["train"]["lr"] == lr and config["train"]["iterations"] == 2
    printed = capsys.readouterr()
    assert printed.out == (folder / "results.md").read_text() + f"sweep folder: {folder}\n"
    assert all(label in printed.out for label in labels)
    progress = [line for line in printed.err.splitlines() if line.startswith("sdl sweep: ")]
    assert progress == [f"sdl sweep: {k}/4 {label}: done" for k, label in enumerate(labels, 1)]
    assert (folder / "results.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["integrator"], "--grid 'integrator': expected KEY=V1,V2,..., e.g. integrator=euler,rk4"),
        (["=euler,rk4"], "--grid '=euler,rk4': expected KEY=V1,V2"),
        (["integrator="], "--grid 'integrator=': expected KEY=V1,V2"),
        (["integrator=euler", "integrator=rk4"], "integrator is already a grid axis; give each key once"),
        (["integrator=euler,rk4=x"], "'rk4=x'"),  # the key ends at the first "="
        (["integrator=euler,nonsense"], "'nonsense' is not valid"),  # every combination checked before any runs
        ([], "sweep needs at least one --grid KEY=V1,V2"),
    ],
)
def test_bad_grids_are_user_errors_before_anything_runs(tmp_path, tiny_config, capsys, grid, message):
    argv = ["sweep", str(tiny_config), *(a for spec in grid for a in ("--grid", spec)), "--runs", str(tmp_path / "runs")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("sdl sweep: error: ")
    if not grid:
        assert err == f"sdl sweep: error: {message}\n"
    assert not (tmp_path / "runs").exists()


def test_the_backend_gets_the_options_as_given():
    from argparse import Namespace

    calls = []

    def backend(*args):
        calls.append(args)
        return "runner"

    options = Namespace(backend="ray", jobs=3, address="127.0.0.1:6379", verbose=True)
    assert cli._backend(options, backend) == "runner" and calls == [("ray", 3, "127.0.0.1:6379", True)]
    with pytest.raises(cli.ConfigError, match=r"--address 127.0.0.1:6379: joins a Ray cluster; it needs --backend ray"):
        cli._backend(Namespace(backend="local", jobs=None, address="127.0.0.1:6379", verbose=False), backend)
    with pytest.raises(cli.ConfigError, match="--jobs 0: must be ≥ 1"):
        cli._backend(Namespace(backend="local", jobs=0, address=None, verbose=False), backend)
    assert len(calls) == 1


def test_progress_names_the_node_of_a_job_that_ran_elsewhere_and_a_failed_job_exits_1(tmp_path, tiny_config, monkeypatch, capsys):
    import sdl.sweep
    from sdl.sweep import JobOutcome

    def run_sweep(out, jobs, runner, outcomes, progress):
        finished = [
            JobOutcome(jobs[0].label, run=str(out / "a"), metrics={"loss": 0.5}, node="n1"),
            JobOutcome(jobs[1].label, note="boom"),
        ]
        for index, outcome in enumerate(finished):
            progress(index, outcome)
        return finished

    monkeypatch.setattr(sdl.sweep, "run_sweep", run_sweep)
    titles = _record_plot_titles(monkeypatch)
    argv = ["sweep", str(tiny_config), "--grid", "train.lr=0.05,0.01", "--jobs", "1", "--runs", str(tmp_path / "runs")]
    assert cli.main(argv) == 1
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sdl sweep: ")]
    assert progress == ["sdl sweep: 1/2 train.lr=0.05: done on node n1", "sdl sweep: 2/2 train.lr=0.01: boom"]
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    assert titles == [(folder / "results.png", folder.name, {"train.lr=0.05": {"loss": 0.5}, "train.lr=0.01": {}})]


def test_sweep_ctrl_c_exits_130_and_prints_the_resume_command(tmp_path, tiny_config, monkeypatch, capsys):
    import sdl.sweep

    def run_sweep(out, jobs, runner, outcomes, progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(sdl.sweep, "run_sweep", run_sweep)
    argv = ["sweep", str(tiny_config), "--grid", "train.lr=0.05,0.01", "--jobs", "1", "--runs", str(tmp_path / "runs")]
    assert cli.main(argv) == 130
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    expected = (
        f"sdl sweep: interrupted; the finished jobs are in {folder}/results.csv; "
        f"run the others with: sdl sweep --resume {folder}\n"
    )
    assert capsys.readouterr().err == expected
