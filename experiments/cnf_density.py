"""A HollowNet CNF on the 2-D densities, trained with the exact divergence and with Hutchinson's.

Runs the density task (``experiments/configs/cnf_density.yaml``) for each density twice, with the
same HollowNet field, solver and budget: once trained with the exact divergence (one backward pass)
and once with Hutchinson's one-probe estimate. Both are evaluated the same way: test NLL (nats,
held-out samples) with the exact divergence, and their densities on a grid. Every run is an
ordinary run folder inside a NEW folder ``<out>/cnf-density-<time>``, which also gets results.md
(NLL table, the command, the settings) and density.png.

    PYTHONPATH=. python experiments/cnf_density.py            # all four densities, a few minutes
    PYTHONPATH=. python experiments/cnf_density.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _density_study import command, figure, run_grid, table

from sdl.data import density_names
from sdl.experiment import new_run_dir

CONFIG = Path(__file__).resolve().parent / "configs" / "cnf_density.yaml"
TITLES = {"exact": "exact divergence", "hutchinson": "Hutchinson (1 probe)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", nargs="+", default=list(density_names()), choices=density_names())
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--hidden", type=int, default=32, help="width k of each h_i and of τ")
    parser.add_argument("--method", default="rk4", help="any name of sdl.integrators.names()")
    parser.add_argument("--steps", type=int, default=6, help="solver steps over [0, t1]")
    parser.add_argument("--t1", type=float, default=1.0)
    parser.add_argument("--gradient", default="dto", help="dto or otd")
    parser.add_argument("--test-size", type=int, default=5000)
    parser.add_argument("--grid", type=int, default=120, help="grid points per axis of the density plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/cnf_density"), help="parent of the new folder")
    parser.add_argument("--quick", action="store_true", help="2 densities, 30 iterations, small grid")
    args = parser.parse_args()
    if args.quick:
        args.densities, args.iterations, args.test_size, args.grid = args.densities[:2], 30, 1000, 40
    torch.set_num_threads(args.threads)
    folder = new_run_dir(args.out, "cnf-density-quick" if args.quick else "cnf-density")
    overrides = [
        f"train.iterations={args.iterations}",
        f"train.batch_size={args.batch}",
        f"train.lr={args.lr}",
        f"train.log_every={args.iterations}",
        f"train.seed={args.seed}",
        f"model.seed={args.seed}",
        f"model.hidden={args.hidden}",
        f"model.steps={args.steps}",
        f"model.t_final={args.t1}",
        f"integrator={args.method}",
        f"gradient.mode={args.gradient}",
        f"data.test_points={args.test_size}",
        "plots=[]",
    ]
    variants = {name: [f"model.divergence={name}"] for name in TITLES}
    results = run_grid(CONFIG, overrides, variants, args.densities, folder)

    lines = [
        "# HollowNet CNF: exact vs Hutchinson divergence in training",
        "",
        f"Command: `{command()}`",
        "",
        f"Field HollowNet(2, hidden={args.hidden}, transformer_hidden={args.hidden}, time_dependent=True); "
        f"{args.method} × {args.steps} steps on [0, {args.t1}], gradient {args.gradient!r}; Adam lr {args.lr} "
        f"(cosine), {args.iterations} iterations of {args.batch} fresh samples; test NLL on {args.test_size} held-out "
        "samples, both models evaluated with the exact divergence.",
        "",
        *table(results, TITLES),
    ]
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    figure(results, TITLES, args.grid, folder / "density.png")
    print("\n".join(lines))
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
