"""Adjoint gradients: accuracy against autograd (DTO), peak memory, time per training step.

Three comparisons, sdl and torchdiffeq side by side in one run:

1. gradient error: each library's adjoint against its own autograd gradient (float64,
   f = tanh(Az + b), d = 8, 10 steps), per method;
2. peak memory: resident-set growth while one forward + backward runs, each configuration in
   its own process (N = 4096, d = 16, float32, K = 10, 100, 1000 steps);
3. time per training step (forward + backward + Adam), K = 100, N = 1024, d = 16, one thread.

    python benchmarks/bench_adjoint.py            # full run
    python benchmarks/bench_adjoint.py --quick    # smoke run (small K, few repeats)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torchdiffeq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, table  # noqa: E402

import sdl  # noqa: E402
from sdl.models import HamiltonianField, ResNetField  # noqa: E402


def _relative(reference, other) -> float:
    return max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(reference, other))


def gradient_errors(scale: float) -> list[str]:
    torch.manual_seed(0)
    field = ResNetField(8, "tanh", init_scale=scale).double()
    z0 = torch.randn(64, 8, dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    params = tuple(field.parameters())

    def grads(run):
        return torch.autograd.grad(run()[-1].square().sum(), params)

    rows = []
    for ours, theirs in (("euler", "euler"), ("midpoint", "midpoint"), ("rk4_38", "rk4"), ("rk4", None)):
        dto = grads(lambda: sdl.odeint(field, z0, t, method=ours))
        otd = grads(lambda: sdl.odeint(field, z0, t, method=ours, gradient="otd"))
        cont = grads(lambda: sdl.odeint(field, z0, t, method=ours, gradient="otd", adjoint_method=ours))
        peer = "n/a (no such fixed-grid method)"
        if theirs is not None:
            peer_dto = grads(lambda: torchdiffeq.odeint(field, z0, t, method=theirs))
            peer_adj = grads(lambda: torchdiffeq.odeint_adjoint(field, z0, t, method=theirs))
            peer = f"{_relative(peer_dto, peer_adj):.1e}"
        rows.append(f"| {ours} | {scale} | {_relative(dto, otd):.1e} | {_relative(dto, cont):.1e} | {peer} |")
    return rows


def reversal_errors(steps: int) -> list[str]:
    """Gradient error of backward-stepping recovery (leapfrog) against autograd, K steps, T = 1."""
    rows = []
    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(0)
        field = HamiltonianField(16, "tanh").to(dtype)
        q0 = torch.randn(256, 16, dtype=dtype)
        t = torch.linspace(0, 1, steps + 1, dtype=dtype)
        params = tuple(field.parameters())

        def grads(**kwargs):
            q, _ = sdl.odeint(field, (q0, torch.zeros_like(q0)), t, method="leapfrog", output="last", **kwargs)
            return torch.autograd.grad(q.square().sum(), params)

        error = _relative(grads(), grads(gradient="otd", recovery="reverse"))
        rows.append(f"| {str(dtype).removeprefix('torch.')} | {steps} | {error:.1e} |")
    return rows


def _memory_child(config: dict) -> None:
    """Run one forward + backward; print the peak RSS growth in MB (Linux /proc)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps, method, gradient = config["steps"], config["method"], config["gradient"]
    hamiltonian = method in ("leapfrog", "verlet")
    field = HamiltonianField(16, "tanh") if hamiltonian else ResNetField(16, "tanh")
    z0 = 0.1 * torch.randn(4096, 16)
    y0 = (z0, torch.zeros_like(z0)) if hamiltonian else z0
    t = torch.linspace(0, 1, steps + 1)
    if gradient.startswith("torchdiffeq"):
        adjoint = gradient == "torchdiffeq-adjoint"
        solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        ends = torch.tensor([0.0, 1.0])  # output at the end only, K fixed steps inside, like output="last"

        def run():
            return solve(field, y0, ends, method="rk4", options={"step_size": 1.0 / steps})[-1]
    else:
        options = dict(config.get("options", {}))

        def run():
            out = sdl.odeint(field, y0, t, method=method, gradient=gradient, output="last", **options)
            return out[0] if hamiltonian else out

    # No warm-up run: freed memory stays in the allocator's pools and would hide the growth.
    baseline = _rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    run().square().sum().backward()
    print(json.dumps({"peak_growth_mb": _peak_mb() - baseline}))


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


def _peak_mb() -> float:
    return _status_mb("VmHWM:")


def memory_rows(step_counts: list[int]) -> list[str]:
    configs = {
        "sdl dto (autograd)": dict(method="rk4", gradient="dto"),
        "sdl otd, store": dict(method="rk4", gradient="otd"),
        "sdl otd, checkpoint m=10": dict(method="rk4", gradient="otd", options={"recovery": "checkpoint", "checkpoint_every": 10}),
        "sdl otd, reverse (leapfrog)": dict(method="leapfrog", gradient="otd", options={"recovery": "reverse"}),
        "torchdiffeq odeint (autograd)": dict(method="rk4", gradient="torchdiffeq"),
        "torchdiffeq odeint_adjoint": dict(method="rk4", gradient="torchdiffeq-adjoint"),
    }
    rows = []
    for name, config in configs.items():
        cells = []
        for steps in step_counts:
            child = subprocess.run(
                [sys.executable, __file__, "--memory-child", json.dumps({**config, "steps": steps})],
                capture_output=True,
                text=True,
                check=True,
            )
            cells.append(f"{json.loads(child.stdout.strip().splitlines()[-1])['peak_growth_mb']:.0f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def training_step_times(steps: int, repeats: int) -> str:
    torch.manual_seed(0)
    field = ResNetField(16, "tanh")
    z0 = 0.1 * torch.randn(1024, 16)
    t = torch.linspace(0, 1, steps + 1)
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)

    def train_step(run):
        def step():
            optimizer.zero_grad(set_to_none=True)
            run()[-1].square().mean().backward()
            optimizer.step()

        return step

    candidates = {
        "sdl dto": train_step(lambda: sdl.odeint(field, z0, t, method="rk4")),
        "sdl otd (store)": train_step(lambda: sdl.odeint(field, z0, t, method="rk4", gradient="otd")),
        "sdl otd (checkpoint m=10)": train_step(
            lambda: sdl.odeint(field, z0, t, method="rk4", gradient="otd", recovery="checkpoint")
        ),
        "torchdiffeq odeint": train_step(lambda: torchdiffeq.odeint(field, z0, t, method="rk4")),
        "torchdiffeq odeint_adjoint": train_step(lambda: torchdiffeq.odeint_adjoint(field, z0, t, method="rk4")),
    }
    return table(compare(candidates, repeats=repeats), baseline="sdl dto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small K and few repeats, for CI")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(json.loads(args.memory_child))
        return
    torch.set_num_threads(1)

    print("## Gradient error: adjoint vs the same library's autograd (float64, d = 8, 10 steps, relative max)\n")
    print("| method | weight scale | sdl otd (partner) | sdl otd (continuous, same method) | torchdiffeq odeint_adjoint |")
    print("|---|---:|---:|---:|---:|")
    for scale in (1.0, 3.0):
        print("\n".join(gradient_errors(scale)))

    reversal_steps = 30 if args.quick else 1000
    print("\n## Backward-stepping recovery (leapfrog, Hamiltonian field d = 16, N = 256): gradient error vs autograd\n")
    print("| dtype | K | relative max error |")
    print("|---|---:|---:|")
    print("\n".join(reversal_errors(reversal_steps)))

    step_counts = [10, 30] if args.quick else [10, 100, 1000]
    print(f"\n## Peak memory growth during forward + backward (MB; N = 4096, d = 16, float32; K = {step_counts})\n")
    print("| configuration | " + " | ".join(f"K = {k}" for k in step_counts) + " |")
    print("|---|" + "---:|" * len(step_counts))
    print("\n".join(memory_rows(step_counts)))

    steps = 20 if args.quick else 100
    print(f"\n## Time per training step (forward + backward + Adam; K = {steps}, N = 1024, d = 16, float32, 1 thread)\n")
    print(training_step_times(steps, repeats=3 if args.quick else 15))


if __name__ == "__main__":
    main()
