"""Hyperparameter search over a config with Ray Tune (the extra ``sdl[ray]``): ``sdl tune``.

A search space is a list of ``Dimension``s, each a dotted config key and how to draw its value:
``choice`` (one of the values, at random), ``uniform`` / ``loguniform`` (a float drawn uniformly in
[low, high], or uniformly in log scale, low > 0), ``grid`` (every value, each crossed with the
others and with every sample). Every trial is an ordinary run folder in the tune folder (``sdl
analyse`` and ``sdl train --resume`` work on it); it reports its metrics to Tune at each logged
evaluation, after its checkpoint and metrics are on disk, and ASHA stops the trials whose metric
falls behind at a rung. The tune folder gets ``results.csv``/``results.md``/``results.png`` (one
row per trial) and ``best.yaml``, the best trial's config, which ``sdl train`` runs as it is.

Ray runs on a private instance on loopback (``sdl.sweep.ray.ray_runtime``) or on a cluster. Where
things are written, so that no filesystem needs to be shared between machines: a trial trains in
a scratch folder on its own node, and at each report (before Tune hears of it) its whole run
folder goes, as a tar archive through Ray's object store, to a small actor on this process's node,
which unpacks it into the tune folder and swaps it for the previous copy (``_RunFolders``). Tune's
own records (experiment state, each trial's results) are written by this process, into
``TUNE_DIR/ray``; the trials write nothing there (no Tune checkpoints, no artifacts).

``tune.yaml`` in the tune folder holds the base config and the search, so ``resume=True`` (``sdl
tune --resume TUNE_DIR``) finishes an interrupted search with Tune's ``Tuner.restore``: finished
trials (those ASHA stopped included) are kept, trials that were running or waiting run again from
the start into new run folders (the interrupted one's folder is kept), trials that raised are
restarted.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ._validation import ConfigError, check_choice
from .config import config_from_dict, parse_yaml, read_yaml, safe_name, set_key

__all__ = ["MODES", "SPACE_KINDS", "Dimension", "TuneSpec", "parse_dimension", "read_spec", "read_tune_folder", "tune"]

SPACE_KINDS = ("choice", "uniform", "loguniform", "grid")
MODES = ("min", "max")
TUNE_FILE = "tune.yaml"
_FINISHED = ("TERMINATED", "ERROR")  # Tune's statuses of a trial that will not run again


@dataclass(frozen=True)
class Dimension:
    """One axis of a search space: the config ``key`` (``train.lr``), its ``kind`` (one of
    ``SPACE_KINDS``) and ``values`` (the choices, or (low, high) for uniform and loguniform)."""

    key: str
    kind: str
    values: tuple

    def __post_init__(self) -> None:
        check_choice(f"{self.key}: kind", self.kind, SPACE_KINDS)
        if not self.values:
            raise ConfigError(f"{self.key}: {self.kind} needs at least one value")
        if self.kind in ("uniform", "loguniform"):
            low_high = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
            if len(self.values) != 2 or len(low_high) != 2 or not low_high[0] < low_high[1]:
                raise ConfigError(f"{self.key}: {self.kind} needs two finite numbers low < high, got {list(self.values)}")
            if self.kind == "loguniform" and low_high[0] <= 0:
                raise ConfigError(f"{self.key}: loguniform needs low > 0, got {self.values[0]}")

    def examples(self) -> tuple:
        """Values that stand for every value this axis can take, to validate configs before running."""
        return tuple(float(v) for v in self.values) if self.kind in ("uniform", "loguniform") else self.values

    def domain(self, tune) -> Any:
        """This axis as a Ray Tune search domain (``tune``: the module ``ray.tune``)."""
        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return getattr(tune, self.kind)(float(self.values[0]), float(self.values[1]))


def parse_dimension(spec: str) -> Dimension:
    """``"train.lr=loguniform:1e-4,1e-1"`` or ``"integrator=choice:euler,rk4"`` (values are YAML)."""
    key, sep, rest = spec.partition("=")
    kind, colon, text = rest.partition(":")
    if not sep or not key or not colon or not text:
        raise ConfigError(
            f"--space {spec!r}: expected KEY=KIND:V1,V2 with KIND one of {', '.join(SPACE_KINDS)}, "
            "e.g. train.lr=loguniform:1e-4,1e-1"
        )
    values = [parse_yaml(v, f"--space {spec}") for v in text.split(",")]
    if kind in ("uniform", "loguniform"):  # YAML reads 1e-3 as text (it wants 1.0e-3); a bound is a number
        values = [_number(v) for v in values]
    return Dimension(key, kind, tuple(values))


def _number(value: Any) -> Any:
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


@dataclass(frozen=True)
class TuneSpec:
    """What to search: the space, the ``metric`` (a key of the run's logged metrics) to ``mode``
    ("min" or "max"), ``samples`` draws of the space (each grid point ``samples`` times), and
    whether ASHA stops trials early."""

    space: tuple[Dimension, ...]
    metric: str | None = None
    mode: str = "min"
    samples: int = 4
    early_stop: bool = True

    def __post_init__(self) -> None:
        if not self.space:
            raise ConfigError("tune needs a search space: --space KEY=KIND:V1,V2, or a 'space:' block in --spec")
        keys = [d.key for d in self.space]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"space: a key is given twice in {keys}")
        if not self.metric:
            raise ConfigError(
                "tune needs a metric to optimise: --metric NAME (a logged metric, e.g. val_accuracy), or 'metric:' in --spec"
            )
        check_choice("mode", self.mode, MODES)
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"samples: {self.samples!r} must be an integer ≥ 1")


def read_spec(path: str | Path) -> dict:
    """The YAML file ``path``: a ``space:`` block (``KEY: {KIND: [values]}``) and optionally
    ``metric``, ``mode``, ``samples`` and ``early_stop``, as keyword arguments of ``TuneSpec``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file {str(path)!r} does not exist")
    return _spec_arguments(read_yaml(path) or {}, path)


def _spec_arguments(raw: Any, path: Path) -> dict:
    known = ("space", "metric", "mode", "samples", "early_stop")
    if not isinstance(raw, dict) or any(k not in known for k in raw):
        raise ConfigError(f"{path}: expected a mapping with the keys {', '.join(known)}")
    space = []
    for key, axis in (raw.get("space") or {}).items():
        if not isinstance(axis, dict) or len(axis) != 1:
            raise ConfigError(f"{path}: space.{key}: expected one KIND: [values], KIND one of {', '.join(SPACE_KINDS)}")
        ((kind, values),) = axis.items()
        space.append(Dimension(str(key), kind, tuple(values) if isinstance(values, list) else (values,)))
    return {**{k: v for k, v in raw.items() if k != "space"}, "space": tuple(space)}


def _with(base_raw: dict, params: dict) -> dict:
    raw = copy.deepcopy(base_raw)
    for key, value in params.items():
        set_key(raw, key, value)
    return raw


def _check(base_raw: dict, spec: TuneSpec) -> None:
    """Every value of every axis makes a valid config, and ``spec.metric`` is a logged metric."""
    from .experiment import build
    from .training import Trainer

    for dimension in spec.space:
        for value in dimension.examples():
            config = config_from_dict(_with(base_raw, {dimension.key: value}))
    task, model = build(config)
    logged = [k for k in Trainer(model, task, config.train).evaluate() if k != "iteration"]
    check_choice("metric", spec.metric, logged)


def _trial(params: dict, base_raw: dict, folders: Any) -> None:
    """One trial, in a Tune worker: an ordinary run of the base config with ``params`` applied, in a
    scratch folder of this node; ``folders`` (a ``_RunFolders`` actor) receives the run folder."""
    import ray
    import torch
    from ray import tune

    from .experiment import run_job
    from .sweep.ray import _pack

    torch.set_num_threads(1)
    raw = _with(base_raw, params)
    raw["name"] = safe_name(f"{base_raw['name']}-{tune.get_context().get_trial_id()}")
    raw["plots"] = []  # a trial may be stopped right after its last report: nothing is left for after it
    attempt = uuid.uuid4().hex  # a trial run again after an interruption is a new attempt: a new folder
    node = ray.get_runtime_context().get_node_id()[:12]  # in Tune's records of the trial

    def report(run_dir: Path, metrics: dict) -> None:  # after the checkpoint: a stop here loses nothing
        placed = ray.get(folders.put.remote(attempt, run_dir.name, _pack(run_dir)))
        tune.report({**metrics, "run": placed, "node": node})

    scratch = _scratch(attempt)
    try:
        run_job(config_from_dict(raw), scratch, progress=False, on_log=report)
    finally:  # may not be reached when Tune stops the trial; a later trial on this node removes it then
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch(attempt: str) -> Path:
    """A new scratch folder ``TMP/sdl-trials-UID/PID-ATTEMPT``; those of processes that no longer
    run (trials that Tune stopped, or killed) are removed first."""
    base = Path(tempfile.gettempdir(), f"sdl-trials-{os.getuid()}")
    base.mkdir(exist_ok=True)
    for old in base.iterdir():
        pid = old.name.partition("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"{os.getpid()}-{attempt}"
    path.mkdir()
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _RunFolders:
    """A Ray actor on the driver's node: the trials' run folders arrive here, as tar archives, at
    each report, and are written into the tune folder ``root`` (``sdl.sweep.ray._unpack``: unpacked
    beside it, then renamed into place). The first copy of an attempt takes a name no folder has;
    each later copy replaces the previous one of the same attempt, never another folder."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.placed: dict[str, Path] = {}

    def put(self, attempt: str, name: str, archive: bytes) -> str:
        from .sweep.ray import _unpack

        self.placed[attempt] = _unpack(archive, self.root, name, replacing=self.placed.get(attempt))
        return str(self.placed[attempt])


def _save(out: Path, base_raw: dict, spec: TuneSpec) -> None:
    from .experiment import write_atomic

    search = {k: v for k, v in asdict(spec).items() if k != "space"}
    space = {d.key: {d.kind: list(d.values)} for d in spec.space}
    text = yaml.safe_dump({"config": base_raw, "search": {"space": space, **search}}, sort_keys=False)
    write_atomic(out / TUNE_FILE, lambda path: path.write_text(text))


def read_tune_folder(out: str | Path) -> tuple[dict, TuneSpec]:
    """The raw base config and the search of the tune folder ``out`` (its ``tune.yaml``), to resume it."""
    out = Path(out)
    path = out / TUNE_FILE
    if not path.is_file() or not (out / "ray" / "tune").is_dir():
        raise FileNotFoundError(f"no {TUNE_FILE} and ray/tune in {str(out)!r}; is it a tune folder written by 'sdl tune'?")
    saved = read_yaml(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ConfigError(f"{path}: expected a mapping with 'config' and 'search'")
    return saved["config"], TuneSpec(**_spec_arguments(saved.get("search"), path))


def tune(
    base_raw: dict,
    spec: TuneSpec,
    out: str | Path,
    *,
    address: str | None = None,
    jobs: int | None = None,
    verbose: bool = False,
    resume: bool = False,
) -> tuple[list, Path | None]:
    """Search ``spec.space`` around the raw config ``base_raw`` (``name`` set) into the tune folder
    ``out``: one run folder per trial, the table and ``best.yaml``. Returns (the table's rows as
    ``sdl.sweep.JobOutcome``s, the path of best.yaml; None when no trial reported the metric).
    ``resume``: finish the interrupted search of the tune folder ``out`` (``base_raw`` and ``spec``
    as ``read_tune_folder(out)`` gives them). An interrupted search (Ctrl-C) writes the table of its finished
    trials and raises ``KeyboardInterrupt``."""
    from .sweep import write_table
    from .sweep.ray import _environment, ray_runtime

    out = Path(out).resolve()  # Tune wants an absolute storage path
    if not resume:
        _check(base_raw, spec)
        _save(out, base_raw, spec)
    iterations = config_from_dict(base_raw).train
    reports = math.ceil(iterations.iterations / iterations.log_every)
    experiment = out / "ray" / "tune"
    # Tune saves its state every 10 s or more by default; a driver that is killed loses less this way
    saving = {"TUNE_GLOBAL_CHECKPOINT_S": os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "1")}
    with ray_runtime(address, jobs, verbose) as ray:
        from ray import tune as ray_tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        folders = ray.remote(num_cpus=0)(_RunFolders).options(scheduling_strategy=here).remote(str(out))
        trainable = ray_tune.with_resources(ray_tune.with_parameters(_trial, base_raw=base_raw, folders=folders), {"cpu": 1})
        if resume:
            tuner = ray_tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, restart_errored=True)
        else:
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=reports, grace_period=1) if spec.early_stop else None
            tuner = ray_tune.Tuner(
                trainable,
                param_space={d.key: d.domain(ray_tune) for d in spec.space},
                tune_config=ray_tune.TuneConfig(
                    metric=spec.metric,
                    mode=spec.mode,
                    num_samples=spec.samples,
                    scheduler=scheduler,
                    max_concurrent_trials=jobs or max(int(ray.cluster_resources().get("CPU", 1)), 1),
                    reuse_actors=True,  # a trial after another on the same worker skips its start-up (Python, torch)
                ),
                run_config=ray_tune.RunConfig(
                    storage_path=str(experiment.parent), name=experiment.name, verbose=1 if verbose else 0
                ),
            )
        quiet = {} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"}  # the old reporter is silent at verbose=0
        with _environment({**saving, **quiet}):
            results = tuner.fit()
        finished = {trial.path for trial in ray_tune.ExperimentAnalysis(str(experiment)).trials if trial.status in _FINISHED}
    everything = [results[i] for i in range(len(results))]
    done = [result for result in everything if result.path in finished]
    rows = _rows(done, str(spec.metric), reports)
    write_table(out, rows)
    if len(done) < len(everything):  # Ctrl-C: Tune stopped and saved its state
        raise KeyboardInterrupt
    return rows, _write_best(out, results, base_raw, spec) if any(row.ok for row in rows) else None


def _rows(results: list, metric: str, reports: int) -> list:
    from .sweep import JobOutcome

    rows = []
    for result in results:
        label = ", ".join(f"{k}={_short(v)}" for k, v in (result.config or {}).items())
        metrics = result.metrics or {}
        if result.error is not None or metric not in metrics:
            rows.append(JobOutcome(label, note=f"{type(result.error).__name__}: {result.error}".splitlines()[0]))
            continue
        stopped = metrics["training_iteration"] < reports
        note = f"stopped early by ASHA at iteration {metrics['iteration']}" if stopped else ""
        rows.append(JobOutcome(label, metrics["run"], {metric: metrics[metric]}, note))
    return rows


def _write_best(out: Path, results: Any, base_raw: dict, spec: TuneSpec) -> Path:
    from .experiment import write_atomic

    best = results.get_best_result(metric=spec.metric, mode=spec.mode, scope="last")
    best_raw = _with(base_raw, best.config or {})
    best_raw["name"] = safe_name(f"{base_raw['name']}-best")
    config_from_dict(best_raw)
    text = yaml.safe_dump(best_raw, sort_keys=False)
    write_atomic(out / "best.yaml", lambda path: path.write_text(text))
    return out / "best.yaml"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
