"""2-D density estimation: RealNVP with fixed permutations vs P4Inv mixing vs nflows LULinear mixing.

Runs the density task (``experiments/configs/flows_density.yaml``) for each of the four shipped
densities and each mixing layer, with the same couplings, steps, batches and learning-rate schedule,
and reports the test negative log-likelihood (nats per point, fresh samples). All three mixing
layers start as the same reversal, so the three flows compute the same map at initialisation:

- permutation: the fixed reversal (RealNVP as published);
- p4inv: ``P4InvLinear(init="reverse")``, merged every 10 steps, refined every 50 merges,
  log|det| band penalty 0.1;
- lu: the fixed reversal followed by nflows' ``LULinear`` (identity init), the LU-parameterised
  peer (Glow-style).

Every run is an ordinary run folder (config, checkpoint, metrics, plots) inside a NEW folder
``<out-root>/flows-density-<time>``, which also gets ``results.md`` (the NLL table, parameter
counts, timings, the command) and ``densities.png`` (data and the three learned densities).

    PYTHONPATH=. python experiments/flows_density.py            # default budget, a few minutes
    PYTHONPATH=. python experiments/flows_density.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _density_study import command, figure, run_grid, table

from sdl.data import density_names
from sdl.experiment import new_run_dir

CONFIG = Path(__file__).resolve().parent / "configs" / "flows_density.yaml"
TITLES = {"permutation": "RealNVP, permutations", "p4inv": "RealNVP + P4Inv", "lu": "RealNVP + LULinear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per flow")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--couplings", type=int, default=6, help="affine coupling layers per flow")
    parser.add_argument("--hidden", type=int, default=64, help="width of the coupling MLPs")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--penalty", type=float, default=0.1, help="weight of the P4Inv log|det| band penalty")
    parser.add_argument("--test-points", type=int, default=20_000)
    parser.add_argument("--resolution", type=int, default=200, help="grid points per axis in the plots")
    parser.add_argument("--densities", nargs="+", default=list(density_names()), choices=density_names())
    parser.add_argument("--seed", type=int, default=0, help="model and training seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-root", type=Path, default=Path("runs/flows_density"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 steps, small nets")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.couplings, args.hidden, args.test_points, args.resolution = 100, 2, 16, 2000, 60
    torch.set_num_threads(args.threads)
    folder = new_run_dir(args.out_root, "flows-density-quick" if args.quick else "flows-density")
    overrides = [
        f"train.iterations={args.steps}",
        f"train.batch_size={args.batch}",
        f"train.lr={args.lr}",
        f"train.log_every={args.steps}",
        f"train.seed={args.seed}",
        f"model.seed={args.seed}",
        f"model.couplings={args.couplings}",
        f"model.hidden={args.hidden}",
        f"task.logdet_penalty={args.penalty}",
        f"data.test_points={args.test_points}",
        "plots=[]",
    ]
    variants = {mixing: [f"model.mixing={mixing}"] for mixing in TITLES}
    results = run_grid(CONFIG, overrides, variants, args.densities, folder)

    lines = [
        "# RealNVP mixing layers on 2-D densities: test NLL (nats, lower is better)",
        "",
        f"Command: `{command()}`",
        "",
        f"{args.couplings} affine couplings (MLP 2 × {args.hidden}), {args.steps} Adam steps, batch {args.batch}, "
        f"lr {args.lr} cosine-decayed, {args.test_points} fresh test points; ± is the standard error.",
        "",
        *table(results, TITLES),
    ]
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    figure(results, TITLES, args.resolution, folder / "densities.png")
    print("\n".join(lines))
    print(f"\nwrote {folder / 'results.md'} and {folder / 'densities.png'}")


if __name__ == "__main__":
    main()
