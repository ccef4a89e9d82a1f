"""A run from a config: data, model, training, checkpoints, metrics, plots, analysis.

A run lives in its own new folder and never touches another: ``config.yaml`` (resolved),
``checkpoint.pt`` (replaced atomically, loaded with ``weights_only=True``),
``metrics.json`` / ``metrics.csv``, and ``plots/*.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import yaml
from torch import nn

from .config import Config, ConfigError, config_from_dict, read_yaml, safe_name
from .tasks import Task
from .training import Trainer

__all__ = [
    "JobResult",
    "analyse_run",
    "build",
    "load_run",
    "new_run_dir",
    "read_run_config",
    "refine_run",
    "run_job",
    "train_run",
    "write_atomic",
]
_DATA = "data"  # the folder of a run where its task keeps the data it generated
_RESUME_NOTES = ("resumed_from", "resumed_at_iteration", "refined_from", "refinement")  # beside the config, not in it


@dataclass(frozen=True)
class JobResult:
    """What one run returns: its folder, the metrics of its last logged evaluation, the names of the
    task's headline metrics among them, the whole history, and the wall time of its training steps
    with its evaluations and checkpoints, in seconds (not building the model or drawing plots)."""

    run_dir: Path
    metrics: dict[str, float]
    headline: tuple[str, ...]
    history: dict[str, list[float]]
    seconds: float


def build(config: Config, data_dir: str | Path | None = None) -> tuple[Task, nn.Module]:
    """(task, model) as ``config`` describes them, on its device and in its dtype. The model's initial
    parameters depend on its ``model.seed`` only (a random stream of their own, see ``sdl.tasks.seeded``).
    ``data_dir``: where a task that generates its data (trajectories) keeps them; None: in memory only."""
    return config.task.build(config, None if data_dir is None else Path(data_dir))


def new_run_dir(root: str | Path, name: str) -> Path:
    """A fresh folder ``root/name-YYYYmmdd-HHMMSS[-n]``; never an existing one."""
    root = _runs_folder(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{name}-{stamp}" if n == 0 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def _runs_folder(root: str | Path) -> Path:
    """``root`` if it is, or can become, a folder; a ConfigError naming the file in the way otherwise."""
    root = Path(root)
    blocking = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"runs folder {str(root)!r}: {str(blocking)!r} is a file, not a folder")
    return root


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def write_atomic(path: Path, write) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path`` in one step."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _save_checkpoint(run_dir: Path, trainer: Trainer) -> None:
    write_atomic(run_dir / "checkpoint.pt", lambda p: torch.save(trainer.state_dict(), p))


def _write_metrics(run_dir: Path, history: dict) -> None:
    write_atomic(run_dir / "metrics.json", lambda p: p.write_text(json.dumps(history, indent=1)))

    def write_csv(p: Path) -> None:
        with p.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(history))
            writer.writerows(zip(*history.values(), strict=True))

    write_atomic(run_dir / "metrics.csv", write_csv)


def _write_config(run_dir: Path, config: Config, extra: dict | None = None) -> None:
    text = yaml.safe_dump({**config.to_dict(), **(extra or {})}, sort_keys=False)
    write_atomic(run_dir / "config.yaml", lambda p: p.write_text(text))


def run_job(
    config: Config,
    root: str | Path = "runs",
    resume_from: str | Path | None = None,
    progress: bool = True,
    on_log: Callable[[Path, dict[str, float]], None] | None = None,
) -> JobResult:
    """Train as ``config`` says into a new run folder and return the result; with ``resume_from``,
    continue that run's checkpoint to ``config.train.iterations``. ``on_log(run_dir, metrics)`` hears
    the latest metrics (and "iteration") after each logged evaluation, once its checkpoint and
    metrics files are written (so a caller that stops the run there loses nothing). Resuming may change how training
    goes on (lr, weight decay, iterations, logging, plots, ...) but not the task, the data, the
    model, the loss or the optimizer. A run that cannot start (its task, model or checkpoint
    fails to load) leaves no folder behind."""
    root = _runs_folder(root)
    resume = None  # (the checkpoint's state, its run folder)
    if resume_from is not None:
        resume_from = Path(resume_from)
        _check_resumable(_saved_config(resume_from), config)
        resume = (_load_checkpoint(resume_from), resume_from)
    new_root = not root.exists()
    run_dir = new_run_dir(root, config.name)
    try:  # a run that cannot start leaves no folder behind (nor the runs folder, if it made it)
        task, model = build(config, run_dir / _DATA)
        trainer = Trainer(model, task, config.train)
        extra = None if resume is None else _resume(trainer, *resume, config)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        if new_root and not any(root.iterdir()):  # only while empty: a parallel job may have begun a run there
            root.rmdir()
        raise
    _write_config(run_dir, config, extra)

    def logged(t: Trainer) -> None:
        _save_checkpoint(run_dir, t)  # only reached with a finite loss: the last good state
        _write_metrics(run_dir, t.history)
        if on_log is not None:
            on_log(run_dir, {key: values[-1] for key, values in t.history.items() if values})

    start = time.perf_counter()
    try:
        trainer.run(progress=progress, callback=logged)
        seconds = time.perf_counter() - start
        _save_checkpoint(run_dir, trainer)  # the end of a run is a good state even where it was not logged
    finally:
        _write_metrics(run_dir, trainer.history)
    if config.plots:
        make_plots(run_dir / "plots", config, task, model, trainer.history)
    history = trainer.history
    last = {key: values[-1] for key, values in history.items() if values and key != "iteration"}
    return JobResult(run_dir, last, task.headline, history, seconds)


def _resume(trainer: Trainer, state: dict, resume_from: Path, config: Config) -> dict:
    """Load the checkpoint ``state`` of the run ``resume_from`` into ``trainer``; the resume record."""
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ConfigError(f"checkpoint.pt in {str(resume_from)!r} is unreadable or corrupted: {_one_line(error)}") from None
    if trainer.iteration >= config.train.iterations:
        raise ConfigError(
            f"the run is already at iteration {trainer.iteration} ≥ train.iterations={config.train.iterations}; "
            f"raise it with --set train.iterations=N, N > {trainer.iteration}"
        )
    return {"resumed_from": str(resume_from), "resumed_at_iteration": trainer.iteration}


def train_run(config: Config, root: str | Path = "runs", resume_from: str | Path | None = None, progress: bool = True) -> Path:
    """``run_job(...).run_dir``: the new run folder."""
    return run_job(config, root, resume_from, progress).run_dir


def _check_resumable(previous: Config, config: Config) -> None:
    """A resumed run continues the same model on the same data, with the same loss and optimizer."""
    if previous.task != config.task:
        raise ConfigError(f"cannot change on resume: task {previous.task} → {config.task}; start a new run to change it")
    pairs = [
        (f"{section}.{key}", old, getattr(getattr(config, section), key))
        for section in ("data", "model")
        for key, old in dataclasses.asdict(getattr(previous, section)).items()
    ]
    pairs += [
        (f"train.{key}", getattr(previous.train, key), getattr(config.train, key)) for key in ("optimizer", "loss", "margin")
    ]
    changed = [f"{key} {old!r} → {new!r}" for key, old, new in pairs if old != new]
    if changed:
        raise ConfigError(
            f"cannot change on resume: {', '.join(changed)}; the data, model, loss and optimizer "
            f"stay those of the run (start a new run to change them)"
        )


def _load_checkpoint(run_dir: Path) -> dict:
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint.pt in {str(run_dir)!r}; is it a run folder written by 'sdl train'?")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # a damaged file fails in torch.load with many exception types
        raise ConfigError(f"checkpoint.pt in {str(run_dir)!r} is unreadable or corrupted: {_one_line(error)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ConfigError(f"checkpoint.pt in {str(run_dir)!r} is unreadable or corrupted: it holds no model state")
    return state


def read_run_config(run_dir: str | Path) -> dict:
    """The raw config (a dict, unvalidated) of a run folder, without the resume notes."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no config.yaml in {str(run_dir)!r}; is it a run folder written by 'sdl train'?")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return {k: v for k, v in raw.items() if k not in _RESUME_NOTES}


def _saved_config(run_dir: Path) -> Config:
    """The validated config of a run folder, where only what describes the run itself must still
    be valid: a name older rules allowed is made safe, and a cuda run opens on a machine without
    CUDA with device "auto"."""
    raw = read_run_config(run_dir)
    raw["name"] = safe_name(str(raw.get("name", "run")))
    if raw.get("device") == "cuda" and not torch.cuda.is_available():
        raw["device"] = "auto"
    return config_from_dict(raw)


def load_run(run_dir: str | Path) -> tuple[Config, Task, nn.Module]:
    """(config, task, model) of a finished or interrupted run, model weights from its checkpoint."""
    run_dir = Path(run_dir)
    config = _saved_config(run_dir)
    task, model = build(config, run_dir / _DATA)
    try:
        model.load_state_dict(_load_checkpoint(run_dir)["model"])
    except (RuntimeError, TypeError) as error:
        raise ConfigError(
            f"checkpoint.pt in {str(run_dir)!r} does not fit the model of its config.yaml: {_one_line(error)}"
        ) from None
    return config, task, model


def make_plots(out: Path, config: Config, task: Task, model: nn.Module, history: dict) -> None:
    """The plots ``config.plots`` of a trained model, into the folder ``out``."""
    model.eval()
    task.plots(out, model, history, config.plots or (), config.task.title(config), analysis=config.analysis)


def analyse_run(run_dir: str | Path) -> Path:
    """Stability diagnostics and plots of a trained run, into a new folder ``RUN_DIR/analysis-…``."""
    run_dir = Path(run_dir)
    config, task, model = load_run(run_dir)
    model.eval()
    stats = task.analyse(model, config.analysis)
    with torch.no_grad():
        stats.update(task.evaluate(model)[1])
    out = new_run_dir(run_dir, "analysis")
    write_atomic(out / "analysis.json", lambda p: p.write_text(json.dumps(stats, indent=1)))
    history = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    plots = tuple(config.plots or ()) or config.task.analysis_plots
    make_plots(out, dataclasses.replace(config, plots=plots), task, model, history)
    return out


def refine_run(run_dir: str | Path, factor: int = 2, interpolation: str = "constant", root: str | Path | None = None) -> Path:
    """A new run folder (under ``root``, default beside ``run_dir``) holding the run's ODE-network refined to
    factor·K layers of the same [0, T] (``ODENet.refine``), its config with ``model.steps`` = factor·K, and a
    checkpoint with a fresh optimizer: ``sdl train --resume NEW`` continues training at the new depth
    (multilevel training). ``refinement.json`` holds the metrics before and after. ``run_dir`` is not touched."""
    from .models.interpolation import INTERPOLATIONS

    run_dir = Path(run_dir)
    config, task, model = load_run(run_dir)
    # by capability, not by class: the runner names no model (tests/test_tasks.py)
    refine = getattr(model, "refine", None)
    if not callable(refine) or "steps" not in {f.name for f in dataclasses.fields(config.model)}:
        raise ConfigError(
            f"refine needs a run of an ODE-network with model.steps (task classification); "
            f"{str(run_dir)!r} has a {type(model).__name__}"
        )
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"--interpolation {interpolation!r}: valid choices: {', '.join(INTERPOLATIONS)}")
    try:
        refined = refine(factor, interpolation)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"refine: {error}") from None
    steps = refined.num_steps
    new_config = dataclasses.replace(
        config, name=safe_name(f"{config.name}-K{steps}"), model=dataclasses.replace(config.model, steps=steps)
    )
    out = new_run_dir(run_dir.parent if root is None else root, new_config.name)
    _write_config(
        out, new_config, {"refined_from": str(run_dir), "refinement": {"factor": factor, "interpolation": interpolation}}
    )
    _save_checkpoint(out, Trainer(refined, task, new_config.train))
    model.eval(), refined.eval()
    with torch.no_grad():
        record = {
            "factor": factor,
            "interpolation": interpolation,
            "steps": [model.num_steps, steps],
            "before": task.evaluate(model)[1],
            "after": task.evaluate(refined)[1],
        }
    write_atomic(out / "refinement.json", lambda p: p.write_text(json.dumps(record, indent=1)))
    return out
