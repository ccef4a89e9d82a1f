"""Deep limits and multilevel training (issue 17, part 2), in one command.

1. Trains the spiral2d transitions network (tanh ResNet field, 2 channels, K = 15 layers, T = 1.5,
   RK4; ``configs/smoothness.yaml``) with smoothness weights λ ∈ {0, 0.1, 1} of the *difference*
   form R_h = h Σ‖θ^{k+1} - θ^k‖² (at h = 0.1 the same as the derivative form with λ h² = λ/100).
2. Refines each to K = 30, 60, 120, 240 layers of the same [0, T] (``ODENet.refine``), θ(t)
   prolonged piecewise constant and piecewise linear, and records against K: the change of the
   logits on the validation set from the previous level and from the trained K = 15 network, and
   the validation accuracy. The observed rate is log₂ of the ratio of successive changes.
3. Multilevel training: K = 15 → 30 → 60 → 120, prolonging θ linearly and continuing with a fresh
   Adam, against training K = 120 from scratch with the same total number of Adam steps. Both use
   the *derivative* form with λ_d = λ h₁₅² (the difference-form λ at K = 15, and one functional
   ∫‖θ'‖² dt at every level). Writes accuracy and training wall time.

Writes deep_limits.png and summary.md (every number) into a new folder.

    python experiments/deep_limits.py            # full (about 10 minutes on 2 busy cores)
    python experiments/deep_limits.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from sdl.config import load_config
from sdl.experiment import build, new_run_dir
from sdl.losses import accuracy
from sdl.training import Trainer

CONFIG = Path(__file__).resolve().parent / "configs" / "smoothness.yaml"
LAMBDAS = (0.0, 0.1, 1.0)
FACTORS = (1, 2, 4, 8, 16)  # K = 15 … 240
INTERPOLATIONS = ("constant", "linear")
LEVELS = (15, 30, 60, 120)


def _train(model, task, train_config) -> float:
    trainer = Trainer(model, task, train_config)
    start = time.perf_counter()
    trainer.run(progress=False)
    return time.perf_counter() - start


def _deep_limit(args: tuple[float, int]) -> dict:
    """Train at K = 15 with λ, then refine: changes of the validation logits and accuracies per K."""
    weight, iterations = args
    torch.set_num_threads(1)
    config = load_config(CONFIG, [f"train.smoothness={weight}", f"train.iterations={iterations}"])
    task, model = build(config)
    _train(model, task, config.train)
    model.eval()
    x, y = task.data.x_val, task.data.y_val
    result = {"lambda": weight}
    with torch.no_grad():
        trained = model(x)
        for kind in INTERPOLATIONS:
            logits = [model.refine(f, kind)(x) for f in FACTORS]
            result[kind] = {
                "steps": [15 * f for f in FACTORS],
                "accuracy": [accuracy(z, y) for z in logits],
                "from_trained": [float((z - trained).abs().mean()) for z in logits],
                "successive": [float((b - a).abs().mean()) for a, b in itertools.pairwise(logits)],
            }
    return result


def _multilevel(args: tuple[float, int]) -> dict:
    """Multilevel 15 → 120 vs from scratch at 120, same total Adam steps, derivative form λ h₁₅²."""
    weight, iterations = args
    torch.set_num_threads(1)
    overrides = [f"train.smoothness={weight * 0.01}", "train.smoothness_form=derivative", f"train.iterations={iterations}"]
    config = load_config(CONFIG, overrides)
    per_level = iterations // len(LEVELS)
    task, model = build(config)
    seconds = 0.0
    for level in range(len(LEVELS)):
        if level:
            model = model.refine(2, "linear")
        seconds += _train(model, task, dataclasses.replace(config.train, iterations=per_level))
    model.eval()
    with torch.no_grad():
        multilevel = task.evaluate(model)[1]
    scratch_config = load_config(CONFIG, [*overrides, f"model.steps={LEVELS[-1]}"])
    task, scratch = build(scratch_config)
    scratch_seconds = _train(scratch, task, scratch_config.train)
    scratch.eval()
    with torch.no_grad():
        from_scratch = task.evaluate(scratch)[1]
    return {
        "lambda": weight,
        "multilevel": {**multilevel, "seconds": seconds},
        "scratch": {**from_scratch, "seconds": scratch_seconds},
        "iterations": iterations,
    }


def _rate(changes: list[float]) -> float:
    return math.log2(changes[-2] / changes[-1]) if changes[-1] > 0 and changes[-2] > 0 else float("nan")


def _figure(results: list[dict], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {0.0: "tab:red", 0.1: "tab:blue", 1.0: "tab:green"}
    for r in results:
        for kind, style in zip(INTERPOLATIONS, ("-", "--"), strict=True):
            data = r[kind]
            label = f"λ = {r['lambda']:g}, θ {kind}"
            left.loglog(data["steps"][1:], data["successive"], style, marker="o", color=colours[r["lambda"]], label=label)
            right.semilogx(data["steps"], data["accuracy"], style, marker="o", color=colours[r["lambda"]], label=label)
    left.set(xlabel="layers K", ylabel="mean |logits_K - logits_{K/2}| (validation)", title="change of the output per refinement")
    right.set(xlabel="layers K", ylabel="validation accuracy", title="accuracy of the refined networks")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.suptitle("spiral2d, ResNet field, RK4, trained at K = 15, T = 1.5; refined at the same T")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke test")
    parser.add_argument("--iterations", type=int, default=2000, help="Adam steps at K = 15 and in total for multilevel")
    parser.add_argument("--out", default="runs", help="parent folder of the new output folder")
    args = parser.parse_args()
    iterations = 8 if args.quick else args.iterations
    out = new_run_dir(args.out, "deep-limits")
    with ProcessPoolExecutor(max_workers=2) as pool:
        limits = pool.map(_deep_limit, [(w, iterations) for w in LAMBDAS])
        levels = pool.map(_multilevel, [(w, iterations) for w in (0.0, 0.1)])
        limits, levels = list(limits), list(levels)
    _figure(limits, out / "deep_limits.png")

    lines = [
        f"Deep limits ({iterations} Adam steps at K = 15): mean |Δ logits| on the validation set.",
        "",
        "| λ | θ(t) | K | val accuracy | change from K/2 | change from K = 15 |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in limits:
        for kind in INTERPOLATIONS:
            data = r[kind]
            for i, steps in enumerate(data["steps"]):
                previous = f"{data['successive'][i - 1]:.3g}" if i else ""
                lines.append(
                    f"| {r['lambda']:g} | {kind} | {steps} | {data['accuracy'][i]:.3f} | {previous} | "
                    f"{data['from_trained'][i]:.3g} |"
                )
            lines.append(f"| {r['lambda']:g} | {kind} | rate | | {_rate(data['successive']):.2f} | |")
    lines += [
        "",
        f"Multilevel 15 → 30 → 60 → 120 ({iterations // len(LEVELS)} steps per level) vs K = 120 from scratch "
        f"({iterations} steps); derivative form, λ_d = λ/100.",
        "",
        "| λ | training | train accuracy | val accuracy | wall time (s) |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in levels:
        for name in ("multilevel", "scratch"):
            m = r[name]
            lines.append(
                f"| {r['lambda']:g} | {name} | {m['train_accuracy']:.3f} | {m['val_accuracy']:.3f} | {m['seconds']:.1f} |"
            )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
