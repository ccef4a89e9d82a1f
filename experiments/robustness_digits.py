"""Certified robustness on real data: four ODE-networks on scikit-learn's digits, side by side.

The same data, depth (10 explicit Euler layers on 64 channels, the padded pixels), loss (hinge on
the margin of the true class, m = 2), optimizer and budget for every network; only the structure
differs (``experiments/configs/digits_robust.yaml`` and the overrides in ``MODELS``):

- resnet: the unconstrained field σ(Az + b), linear head;
- antisymmetric: σ((W - Wᵀ - γI) z + b), γ = 1e-4, linear head;
- nonexpansive: the gradient flow -Aᵀσ(Az + b) with A rescaled so that h‖A‖² ≤ 2 (each layer
  1-Lipschitz), orthogonal head;
- switching: expansive and contractive layers in turn with step sizes that make each pair
  1-Lipschitz (leaky ReLU), orthogonal head.

For each network and training seed: clean validation accuracy; robust accuracy under ℓ₂ PGD
(``sdl.stability.pgd_l2``, pixels kept in [0, 1]) and certified accuracy (margin / (√2 L) > ε with
L = ``sdl.stability.lipschitz_bound``) at ε ∈ {0.25, 0.5, 1.0, 2.0}; training time. Writes into a NEW
folder ``<out>/robustness-digits-<time>``: one run folder per network and seed, results.md (mean
over the seeds, the command), results.json, robustness.png (robust and certified accuracy against
ε) and layer_stability.png (per-layer max Re λ and ν of issue 5's diagnostics, seed 0).

    PYTHONPATH=. python experiments/robustness_digits.py             # 4 networks × 3 seeds, a few minutes
    PYTHONPATH=. python experiments/robustness_digits.py --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sdl import plots
from sdl.config import load_config
from sdl.experiment import load_run, new_run_dir, run_job
from sdl.stability import certified_accuracy, lipschitz_bound, robust_accuracy

CONFIG = Path(__file__).resolve().parent / "configs" / "digits_robust.yaml"
EPSILONS = (0.25, 0.5, 1.0, 2.0)
MODELS = {
    "resnet": ["model.field=resnet", "model.constraint=null", "model.head=linear"],
    "antisymmetric": ["model.field=antisymmetric", "model.activation=tanh", "model.constraint=null", "model.head=linear"],
    "nonexpansive": [],
    "switching": ["model.field=switching", "model.activation=leaky_relu", "model.constraint=switching"],
}


def evaluate(run_dir: Path, steps: int, restarts: int) -> dict:
    """Clean, PGD-robust and certified accuracy of a trained run on its validation set."""
    config, task, model = load_run(run_dir)
    model.eval()
    x, y = task.data.x_val, task.data.y_val
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        clean = (model(x).argmax(-1) == y).double().mean().item()
    bound = lipschitz_bound(model)
    result = {"clean": clean, "lipschitz": bound, "robust": {}, "certified": {}}
    for eps in EPSILONS:
        result["robust"][eps] = robust_accuracy(
            model, x, y, eps, steps=steps, restarts=restarts, bounds=(0.0, 1.0), generator=generator
        )
        result["certified"][eps] = certified_accuracy(model, x, y, eps, lipschitz=bound)
    result["stability"] = task.analyse(model, config.analysis)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..SEEDS-1 (model init and data split)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--pgd-steps", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("runs"), help="parent of the new folder")
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 iterations, a weak attack")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.iterations, args.pgd_steps, args.restarts = 1, 20, 5, 1
    torch.set_num_threads(1)
    folder = new_run_dir(args.out, "robustness-digits-quick" if args.quick else "robustness-digits")

    results: dict = {name: [] for name in args.models}
    for name in args.models:
        for seed in range(args.seeds):
            overrides = [
                *MODELS[name],
                f"model.seed={seed}",
                f"data.seed={seed}",
                f"train.seed={seed}",
                f"train.iterations={args.iterations}",
                f"name=digits-{name}-seed{seed}",
                "plots=[]",
            ]
            run = run_job(load_config(CONFIG, overrides), folder, progress=False)
            measured = evaluate(run.run_dir, args.pgd_steps, args.restarts)
            measured["seconds"] = run.seconds
            results[name].append(measured)
            print(
                f"{name:14s} seed {seed}: clean {measured['clean']:.3f}, L ≤ {measured['lipschitz']:.3g}, "
                f"robust {[round(measured['robust'][e], 3) for e in EPSILONS]}, "
                f"certified {[round(measured['certified'][e], 3) for e in EPSILONS]}, {run.seconds:.0f} s",
                flush=True,
            )

    lines = _table(results, args)
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    (folder / "results.json").write_text(
        json.dumps({k: [{**r, "stability": r["stability"]} for r in v] for k, v in results.items()}, indent=1, default=str)
    )
    _figures(results, folder)
    print("\n".join(lines))
    print(f"wrote {folder}")


def _mean(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f}" + (f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else "")


def _table(results: dict, args) -> list[str]:
    head = " | ".join(f"PGD ε={e:g}" for e in EPSILONS) + " | " + " | ".join(f"cert. ε={e:g}" for e in EPSILONS)
    lines = [
        "# Digits: clean, PGD-robust and certified accuracy (validation set, 450 images)",
        "",
        f"Command: `PYTHONPATH=. python {' '.join(sys.argv)}`",
        "",
        f"Mean ± sd over {args.seeds} seed(s) (model init, data split, batches); {args.iterations} Adam steps; ℓ₂ PGD "
        f"with {args.pgd_steps} steps and {args.restarts} restart(s), pixels kept in [0, 1]; certified: margin / (√2 L) > ε "
        "with L the proven bound of `lipschitz_bound`.",
        "",
        f"| network | clean | L bound | {head} | train s |",
        "|---|---|---|" + "---|" * (2 * len(EPSILONS)) + "---|",
    ]
    for name, runs in results.items():
        cells = [_mean([r["clean"] for r in runs]), f"{np.mean([r['lipschitz'] for r in runs]):.3g}"]
        cells += [_mean([r["robust"][e] for r in runs]) for e in EPSILONS]
        cells += [_mean([r["certified"][e] for r in runs]) for e in EPSILONS]
        cells.append(f"{np.mean([r['seconds'] for r in runs]):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _figures(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    eps = [0.0, *EPSILONS]
    for index, (name, runs) in enumerate(results.items()):
        colour = f"C{index}"
        robust = [np.mean([r["clean"] for r in runs])] + [np.mean([r["robust"][e] for r in runs]) for e in EPSILONS]
        certified = [np.mean([r["clean"] for r in runs])] + [np.mean([r["certified"][e] for r in runs]) for e in EPSILONS]
        ax.plot(eps, robust, "-o", color=colour, label=f"{name}: PGD")
        ax.plot(eps, certified, "--s", color=colour, label=f"{name}: certified")
    ax.set(
        xlabel="ℓ₂ radius ε (pixels in [0, 1])",
        ylabel="accuracy",
        ylim=(-0.02, 1.02),
        title="digits: robust and certified accuracy",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(folder / "robustness.png", dpi=120)
    plt.close(fig)
    names = list(results)
    plots.plot_layer_stability(
        [np.array(results[n][0]["stability"]["max_real_eigenvalue"]) for n in names],
        [np.array(results[n][0]["stability"]["one_sided_lipschitz"]) for n in names],
        folder / "layer_stability.png",
        labels=names,
    )


if __name__ == "__main__":
    main()
