"""Implicit stage solvers at batch scale: Gauss–Legendre 4 on 800 2-D points, forward and forward + backward.

Fields (float64, batch B = 800, d = 2, one thread):

  resnet  f_k(t, z) = tanh(A_k z + b_k), sdl's ResNetField with one (A_k, b_k) per step: a ResNet of K layers.
  hollow  a HollowNet(2) (``DimwiseDifferentiable``, so Jacobi–Newton applies), shared by all steps.

Solvers of the stage equations K = G(K), each at sdl's default tolerance (100 ulp):

  fixed_point    K ← G(K).
  newton         Newton, sdl's default NewtonSolver: one (s·d)×(s·d) block per sample, B·s·d unknowns in all.
  newton_dense   Newton with the dense (s·B·d)² Jacobian of the whole batch, NewtonSolver(per_sample=False):
                 what NewtonSolver did before it worked per sample.
  jacobi_newton  Newton with the dimension-wise part of the Jacobian (HollowNet only).

K = 1 and K = 4 steps over [0, 1]. "forward" runs under torch.no_grad; "forward+backward" adds the backward
pass of the sum of squares of y(1) through the steps (DTO). Medians of 5 interleaved repeats (_timing.py),
each a block of calls lasting about 0.2 s (one call for the slow ones), divided by the calls in it;
"max |y - y_fp|" is the largest difference of y(1) from the fixed-point solution (all solve the same steps).

``--before DIR`` also times the sdl package in DIR/sdl (an older checkout, e.g. from ``git archive``),
imported as a second package and interleaved with this one, so that machine noise hits both alike. Its
NewtonSolver, if dense, is listed as newton_dense (for the ResNet only: on the HollowNet it takes minutes).

    PYTHONPATH=. python benchmarks/bench_newton.py [--quick] [--before DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare

import sdl

METHOD = "gauss_legendre4"
SOLVERS = {"resnet": ("fixed_point", "newton", "newton_dense"), "hollow": ("fixed_point", "jacobi_newton", "newton")}


def _load_older_sdl(root: Path) -> ModuleType:
    """The package root/sdl imported as ``sdl_before`` (its own imports are relative)."""
    spec = importlib.util.spec_from_file_location(
        "sdl_before", root / "sdl" / "__init__.py", submodule_search_locations=[str(root / "sdl")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sdl_before"] = module
    spec.loader.exec_module(module)
    return module


def _integrators(lib: ModuleType) -> dict[str, object]:
    integrators = {name: lib.integrators.get(METHOD, solver=name) for name in ("fixed_point", "newton", "jacobi_newton")}
    newton = lib.integrators.NewtonSolver
    if "per_sample" in {f.name for f in dataclasses.fields(newton)}:
        integrators["newton_dense"] = lib.integrators.ImplicitRungeKutta(
            lib.integrators.TABLEAUS[METHOD], newton(per_sample=False)
        )
    else:  # before per-sample blocks, "newton" was the dense one
        integrators["newton_dense"] = integrators.pop("newton")
    return integrators


def _field(lib: ModuleType, name: str, steps: int) -> torch.nn.Module:
    models = importlib.import_module(f"{lib.__name__}.models")
    torch.manual_seed(0)
    if name == "resnet":
        return models.ResNetField(2, "tanh", num_layers=steps).double()
    return models.HollowNet(2, hidden=32, transformer_hidden=32, time_dependent=True).double()


def _runs(lib: ModuleType, field, method, y0: torch.Tensor, t: torch.Tensor) -> dict[str, Callable[[], object]]:
    def forward():
        with torch.no_grad():
            return lib.odeint(field, y0, t, method=method, output="last")

    def forward_backward():
        start = y0.clone().requires_grad_()
        lib.odeint(field, start, t, method=method, output="last").pow(2).sum().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def _in_blocks(candidates: dict, seconds: float) -> tuple[dict, dict]:
    """Each candidate as a block of n calls lasting about ``seconds`` (n ≥ 1, from one timed call after a
    warm-up call), so that a fast one is not timed by single calls of a few ms; returns (blocks, n)."""
    counts = {}
    for key, fn in candidates.items():
        fn()
        start = time.perf_counter()
        fn()
        counts[key] = max(1, round(seconds / (time.perf_counter() - start)))
    blocks = {key: (lambda fn=fn, n=counts[key]: [fn() for _ in range(n)]) for key, fn in candidates.items()}
    return blocks, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 points, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4], help="step counts K (default: 1 4)")
    parser.add_argument("--fields", nargs="+", choices=sorted(SOLVERS), default=list(SOLVERS))
    parser.add_argument("--before", type=Path, help="a directory holding an older sdl/ to time beside this one")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch, repeats = (50, 1) if args.quick else (800, args.repeats)
    y0 = torch.randn(batch, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    libraries = {"this": sdl} | ({"before": _load_older_sdl(args.before)} if args.before else {})
    integrators = {label: _integrators(lib) for label, lib in libraries.items()}
    print(f"torch {torch.__version__}, 1 thread, float64, {METHOD}, B = {batch}, d = 2; this sdl: {Path(sdl.__file__).parent}")
    print()
    print("| field | steps | solver | sdl | forward (ms) | forward+backward (ms) | max abs(y - y_fp) |")
    print("|---|---:|---|---|---:|---:|---:|")
    for steps in args.steps:
        t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
        for field_name in args.fields:
            reference = _field(sdl, field_name, steps)
            candidates = {}
            for label, lib in libraries.items():
                field = _field(lib, field_name, steps)
                field.load_state_dict(reference.state_dict())  # the same parameters in every sdl
                for solver in SOLVERS[field_name]:
                    if solver in integrators[label]:
                        for run, fn in _runs(lib, field, integrators[label][solver], y0, t).items():
                            candidates[solver, label, run] = fn
            blocks, counts = _in_blocks(candidates, seconds=0.0 if args.quick else 0.2)
            medians = {key: median / counts[key] for key, median in compare(blocks, repeats=repeats, warmup=0).items()}
            y_fp = candidates["fixed_point", "this", "forward"]()
            for solver, label, run in candidates:
                if run == "forward":
                    difference = (candidates[solver, label, run]() - y_fp).abs().max().item()
                    print(
                        f"| {field_name} | {steps} | {solver} | {label} | {1e3 * medians[solver, label, 'forward']:.1f} | "
                        f"{1e3 * medians[solver, label, 'forward+backward']:.1f} | {difference:.1e} |"
                    )


if __name__ == "__main__":
    main()
