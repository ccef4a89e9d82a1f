"""2-D density estimation: RealNVP with fixed permutations vs P4Inv mixing vs nflows LULinear mixing.

Trains the three RealNVP variants on the four shipped densities (``sdl.data.sample_density``)
by maximum likelihood with the same couplings, steps, batches and learning-rate schedule, and
reports the test negative log-likelihood (nats per point, fresh samples). All three mixing layers
start as the same reversal, so the three flows are identical at initialisation:

- permutation: the fixed reversal (RealNVP as published);
- p4inv: ``P4InvLinear(init="reverse")``, merged every 10 steps, refined every 50 merges,
  log|det| band penalty 0.1;
- lu: the fixed reversal followed by nflows' ``LULinear`` (identity init), the LU-parameterised
  peer (Glow-style).

Writes ``results.md`` (the NLL table, parameter counts, timings, the command) and
``densities.png`` (data and the three learned densities side by side) into a NEW folder
``<out-root>/<timestamp>`` on every run.

    PYTHONPATH=. python experiments/flows_density.py            # default budget, a few minutes
    PYTHONPATH=. python experiments/flows_density.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from nflows.transforms.lu import LULinear  # noqa: E402

from sdl.data import density_names, sample_density  # noqa: E402
from sdl.experiment import new_run_dir  # noqa: E402
from sdl.models.flows import FlowSequence, NormalizingFlow, Permutation, realnvp  # noqa: E402
from sdl.models.p4inv import P4InvScheduler, logdet_band_penalty  # noqa: E402

VARIANTS = ("permutation", "p4inv", "lu")
TITLES = {"permutation": "RealNVP, permutations", "p4inv": "RealNVP + P4Inv", "lu": "RealNVP + LULinear"}
LIMIT = 4.5  # plotting window [-LIMIT, LIMIT]²


def _reversed_lu(dim: int) -> FlowSequence:
    return FlowSequence([Permutation(dim), LULinear(dim, identity_init=True)])


def build_flow(variant: str, couplings: int, hidden: int) -> NormalizingFlow:
    mixing = {"permutation": "permutation", "p4inv": "p4inv", "lu": _reversed_lu}[variant]
    return realnvp(2, couplings, hidden, mixing)


def train(flow: NormalizingFlow, variant: str, density: str, args, seed: int) -> float:
    """Adam with cosine-decayed learning rate on fresh batches; returns seconds taken."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    p4inv = P4InvScheduler(flow, optimizer, merge_every=10, refine_every=50) if variant == "p4inv" else None
    flow.train()
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = sample_density(density, args.batch, generator)
        loss = -flow.log_prob(batch).mean()
        if p4inv is not None:
            loss = loss + args.penalty * logdet_band_penalty(flow)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if p4inv is not None:
            p4inv.step()
    flow.eval()
    return time.perf_counter() - start


@torch.no_grad()
def test_nll(flow: NormalizingFlow, test_points: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of -log p over the test points."""
    nll = -flow.log_prob(test_points)
    return nll.mean().item(), nll.std().item() / math.sqrt(len(nll))


@torch.no_grad()
def density_grid(flow: NormalizingFlow, resolution: int) -> torch.Tensor:
    axis = torch.linspace(-LIMIT, LIMIT, resolution)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([xx, yy], -1).reshape(-1, 2)  # nflows layers take (batch, features) only
    return flow.log_prob(points).exp().reshape(resolution, resolution)


def plot(results: dict, data: dict, resolution: int, path: Path) -> None:
    densities = list(data)
    fig, axes = plt.subplots(len(densities), 1 + len(VARIANTS), figsize=(3.2 * (1 + len(VARIANTS)), 3.2 * len(densities)))
    axes = axes.reshape(len(densities), 1 + len(VARIANTS))
    extent = (-LIMIT, LIMIT, -LIMIT, LIMIT)
    for row, density in enumerate(densities):
        ax = axes[row, 0]
        ax.hist2d(*data[density].T.numpy(), bins=resolution // 2, range=[[-LIMIT, LIMIT]] * 2, cmap="viridis")
        ax.set_title(f"{density}: data", fontsize=12)
        for col, variant in enumerate(VARIANTS, start=1):
            ax = axes[row, col]
            result = results[density][variant]
            ax.imshow(result["grid"].numpy(), origin="lower", extent=extent, cmap="viridis")
            ax.set_title(f"{TITLES[variant]}\ntest NLL {result['nll']:.3f}", fontsize=12)
    for ax in axes.flat:
        ax.set_xlim(-LIMIT, LIMIT)
        ax.set_ylim(-LIMIT, LIMIT)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-root", type=Path, default=Path("runs/flows_density"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 steps, small nets")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.couplings, args.hidden, args.test_points, args.resolution = 100, 2, 16, 2000, 60
    torch.set_num_threads(args.threads)
    folder = new_run_dir(args.out_root, "flows-density-quick" if args.quick else "flows-density")

    results, data = {}, {}
    for d_index, density in enumerate(args.densities):
        test_points = sample_density(density, args.test_points, seed=10_000 + d_index)
        data[density] = sample_density(density, 50_000, seed=20_000 + d_index)
        results[density] = {}
        for variant in VARIANTS:
            torch.manual_seed(args.seed)  # identical coupling initialisation across variants
            flow = build_flow(variant, args.couplings, args.hidden)
            seconds = train(flow, variant, density, args, seed=args.seed + d_index)
            nll, stderr = test_nll(flow, test_points)
            results[density][variant] = {
                "nll": nll,
                "stderr": stderr,
                "seconds": seconds,
                "parameters": sum(p.numel() for p in flow.parameters()),
                "grid": density_grid(flow, args.resolution),
            }
            print(f"{density:16s} {variant:12s} test NLL {nll:.4f} ± {stderr:.4f}  ({seconds:.1f} s)", flush=True)

    command = "PYTHONPATH=. python experiments/flows_density.py " + " ".join(sys.argv[1:])
    lines = [
        "# RealNVP mixing layers on 2-D densities: test NLL (nats, lower is better)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"{args.couplings} affine couplings (MLP 2 × {args.hidden}), {args.steps} Adam steps, batch {args.batch}, "
        f"lr {args.lr} cosine-decayed, {args.test_points} fresh test points; ± is the standard error.",
        "",
        "| density | " + " | ".join(TITLES[v] for v in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for density, row in results.items():
        best = min(row[v]["nll"] for v in VARIANTS)
        cells = [
            (f"**{row[v]['nll']:.3f}**" if row[v]["nll"] == best else f"{row[v]['nll']:.3f}") + f" ± {row[v]['stderr']:.3f}"
            for v in VARIANTS
        ]
        lines.append(f"| {density} | " + " | ".join(cells) + " |")
    first = next(iter(results.values()))
    lines.append("| trainable parameters | " + " | ".join(str(first[v]["parameters"]) for v in VARIANTS) + " |")
    lines.append(
        "| training seconds (all densities) | "
        + " | ".join(f"{sum(results[d][v]['seconds'] for d in results):.0f}" for v in VARIANTS)
        + " |"
    )
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, data, args.resolution, folder / "densities.png")
    print("\n".join(lines))
    print(f"\nwrote {folder / 'results.md'} and {folder / 'densities.png'}")


if __name__ == "__main__":
    main()
