"""Stage solvers of implicit Runge–Kutta steps on a stiff HollowNet problem, side by side in one run.

Problem: dy/dt = -λ ⊙ y + g(t, y), y: (8, 16) (128 unknowns), g a random time-dependent HollowNet
(float64), λ log-spaced over [1, 1e4]: stiff along the diagonal of the Jacobian, with a non-stiff
hollow coupling. 10 steps of size h from t = 0, for h·max λ = 0.1 … 1000, with backward Euler (s = 1)
and 2-stage Gauss–Legendre (s = 2), each with three solvers of the stage equations K = G(K), tol 1e-10:

  fixed_point    K ← G(K): one evaluation of f per stage and iteration; needs h·Lip(f)·‖A‖ < 1.
  jacobi_newton  K ← K - M⁻¹(K - G(K)), M per component from D_dim f (sdl's JacobiNewtonSolver):
                 one evaluation plus one backward pass per stage and iteration.
  newton         Newton (sdl's NewtonSolver): two evaluations per stage and iteration, plus one (s·16)²
                 Jacobian block per sample, from 16 vector-Jacobian products per stage through the whole
                 batch (batched by torch.func), and a batched solve.

Printed per run: mean iterations per step, evaluations of f, backward passes, wall time, and the
largest difference of the final state from the Newton one (all three solve the same equations).

    PYTHONPATH=. python benchmarks/bench_jacobi_newton.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import sdl
from sdl.fields import DimwiseDifferentiable
from sdl.integrators import ConvergenceError, Integrator
from sdl.models.hollow import HollowNet

BATCH, DIM, STEPS, TOL = 8, 16, 10, 1e-10


class StiffHollowField(nn.Module, DimwiseDifferentiable):
    """f(t, y) = -λ ⊙ y + g(t, y); D_dim f = -λ + D_dim g. Counts its evaluations."""

    def __init__(self, dim: int, max_rate: float) -> None:
        super().__init__()
        self.net = HollowNet(dim, hidden=32, transformer_hidden=32, time_dependent=True).double()
        self.register_buffer("rates", torch.logspace(0.0, torch.log10(torch.tensor(max_rate)).item(), dim).double())
        self.evaluations = 0
        self.backward_passes = 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.evaluations += 1
        return -self.rates * y + self.net(t, y)

    def value_and_jacobian_diagonal(self, t: Tensor, y: Tensor, *, create_graph: bool = False):
        self.evaluations += 1
        self.backward_passes += 1
        value, diagonal = self.net.value_and_jacobian_diagonal(t, y, create_graph=create_graph)
        return -self.rates * y + value, diagonal - self.rates


@dataclass(frozen=True)
class Run:
    iterations_per_step: float
    evaluations: int
    backward_passes: int
    seconds: float
    final: Tensor | None  # None when the solver failed
    failed_at: int | None = None


def _integrate(stepper: Integrator, field: StiffHollowField, y0: Tensor, h: float, stages: int, solver: str) -> Run:
    # sdl.odeint wraps the first step's field to check its output, which hides DimwiseDifferentiable
    # from the stepper; the steps are taken here directly instead.
    field.evaluations = field.backward_passes = 0
    y, t = y0, torch.zeros((), dtype=y0.dtype)
    start = time.perf_counter()
    with torch.no_grad():  # the Jacobi–Newton diagonal turns autograd on for itself
        for k in range(STEPS):
            try:
                y = stepper.step(field, t, h, y)
            except ConvergenceError:
                return Run(float("nan"), field.evaluations, field.backward_passes, time.perf_counter() - start, None, k)
            t = t + h
    seconds = time.perf_counter() - start
    # per step: one evaluation for the start k0 = f(t, y); then per iteration:
    evaluations_per_iteration = {"fixed_point": stages, "jacobi_newton": stages, "newton": 2 * stages}[solver]
    iterations = (field.evaluations - STEPS) / evaluations_per_iteration
    backward = field.backward_passes
    if solver == "newton":
        backward = int(iterations) * stages * y0[0].numel()  # jacrev: one VJP per row of a sample's block
    return Run(iterations / STEPS, field.evaluations, backward, seconds, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two step sizes, backward Euler only: a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    max_rate = 1e4
    field = StiffHollowField(DIM, max_rate)
    y0 = torch.randn(BATCH, DIM, dtype=torch.float64)
    steps = (1e-5, 1e-3) if args.quick else (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    methods = ("backward_euler",) if args.quick else ("backward_euler", "gauss_legendre4")
    solvers = ("fixed_point", "jacobi_newton", "newton")
    with torch.no_grad():  # torch.func's one-time start-up (about a second) is not the first Newton run's
        sdl.integrators.get("backward_euler", solver="newton").step(field, torch.zeros((), dtype=torch.float64), 1e-3, y0)

    print(f"torch {torch.__version__}, 1 thread, float64; y: ({BATCH}, {DIM}), λ ∈ [1, {max_rate:g}], {STEPS} steps, tol {TOL:g}")
    header = (
        f"{'method':>15} {'h·maxλ':>7} {'solver':>13} | {'iter/step':>9} {'f evals':>8} {'backward':>9} "
        f"{'ms':>9} | {'max|y - y_newton|':>17}"
    )
    print(header)
    print("-" * len(header))
    for method in methods:
        stages = sdl.integrators.TABLEAUS[method].stages
        for h in steps:
            runs = {}
            for solver in solvers:
                max_iter = 30 if solver == "newton" else 200
                stepper = sdl.integrators.get(method, solver=solver, tol=TOL, max_iter=max_iter)
                runs[solver] = _integrate(stepper, field, y0, h, stages, solver)
            reference = runs["newton"].final
            for solver, run in runs.items():
                if run.final is None:
                    result = f"{'no conv. (step ' + str(run.failed_at) + ')':>17}"
                    iterations = f"{'-':>9}"
                else:
                    result = f"{(run.final - reference).abs().max().item():17.2e}"
                    iterations = f"{run.iterations_per_step:9.1f}"
                print(
                    f"{method:>15} {h * max_rate:7g} {solver:>13} | {iterations} {run.evaluations:8d} "
                    f"{run.backward_passes:9d} {1e3 * run.seconds:9.1f} | {result}"
                )
        print()


if __name__ == "__main__":
    main()
