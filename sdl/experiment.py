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
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml

from . import plots
from .config import Config, ConfigError, config_from_dict, read_yaml, safe_name
from .data import make_dataset
from .models import GradientFlowField, HamiltonianField, ODENet, ResNetField
from .stability import per_layer_stability
from .training import Trainer, accuracy

__all__ = ["build", "new_run_dir", "train_run", "read_run_config", "load_run", "analyse_run", "write_atomic"]
_RESUME_NOTES = ("resumed_from", "resumed_at_iteration")  # written beside the config, not part of it


def build(config: Config):
    """(data, model) on the config's device and dtype; the model is initialised from ``model.seed``."""
    device, dtype = config.torch_device(), config.torch_dtype()
    data = make_dataset(config.data.name, n=config.data.n, noise=config.data.noise, seed=config.data.seed, dtype=dtype, device=device)
    m = config.model
    layers = m.steps if m.layered else None
    torch.manual_seed(m.seed)
    if m.field == "resnet":
        field = ResNetField(m.width, m.activation, num_layers=layers, init_scale=m.init_scale)
    elif m.field == "gradient_flow":
        field = GradientFlowField(m.width, m.activation, num_layers=layers, init_scale=m.init_scale)
    else:
        field = HamiltonianField(m.width, m.activation, num_layers=layers, kinetic=m.kinetic, init_scale=m.init_scale)
    integ = config.integrator
    model = ODENet(
        field,
        num_steps=m.steps,
        t_final=m.t_final,
        method=integ.name,
        num_classes=data.num_classes,
        lift=m.lift,
        momentum=m.momentum,
        gradient=config.gradient.adjoint(),
        solver=integ.solver,
        tol=integ.tol,
        max_iter=integ.max_iter,
    )
    return data, model.to(device=device, dtype=dtype)


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
            writer.writerows(zip(*history.values()))

    write_atomic(run_dir / "metrics.csv", write_csv)


def _write_config(run_dir: Path, config: Config, extra: dict | None = None) -> None:
    text = yaml.safe_dump({**config.to_dict(), **(extra or {})}, sort_keys=False)
    write_atomic(run_dir / "config.yaml", lambda p: p.write_text(text))


def train_run(config: Config, root: str | Path = "runs", resume_from: str | Path | None = None, progress: bool = True) -> Path:
    """Train as ``config`` says into a new run folder; with ``resume_from``, continue that run's
    checkpoint to ``config.train.iterations``. Resuming may change how training goes on (lr,
    weight decay, iterations, logging, plots, ...) but not the data, the model, the loss or the
    optimizer. Returns the new folder, created only once the run has started."""
    root = _runs_folder(root)
    data, model = build(config)
    trainer = Trainer(model, data, config.train)
    extra = None
    if resume_from is not None:
        resume_from = Path(resume_from)
        _check_resumable(_saved_config(resume_from), config)
        state = _load_checkpoint(resume_from)
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise ConfigError(f"checkpoint.pt in {str(resume_from)!r} is unreadable or corrupted: {_one_line(error)}") from None
        if trainer.iteration >= config.train.iterations:
            raise ConfigError(
                f"the run is already at iteration {trainer.iteration} ≥ train.iterations={config.train.iterations}; "
                f"raise it with --set train.iterations=N, N > {trainer.iteration}"
            )
        extra = {"resumed_from": str(resume_from), "resumed_at_iteration": trainer.iteration}
    run_dir = new_run_dir(root, config.name)
    _write_config(run_dir, config, extra)

    def on_log(t: Trainer) -> None:
        _save_checkpoint(run_dir, t)  # only reached with a finite loss: the last good state
        _write_metrics(run_dir, t.history)

    try:
        trainer.run(progress=progress, callback=on_log)
        _save_checkpoint(run_dir, trainer)  # the end of a run is a good state even where it was not logged
    finally:
        _write_metrics(run_dir, trainer.history)
    if config.plots:
        make_plots(run_dir / "plots", config, model, data, trainer.history)
    return run_dir


def _check_resumable(previous: Config, config: Config) -> None:
    """A resumed run continues the same model on the same data, with the same loss and optimizer."""
    pairs = [(f"{section}.{key}", old, getattr(getattr(config, section), key))
             for section in ("data", "model") for key, old in dataclasses.asdict(getattr(previous, section)).items()]
    pairs += [(f"train.{key}", getattr(previous.train, key), getattr(config.train, key)) for key in ("optimizer", "loss")]
    changed = [f"{key} {old!r} → {new!r}" for key, old, new in pairs if old != new]
    if changed:
        raise ConfigError(f"cannot change on resume: {', '.join(changed)}; the data, model, loss and optimizer "
                          f"stay those of the run (start a new run to change them)")


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


def load_run(run_dir: str | Path):
    """(config, data, model) of a finished or interrupted run, model weights from its checkpoint."""
    run_dir = Path(run_dir)
    config = _saved_config(run_dir)
    data, model = build(config)
    try:
        model.load_state_dict(_load_checkpoint(run_dir)["model"])
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"checkpoint.pt in {str(run_dir)!r} does not fit the model of its config.yaml: {_one_line(error)}") from None
    return config, data, model


@torch.no_grad()
def layer_states(model: ODENet, x: torch.Tensor) -> torch.Tensor:
    """The points z^k at every layer, (K+1, N, dim) (positions q for Hamiltonian fields)."""
    states = model.trajectory(x)
    return states[0] if model.hamiltonian else states


def _layer_analysis_fields(model: ODENet):
    """Per layer: the field of z alone (for Hamiltonian fields, the force F(q) of the potential)."""
    times = model.time_grid(next(model.parameters())).unbind()
    fields = model.layer_fields()
    if model.hamiltonian:
        return [lambda z, f=f, t=t: f.force(t, z) for f, t in zip(fields, times)], None
    analytic = isinstance(model.field, (ResNetField, GradientFlowField))
    jacobians = [lambda z, f=f, t=t: f.jacobian(t, z) for f, t in zip(fields, times)] if analytic else None
    return [lambda z, f=f, t=t: f(t, z) for f, t in zip(fields, times)], jacobians


def analyse(model: ODENet, config: Config, data) -> dict:
    """Per layer k: max Re λ(∂f_k/∂z) and ν_k = max μ₂(∂f_k/∂z) over the data's states entering layer k."""
    x = data.x_val if config.analysis.points == "val" else data.x_train
    x = x[: config.analysis.max_points]
    states = layer_states(model, x)
    fields, jacobians = _layer_analysis_fields(model)
    result = per_layer_stability(fields, states[:-1], jacobians, refine_steps=config.analysis.refine_steps)
    return {
        "max_real_eigenvalue": result.max_real_eigenvalue.tolist(),
        "one_sided_lipschitz": result.one_sided_lipschitz.tolist(),
        "points": config.analysis.points,
        "num_points": int(x.shape[0]),
    }


def make_plots(out: Path, config: Config, model: ODENet, data, history: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    wanted = set(config.plots)
    title = f"{config.data.name}, {config.model.field}, {config.integrator.name}"
    if "history" in wanted and history.get("iteration"):
        plots.plot_history(history, out / "history.png", title=title)
    if "decision_boundary" in wanted:
        with torch.no_grad():
            plots.plot_decision_boundary(
                lambda p: model.predict_proba(p.to(data.x_val)), data.x_val.cpu(), data.y_val.cpu(), out / "decision_boundary.png", title=title
            )
    if "transitions" in wanted:
        plots.plot_transitions(layer_states(model, data.x_val).cpu(), data.y_val.cpu(), out / "transitions.png", title=title)
    if "parameters" in wanted and config.model.layered:
        theta = torch.cat([p.detach().flatten(1) for p in model.field.layer_parameters()], dim=1).cpu()
        plots.plot_parameters(theta, out / "parameters.png", title=f"{title}: θ^k against k")
    if "layer_stability" in wanted:
        stats = analyse(model, config, data)
        plots.plot_layer_stability(np.array(stats["max_real_eigenvalue"]), np.array(stats["one_sided_lipschitz"]), out / "layer_stability.png", labels=[title])


def analyse_run(run_dir: str | Path) -> Path:
    """Stability diagnostics and plots of a trained run, into a new folder ``RUN_DIR/analysis-…``."""
    run_dir = Path(run_dir)
    config, data, model = load_run(run_dir)
    model.eval()
    stats = analyse(model, config, data)
    with torch.no_grad():
        logits_val = model(data.x_val)
    stats["val_accuracy"] = accuracy(logits_val, data.y_val)
    out = new_run_dir(run_dir, "analysis")
    write_atomic(out / "analysis.json", lambda p: p.write_text(json.dumps(stats, indent=1)))
    history = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    make_plots(out, dataclasses.replace(config, plots=tuple(config.plots) or ("layer_stability",)), model, data, history)
    return out
