"""One explicit and one implicit Runge–Kutta stepper; every tableau runs on one of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .base import ConvergenceError, Integrator
from .tableau import ButcherTableau

__all__ = ["ExplicitRungeKutta", "ImplicitRungeKutta", "FixedPointSolver", "NewtonSolver"]


@dataclass(frozen=True)
class ExplicitRungeKutta(Integrator):
    """Y_i = y + h Σ_{j<i} a_ij k_j,  k_i = f(t + c_i h, Y_i),  y_{n+1} = y + h Σ_i b_i k_i.

    Zero coefficients are dropped once, at construction, so a step does only the
    additions the tableau asks for. ``y`` may have any shape; ``func`` returns its shape.
    """

    tableau: ButcherTableau
    symplectic = False
    _stage_terms: tuple[tuple[tuple[int, float], ...], ...] = field(init=False, repr=False)
    _weight_terms: tuple[tuple[int, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tableau.explicit:
            raise ValueError("ExplicitRungeKutta needs a strictly lower triangular A; use ImplicitRungeKutta")
        a, b = self.tableau.a, self.tableau.b
        stage_terms = tuple(tuple((j, a[i][j]) for j in range(i) if a[i][j] != 0.0) for i in range(len(b)))
        object.__setattr__(self, "_stage_terms", stage_terms)
        object.__setattr__(self, "_weight_terms", tuple((i, bi) for i, bi in enumerate(b) if bi != 0.0))

    @property
    def order(self) -> int:
        return self.tableau.order

    def step(self, func: Callable, t: Tensor, h: float, y: Tensor) -> Tensor:
        k: list[Tensor] = []
        for c_i, terms in zip(self.tableau.c, self._stage_terms):
            y_i = y
            for j, a_ij in terms:
                y_i = torch.add(y_i, k[j], alpha=h * a_ij)
            k.append(func(t + c_i * h if c_i else t, y_i))
        out = y
        for i, b_i in self._weight_terms:
            out = torch.add(out, k[i], alpha=h * b_i)
        return out


def _tolerance(tol: float | None, k: Tensor) -> float:
    """The requested tolerance, or 100 ulp of the stage dtype (2e-14 in float64, 1e-5 in float32)."""
    return 100 * torch.finfo(k.dtype).eps if tol is None else tol


def _not_converged(solver: str, tol: float, max_iter: int, last: Tensor, k: Tensor, advice: str) -> ConvergenceError:
    return ConvergenceError(
        f"{solver} stage iteration did not reach tol={tol:g} in max_iter={max_iter} iterations (last change "
        f"{last.item():.3g}; {k.dtype} resolves about {torch.finfo(k.dtype).eps:.1g}); {advice}"
    )


@dataclass(frozen=True)
class FixedPointSolver:
    """Solves K = G(K) by K ← G(K) until max|ΔK| ≤ tol · max(1, max|K|).

    Converges when G is a contraction, i.e. for h·Lip(f)·‖A‖ < 1; non-stiff problems only.
    ``tol=None`` asks for 100 ulp of the state's dtype.
    """

    tol: float | None = None
    max_iter: int = 100

    def solve(self, g: Callable[[Tensor], Tensor], k0: Tensor) -> Tensor:
        tol = _tolerance(self.tol, k0)
        k = k0
        for _ in range(self.max_iter):
            k_new = g(k)
            change = (k_new - k).abs().max()
            k = k_new
            if change <= tol * max(1.0, k.abs().max().item()):
                return k
        raise _not_converged(
            "fixed-point", tol, self.max_iter, change, k, "reduce the step size, raise max_iter, or use a Newton solver"
        )


@dataclass(frozen=True)
class NewtonSolver:
    """Solves K = G(K) by Newton's method on R(K) = K - G(K) with the dense Jacobian.

    The Jacobian of the whole stage vector is formed by autograd (size (s·n)², n = y.numel()),
    so this is meant for small or stiff systems, where fixed-point iteration fails.
    """

    tol: float | None = None
    max_iter: int = 20

    def solve(self, g: Callable[[Tensor], Tensor], k0: Tensor) -> Tensor:
        tol = _tolerance(self.tol, k0)
        k = k0
        for _ in range(self.max_iter):
            residual = k - g(k)
            # A detached Jacobian keeps gradients exact: at the solution, one Newton update
            # differentiates to the implicit-function derivative -J⁻¹ ∂R/∂θ.
            jac = torch.func.jacrev(lambda x: x - g(x))(k.detach()).detach()
            n = k.numel()
            delta = torch.linalg.solve(jac.reshape(n, n), residual.reshape(n)).reshape(k.shape)
            k = k - delta
            change = delta.abs().max()
            if change <= tol * max(1.0, k.abs().max().item()):
                return k
        raise _not_converged("Newton", tol, self.max_iter, change, k, "reduce the step size or raise max_iter")


@dataclass(frozen=True)
class ImplicitRungeKutta(Integrator):
    """k_i = f(t + c_i h, y + h Σ_j a_ij k_j) for all i at once; y_{n+1} = y + h Σ_i b_i k_i.

    The stage vector K = (k_1, …, k_s), shape (s, *y.shape), solves K = G(K) with
    ``solver`` (fixed-point iteration by default), started from k_i = f(t, y).
    Symplectic exactly when the tableau satisfies Cooper's condition (Gauss–Legendre does).
    Gradients through the steps follow the solver's iterations; they match the exact
    derivative of the implicit step to about the solver tolerance.
    """

    tableau: ButcherTableau
    solver: FixedPointSolver | NewtonSolver = FixedPointSolver()

    @property
    def order(self) -> int:
        return self.tableau.order

    @property
    def symplectic(self) -> bool:  # type: ignore[override]
        return self.tableau.symplectic

    def step(self, func: Callable, t: Tensor, h: float, y: Tensor) -> Tensor:
        a = torch.tensor(self.tableau.a, dtype=y.dtype, device=y.device)
        b = torch.tensor(self.tableau.b, dtype=y.dtype, device=y.device)
        times = [t + c_i * h for c_i in self.tableau.c]

        def stage_map(k: Tensor) -> Tensor:
            stage_states = y + h * torch.tensordot(a, k, dims=1)
            return torch.stack([func(t_i, y_i) for t_i, y_i in zip(times, stage_states)])

        k0 = func(t, y).unsqueeze(0).expand(self.tableau.stages, *y.shape)
        k = self.solver.solve(stage_map, k0)
        return y + h * torch.tensordot(b, k, dims=1)
