"""Bounded or drifting: a learned model's long-horizon energy error, window by window.

``sdl analyse`` summarises the long rollout by its first and last tenth. An error that grows early
and then saturates (a chaotic trajectory leaving the region of the training data) has a large
last/first ratio without drifting. This prints, for each run folder of ``task: dynamics``, the mean
and the maximum of |H(x̂(t)) - H(x(0))| (the true H) over equal windows of [0, T], for the run's
long-horizon states: a drift grows window after window, a bounded error levels off.

    PYTHONPATH=. python experiments/energy_windows.py runs/<run folder> --time 10000 --windows 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdl.experiment import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of task: dynamics")
    parser.add_argument("--time", type=float, default=10000.0, help="the horizon T")
    parser.add_argument("--windows", type=int, default=20, help="how many equal windows of [0, T]")
    args = parser.parse_args()
    if args.time <= 0 or args.windows < 1:
        parser.error(f"need --time > 0 and --windows ≥ 1; got {args.time} and {args.windows}")
    for run in args.runs:
        config, task, model = load_run(run)
        x0 = task.exact[0, : config.task.long_states]
        steps = max(args.windows, round(args.time / task.h))
        with torch.no_grad():
            error = (task.energy(model.rollout(x0, task.h, steps)) - task.energy(x0)).abs()  # (steps + 1, S)
        print(f"\n{run.name}: {len(x0)} state(s), h = {task.h:.4g}, {steps} steps\n")
        print("| window of t | mean error | max error |\n|---|---:|---:|")
        for window in torch.tensor_split(torch.arange(steps + 1), args.windows):
            start, end = task.h * window[0].item(), task.h * window[-1].item()
            print(f"| {start:.0f}–{end:.0f} | {error[window].mean():.3g} | {error[window].max():.3g} |")


if __name__ == "__main__":
    main()
