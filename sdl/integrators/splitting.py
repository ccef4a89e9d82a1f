"""Explicit symplectic methods for separable systems, as kick/drift coefficient sequences.

For dq/dt = V(t, p), dp/dt = F(t, q) (e.g. H = T(p) + U(q), V = ∂T/∂p, F = -∂U/∂q), one step is

    for i = 1..m:   p ← p + b_i h F(τ_i, q)      (kick)
                    q ← q + a_i h V(σ_i, p)      (drift)

Each kick and drift is the exact flow of a Hamiltonian (U or T), so the step is a composition
of symplectic maps and is symplectic. Zero coefficients are skipped. Time advances with the
drifts, as if t were one more position coordinate: τ_i = t + (a_1 + … + a_{i-1}) h, and a
drift sees the midpoint of its time interval, σ_i = τ_i + a_i h / 2.

The methods assume that V depends on p only and F on q only (besides t). For a field that
couples them, use an implicit symplectic method (Gauss–Legendre).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..fields import Separable
from .base import Integrator

__all__ = ["SplittingMethod"]


@dataclass(frozen=True)
class SplittingMethod(Integrator):
    """A kick–drift composition with coefficients ``kicks`` (b_i) and ``drifts`` (a_i).

    Attributes:
        kicks: (m,) fractions of h for the momentum updates; must sum to 1.
        drifts: (m,) fractions of h for the position updates; must sum to 1.
        order: classical order of the composition.
        aliases: other names, for documentation.
    """

    kicks: tuple[float, ...]
    drifts: tuple[float, ...]
    order: int
    aliases: tuple[str, ...] = ()
    symplectic = True
    partitioned = True
    _substeps: tuple[tuple[str, float, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.kicks) != len(self.drifts):
            raise ValueError(f"kicks and drifts need the same length, got {len(self.kicks)} and {len(self.drifts)}")
        for name, coeffs in (("kicks", self.kicks), ("drifts", self.drifts)):
            if abs(math.fsum(coeffs) - 1.0) > 1e-14:
                raise ValueError(f"{name} must sum to 1 (consistency), got {math.fsum(coeffs)!r}")
        substeps, elapsed = [], 0.0
        for b_i, a_i in zip(self.kicks, self.drifts, strict=True):
            if b_i != 0.0:
                substeps.append(("kick", b_i, elapsed))
            if a_i != 0.0:
                substeps.append(("drift", a_i, elapsed + a_i / 2))
            elapsed += a_i
        object.__setattr__(self, "_substeps", tuple(substeps))

    @property
    def time_reversible(self) -> bool:
        """A palindromic sequence of kicks and drifts is symmetric: Φ_{-h} = Φ_h⁻¹."""
        sequence = [(kind, coeff) for kind, coeff, _ in self._substeps]
        return sequence == sequence[::-1]

    def step(self, func: Callable, t: Tensor, h: float, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        velocity, force = _halves(func)
        q, p = y
        for kind, coeff, offset in self._substeps:
            time = t + offset * h if offset else t
            if kind == "kick":
                p = torch.add(p, force(time, q, p), alpha=coeff * h)
            else:
                q = torch.add(q, velocity(time, q, p), alpha=coeff * h)
        return q, p


def _halves(func: Callable) -> tuple[Callable, Callable]:
    """(velocity(t, q, p), force(t, q, p)): the separate halves when the field offers them."""
    if isinstance(func, Separable):
        return (lambda t, q, p: func.velocity(t, p)), (lambda t, q, p: func.force(t, q))
    return (lambda t, q, p: func(t, (q, p))[0]), (lambda t, q, p: func(t, (q, p))[1])
