"""A HollowNet CNF on the 2-D densities, trained with the exact divergence and with Hutchinson's.

For each density, two CNFs with the same HollowNet field, solver and budget are trained by maximum
likelihood on fresh samples each iteration: one with the exact divergence (ExactDivergence, one
backward pass) and one with Hutchinson's one-probe estimate (HutchinsonDivergence). Both are then
evaluated the same way: test NLL (nats, held-out samples) with the exact divergence, and their
densities on a grid. Writes into a new folder each run (default runs/cnf_density/cnf-density-<time>/):
results.md (NLL table, the command, the settings), results.json, density.png.

    PYTHONPATH=. python experiments/cnf_density.py            # all four densities, a few minutes
    PYTHONPATH=. python experiments/cnf_density.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sdl.models.cnf import CNF, ExactDivergence, HutchinsonDivergence  # noqa: E402
from sdl.models.hollow import HollowNet  # noqa: E402

from sdl.data.densities import sample_density  # noqa: E402
from sdl.experiment import new_run_dir  # noqa: E402

DENSITIES = ("two_moons", "eight_gaussians", "checkerboard", "rings")
ESTIMATORS = {"exact": ExactDivergence(), "hutchinson": HutchinsonDivergence()}
LIMIT = 4.0  # plots and grid on [-LIMIT, LIMIT]²


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", nargs="+", default=list(DENSITIES), choices=DENSITIES)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--hidden", type=int, default=32, help="width k of each h_i and of τ")
    parser.add_argument("--method", default="rk4", help="any name of sdl.integrators.names()")
    parser.add_argument("--steps", type=int, default=6, help="solver steps over [0, t1]")
    parser.add_argument("--t1", type=float, default=1.0)
    parser.add_argument("--gradient", default="dto", help="passed to sdl.odeint")
    parser.add_argument("--test-size", type=int, default=5000)
    parser.add_argument("--grid", type=int, default=120, help="grid points per axis of the density plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/cnf_density"), help="parent of the new run folder")
    parser.add_argument("--quick", action="store_true", help="2 densities, 30 iterations, small grid")
    args = parser.parse_args()
    if args.quick:
        args.densities, args.iterations, args.test_size, args.grid = args.densities[:2], 30, 1000, 40
    return args


def _flow(args, estimator) -> CNF:
    field = HollowNet(2, hidden=args.hidden, transformer_hidden=args.hidden, time_dependent=True)
    return CNF(
        field, 2, divergence=estimator, t1=args.t1, num_steps=args.steps, method=args.method, gradient=args.gradient
    )


def _train(cnf: CNF, density: str, args, seed: int) -> float:
    """Trains in place on fresh samples each iteration; returns seconds per iteration."""
    optimizer = torch.optim.Adam(cnf.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.iterations)
    start = time.perf_counter()
    for step in range(args.iterations):
        x = sample_density(density, args.batch, seed=seed + 1000 + step)
        loss = -cnf.log_prob(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return (time.perf_counter() - start) / args.iterations


def _grid_density(cnf: CNF, n: int) -> torch.Tensor:
    axis = torch.linspace(-LIMIT, LIMIT, n)
    points = torch.cartesian_prod(axis, axis)  # row-major: (x1, x2) with x2 fastest
    with torch.no_grad():
        log_p = torch.cat([cnf.log_prob(chunk, divergence=ExactDivergence()) for chunk in points.split(4096)])
    return log_p.exp().reshape(n, n).T  # rows: x2, columns: x1


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    folder = new_run_dir(args.out, "cnf-density-quick" if args.quick else "cnf-density")
    results, images = [], {}
    for index, density in enumerate(args.densities):
        test = sample_density(density, args.test_size, seed=10_000 + args.seed)
        images[density, "data"] = sample_density(density, 20_000, seed=20_000 + args.seed)
        for name, estimator in ESTIMATORS.items():
            torch.manual_seed(args.seed + index)  # the same initial field for both estimators
            cnf = _flow(args, estimator)
            seconds = _train(cnf, density, args, seed=args.seed)
            with torch.no_grad():
                nll = -torch.cat([cnf.log_prob(c, divergence=ExactDivergence()) for c in test.split(4096)]).mean()
            images[density, name] = _grid_density(cnf, args.grid)
            results.append({"density": density, "divergence": name, "test_nll": nll.item(), "s_per_iter": seconds})
            print(f"{density:>16} {name:>10}: test NLL {nll.item():.3f} nats, {1e3 * seconds:.1f} ms/iteration")

    _plot(images, args, folder / "density.png")
    _write(results, args, folder)
    print(f"wrote {folder}")


def _plot(images, args, path: Path) -> None:
    columns = ("data", *ESTIMATORS)
    titles = {"data": "samples", "exact": "exact divergence", "hutchinson": "Hutchinson (1 probe)"}
    fig, axes = plt.subplots(len(args.densities), 3, figsize=(9, 3 * len(args.densities)), squeeze=False)
    for row, density in enumerate(args.densities):
        for col, name in enumerate(columns):
            ax = axes[row, col]
            if name == "data":
                x = images[density, name]
                ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=args.grid, range=[[-LIMIT, LIMIT]] * 2, cmap="magma")
            else:
                extent = (-LIMIT, LIMIT, -LIMIT, LIMIT)
                ax.imshow(images[density, name].numpy(), origin="lower", extent=extent, cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if row == 0:
                ax.set_title(titles[name])
            if col == 0:
                ax.set_ylabel(density)
    fig.suptitle(f"HollowNet CNF, {args.method} × {args.steps} steps, {args.iterations} iterations", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(results, args, folder: Path) -> None:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (folder / "results.json").write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    lines = [
        "# HollowNet CNF: exact vs Hutchinson divergence in training",
        "",
        f"Command: `PYTHONPATH=. python {' '.join(sys.argv)}`",
        "",
        f"Field HollowNet(2, hidden={args.hidden}, transformer_hidden={args.hidden}, time_dependent=True); "
        f"{args.method} × {args.steps} steps on [0, {args.t1}], gradient {args.gradient!r}; Adam lr {args.lr} "
        f"(cosine), {args.iterations} iterations of {args.batch} fresh samples; test NLL on {args.test_size} held-out "
        "samples, both models evaluated with the exact divergence.",
        "",
        "| density | test NLL, exact-trained | test NLL, Hutchinson-trained | ms/iter exact | ms/iter Hutchinson |",
        "|---|---|---|---|---|",
    ]
    by_key = {(r["density"], r["divergence"]): r for r in results}
    for density in args.densities:
        exact, hutch = by_key[density, "exact"], by_key[density, "hutchinson"]
        lines.append(
            f"| {density} | {exact['test_nll']:.3f} | {hutch['test_nll']:.3f} | "
            f"{1e3 * exact['s_per_iter']:.1f} | {1e3 * hutch['s_per_iter']:.1f} |"
        )
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    if any(not math.isfinite(r["test_nll"]) for r in results):
        print("warning: a test NLL is not finite", file=sys.stderr)


if __name__ == "__main__":
    main()
