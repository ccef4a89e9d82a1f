"""The ``sdl`` command: train, analyse, sweep and list. Exit codes: 0 success, 2 user error, 1 failure.

sdl train CONFIG [--set KEY=VALUE ...] [--runs DIR] [--resume RUN_DIR]
sdl analyse RUN_DIR
sdl refine RUN_DIR [--factor 2] [--interpolation constant|linear] [--runs DIR]
sdl sweep CONFIG --grid KEY=V1,V2 [--grid ...] [--set ...] [--jobs N] [--backend local|ray] [--address HOST:PORT]
sdl sweep --resume SWEEP_DIR [--jobs N] [--backend local|ray]
sdl tune CONFIG --space KEY=KIND:V1,V2 [--space ...] [--spec FILE] [--metric M] [--mode min|max] [--samples N]
sdl tune --resume TUNE_DIR [--jobs N] [--address HOST:PORT]
sdl list
sdl --version
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys

from . import __version__
from .config import FIELDS, ConfigError, apply_overrides, config_from_dict, load_config, parse_yaml, safe_name, set_key
from .models.constrained import CONSTRAINTS
from .tasks import TASKS
from .training import TrainingDiverged

USER_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdl", description="Structure-preserving deep learning: train ODE-networks from configs."
    )
    parser.add_argument("--version", action="version", version=f"sdl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a YAML config into a new run folder")
    train.add_argument("config", nargs="?", help="YAML config (not needed with --resume)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=0.01")
    train.add_argument("--runs", default="runs", help="folder that receives the new run folder (default: runs)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the checkpoint of RUN_DIR (into a new folder)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    analyse = commands.add_parser("analyse", aliases=["analyze"], help="stability diagnostics and plots of a trained run")
    analyse.add_argument("run_dir")

    refine = commands.add_parser("refine", help="the run's ODE-network on factor·K layers, same T, into a new run folder")
    refine.add_argument("run_dir")
    refine.add_argument("--factor", type=int, default=2, help="layers × factor, steps h / factor (default 2)")
    refine.add_argument("--interpolation", default="constant", help="θ(t) between layers: constant (default) or linear")
    refine.add_argument("--runs", default=None, help="folder that receives the new run folder (default: beside RUN_DIR)")

    sweep = commands.add_parser("sweep", help="train every combination of a grid and compare them")
    sweep.add_argument("config", nargs="?", help="YAML config (not needed with --resume)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="e.g. integrator=euler,rk4")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sweep.add_argument("--runs", default="runs")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="run only the jobs of SWEEP_DIR that have not finished")
    _add_backend_options(sweep)

    tune = commands.add_parser("tune", help="hyperparameter search with Ray Tune (pip install 'sdl[ray]')")
    tune.add_argument("config", nargs="?", help="YAML config (not needed with --resume)")
    tune.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=KIND:V1,V2",
        help="KIND: choice, uniform, loguniform (V1,V2 = low,high) or grid, e.g. train.lr=loguniform:1e-4,1e-1",
    )
    tune.add_argument("--spec", metavar="FILE", help="YAML with a 'space:' block (KEY: {KIND: [values]}), metric, mode, samples")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    tune.add_argument("--metric", help="the logged metric to optimise, e.g. val_accuracy")
    tune.add_argument("--mode", choices=["min", "max"], help="minimise or maximise the metric (default: min)")
    tune.add_argument("--samples", type=int, help="draws of the space; each grid point that often (default: 4)")
    tune.add_argument("--no-early-stop", action="store_true", help="no ASHA: every trial trains to the end")
    tune.add_argument("--runs", default="runs")
    tune.add_argument(
        "--resume", metavar="TUNE_DIR", help="finish the interrupted search of TUNE_DIR (only its unfinished trials)"
    )
    _add_backend_options(tune, backend=False)

    commands.add_parser("list", help="tasks, integrators, vector fields, data sets and activations")
    return parser


def _add_backend_options(command: argparse.ArgumentParser, backend: bool = True) -> None:
    from .sweep import BACKENDS

    command.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel jobs (default 2; 1 runs them in this process; with --address: the cluster's CPUs)",
    )
    if backend:
        command.add_argument(
            "--backend",
            default="local",
            choices=BACKENDS,
            help="what runs the jobs: local processes (default) or Ray (pip install 'sdl[ray]')",
        )
    command.add_argument("--address", metavar="HOST:PORT", help="join this Ray cluster (default: a private instance on loopback)")
    command.add_argument("--verbose", action="store_true", help="show Ray's own logs")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command in ("analyse", "analyze"):
            return _analyse(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "refine":
            return _refine(args)
        if args.command == "tune":
            return _tune(args)
        return _list()
    except (ConfigError, FileNotFoundError) as error:
        print(f"sdl {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR
    except TrainingDiverged as error:
        print(f"sdl {args.command}: training stopped: {error} (the last good checkpoint is kept)", file=sys.stderr)
        return FAILURE


def _train(args) -> int:
    from .experiment import read_run_config, train_run

    if args.resume:
        config = config_from_dict(apply_overrides(read_run_config(args.resume), args.set))
    elif args.config:
        config = load_config(args.config, args.set)
    else:
        raise ConfigError("train needs a CONFIG file, or --resume RUN_DIR")
    run_dir = train_run(config, args.runs, resume_from=args.resume, progress=not args.no_progress)
    print(f"run folder: {run_dir}")
    if config.plots:
        print(f"plots:      {run_dir / 'plots'}")
    return 0


def _analyse(args) -> int:
    from .experiment import analyse_run

    out = analyse_run(args.run_dir)
    print(f"analysis: {out}")
    return 0


def _refine(args) -> int:
    from .experiment import refine_run

    out = refine_run(args.run_dir, args.factor, args.interpolation, args.runs)
    print(f"run folder: {out}  (continue training: sdl train --resume {out} --set train.iterations=N)")
    return 0


def _grid(specs: list[str]) -> list[dict[str, object]]:
    axes, keys = [], set()
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. integrator=euler,rk4")
        if key in keys:
            raise ConfigError(f"--grid {spec!r}: {key} is already a grid axis; give each key once, with all its values")
        keys.add(key)
        axes.append([(key, parse_yaml(v, f"--grid {spec}")) for v in values.split(",")])
    if not axes:
        raise ConfigError("sweep needs at least one --grid KEY=V1,V2")
    return [dict(combo) for combo in itertools.product(*axes)]


def _sweep(args) -> int:
    from pathlib import Path

    from . import plots
    from .experiment import new_run_dir
    from .sweep import Job, backend, resume_sweep, run_sweep, write_table

    runner = _backend(args, backend)
    if args.resume:
        if args.config or args.grid or args.set:
            raise ConfigError("sweep --resume SWEEP_DIR takes the jobs of SWEEP_DIR; give no CONFIG, --grid or --set")
        out = Path(args.resume)
        jobs, outcomes = resume_sweep(out)
    elif args.config:
        jobs, out = _sweep_jobs(args, new_run_dir, Job)
        outcomes = None
    else:
        raise ConfigError("sweep needs a CONFIG file, or --resume SWEEP_DIR")
    finished_so_far = [sum(o is not None for o in outcomes or [])]

    def progress(index, outcome) -> None:
        finished_so_far[0] += 1
        where = f" on node {outcome.node}" if outcome.node else ""
        print(
            f"sdl sweep: {finished_so_far[0]}/{len(jobs)} {jobs[index].label}: {outcome.note or 'done'}{where}",
            file=sys.stderr,
        )

    try:
        finished_outcomes = run_sweep(out, jobs, runner, outcomes, progress)
    except KeyboardInterrupt:
        print(
            f"sdl sweep: interrupted; the finished jobs are in {out}/results.csv; run the others with: sdl sweep --resume {out}",
            file=sys.stderr,
        )
        return INTERRUPTED
    lines = write_table(out, finished_outcomes)
    finished = [o for o in finished_outcomes if o.ok]
    if finished:
        plots.plot_sweep({o.label: o.metrics for o in finished_outcomes}, out / "results.png", title=out.name)
    print("\n".join(lines))
    print(f"sweep folder: {out}")
    return 0 if len(finished) == len(finished_outcomes) else FAILURE


def _tune(args) -> int:
    from pathlib import Path

    from . import plots
    from .experiment import new_run_dir
    from .tune import TuneSpec, parse_dimension, read_spec, read_tune_folder, tune

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: must be ≥ 1")
    options = {
        "metric": args.metric,
        "mode": args.mode,
        "samples": args.samples,
        "early_stop": False if args.no_early_stop else None,
    }
    if args.resume:
        given = [
            name
            for name, value in (("CONFIG", args.config), ("--space", args.space), ("--spec", args.spec), ("--set", args.set))
            if value
        ]
        flags = {"metric": "--metric", "mode": "--mode", "samples": "--samples", "early_stop": "--no-early-stop"}
        given += [flags[name] for name, value in options.items() if value is not None]
        if given:
            raise ConfigError(f"tune --resume TUNE_DIR takes the search of TUNE_DIR; give no {', '.join(given)}")
        out = Path(args.resume)
        base_raw, spec = read_tune_folder(out)
    elif args.config:
        base = load_config(args.config, args.set)
        base_raw = apply_overrides(base.to_dict(), args.set)
        given_spec = read_spec(args.spec) if args.spec else {}
        given_spec.update({k: v for k, v in options.items() if v is not None})
        given_spec["space"] = (*given_spec.get("space", ()), *(parse_dimension(s) for s in args.space))
        spec = TuneSpec(**given_spec)
        out = new_run_dir(args.runs, f"tune-{base.name}")
    else:
        raise ConfigError("tune needs a CONFIG file, or --resume TUNE_DIR")
    try:
        rows, best = tune(
            base_raw, spec, out, address=args.address, jobs=args.jobs, verbose=args.verbose, resume=bool(args.resume)
        )
    except KeyboardInterrupt:
        print(
            f"sdl tune: interrupted; the finished trials are in {out}/results.csv; run the others with: sdl tune --resume {out}",
            file=sys.stderr,
        )
        return INTERRUPTED
    if any(row.ok for row in rows):
        plots.plot_sweep(
            {row.label: row.metrics for row in rows}, out / "results.png", title=f"{base_raw['name']}: {spec.metric}"
        )
    print((out / "results.md").read_text(), end="")
    print(f"tune folder: {out}")
    if best is None:
        print(f"sdl tune: no trial reported {spec.metric}", file=sys.stderr)
        return FAILURE
    print(f"best config: {best}  (run it with: sdl train {best})")
    return 0


def _backend(args, backend):
    """The backend the options name (``backend``: ``sdl.sweep.backend``); a bad option is a ConfigError."""
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: must be ≥ 1")
    if args.address and args.backend != "ray":
        raise ConfigError(f"--address {args.address}: joins a Ray cluster; it needs --backend ray")
    return backend(args.backend, args.jobs, args.address, args.verbose)


def _sweep_jobs(args, new_run_dir, Job):
    """The jobs of the grid, each config validated before any runs, and a new sweep folder."""
    base = load_config(args.config, args.set)
    base_raw = apply_overrides(base.to_dict(), args.set)
    runs = []
    for combo in _grid(args.grid):
        raw = copy.deepcopy(base_raw)
        for key, value in combo.items():
            set_key(raw, key, value)
        raw["name"] = safe_name(f"{base.name}-" + "-".join(str(v) for v in combo.values()))
        config_from_dict(raw)  # validate every combination before training any
        runs.append((raw, ", ".join(f"{k}={v}" for k, v in combo.items())))
    out = new_run_dir(args.runs, f"sweep-{base.name}")
    return [Job(raw, str(out), label) for raw, label in runs], out


def _list() -> int:
    from .data import dataset_names, density_names, get_system, system_names
    from .integrators import get, names
    from .models import activation_names
    from .tasks.dynamics import FIELD_MODELS, MAP_MODELS

    print("integrators:")
    for name in names():
        method = get(name)
        traits = [
            f"order {method.order}",
            "symplectic" if method.symplectic else "",
            "needs (q, p)" if method.partitioned else "",
            "reversible" if method.time_reversible else "",
        ]
        print(f"  {name:20s} {', '.join(t for t in traits if t)}")
    print("tasks:")
    print("  " + ", ".join(TASKS))
    print("fields (classification):")
    for name, kind in FIELDS.items():
        print(f"  {name:20s} {kind.description}")
    print("constraints (model.constraint):")
    for name, text in CONSTRAINTS.items():
        print(f"  {name:20s} {text}")
    print("data sets (classification):")
    print("  " + ", ".join(dataset_names()))
    print("densities (density):")
    print("  " + ", ".join(density_names()))
    from .data.energies import energy_names

    print("energies (boltzmann):")
    print("  " + ", ".join(energy_names()) + " (phi4: data.lattice L, d = L²)")
    print("systems (dynamics):")
    for name in system_names():
        print(f"  {name:20s} recipes: {', '.join(get_system(name).recipes)}")
    print("models (dynamics):")
    print("  fields: " + ", ".join(FIELD_MODELS) + "; one-step maps: " + ", ".join(MAP_MODELS))
    print("activations:")
    print("  " + ", ".join(activation_names()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
