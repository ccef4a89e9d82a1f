"""Hyperparameter search over a config with Ray Tune (the extra ``sdl[ray]``): ``sdl tune``.

A search space is a list of ``Dimension``s, each a dotted config key and how to draw its value:
``choice`` (one of the values, at random), ``uniform`` / ``loguniform`` (a float drawn uniformly in
[low, high], or uniformly in log scale, low > 0), ``grid`` (every value, each crossed with the
others and with every sample). Every trial is an ordinary run folder in the tune folder (``sdl
analyse`` and ``sdl train --resume`` work on it); it reports its metrics to Tune at each logged
evaluation, after its checkpoint and metrics are on disk, and ASHA stops the trials whose metric
falls behind at a rung. The tune folder gets ``results.csv``/``results.md``/``results.png`` (one
row per trial) and ``best.yaml``, the best trial's config, which ``sdl train`` runs as it is.
Ray runs on a private instance on loopback (``sdl.sweep.ray.ray_runtime``) or on a cluster; Tune's
own records go to ``TUNE_DIR/ray`` (on a cluster, the tune folder must be on a shared filesystem).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._validation import ConfigError, check_choice
from .config import config_from_dict, parse_yaml, read_yaml, safe_name, set_key

__all__ = ["MODES", "SPACE_KINDS", "Dimension", "TuneSpec", "parse_dimension", "read_spec", "tune"]

SPACE_KINDS = ("choice", "uniform", "loguniform", "grid")
MODES = ("min", "max")


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
    raw = read_yaml(path) or {}
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


def _trial(params: dict, base_raw: dict, root: str) -> None:
    """One trial, in a Tune worker: an ordinary run of the base config with ``params`` applied."""
    import torch
    from ray import tune

    from .experiment import run_job

    torch.set_num_threads(1)
    raw = _with(base_raw, params)
    raw["name"] = safe_name(f"{base_raw['name']}-{tune.get_context().get_trial_id()}")
    raw["plots"] = []  # a trial may be stopped right after its last report: nothing is left for after it

    def report(run_dir: Path, metrics: dict) -> None:  # after the checkpoint: a stop here loses nothing
        tune.report({**metrics, "run": str(run_dir)})

    run_job(config_from_dict(raw), root, progress=False, on_log=report)


def tune(
    base_raw: dict, spec: TuneSpec, out: str | Path, *, address: str | None = None, jobs: int | None = None, verbose: bool = False
) -> tuple[list, Path | None]:
    """Search ``spec.space`` around the raw config ``base_raw`` (``name`` set) into the tune folder
    ``out``: one run folder per trial, the table and ``best.yaml``. Returns (the table's rows as
    ``sdl.sweep.JobOutcome``s, the path of best.yaml; None when no trial reported the metric)."""
    from .experiment import write_atomic
    from .sweep import JobOutcome, write_table
    from .sweep.ray import _environment, ray_runtime

    out = Path(out).resolve()  # Tune wants an absolute storage path
    _check(base_raw, spec)
    iterations = config_from_dict(base_raw).train
    reports = math.ceil(iterations.iterations / iterations.log_every)
    with ray_runtime(address, jobs, verbose) as ray:
        from ray import tune as ray_tune
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=reports, grace_period=1) if spec.early_stop else None
        trainable = ray_tune.with_resources(ray_tune.with_parameters(_trial, base_raw=base_raw, root=str(out)), {"cpu": 1})
        tuner = ray_tune.Tuner(
            trainable,
            param_space={d.key: d.domain(ray_tune) for d in spec.space},
            tune_config=ray_tune.TuneConfig(
                metric=spec.metric,
                mode=spec.mode,
                num_samples=spec.samples,
                scheduler=scheduler,
                max_concurrent_trials=jobs or max(int(ray.cluster_resources().get("CPU", 1)), 1),
            ),
            run_config=ray_tune.RunConfig(storage_path=str(out / "ray"), name="tune", verbose=1 if verbose else 0),
        )
        with _environment({} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"}):  # the old reporter is silent at verbose=0
            results = tuner.fit()
    rows = []
    for result in (results[i] for i in range(len(results))):
        label = ", ".join(f"{k}={_short(v)}" for k, v in (result.config or {}).items())
        metrics = result.metrics or {}
        if result.error is not None or spec.metric not in metrics:
            rows.append(JobOutcome(label, note=f"{type(result.error).__name__}: {result.error}".splitlines()[0]))
            continue
        stopped = metrics["training_iteration"] < reports
        values = {spec.metric: metrics[spec.metric]}
        note = f"stopped early by ASHA at iteration {metrics['iteration']}" if stopped else ""
        rows.append(JobOutcome(label, metrics["run"], values, note))
    write_table(out, rows)
    if not any(row.ok for row in rows):
        return rows, None
    best = results.get_best_result(metric=spec.metric, mode=spec.mode, scope="last")
    best_raw = _with(base_raw, best.config or {})
    best_raw["name"] = safe_name(f"{base_raw['name']}-best")
    config_from_dict(best_raw)
    text = yaml.safe_dump(best_raw, sort_keys=False)
    write_atomic(out / "best.yaml", lambda path: path.write_text(text))
    return rows, out / "best.yaml"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
