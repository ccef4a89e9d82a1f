"""How close do the transitions networks come to the noise floor of donut2d and squares2d?

Both sets overlap by construction, so no classifier is perfect. The best rule on each:

  squares2d  the sign rule x₁x₂ > 0. It is the Bayes rule: uniform points on a square with
             Gaussian noise give p₁(x) - p₀(x) ∝ g(x₁) g(x₂) with g odd and of the sign of its
             argument.
  donut2d    the radius rule ‖x‖ < r*, r* the best threshold on fresh points. The class densities
             are radial up to the truncation of the outer ring at the square [-1, 1]², far from
             the boundary, so this is the Bayes rule up to that.

For each data seed this trains the transitions network (``configs/transitions_<set>.yaml``:
2 channels, 15 layers, h = 0.1, Euler / Heun / Kutta3 / RK4) and the wide network
(``configs/wide.yaml``: 8 channels, weight decay, RK4), and compares each network's validation
accuracy with the rule's on the same validation points. It also gives the rule's accuracy on
fresh points (the Bayes rate) and the chance that a Bayes-optimal classifier reaches issue 3's
targets on n = 1000 validation points. Writes summary.md into a new folder.

    python experiments/noise_floor.py              # 5 data seeds, ~7 min on 2 cores
    python experiments/noise_floor.py --seeds 10   # the table in experiments/README.md, ~15 min
    python experiments/noise_floor.py --quick      # smoke run
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binom

from sdl.config import load_config
from sdl.data import make_dataset
from sdl.experiment import build, new_run_dir
from sdl.training import Trainer, accuracy

CONFIGS = Path(__file__).resolve().parent / "configs"
DATASETS = ("donut2d", "squares2d")
TARGETS = {"donut2d": 0.93, "squares2d": 0.89}  # issue 3's validation-accuracy targets
NETWORKS = {  # label: (config file with {set} for the data set, integrator)
    **{f"2 channels, {m}": ("transitions_{set}.yaml", m) for m in ("euler", "heun", "kutta3", "rk4")},
    "8 channels, weight decay, rk4": ("wide.yaml", "rk4"),
}
FRESH_SEED = 10**6  # the data seed of the points that fix and score the radius rule


def _rule_accuracy(name: str, x: torch.Tensor, y: torch.Tensor, radius: float) -> float:
    """Accuracy of the best rule for the set ``name`` (see the module docstring) on (x, y)."""
    predicted = x.norm(dim=1) < radius if name == "donut2d" else x[:, 0] * x[:, 1] > 0
    return (predicted.long() == y).double().mean().item()


def _best_radius(x: torch.Tensor, y: torch.Tensor) -> float:
    """The threshold r maximising the accuracy of ‖x‖ < r ↦ class 1 on (x, y)."""
    order = torch.argsort(x.norm(dim=1))
    radii, labels = x.norm(dim=1)[order], y[order].double()
    # accuracy with the first i points (in radius order) called class 1, i = 0..N
    inner_ones = torch.cat([torch.zeros(1, dtype=torch.float64), labels.cumsum(0)])
    outer_zeros = (1 - labels).sum() - torch.cat([torch.zeros(1, dtype=torch.float64), (1 - labels).cumsum(0)])
    i = int(torch.argmax(inner_ones + outer_zeros))
    return float(radii[i - 1] + radii[i]) / 2


def _train(job: tuple[str, str, int, list[str]]) -> dict:
    name, label, seed, extra = job
    torch.set_num_threads(1)
    config_file, integrator = NETWORKS[label]
    overrides = [f"data.name={name}", f"data.seed={seed}", f"integrator={integrator}", *extra]
    config = load_config(CONFIGS / config_file.format(set=name), overrides)
    task, model = build(config)
    Trainer(model, task, config.train).run(progress=False)
    data = task.data
    model.eval()
    with torch.no_grad():
        return {
            "set": name,
            "network": label,
            "seed": seed,
            "train": accuracy(model(data.x_train), data.y_train),
            "val": accuracy(model(data.x_val), data.y_val),
        }


def _mean_sd(values) -> str:
    values = np.asarray(values)
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="data seeds 0..SEEDS-1 (default 5)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes (default 2)")
    parser.add_argument("--quick", action="store_true", help="one seed, few iterations, for a smoke test")
    parser.add_argument("--out", default="runs", help="parent folder of the new output folder")
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        parser.error(f"--seeds and --jobs must be ≥ 1, got --seeds {args.seeds} --jobs {args.jobs}")
    seeds = range(1 if args.quick else args.seeds)
    extra = ["train.iterations=10"] if args.quick else []
    fresh_n = 20_000 if args.quick else 200_000

    fresh = make_dataset("donut2d", n=fresh_n, seed=FRESH_SEED, dtype=torch.float64)
    radius = _best_radius(fresh.x_train, fresh.y_train)
    bayes_rate = {}
    for name in DATASETS:
        points = make_dataset(name, n=fresh_n, seed=FRESH_SEED, dtype=torch.float64)
        bayes_rate[name] = _rule_accuracy(name, points.x_val, points.y_val, radius)
    rule = {}
    for name in DATASETS:
        for seed in seeds:
            data = make_dataset(name, n=1000, seed=seed, dtype=torch.float64)
            rule[name, seed] = _rule_accuracy(name, data.x_val, data.y_val, radius)

    jobs = [(name, label, seed, extra) for name in DATASETS for label in NETWORKS for seed in seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_train, jobs))

    out = new_run_dir(args.out, "noise-floor")
    lines = [
        f"Data seeds {', '.join(map(str, seeds))}; n = 1000 training and 1000 validation points each. "
        f"Radius rule: ‖x‖ < {radius:.3f} (best on {fresh_n} fresh points, seed {FRESH_SEED}).",
        "",
        "| set | Bayes rate (fresh points) | P(Bayes classifier ≥ target on 1000 points) |",
        "|---|---:|---:|",
    ]
    for name in DATASETS:
        chance = binom.sf(round(TARGETS[name] * 1000) - 1, 1000, bayes_rate[name])
        lines.append(f"| {name} | {bayes_rate[name]:.4f} | P(≥ {TARGETS[name]:.2f}) = {chance:.2f} |")
    lines += [
        "",
        "| set | classifier | train accuracy | validation accuracy | gap to the rule (same points) | seeds ≥ target |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in DATASETS:
        rule_val = [rule[name, s] for s in seeds]
        hits = sum(v >= TARGETS[name] for v in rule_val)
        lines.append(f"| {name} | Bayes rule | | {_mean_sd(rule_val)} | 0 | {hits}/{len(rule_val)} |")
        for label in NETWORKS:
            runs = [r for r in results if r["set"] == name and r["network"] == label]
            gaps = [r["val"] - rule[name, r["seed"]] for r in runs]
            hits = sum(r["val"] >= TARGETS[name] for r in runs)
            lines.append(
                f"| {name} | {label} | {_mean_sd([r['train'] for r in runs])} | {_mean_sd([r['val'] for r in runs])} "
                f"| {_mean_sd(gaps)} | {hits}/{len(runs)} |"
            )
    lines += ["", "Per seed (validation accuracy):", "", "| set | seed | Bayes rule | " + " | ".join(NETWORKS) + " |"]
    lines.append("|---|---:|---:|" + "---:|" * len(NETWORKS))
    for name in DATASETS:
        for seed in seeds:
            vals = [
                next(r["val"] for r in results if (r["set"], r["network"], r["seed"]) == (name, label, seed))
                for label in NETWORKS
            ]
            lines.append(f"| {name} | {seed} | {rule[name, seed]:.3f} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"summary: {out / 'summary.md'}")


if __name__ == "__main__":
    main()
