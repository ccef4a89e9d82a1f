"""How fast does one invertible linear layer learn, when trained through rank-one perturbations?

The smallest density problem a mixing layer meets: fit z = W x + b to x ~ N(0, S) by maximum
likelihood, loss E[½‖W x + b‖²] - log|det W|, with S = L Lᵀ, L = I + G / √d (G standard normal,
seeded). The exact KL(N(0, S) ‖ model) of the current W, b is

    KL = ½ (tr(P S) + μᵀ P μ - d - log det(P S)),   P = WᵀW,  μ = -W⁻¹ b,

so the learning speed is measured without sampling noise: the steps until KL first falls below
½ and ⅒ of its value at the start (W a permutation, b = 0), evaluated every 10 steps. Layers, all
from the identity up to a permutation, with the same Adam optimizer, constant learning rate and
batches:

- P4Inv: ``P4InvLinear`` (A + u vᵀ, merged every 10 steps, the default log|det| band [-2, 15]);
- P4Inv, wide band: the same with the band at [-1000, 1000], so no merge is refused for log|det|;
- LULinear: nflows' LU-parameterised layer (the bench extra);
- dense: W itself a parameter, log|det W| from ``torch.linalg.slogdet`` (O(d³) per step).

A rank-one perturbation started at u = 0 with v ~ N(0, I) moves A along (G v) vᵀ for the gradient G
of the loss with respect to A, a random sketch of G; its first-order decrease per step is about
1/√d of a full-matrix step of the same size, which is what the columns show growing with d.
Writes results.md into a new folder.

    PYTHONPATH=. python experiments/p4_linear_fit.py                   # d = 16, 64; 3 seeds
    PYTHONPATH=. python experiments/p4_linear_fit.py --dims 16 64 256  # the table in experiments/README.md
    PYTHONPATH=. python experiments/p4_linear_fit.py --quick           # smoke run
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

from sdl.experiment import new_run_dir
from sdl.models import P4InvLinear, P4InvScheduler
from sdl.models.p4inv import MergeRule

LAYERS = ("P4Inv", "P4Inv, wide band", "LULinear", "dense")
FRACTIONS = (0.5, 0.1)


class _Dense(nn.Module):
    """z = W x + b with log|det W| from slogdet: the unconstrained reference."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.weight.T + self.bias, torch.linalg.slogdet(self.weight)[1].expand(x.shape[:-1])

    def matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, self.bias


def _layer(kind: str, dim: int) -> nn.Module:
    if kind == "P4Inv":
        return P4InvLinear(dim, init="reverse")
    if kind == "P4Inv, wide band":
        return P4InvLinear(dim, init="reverse", rule=MergeRule(logdet_band=(-1e3, 1e3)))
    if kind == "LULinear":
        from nflows.transforms.lu import LULinear

        return LULinear(dim, identity_init=True)
    return _Dense(dim)


def _matrix(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) of the map the layer computes now, float64."""
    if isinstance(layer, P4InvLinear):
        weight = layer.weight + torch.outer(layer.u.double(), layer.v.double())
    elif isinstance(layer, _Dense):
        weight = layer.weight.double()
    else:
        weight = layer.weight().double()
    return weight, layer.bias.double()


def gaussian_kl(weight: torch.Tensor, bias: torch.Tensor, covariance: torch.Tensor) -> float:
    """KL(N(0, S) ‖ law of x when W x + b ~ N(0, I)), the formula in the module docstring."""
    precision = weight.T @ weight
    mean = -torch.linalg.solve(weight, bias)
    dim = covariance.shape[0]
    product = precision @ covariance
    return 0.5 * float(torch.trace(product) + mean @ precision @ mean - dim - torch.logdet(product))


def fit(kind: str, dim: int, seed: int, steps: int, lr: float, batch: int = 256) -> dict:
    """Train one layer on N(0, S); the steps to each fraction of the initial KL (None: not reached)."""
    generator = torch.Generator().manual_seed(seed)
    factor = torch.eye(dim) + torch.randn(dim, dim, generator=generator) / math.sqrt(dim)
    covariance = (factor @ factor.T).double()
    torch.manual_seed(seed)
    layer = _layer(kind, dim)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    scheduler = P4InvScheduler(layer, optimizer, merge_every=10, refine_every=50) if isinstance(layer, P4InvLinear) else None
    with torch.no_grad():
        start = gaussian_kl(*_matrix(layer), covariance)
    reached: dict[float, int | None] = dict.fromkeys(FRACTIONS)
    kl = start
    for step in range(1, steps + 1):
        x = torch.randn(batch, dim, generator=generator) @ factor.T
        z, logdet = layer(x)
        loss = 0.5 * z.square().sum(-1).mean() - logdet.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if step % 10 == 0:
            with torch.no_grad():
                kl = gaussian_kl(*_matrix(layer), covariance)
            for fraction in FRACTIONS:
                if reached[fraction] is None and kl <= fraction * start:
                    reached[fraction] = step
    skipped = layer.num_skipped if isinstance(layer, P4InvLinear) else None
    return {"start": start, "final": kl, "reached": reached, "skipped": skipped}


def _steps(values: list[int | None], steps: int) -> str:
    """Mean over the seeds that reached the level, and how many did."""
    hits = [v for v in values if v is not None]
    if not hits:
        return f"> {steps} (0 / {len(values)})"
    mean = f"{statistics.mean(hits):.0f}"
    return mean if len(hits) == len(values) else f"{mean} ({len(hits)} / {len(values)}; the rest > {steps})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--quick", action="store_true", help="smoke run: d = 8, 1 seed, 50 steps")
    args = parser.parse_args()
    if args.quick:
        args.dims, args.seeds, args.steps = [8], 1, 50
    bad = {name: value for name, value in vars(args).items() if name in ("seeds", "steps", "threads") and value < 1}
    if bad or min(args.dims) < 1 or not args.lr > 0:
        parser.error(f"--dims, --seeds, --steps, --threads and --lr must be positive, got {vars(args)}")
    torch.set_num_threads(args.threads)
    lines = [
        "| d | layer | steps to KL ≤ ½ KL₀ | steps to KL ≤ ⅒ KL₀ | KL₀ | KL at the end | merges refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for dim in args.dims:
        for kind in args.layers:
            runs = [fit(kind, dim, seed, args.steps, args.lr) for seed in range(args.seeds)]
            columns = [_steps([r["reached"][f] for r in runs], args.steps) for f in FRACTIONS]
            skipped = " / ".join(str(r["skipped"]) for r in runs) if runs[0]["skipped"] is not None else ""
            line = (
                f"| {dim} | {kind} | {columns[0]} | {columns[1]} | {statistics.mean(r['start'] for r in runs):.2f} "
                f"| {statistics.mean(r['final'] for r in runs):.3f} | {skipped} |"
            )
            lines.append(line)
            print(line, flush=True)
    out = new_run_dir(args.out, "p4-linear-fit")
    command = shlex.join(["python", *sys.argv])
    (out / "results.md").write_text(
        f"`{command}` ({args.seeds} seeds, {args.steps} Adam steps at lr {args.lr}, batch 256; means over seeds)\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    main()
