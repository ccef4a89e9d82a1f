"""The integrator interface: one step of a one-step method, y_{n+1} = Φ_h(t_n, y_n)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

__all__ = ["ConvergenceError", "Integrator", "vjp"]

State = Any  # a Tensor, or a (q, p) pair of Tensors for partitioned methods
Pullback = Callable[[State, tuple[Tensor, ...]], tuple[State, tuple[Tensor, ...]]]


class ConvergenceError(RuntimeError):
    """An implicit stage solver did not reach its tolerance."""


def vjp(
    output: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor],
    cotangent: Tensor | Sequence[Tensor],
    retain_graph: bool = False,
) -> list[Tensor]:
    """Σ cotangent · ∂output/∂input for each input (output and cotangent: a tensor or matching
    sequences). Zeros for inputs the output does not use, for inputs that do not require grad,
    and for outputs without a graph (e.g. a constant force). ``retain_graph`` keeps the graph
    for another pullback."""
    outputs = (output,) if isinstance(output, Tensor) else tuple(output)
    cotangents = (cotangent,) if isinstance(cotangent, Tensor) else tuple(cotangent)
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    live = [i for i, x in enumerate(inputs) if x.requires_grad]
    grads: list[Tensor | None] = [None] * len(inputs)
    if pairs and live:
        found = torch.autograd.grad(
            [o for o, _ in pairs], [inputs[i] for i in live], [c for _, c in pairs], retain_graph=retain_graph, allow_unused=True
        )
        for i, g in zip(live, found, strict=True):
            grads[i] = g
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs, strict=True)]


def add_into(total: list[Tensor | None], terms) -> None:
    for i, term in enumerate(terms):
        total[i] = term if total[i] is None else total[i] + term


def completed(params: tuple[Tensor, ...], total: list[Tensor | None]) -> tuple[Tensor, ...]:
    return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, total, strict=True))


class Integrator(ABC):
    """A one-step method. Concrete integrators are frozen dataclasses (they hold no learned state).

    Class attributes say what the method is, so callers never ask for it by name:
        order: classical order of accuracy.
        symplectic: True when one step is a symplectic map for every Hamiltonian system the
            method accepts.
        partitioned: True when the method needs the state as a pair (q, p) and treats the
            halves differently; otherwise a pair is flattened into one tensor at the edge.
    """

    if TYPE_CHECKING:  # read-only: a subclass gives each as a class attribute, a dataclass field or a property

        @property
        def order(self) -> int: ...
        @property
        def symplectic(self) -> bool: ...
        @property
        def partitioned(self) -> bool: ...
        @property
        def time_reversible(self) -> bool: ...

    else:
        partitioned = False
        time_reversible = False

    @abstractmethod
    def step(self, func: Callable, t: Tensor, h: float, y: State) -> State:
        """One step of size h from (t, y). ``t`` is a 0-d tensor, ``h`` a float (may be < 0)."""

    def adjoint_record(self, func: Callable, t: Tensor, h: float, y: State) -> tuple[State, Pullback]:
        """Recompute one step from y_n, keeping what its adjoint needs: returns (y_{n+1}, pullback).

        ``pullback(λ_{n+1}, params)`` gives λ_n = (∂y_{n+1}/∂y_n)ᵀ λ_{n+1} and
        (∂y_{n+1}/∂θ)ᵀ λ_{n+1} for each tensor in ``params`` (the tensors ``func`` depends on).
        That is the symplectic partner of the method applied to the costate equation, so it
        equals reverse-mode differentiation of the step.

        For an explicit method this record is reverse mode itself: the step is recomputed with
        an autograd graph from a fresh leaf y_n and pulled back in one call. For a Runge–Kutta
        tableau, autograd then runs the stages backward in the reverse stage form (Sanz-Serna 2016)

            k̄_i = h b_i λ_{n+1} + h Σ_{j>i} a_ji Z̄_j,   Z̄_i = J(Z_i)ᵀ k̄_i,
            λ_n = λ_{n+1} + Σ_i Z̄_i,                    θ̄ = Σ_i (∂f/∂θ(Z_i))ᵀ k̄_i,

        which is the partner method ā_ij = b_j - b_j a_ji / b_i without the division (any
        tableau); for a kick–drift splitting it adjoins the substeps in reverse order, itself a
        symplectic splitting. One call per step, not one per stage: the engine's fixed cost per
        call is most of an adjoint step at small widths. The graph lives until the pullback runs.
        Implicit methods override this (autograd would follow the stage solver's iterations).
        """
        parts = tuple(y) if isinstance(y, tuple) else (y,)
        with torch.enable_grad():
            leaves = tuple(part.detach().requires_grad_() for part in parts)
            y_next = self.step(func, t, h, leaves if isinstance(y, tuple) else leaves[0])
        outputs = tuple(y_next) if isinstance(y_next, tuple) else (y_next,)

        def pullback(adjoint, params):
            cotangents = tuple(adjoint) if isinstance(adjoint, tuple) else (adjoint,)
            grads = vjp(outputs, (*leaves, *params), cotangents)
            lam = grads[: len(leaves)]
            return (tuple(lam) if isinstance(y, tuple) else lam[0]), tuple(grads[len(leaves) :])

        detached = tuple(o.detach() for o in outputs)
        return (detached if isinstance(y, tuple) else detached[0]), pullback
