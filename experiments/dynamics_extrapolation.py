"""Where a learned spring's energy error comes from: the HNN protocol's evaluation states inside
and outside the radius of the training data.

The HNN notebooks evaluate the mass-spring from states with each coordinate in ±[0.2, 1], which
reach radius √2, while the training trajectories have radius U[0.1, 1] (plus σ = 0.1 noise). For
each run folder given, prints the energy MSE over all evaluation states, over those of radius ≤ 1
and over those beyond.

With ``--ensemble``, the runs (field models trained on the same data, e.g. from different
``model.seed``) are also scored together as one model: the mean field (1/M) Σ f_i, which for HNNs is
the Hamiltonian field of the mean H. If the error came from the initialisation or the optimisation,
the mean would have less of it; if it came from the data, the members share it.

    PYTHONPATH=. python experiments/dynamics_extrapolation.py runs/learning_dynamics/*/mass_spring-*
    PYTHONPATH=. python experiments/dynamics_extrapolation.py --ensemble runs/spring-member-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from sdl.experiment import load_run
from sdl.tasks.dynamics import FieldFlow


class _MeanField(nn.Module):
    """(1/M) Σ f_i(t, (q, p)) of M fields on pairs."""

    def __init__(self, fields: list[nn.Module]) -> None:
        super().__init__()
        self.fields, self.dim = nn.ModuleList(fields), fields[0].dim

    def forward(self, t, x):
        values = [field(t, x) for field in self.fields]
        return tuple(torch.stack(parts).mean(0) for parts in zip(*values, strict=True))


def _row(name: str, task, model, radius: float) -> str:
    with torch.no_grad():
        predicted = model.rollout(task.exact[0], task.h, task.steps)
    error = (task.energy(predicted) - task.energy(task.exact)).square().mean(0)  # per state
    inside = task.exact[0].norm(dim=-1) <= radius
    return (
        f"| {name} | {error.mean():.3g} | {error[inside].mean():.3g} ({int(inside.sum())}) | "
        f"{error[~inside].mean():.3g} ({int((~inside).sum())}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of task: dynamics on mass_spring")
    parser.add_argument("--radius", type=float, default=1.0, help="the largest training radius")
    parser.add_argument("--ensemble", action="store_true", help="also score the runs' mean field (same data)")
    args = parser.parse_args()
    print("| run | all states | radius ≤ r | radius > r |\n|---|---:|---:|---:|")
    members = []
    for run in args.runs:
        config, task, model = load_run(run)
        print(_row(run.name, task, model, args.radius))
        members.append((config, task, model))
    if args.ensemble:
        data = {repr(config.data) for config, _, _ in members}
        if len(data) > 1 or not all(isinstance(model, FieldFlow) for _, _, model in members):
            parser.error(f"--ensemble needs field models trained on the same data; got data {sorted(data)}")
        _, task, model = members[0]
        mean = FieldFlow(_MeanField([member.field for _, _, member in members]), model.solve, model.substeps)
        print(_row(f"mean field of {len(members)} runs", task, mean, args.radius))


if __name__ == "__main__":
    main()
