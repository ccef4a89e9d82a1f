"""An 8-run sweep on the local process pool vs on a private Ray instance (2 workers each), and
Ray's start-up time.

Ray probes addresses off the machine when it starts, so this script re-runs itself inside a
network namespace of its own (``unshare -n``, as root; only loopback is up there). The two
backends alternate, so that machine noise hits both alike. The Ray sweep's time includes starting
and stopping its private instance, as ``sdl sweep --backend ray`` does.

    python benchmarks/bench_sweep_ray.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IN_NAMESPACE = "SDL_BENCH_IN_NAMESPACE"


def _config(iterations: int) -> dict:
    return {
        "name": "bench",
        "data": {"name": "spiral2d", "n": 200, "seed": 0},
        "model": {"field": "resnet", "width": 4, "steps": 10, "t_final": 1.0},
        "integrator": "rk4",
        "train": {"iterations": iterations, "lr": 0.05, "log_every": iterations // 2},
        "plots": [],
    }


def _sweep(backend, iterations: int) -> float:
    from sdl.sweep import Job, run_sweep

    with tempfile.TemporaryDirectory() as out:
        jobs = [
            Job({**_config(iterations), "model": {**_config(iterations)["model"], "seed": seed}}, out, f"seed={seed}")
            for seed in range(8)
        ]
        start = time.perf_counter()
        outcomes = run_sweep(out, jobs, backend)
        seconds = time.perf_counter() - start
        assert all(o.ok for o in outcomes), [o.note for o in outcomes]
    return seconds


def _start_up(repeats: int) -> list[float]:
    from sdl.sweep.ray import ray_runtime

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with ray_runtime(cpus=2) as ray:
            ray.get(ray.remote(lambda: None).remote())  # a first task: the instance is usable
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.environ.get(IN_NAMESPACE) != "1":
        env = {**os.environ, IN_NAMESPACE: "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        command = 'ip link set lo up && exec "$0" "$@"'
        sys.exit(
            subprocess.run(["unshare", "-n", "sh", "-c", command, sys.executable, __file__, *sys.argv[1:]], env=env).returncode
        )

    from importlib.metadata import version

    import torch

    from sdl.sweep import ProcessPoolBackend
    from sdl.sweep.ray import RayBackend

    iterations, repeats = (20, 1) if args.quick else (300, 3)
    print(f"# 8 runs (spiral2d n=200, rk4 ResNet width 4, 10 steps, {iterations} iterations), 2 workers, 1 thread each")
    print(f"# torch {torch.__version__}, ray {version('ray')}, {os.cpu_count()} cores; network namespace with loopback only")
    candidates = {"local pool": ProcessPoolBackend(2), "ray (private instance)": RayBackend(jobs=2)}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, backend in candidates.items():
            times[name].append(_sweep(backend, iterations))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print("| backend | median sweep (s) | ratio to local pool |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} | {seconds / medians['local pool']:.2f} |")
    start_up = _start_up(repeats)
    print(
        f"\nRay start-up to a first finished task: median {statistics.median(start_up):.2f} s "
        f"(min {min(start_up):.2f}, max {max(start_up):.2f}, {repeats} starts)"
    )


if __name__ == "__main__":
    main()
