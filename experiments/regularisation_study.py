"""The regularisation study of Owren's talk, and the other diagnostic figures, in one command.

Trains the spiral2d transitions network (tanh ResNet field, 2 channels, 15 layers, h = 0.1,
RK4, 5000 Adam steps) with smoothness weights λ ∈ {0, 0.1, 1.0} of R_h = h Σ‖θ^{k+1} - θ^k‖²
(``configs/smoothness.yaml``: the "difference" form; the "derivative" form is 1/h² stronger and
collapses this network at these λ) and writes, into a new folder:

  parameters.png          θ^k against k for each λ (irregular without the penalty)
  layer_stability.png     per layer: max Re λ(J) (blue) and the one-sided Lipschitz ν (red), per λ
  decision_boundary_lambda*.png, transitions_lambda*.png
                          each classifier, and its layer-by-layer snapshots of the points
  stability_regions.png   |R(z)| ≤ 1 of the explicit tableaus
  energy_error.png        energy error of Verlet and Yoshida vs RK4 on a Hamiltonian field
  summary.md              accuracies, R_h(θ) and the per-layer numbers

    python experiments/regularisation_study.py            # full (a few minutes on 2 cores)
    python experiments/regularisation_study.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

import sdl
from sdl import plots
from sdl.config import load_config
from sdl.experiment import build, new_run_dir
from sdl.integrators import TABLEAUS
from sdl.models import HamiltonianField, parameter_smoothness
from sdl.stability import energy_error
from sdl.tasks.classification import layer_states
from sdl.training import Trainer

CONFIG = Path(__file__).resolve().parent / "configs" / "smoothness.yaml"
LAMBDAS = (0.0, 0.1, 1.0)


def _train(args: tuple[float, int]) -> dict:
    weight, iterations = args
    torch.set_num_threads(1)
    config = load_config(CONFIG, [f"train.smoothness={weight}", f"train.iterations={iterations}"])
    task, model = build(config)
    trainer = Trainer(model, task, config.train)
    trainer.run(progress=False)
    stats = task.analyse(model, config.analysis)
    theta = torch.cat([p.detach().flatten(1) for p in model.field.layer_parameters()], dim=1)
    return {
        "lambda": weight,
        "history": trainer.history,
        "theta": theta.numpy(),
        "smoothness": parameter_smoothness(model.field, model.step_size, config.train.smoothness_form).item(),
        "stats": stats,
        "state": model.state_dict(),
    }


def _energy_figure(out: Path, steps: int) -> None:
    """Energy error of a Hamiltonian field (shared parameters, autonomous) under Verlet, Yoshida and RK4."""
    torch.manual_seed(0)
    h = 0.1
    field = HamiltonianField(2, "tanh").double()
    q0 = torch.randn(64, 2, dtype=torch.float64)
    p0 = torch.randn(64, 2, dtype=torch.float64)
    t = torch.arange(steps + 1, dtype=torch.float64) * h
    errors = {}
    for method in ("verlet", "yoshida4", "rk4"):
        q, p = sdl.odeint(field, (q0, p0), t, method=method)
        errors[method] = energy_error(field.hamiltonian, q, p).median(dim=-1).values.numpy()
    title = f"Hamiltonian field, h = {h}: median energy error over 64 orbits"
    plots.plot_energy_error(t.numpy(), errors, out / "energy_error.png", title=title)


def _distinct_stability_functions(tableaus: dict) -> dict:
    """One entry per distinct R(z) (e.g. every 2-stage order-2 method shares one), labelled with all names."""
    probe = np.array([-1.3 + 0.7j, -0.4 - 2.1j, 0.5j])
    groups: list[tuple[np.ndarray, list[str], object]] = []
    for name, tableau in tableaus.items():
        values = tableau.stability_function(probe)
        for group_values, names, _ in groups:
            if np.allclose(values, group_values, rtol=0, atol=1e-12):
                names.append(name)
                break
        else:
            groups.append((values, [name], tableau))
    return {" = ".join(names): tableau for _, names, tableau in groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke test")
    parser.add_argument("--out", default="runs", help="parent folder of the new output folder")
    args = parser.parse_args()
    iterations = 40 if args.quick else 5000

    out = new_run_dir(args.out, "regularisation-study")
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(_train, [(w, iterations) for w in LAMBDAS]))
    labels = [f"λ = {r['lambda']:g}" for r in runs]

    plots.plot_parameters([r["theta"] for r in runs], out / "parameters.png", labels=labels, title="spiral2d: θ^k against k")
    plots.plot_layer_stability(
        [np.array(r["stats"]["max_real_eigenvalue"]) for r in runs],
        [np.array(r["stats"]["one_sided_lipschitz"]) for r in runs],
        out / "layer_stability.png",
        labels=labels,
    )
    task, model = build(load_config(CONFIG))
    data = task.data
    model.eval()
    for run, label in zip(runs, labels, strict=True):
        model.load_state_dict(run["state"])
        suffix = f"lambda{run['lambda']:g}"
        plots.plot_transitions(
            layer_states(model, data.x_val), data.y_val, out / f"transitions_{suffix}.png", title=f"spiral2d, {label}"
        )
        plots.plot_decision_boundary(
            model.predict_proba, data.x_val, data.y_val, out / f"decision_boundary_{suffix}.png", title=f"spiral2d, {label}"
        )
    explicit = {name: t for name, t in TABLEAUS.items() if t.explicit}
    plots.plot_stability_region(_distinct_stability_functions(explicit), out / "stability_regions.png")
    _energy_figure(out, 200 if args.quick else 20000)

    lines = [
        "| λ | R_h(θ) | train accuracy | validation accuracy | max_k ν_k | max_k max Re λ |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        history, stats = run["history"], run["stats"]
        lines.append(
            f"| {run['lambda']:g} | {run['smoothness']:.2f} | {history['train_accuracy'][-1]:.3f} | "
            f"{history['val_accuracy'][-1]:.3f} | {max(stats['one_sided_lipschitz']):.3f} | "
            f"{max(stats['max_real_eigenvalue']):.3f} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
