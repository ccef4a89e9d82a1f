"""Adjoint gradients: accuracy against autograd (DTO), peak memory, time per training step, scaling.

sdl and torchdiffeq side by side in one run (torchode has no adjoint: its ``AutoDiffAdjoint`` is
autograd through the solver, so it appears in bench_rk4_steps.py only):

1. gradient error: each library's adjoint against its own autograd gradient (float64,
   f = tanh(Az + b), d = 8, 10 steps), per method;
2. backward-stepping recovery: its gradient error at K steps (leapfrog);
3. peak memory: resident-set growth while one forward + backward runs, each configuration in
   its own process (N = 4096, d = 16, float32, K = 10, 100, 1000 steps);
4. the targets of issue 18 at N = 4096, d = 16, K = 1000: time per training step (forward +
   backward + Adam), interleaved in one process, beside the memory of 3.;
5. store recovery against its floor: time per training step at K = 100, N = 1024, with the
   adjoint record of before issue 18 (one autograd call per stage) as a candidate;
6. binomial checkpointing against its snapshot budget c at N = 4096, d = 16, K = 1000: memory
   and time per training step, each c in its own process; plot in benchmarks/plots/;
7. scaling in K, batch N and width d (log-log plots, fitted exponents), each point in its own
   process.

    python benchmarks/bench_adjoint.py                         # everything (about an hour on one core)
    python benchmarks/bench_adjoint.py --sections budget,scaling
    python benchmarks/bench_adjoint.py --quick                 # smoke run (small sizes, plots into ./plots)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchdiffeq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, table

import sdl
from sdl._binomial import advances, first_sweep
from sdl.integrators import ExplicitRungeKutta, get
from sdl.integrators.base import vjp
from sdl.models import HamiltonianField, ResNetField

SECTIONS = ("gradient", "reversal", "memory", "targets", "floor", "profile", "budget", "scaling")
PLOTS = Path(__file__).resolve().parent / "plots"


def _relative(reference, other) -> float:
    return max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(reference, other, strict=True))


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
        dto = grads(lambda ours=ours: sdl.odeint(field, z0, t, method=ours))
        otd = grads(lambda ours=ours: sdl.odeint(field, z0, t, method=ours, gradient="otd"))
        binomial = grads(
            lambda ours=ours: sdl.odeint(field, z0, t, method=ours, gradient="otd", recovery="binomial", snapshots=3)
        )
        cont = grads(lambda ours=ours: sdl.odeint(field, z0, t, method=ours, gradient="otd", adjoint_method=ours))
        peer = "n/a (no such fixed-grid method)"
        if theirs is not None:
            peer_dto = grads(lambda theirs=theirs: torchdiffeq.odeint(field, z0, t, method=theirs))
            peer_adj = grads(lambda theirs=theirs: torchdiffeq.odeint_adjoint(field, z0, t, method=theirs))
            peer = f"{_relative(peer_dto, peer_adj):.1e}"
        rows.append(
            f"| {ours} | {scale} | {_relative(dto, otd):.1e} | {_relative(dto, binomial):.1e} | {_relative(dto, cont):.1e} | "
            f"{peer} |"
        )
    return rows


def reversal_errors(steps: int) -> list[str]:
    """Gradient error of backward-stepping recovery (leapfrog) against autograd, K steps, T = 1."""
    rows = []
    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(0)
        field = HamiltonianField(16, "tanh").to(dtype)
        q0 = torch.randn(256, 16, dtype=dtype)
        t = torch.linspace(0, 1, steps + 1, dtype=dtype)
        error = _relative(_leapfrog_grads(field, q0, t), _leapfrog_grads(field, q0, t, gradient="otd", recovery="reverse"))
        rows.append(f"| {str(dtype).removeprefix('torch.')} | {steps} | {error:.1e} |")
    return rows


def _leapfrog_grads(field, q0, t, **kwargs):
    q, _ = sdl.odeint(field, (q0, torch.zeros_like(q0)), t, method="leapfrog", output="last", **kwargs)
    return torch.autograd.grad(q.square().sum(), tuple(field.parameters()))


class _PerStagePullbacks(ExplicitRungeKutta):
    """The explicit adjoint record of before issue 18, for the floor comparison only: each stage
    recomputed on a fresh leaf with its own small graph, pulled back by one autograd call per stage
    in the reverse stage form. Same gradient as sdl's record (one call per step)."""

    def adjoint_record(self, func, t, h, y):
        a, b, inputs, outputs, k = self.tableau.a, self.tableau.b, [], [], []
        with torch.enable_grad():
            for i, c_i in enumerate(self.tableau.c):
                y_i = y
                for j in range(i):
                    if a[i][j]:
                        y_i = torch.add(y_i, k[j], alpha=h * a[i][j])
                inputs.append(y_i.detach().requires_grad_())
                outputs.append(func(t + c_i * h, inputs[-1]))
                k.append(outputs[-1].detach())
        y_next = y
        for b_i, k_i in zip(b, k, strict=True):
            y_next = torch.add(y_next, k_i, alpha=h * b_i)

        def pullback(adjoint, params):
            stage_adjoints, totals, lam = [None] * len(b), [torch.zeros_like(p) for p in params], adjoint
            for i in reversed(range(len(b))):
                k_bar = adjoint * (h * b[i])
                for j in range(i + 1, len(b)):
                    if a[j][i]:
                        k_bar = torch.add(k_bar, stage_adjoints[j], alpha=h * a[j][i])
                stage_adjoints[i], *theta_bar = vjp(outputs[i], (inputs[i], *params), k_bar)
                totals = [total + g for total, g in zip(totals, theta_bar, strict=True)]
                lam = lam + stage_adjoints[i]
            return lam, tuple(totals)

        return y_next, pullback


# ---------------------------------------------------------------- one configuration in its own process


def _setup(config: dict):
    """(field, y0, run): run() integrates with the configured library and gradient and returns z(T)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps, method, gradient = config["steps"], config["method"], config["gradient"]
    batch, dim = config.get("batch", 4096), config.get("dim", 16)
    hamiltonian = method in ("leapfrog", "verlet")
    field = HamiltonianField(dim, "tanh") if hamiltonian else ResNetField(dim, "tanh")
    z0 = 0.1 * torch.randn(batch, dim)
    y0 = (z0, torch.zeros_like(z0)) if hamiltonian else z0
    t = torch.linspace(0, 1, steps + 1)
    if gradient.startswith("torchdiffeq"):
        solve = torchdiffeq.odeint_adjoint if gradient == "torchdiffeq-adjoint" else torchdiffeq.odeint
        ends = torch.tensor([0.0, 1.0])  # output at the end only, K fixed steps inside, like output="last"

        def run():
            return solve(field, y0, ends, method="rk4", options={"step_size": 1.0 / steps})[-1]
    else:
        options = dict(config.get("options", {}))

        def run():
            out = sdl.odeint(field, y0, t, method=method, gradient=gradient, output="last", **options)
            return out[0] if hamiltonian else out

    return field, run


def _child(config: dict) -> None:
    """Peak RSS growth (MB, Linux /proc) of one forward + backward, then the median time of
    ``repeats`` training steps (forward + backward + Adam); printed as JSON."""
    field, run = _setup(config)
    # No warm-up run: freed memory stays in the allocator's pools and would hide the growth.
    baseline = _status_mb("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    run().square().sum().backward()
    peak = _status_mb("VmHWM:") - baseline
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)
    times = []
    for _ in range(config.get("repeats", 0)):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        run().square().mean().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"peak_growth_mb": peak, "seconds": float(np.median(times)) if times else None}))


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _measure(config: dict) -> dict:
    child = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def _measure_rounds(configs: dict[str, dict], rounds: int) -> dict[str, dict]:
    """Each configuration in its own process (its allocator alone: a 3.7 GB autograd graph freed
    and refilled between candidates costs page faults that a fresh process does not pay), the
    processes interleaved ``rounds`` times so that load on the machine hits every candidate alike:
    peak memory of the first round, median time over the rounds' medians."""
    samples: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, config in configs.items():
            samples[name].append(_measure(config))
    return {
        name: {"peak_growth_mb": runs[0]["peak_growth_mb"], "seconds": float(np.median([r["seconds"] for r in runs]))}
        for name, runs in samples.items()
    }


MEMORY_CONFIGS = {
    "sdl dto (autograd)": dict(method="rk4", gradient="dto"),
    "sdl otd, store": dict(method="rk4", gradient="otd"),
    "sdl otd, checkpoint m=10": dict(method="rk4", gradient="otd", options={"recovery": "checkpoint", "checkpoint_every": 10}),
    "sdl otd, binomial c=8": dict(method="rk4", gradient="otd", options={"recovery": "binomial", "snapshots": 8}),
    "sdl otd, binomial c=32": dict(method="rk4", gradient="otd", options={"recovery": "binomial", "snapshots": 32}),
    "sdl otd, reverse (leapfrog)": dict(method="leapfrog", gradient="otd", options={"recovery": "reverse"}),
    "torchdiffeq odeint (autograd)": dict(method="rk4", gradient="torchdiffeq"),
    "torchdiffeq odeint_adjoint": dict(method="rk4", gradient="torchdiffeq-adjoint"),
}


# --quick (the CI smoke run) starts one process per row: these three cover every kind of child
QUICK_PROCESSES = ["sdl dto (autograd)", "sdl otd, binomial c=32", "torchdiffeq odeint_adjoint"]


def memory_table(step_counts: list[int], batch: int, names: list[str]) -> str:
    rows = []
    for name in names:
        config = MEMORY_CONFIGS[name]
        peaks = [_measure({**config, "steps": steps, "batch": batch})["peak_growth_mb"] for steps in step_counts]
        rows.append(f"| {name} | " + " | ".join(f"{peak:.0f}" for peak in peaks) + " |")
    head = "| configuration | " + " | ".join(f"K = {k}" for k in step_counts) + " |\n|---|" + "---:|" * len(step_counts)
    return head + "\n" + "\n".join(rows)


# ---------------------------------------------------------------- training steps, interleaved in one process


def training_step_times(steps: int, batch: int, repeats: int, candidates: dict[str, dict], warmup: int) -> dict[str, float]:
    return compare(_training_steps(steps, batch, candidates), repeats=repeats, warmup=warmup)


def _training_steps(steps: int, batch: int, candidates: dict[str, dict]) -> dict:
    """One training step (forward + backward + Adam) per candidate, on one shared field and batch."""
    torch.manual_seed(0)
    field = ResNetField(16, "tanh")
    z0 = 0.1 * torch.randn(batch, 16)
    t = torch.linspace(0, 1, steps + 1)
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)

    def train_step(options: dict):
        if options.get("gradient", "").startswith("torchdiffeq"):
            solve = torchdiffeq.odeint_adjoint if options["gradient"] == "torchdiffeq-adjoint" else torchdiffeq.odeint

            def run():
                return solve(field, z0, t, method="rk4")
        else:

            def run():
                return sdl.odeint(field, z0, t, **{"method": "rk4", **options})

        def step():
            optimizer.zero_grad(set_to_none=True)
            run()[-1].square().mean().backward()
            optimizer.step()

        return step

    return {name: train_step(options) for name, options in candidates.items()}


TARGET_CANDIDATES = {
    "sdl dto": {},
    "sdl otd (store)": {"gradient": "otd"},
    "sdl otd (binomial c=32)": {"gradient": "otd", "recovery": "binomial", "snapshots": 32},
    "sdl otd (binomial c=8)": {"gradient": "otd", "recovery": "binomial", "snapshots": 8},
    "torchdiffeq odeint_adjoint": {"gradient": "torchdiffeq-adjoint"},
}
TARGET_PROCESSES = [
    "sdl dto (autograd)",
    "sdl otd, store",
    "sdl otd, binomial c=8",
    "sdl otd, binomial c=32",
    "torchdiffeq odeint_adjoint",
]
FLOOR_CANDIDATES = {
    "sdl dto": {},
    "sdl otd (store)": {"gradient": "otd"},
    "sdl otd (store), record before issue 18": {"gradient": "otd", "method": _PerStagePullbacks(get("rk4").tableau)},
    "sdl otd (checkpoint m=10)": {"gradient": "otd", "recovery": "checkpoint"},
    "sdl otd (binomial c=32)": {"gradient": "otd", "recovery": "binomial", "snapshots": 32},
    "torchdiffeq odeint": {"gradient": "torchdiffeq"},
    "torchdiffeq odeint_adjoint": {"gradient": "torchdiffeq-adjoint"},
}


def profile_table(steps: int, batch: int, repeats: int) -> str:
    """Where a training step's time goes (cProfile, ``repeats`` steps after 2 warm-up steps): the
    autograd engine's calls and time, the field's operations (linear, tanh), the state updates
    (torch.add), and the Python code around them."""
    import cProfile
    import pstats

    rows = [
        "| candidate | total (ms/step) | engine calls/step | engine (ms/step) | field linear + tanh (ms/step) | "
        "torch.add (ms/step) | rest: Python and other ops (ms/step) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("sdl dto", "sdl otd (store)", "sdl otd (store), record before issue 18"):
        step = _training_steps(steps, batch, {name: FLOOR_CANDIDATES[name]})[name]
        for _ in range(2):
            step()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeats):
            step()
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # (file, line, name) -> (primitive calls, calls, own time, cumulative, callers)
        total = sum(entry[2] for entry in stats.values())

        def own(fragment: str, stats=stats) -> tuple[int, float]:
            found = [entry for key, entry in stats.items() if fragment in key[2]]
            return sum(e[1] for e in found), sum(e[2] for e in found)

        engine_calls, engine = own("method 'run_backward'")
        field = own("torch._C._nn.linear")[1] + own("torch.tanh")[1]
        add = own("torch.add")[1]
        per = 1e3 / repeats
        rows.append(
            f"| {name} | {total * per:.1f} | {engine_calls / repeats:.0f} | {engine * per:.1f} | {field * per:.1f} | "
            f"{add * per:.1f} | {(total - engine - field - add) * per:.1f} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------- budget curve and scaling, one process per point


def budget_curve(steps: int, batch: int, budgets: list[int], repeats: int, rounds: int, plots: Path) -> str:
    base = {"method": "rk4", "steps": steps, "batch": batch, "repeats": repeats}
    configs = {"dto": {**base, "gradient": "dto"}, "peer": {**base, "gradient": "torchdiffeq-adjoint"}}
    configs.update({c: {**base, "gradient": "otd", "options": {"recovery": "binomial", "snapshots": c}} for c in budgets})
    measured = _measure_rounds(configs, rounds)
    dto, peer = measured["dto"], measured["peer"]
    rows = [
        "| snapshots c | recomputed steps | peak memory (MB) | time per step (s) | memory / torchdiffeq adjoint | "
        "time / sdl dto |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    points = []
    for c in budgets:
        result = measured[c]
        recomputed = advances(steps, c) - first_sweep(steps, c)[-1]
        points.append((c, result["peak_growth_mb"], result["seconds"]))
        rows.append(
            f"| {c} | {recomputed} | {result['peak_growth_mb']:.0f} | {result['seconds']:.2f} | "
            f"{result['peak_growth_mb'] / peer['peak_growth_mb']:.2f} | {result['seconds'] / dto['seconds']:.2f} |"
        )
    rows.append(
        f"| sdl dto | | {dto['peak_growth_mb']:.0f} | {dto['seconds']:.2f} | "
        f"{dto['peak_growth_mb'] / peer['peak_growth_mb']:.2f} | 1.00 |"
    )
    rows.append(
        f"| torchdiffeq odeint_adjoint | | {peer['peak_growth_mb']:.0f} | {peer['seconds']:.2f} | 1.00 | "
        f"{peer['seconds'] / dto['seconds']:.2f} |"
    )
    _plot_budget(points, dto, peer, steps, batch, plots / "adjoint_budget.png")
    return "\n".join(rows)


def _plot_budget(points, dto, peer, steps, batch, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets, memory, seconds = zip(*points, strict=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(budgets, memory, "o-", label="sdl otd, binomial")
    left.axhline(peer["peak_growth_mb"], color="C1", ls="--", label="torchdiffeq odeint_adjoint")
    left.axhline(dto["peak_growth_mb"], color="C2", ls=":", label="sdl dto (autograd)")
    left.set(xscale="log", yscale="log", xlabel="snapshots c", ylabel="peak memory growth (MB)")
    right.plot(budgets, [s / dto["seconds"] for s in seconds], "o-", label="sdl otd, binomial")
    right.axhline(peer["seconds"] / dto["seconds"], color="C1", ls="--", label="torchdiffeq odeint_adjoint")
    right.axhline(1.0, color="C2", ls=":", label="sdl dto")
    right.set(xscale="log", xlabel="snapshots c", ylabel="time per training step / sdl dto")
    for axis in (left, right):
        _label_ticks(axis, budgets)
    left.legend(fontsize=7)
    fig.suptitle(f"binomial checkpointing: K = {steps}, N = {batch}, d = 16, float32, 1 thread", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


SCALING_CANDIDATES = {
    "sdl dto": {"method": "rk4", "gradient": "dto"},
    "sdl otd store": {"method": "rk4", "gradient": "otd"},
    "sdl otd binomial c=32": {"method": "rk4", "gradient": "otd", "options": {"recovery": "binomial", "snapshots": 32}},
    "torchdiffeq odeint_adjoint": {"method": "rk4", "gradient": "torchdiffeq-adjoint"},
}


def scaling(axes: dict[str, tuple[str, list[int]]], base: dict, candidates: list[str], plots: Path) -> str:
    """For each axis (K, N, d) and candidate: memory and time at every value, and the exponents p of
    the least-squares fit log y = p log x + c."""
    rows = [
        "| axis | values | candidate | memory (MB) | time (s) | memory exponent | time exponent |",
        "|---|---|---|---|---|---:|---:|",
    ]
    results = {}
    for axis, (key, values) in axes.items():
        for name in candidates:
            candidate = SCALING_CANDIDATES[name]
            measured = [_measure({**base, **candidate, key: value}) for value in values]
            memory = [m["peak_growth_mb"] for m in measured]
            seconds = [m["seconds"] for m in measured]
            results[axis, name] = (values, memory, seconds)
            fits = [np.polyfit(np.log(values), np.log(np.maximum(y, 1e-9)), 1)[0] for y in (memory, seconds)]
            rows.append(
                f"| {axis} | {', '.join(map(str, values))} | {name} | {', '.join(f'{m:.0f}' for m in memory)} | "
                f"{', '.join(f'{s:.3f}' for s in seconds)} | {fits[0]:.2f} | {fits[1]:.2f} |"
            )
    _plot_scaling(results, axes, candidates, plots / "adjoint_scaling.png")
    return "\n".join(rows)


def _label_ticks(axis, values) -> None:
    """Ticks at the measured values only (log axes otherwise crowd their minor labels)."""
    from matplotlib.ticker import NullLocator

    axis.set_xticks(list(values), [str(v) for v in values])
    axis.xaxis.set_minor_locator(NullLocator())


def _plot_scaling(results, axes, candidates, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, len(axes), figsize=(4 * len(axes), 6.5), squeeze=False)
    for column, axis in enumerate(axes):
        for name in candidates:
            values, memory, seconds = results[axis, name]
            grid[0, column].plot(values, memory, "o-", label=name)
            grid[1, column].plot(values, seconds, "o-", label=name)
        grid[0, column].set(xscale="log", yscale="log", title=f"against {axis}", ylabel="peak memory growth (MB)")
        grid[1, column].set(xscale="log", yscale="log", xlabel=axis, ylabel="time per training step (s)")
        for row in (0, 1):
            _label_ticks(grid[row, column], values)
    grid[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats, for CI; plots into ./plots")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    torch.set_num_threads(1)
    quick = args.quick
    plots = Path("plots") if quick else PLOTS
    big_n, big_k = (256, 30) if quick else (4096, 1000)

    if "gradient" in sections:
        print("## Gradient error: adjoint vs the same library's autograd (float64, d = 8, 10 steps, relative max)\n")
        print(
            "| method | weight scale | sdl otd (partner, store) | sdl otd (partner, binomial c=3) | "
            "sdl otd (continuous, same method) | torchdiffeq odeint_adjoint |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for scale in (1.0, 3.0):
            print("\n".join(gradient_errors(scale)))

    if "reversal" in sections:
        reversal_steps = 30 if quick else 1000
        print("\n## Backward-stepping recovery (leapfrog, Hamiltonian field d = 16, N = 256): gradient error vs autograd\n")
        print("| dtype | K | relative max error |")
        print("|---|---:|---:|")
        print("\n".join(reversal_errors(reversal_steps)))

    if "memory" in sections:
        step_counts = [big_k] if quick else [10, 100, 1000]
        print(f"\n## Peak memory growth during forward + backward (MB; N = {big_n}, d = 16, float32; K = {step_counts})\n")
        print(memory_table(step_counts, big_n, QUICK_PROCESSES if quick else list(MEMORY_CONFIGS)))

    if "targets" in sections:
        rounds = 1 if quick else 3
        print(
            f"\n## Targets at N = {big_n}, d = 16, K = {big_k}: time per training step (forward + backward + Adam, float32, "
            f"1 thread), in-process interleaved, and one process per candidate ({rounds} interleaved rounds of 2 steps)\n"
        )
        medians = training_step_times(big_k, big_n, repeats=2 if quick else 5, candidates=TARGET_CANDIDATES, warmup=1)
        print(table(medians, baseline="sdl dto"))
        names = QUICK_PROCESSES if quick else TARGET_PROCESSES
        configs = {name: {**MEMORY_CONFIGS[name], "steps": big_k, "batch": big_n, "repeats": 2} for name in names}
        separate = _measure_rounds(configs, rounds)
        print("\n| candidate (own process) | peak memory (MB) | median (s) | memory / torchdiffeq adjoint | time / sdl dto |")
        print("|---|---:|---:|---:|---:|")
        dto, peer = separate["sdl dto (autograd)"], separate["torchdiffeq odeint_adjoint"]
        for name, result in separate.items():
            print(
                f"| {name} | {result['peak_growth_mb']:.0f} | {result['seconds']:.2f} | "
                f"{result['peak_growth_mb'] / peer['peak_growth_mb']:.2f} | {result['seconds'] / dto['seconds']:.2f} |"
            )

    if "floor" in sections:
        steps, batch = (20, 256) if quick else (100, 1024)
        print(
            f"\n## Store recovery against its floor: time per training step (K = {steps}, N = {batch}, "
            "d = 16, float32, 1 thread)\n"
        )
        medians = training_step_times(steps, batch, repeats=3 if quick else 15, candidates=FLOOR_CANDIDATES, warmup=3)
        print(table(medians, baseline="sdl dto"))

    if "profile" in sections:
        steps, batch = (20, 256) if quick else (100, 1024)
        print(f"\n## Where a training step's time goes (cProfile; K = {steps}, N = {batch}, d = 16, float32, 1 thread)\n")
        print(profile_table(steps, batch, repeats=2 if quick else 10))

    if "budget" in sections:
        budgets = [4] if quick else [2, 4, 8, 16, 32, 64, 128, 1000]
        print(
            f"\n## Binomial checkpointing against its budget (K = {big_k}, N = {big_n}, d = 16, float32, 1 thread; "
            "one process per row)\n"
        )
        print(budget_curve(big_k, big_n, budgets, repeats=1, rounds=1 if quick else 2, plots=plots))

    if "scaling" in sections:
        axes = (
            {"K": ("steps", [10, 20])}
            if quick
            else {"K": ("steps", [125, 250, 500, 1000]), "N": ("batch", [512, 1024, 2048, 4096]), "d": ("dim", [8, 16, 32, 64])}
        )
        base = {"steps": 10 if quick else 250, "batch": 64 if quick else 4096, "dim": 16, "repeats": 1 if quick else 3}
        candidates = ["sdl dto", "sdl otd binomial c=32"] if quick else list(SCALING_CANDIDATES)
        print(
            f"\n## Scaling (base K = {base['steps']}, N = {base['batch']}, d = 16; one axis varied at a time; "
            "one process per point)\n"
        )
        print(scaling(axes, base, candidates, plots))


if __name__ == "__main__":
    main()
