"""P4OrthLinear against torch.nn.utils.parametrizations.orthogonal, side by side, one thread.

1. Training step (forward + backward + Adam step) of an orthogonal n × n layer on a batch of 256,
   n = 16, 64, 256: P4OrthLinear (rank 1 and 4; ``P4InvScheduler.step`` with merges every 10 steps
   included) vs ``orthogonal(nn.Linear(n, n), orthogonal_map=...)`` with "matrix_exp" and "cayley"
   (each forward recomputes the orthogonal matrix from its parameter: a matrix exponential or an
   n × n solve).
2. Orthogonality drift: max |WᵀW - I| of the matrix each layer applies after the training steps of
   (1), in float32 and float64 parameters (P4Orth's tracked Q is float64 in both).

    PYTHONPATH=. python benchmarks/bench_p4orth.py [--quick]
"""

from __future__ import annotations

import argparse

import torch
from _timing import compare
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from sdl.models import P4InvScheduler, P4OrthLinear

BATCH = 256


def _candidates(n: int, dtype: torch.dtype) -> dict:
    """name -> (module, matrix getter): each maps x ↦ W x (+ b)."""
    layers = {}
    for rank in (1, 4):
        layer = P4OrthLinear(n, rank=min(rank, n // 2), dtype=dtype)
        layers[f"P4OrthLinear r={rank}"] = (layer, lambda layer=layer: layer.effective_matrix())
    for kind in ("matrix_exp", "cayley"):
        linear = orthogonal(nn.Linear(n, n, dtype=dtype), orthogonal_map=kind)
        layers[f"orthogonal({kind})"] = (linear, lambda linear=linear: linear.weight.detach().double())
    return layers


def _trainer(module: nn.Module, n: int, dtype: torch.dtype, generator: torch.Generator):
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    scheduler = P4InvScheduler(module, optimizer, merge_every=10, refine_every=None) if isinstance(module, P4OrthLinear) else None
    x = torch.randn(BATCH, n, generator=generator, dtype=dtype)
    target = torch.randn(BATCH, n, generator=generator, dtype=dtype)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        (out - target).square().mean().backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes, repeats, drift_steps = ((16,), 5, 50) if args.quick else ((16, 64, 256), 30, 1000)
    print(f"# torch {torch.__version__}, 1 thread, batch {BATCH}")
    print("\n## Training step (forward + backward + Adam), float32, ms per step (median of interleaved repeats)\n")
    generator = torch.Generator().manual_seed(0)
    print("| n | " + " | ".join(_candidates(4, torch.float32)) + " | matrix_exp / P4Orth r=1 | cayley / P4Orth r=1 |")
    print("|---:|" + "---:|" * 6)
    for n in sizes:
        steps = {
            name: _trainer(module, n, torch.float32, generator) for name, (module, _) in _candidates(n, torch.float32).items()
        }
        medians = compare(steps, repeats)
        base = medians["P4OrthLinear r=1"]
        cells = [f"{1e3 * t:.3f}" for t in medians.values()]
        print(
            f"| {n} | " + " | ".join(cells) + f" | {medians['orthogonal(matrix_exp)'] / base:.2f} | "
            f"{medians['orthogonal(cayley)'] / base:.2f} |",
            flush=True,
        )
    print(f"\n## Orthogonality drift max |WᵀW - I| after {drift_steps} training steps\n")
    print("| n | dtype | " + " | ".join(_candidates(4, torch.float32)) + " |")
    print("|---:|---|" + "---:|" * 4)
    for n in sizes:
        for dtype in (torch.float32, torch.float64):
            cells = []
            for module, matrix in _candidates(n, dtype).values():
                step = _trainer(module, n, dtype, generator)
                for _ in range(drift_steps):
                    step()
                w = matrix().double()
                cells.append(f"{float((w.T @ w - torch.eye(n, dtype=torch.float64)).abs().max()):.1e}")
            print(f"| {n} | {str(dtype).removeprefix('torch.')} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
