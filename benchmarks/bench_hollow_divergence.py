"""Cost of the divergence div f = tr(∂f/∂x) of one field, batch 512, d = 2 … 128, in one run.

Same HollowNet, same inputs, four ways:
  hollow     exact, one backward pass through τ only (sdl.models.hollow.divergence);
  brute      exact, d backward passes through the whole net (a loop of vector-Jacobian products);
  vmap       exact, the d passes batched into one (autograd.grad with is_grads_batched, i.e. vmap):
             memory grows d-fold, so it runs for "eval" with d ≤ 64 only;
  hutch      Hutchinson's estimate εᵀ(∂f/∂x)ε, one Rademacher probe, one backward pass.
Each is timed for value + divergence ("eval") and for a training step: value + divergence with
create_graph, then backward of a loss to the parameters ("train"). Also printed: the largest
difference hollow − brute (float32) and Hutchinson's relative standard deviation over 64 probes,
mean_b std_ε(estimate_b) / mean_b |div_b|; hollow's is 0 by construction.

    PYTHONPATH=. python benchmarks/bench_hollow_divergence.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from sdl.models.hollow import HollowNet, divergence

BATCH = 512


def _hollow(net, t, x, create_graph):
    return divergence(net, t, x, create_graph=create_graph)


def _brute(net, t, x, create_graph):
    x = x.detach().requires_grad_(True)
    value = net(t, x)
    div = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        (row,) = torch.autograd.grad(value[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        div = div + row[:, i]
    return value, div


def _vmap(net, t, x, create_graph):
    x = x.detach().requires_grad_(True)
    value = net(t, x)
    basis = torch.eye(x.shape[1], dtype=x.dtype).unsqueeze(1).expand(-1, x.shape[0], -1)  # (d, B, d)
    (rows,) = torch.autograd.grad(
        value, x, grad_outputs=basis, is_grads_batched=True, create_graph=create_graph, retain_graph=True
    )  # (d, B, d): rows[i, b] = e_iᵀ ∂f(x_b)/∂x
    return value, rows.diagonal(dim1=0, dim2=2).sum(-1)


def _hutch(net, t, x, create_graph, noise=None):
    x = x.detach().requires_grad_(True)
    value = net(t, x)
    noise = torch.randint_like(x, 2).mul_(2).sub_(1) if noise is None else noise
    (vjp,) = torch.autograd.grad(value, x, grad_outputs=noise, create_graph=create_graph, retain_graph=True)
    return value, (vjp * noise).sum(-1)


METHODS = {"hollow": _hollow, "brute": _brute, "vmap": _vmap, "hutch": _hutch}
VMAP_MAX_DIM = 64


def _best_time(fn, max_repeats: int, budget_s: float) -> float:
    """Smallest wall time of up to ``max_repeats`` runs (at least 3, more while within ``budget_s``).

    The minimum, not the mean: on a shared machine the noise only ever adds time.
    """
    fn()
    times: list[float] = []
    while len(times) < 3 or (len(times) < max_repeats and sum(times) < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _eval(method, net, t, x):
    return lambda: method(net, t, x, False)


def _train(method, net, t, x):
    def step():
        value, div = method(net, t, x, True)
        (value.pow(2).mean() - div.mean()).backward()
        net.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 2, 8 and few repeats: a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dims = (2, 8) if args.quick else (2, 8, 32, 64, 128)
    max_repeats, budget_s = (3, 0.5) if args.quick else (15, 3.0)

    print(
        f"torch {torch.__version__}, 1 thread, float32, batch {BATCH}, HollowNet(hidden=32, transformer_hidden=32); "
        f"best of up to {max_repeats} runs"
    )
    header = (
        f"{'d':>4} {'mode':>5} | {'hollow ms':>9} {'brute ms':>9} {'vmap ms':>9} {'hutch ms':>9} | "
        f"{'brute/hollow':>12} {'vmap/hollow':>11} {'hollow/hutch':>12}"
    )
    print(header)
    print("-" * len(header))
    accuracy = []
    for d in dims:
        net = HollowNet(d, hidden=32, transformer_hidden=32, time_dependent=True)
        x = torch.randn(BATCH, d)
        t = torch.tensor(0.5)
        for mode, make in (("eval", _eval), ("train", _train)):
            ms = {
                name: 1e3 * _best_time(make(method, net, t, x), max_repeats, budget_s)
                for name, method in METHODS.items()
                if name != "vmap" or (mode == "eval" and d <= VMAP_MAX_DIM)
            }
            vmap_ms, vmap_ratio = f"{'-':>9}", f"{'-':>11}"
            if "vmap" in ms:
                vmap_ms, vmap_ratio = f"{ms['vmap']:9.3f}", f"{ms['vmap'] / ms['hollow']:11.1f}"
            print(
                f"{d:>4} {mode:>5} | {ms['hollow']:9.3f} {ms['brute']:9.3f} {vmap_ms} {ms['hutch']:9.3f} | "
                f"{ms['brute'] / ms['hollow']:12.1f} {vmap_ratio} {ms['hollow'] / ms['hutch']:12.2f}"
            )
        _, exact = _brute(net, t, x, False)
        _, hollow = _hollow(net, t, x, False)
        probes = torch.stack([_hutch(net, t, x, False)[1] for _ in range(64)])  # (64, B)
        relative_std = (probes.std(0).mean() / exact.abs().mean()).item()
        accuracy.append((d, (hollow - exact).abs().max().item(), exact.abs().mean().item(), relative_std))

    print()
    print(f"{'d':>4} | {'max|hollow - brute|':>18} {'mean|div|':>10} | {'hutch rel. std (1 probe)':>24} {'hollow':>6}")
    for d, error, scale, relative_std in accuracy:
        print(f"{d:>4} | {error:18.2e} {scale:10.3f} | {relative_std:24.2f} {0:6d}")


if __name__ == "__main__":
    main()
