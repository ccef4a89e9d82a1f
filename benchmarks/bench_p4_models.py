"""Whole-model training steps with P4 layers against their peers, interleaved in one process, one thread.

Each candidate is a run's ``Trainer`` built from an experiment config (``sdl.experiment.build``), so
a step is exactly what ``sdl train`` does: a batch, forward, backward, Adam, the learning-rate
schedule and the P4 scheduler (merges every 10 steps, refinements every 50 merges). The candidates
take their steps round-robin (``_timing.compare``), so load changes hit all of them alike.

1. ``phi4``: the Boltzmann generator of ``experiments/configs/bg_phi4.yaml`` (φ⁴, d = 64, RealNVP with
   6 couplings of width 128, batch 256, forward KL + 0.5 × reverse KL) with P4Inv mixing against
   nflows' LULinear (after the reversal) and the fixed permutation. The MCMC data are made once
   (a smaller run than the config's: the data do not change the cost of a step).
2. ``double_well``, ``muller_brown``: the 2-D Boltzmann generators of ``bg_double_well.yaml`` (forward
   KL + 0.1 × reverse KL) and ``bg_muller_brown.yaml`` (forward KL alone): RealNVP (6 couplings of
   width 64) with P4Inv, LULinear and permutation mixing, and the HollowNet CNF (width 64, 6 RK4 steps,
   exact divergence) of ``experiments/boltzmann.py``.

(A second part, the digits non-expansive network with a P4Orth constraint against the exact and
power-iteration norms, was measured at commit d04c066 and left out with that constraint: see
benchmarks/RESULTS.md §8.)

    PYTHONPATH=. python benchmarks/bench_p4_models.py [--parts double_well muller_brown phi4] [--repeats 30] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import compare

from sdl.config import load_config
from sdl.experiment import build
from sdl.training import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
_TWO_D_FLOWS = {
    "RealNVP + P4Inv": ["model.mixing=p4inv"],
    "RealNVP + LULinear": ["model.mixing=lu"],
    "RealNVP, permutations": ["model.mixing=permutation"],
    "HollowNet CNF": ["model.flow=cnf", "model.hidden=64", "model.steps=6"],
}
PARTS = {
    "double_well": ("bg_double_well.yaml", ["data.steps=200", "data.burn_in=100", "plots=[]"], _TWO_D_FLOWS),
    "muller_brown": ("bg_muller_brown.yaml", ["data.steps=200", "data.burn_in=100", "plots=[]"], _TWO_D_FLOWS),
    "phi4": (
        "bg_phi4.yaml",
        ["data.steps=200", "data.burn_in=100", "data.reference_chains=8", "data.reference_steps=200", "plots=[]"],
        {
            "RealNVP + P4Inv": ["model.mixing=p4inv"],
            "RealNVP + LULinear": ["model.mixing=lu"],
            "RealNVP, permutations": ["model.mixing=permutation"],
        },
    ),
}


def _trainer(config_name: str, overrides: list[str]) -> Trainer:
    config = load_config(CONFIGS / config_name, overrides)
    task, model = build(config)
    return Trainer(model, task, config.train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="3 repeats, a small φ⁴ lattice")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 3 if args.quick else args.repeats
    for part in args.parts:
        config_name, common, candidates = PARTS[part]
        common = [*common, "data.lattice=4", "model.hidden=16"] if args.quick and part == "phi4" else common
        trainers = {name: _trainer(config_name, [*common, *extra]) for name, extra in candidates.items()}
        medians = compare({name: trainer.step for name, trainer in trainers.items()}, repeats=repeats)
        baseline = next(iter(medians))
        print(f"\n{part} ({config_name}), ms per training step, median of {repeats} interleaved steps")
        print(f"| candidate | ms / step | ratio to {baseline} |\n|---|---:|---:|")
        for name, seconds in medians.items():
            print(f"| {name} | {1e3 * seconds:.2f} | {seconds / medians[baseline]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
