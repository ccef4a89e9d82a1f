"""ℓ₂ PGD: sdl's ``pgd_l2`` against foolbox's ``L2PGD``, on the same models, points, radii and budget.

1. Exactness: a random linear classifier on R^64 with 10 classes, where the smallest ℓ₂
   perturbation that changes a point's class is known in closed form, d(x) = min_j m_j(x)/‖w_y - w_j‖.
   Each attack runs at radius 1.5 d(x) and 1.01 d(x) (it should flip every point; at 1.01 only an
   attack that heads for the nearest boundary does) and 0.99 d(x) (no attack can).
2. Strength and time: two digits networks (the unconstrained ResNet field and the non-expansive
   gradient flow of ``experiments/configs/digits_robust.yaml``, trained briefly here), 450
   validation images, pixels boxed in [0, 1]: robust accuracy (lower = stronger attack) and
   seconds per attack, both attacks with the same steps, one random start, step 2.5 ε / steps.

    PYTHONPATH=. python benchmarks/bench_attacks.py           # a minute or two
    PYTHONPATH=. python benchmarks/bench_attacks.py --quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import foolbox
import torch
from _timing import compare, table

from sdl.config import load_config
from sdl.experiment import build
from sdl.losses import margins
from sdl.stability import pgd_l2
from sdl.training import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "digits_robust.yaml"


def _foolbox(model, x, y, eps, steps, bounds):
    attack = foolbox.attacks.L2PGD(steps=steps, rel_stepsize=2.5 / steps, random_start=True)
    # foolbox takes one ε per call; radii per point: run each distinct one (here they are few) or loop
    fmodel = foolbox.PyTorchModel(model, bounds=bounds)
    if isinstance(eps, torch.Tensor):
        return torch.stack(
            [attack(fmodel, xi[None], yi[None], epsilons=float(e))[1][0] for xi, yi, e in zip(x, y, eps, strict=True)]
        )
    return attack(fmodel, x, y, epsilons=eps)[1]


def _exactness(steps: int, points: int) -> list[str]:
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(64, 10).double().eval()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(10, 64, generator=generator, dtype=torch.float64))
        x = torch.randn(points, 64, generator=generator, dtype=torch.float64)
        logits = linear(x)
        y = logits.argmax(-1)
        w = linear.weight
        gaps = logits.gather(-1, y[:, None]) - logits  # m_j ≥ 0, 0 for j = y
        distances = gaps / (w[y][:, None, :] - w[None]).norm(dim=-1)
        distance = distances.masked_fill(gaps == 0, float("inf")).amin(-1)
    factors = (1.5, 1.01, 0.99)
    lines = ["| attack | " + " | ".join(f"flipped at {f:g} d(x)" for f in factors) + " |", "|---|" + "---:|" * len(factors)]
    for name, attack in {
        "sdl pgd_l2 (targeted)": lambda r: pgd_l2(linear, x, y, r, steps=steps, targeted=True, generator=generator),
        "sdl pgd_l2": lambda r: pgd_l2(linear, x, y, r, steps=steps, generator=generator),
        "foolbox L2PGD": lambda r: _foolbox(linear, x, y, r, steps, (-1e3, 1e3)),
    }.items():
        flipped = [(margins(linear(attack(factor * distance)), y) < 0).double().mean().item() for factor in factors]
        lines.append(f"| {name} | " + " | ".join(f"{f:.3f}" for f in flipped) + " |")
    return lines


def _digits_models(iterations: int):
    models = {}
    for name, overrides in {
        "resnet": ["model.field=resnet", "model.constraint=null", "model.head=linear"],
        "nonexpansive": [],
    }.items():
        config = load_config(CONFIG, [*overrides, f"train.iterations={iterations}", "plots=[]"])
        task, model = build(config)
        Trainer(model, task, config.train).run(progress=False)
        models[name] = model.eval()
    return models, task.data.x_val, task.data.y_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=200, help="training steps of each digits network")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.iterations, args.repeats = 5, 10, 1
    torch.set_num_threads(1)

    print(f"## Exactness on a linear classifier (64 features, 10 classes, float64, {args.steps} steps)\n")
    print("\n".join(_exactness(args.steps, 64 if args.quick else 256)), "\n")

    models, x, y = _digits_models(args.iterations)
    for eps in (0.5, 1.0):
        print(f"## Digits, ε = {eps}: robust accuracy (lower is a stronger attack)\n")
        print("| network | sdl pgd_l2 | foolbox L2PGD |")
        print("|---|---:|---:|")
        timings = {}
        for name, model in models.items():
            generator = torch.Generator().manual_seed(0)
            ours = pgd_l2(model, x, y, eps, steps=args.steps, bounds=(0.0, 1.0), generator=generator)
            theirs = _foolbox(model, x, y, eps, args.steps, (0.0, 1.0))
            with torch.no_grad():
                accuracies = [(margins(model(a), y) > 0).double().mean().item() for a in (ours, theirs)]
            print(f"| {name} | {accuracies[0]:.3f} | {accuracies[1]:.3f} |")
            timings[f"sdl pgd_l2, {name}"] = lambda m=model, eps=eps: pgd_l2(m, x, y, eps, steps=args.steps, bounds=(0.0, 1.0))
            timings[f"foolbox L2PGD, {name}"] = lambda m=model, eps=eps: _foolbox(m, x, y, eps, args.steps, (0.0, 1.0))
        print()
        medians = compare(timings, repeats=args.repeats, warmup=1)
        print(table(medians, baseline="sdl pgd_l2, resnet"), "\n")


if __name__ == "__main__":
    main()
