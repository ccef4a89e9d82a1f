"""Where a learned spring's energy error comes from: the HNN protocol's evaluation states inside
and outside the radius of the training data.

The HNN notebooks evaluate the mass-spring from states with each coordinate in ±[0.2, 1], which
reach radius √2, while the training trajectories have radius U[0.1, 1] (plus σ = 0.1 noise). For
each run folder given, prints the energy MSE over all evaluation states, over those of radius ≤ 1
and over those beyond.

    PYTHONPATH=. python experiments/dynamics_extrapolation.py runs/learning_dynamics/*/mass_spring-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdl.experiment import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of task: dynamics on mass_spring")
    parser.add_argument("--radius", type=float, default=1.0, help="the largest training radius")
    args = parser.parse_args()
    print("| run | all states | radius ≤ r | radius > r |\n|---|---:|---:|---:|")
    for run in args.runs:
        _, task, model = load_run(run)
        with torch.no_grad():
            predicted = model.rollout(task.exact[0], task.h, task.steps)
        error = (task.energy(predicted) - task.energy(task.exact)).square().mean(0)  # per state
        inside = task.exact[0].norm(dim=-1) <= args.radius
        print(f"| {run.name} | {error.mean():.3g} | {error[inside].mean():.3g} ({int(inside.sum())}) | "
              f"{error[~inside].mean():.3g} ({int((~inside).sum())}) |")


if __name__ == "__main__":
    main()
