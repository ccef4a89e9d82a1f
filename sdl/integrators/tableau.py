"""Butcher tableaus as immutable, self-checking data, and the order conditions they satisfy.

A Runge–Kutta method with s stages for y' = f(t, y) is

    Y_i     = y_n + h Σ_j a_ij f(t_n + c_i h, Y_j),      i = 1..s
    y_{n+1} = y_n + h Σ_i b_i f(t_n + c_i h, Y_i).

The method has order p when, for every rooted tree τ with |τ| ≤ p,

    Σ_i b_i Φ_i(τ) = 1 / γ(τ),

where Φ(•) = 1 (a vector of ones), Φ([τ_1, …, τ_m]) = Π_k (A Φ(τ_k)) elementwise,
γ(•) = 1 and γ([τ_1, …, τ_m]) = |τ| Π_k γ(τ_k) (Butcher's theory; Hairer–Nørsett–Wanner I, §II.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

__all__ = ["ButcherTableau", "order_condition_residuals", "rooted_trees"]

# A relation Σ_k t_k = 0 between coefficients holds for the rounded floats up to a few ulp of Σ_k |t_k|
# (the rounding of each coefficient and of the arithmetic that checks it). Every check below uses that
# tolerance, relative to its terms: neither too loose for tiny coefficients nor too tight for large ones.
_ULPS = 8

Coefficient = float | Fraction | str  # an entry of a tableau as given: "1/6" and Fraction(1, 6) stay exact until rounded


def _negligible(residual, scale) -> bool:
    """|residual| ≤ 8 ulp · scale, entrywise (numbers or equal-shape arrays), scale = Σ_k |t_k| of the relation."""
    return bool(np.all(np.abs(residual) <= _ULPS * np.finfo(float).eps * np.asarray(scale)))


@dataclass(frozen=True)
class ButcherTableau:
    """The coefficients (A, b, c) of a Runge–Kutta method and its declared order.

    Construction checks the shapes, that c_i = Σ_j a_ij and that Σ_i b_i = 1; the declared
    order is checked against the order conditions by the test suite
    (``order_condition_residuals``). Entries are floats; pass exact rationals as
    ``Fraction`` or ``"1/6"``-style strings to keep them exact until the final rounding.

    Attributes:
        a: (s, s) stage coefficients, row-major tuples.
        b: (s,) weights.
        c: (s,) nodes (fractions of the step at which the stages are evaluated).
        order: classical order p of the method.
        aliases: other names of the method, for documentation.
    """

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int
    aliases: tuple[str, ...] = field(default=())

    if TYPE_CHECKING:  # what the generated __init__ accepts: exact rationals too, made floats by __post_init__

        def __init__(
            self,
            a: Sequence[Sequence[Coefficient]],
            b: Sequence[Coefficient],
            c: Sequence[Coefficient],
            order: int,
            aliases: tuple[str, ...] = (),
        ) -> None: ...

    def __post_init__(self) -> None:
        a = tuple(tuple(float(Fraction(x)) for x in row) for row in self.a)
        b = tuple(float(Fraction(x)) for x in self.b)
        c = tuple(float(Fraction(x)) for x in self.c)
        s = len(b)
        if s == 0 or len(c) != s or len(a) != s or any(len(row) != s for row in a):
            raise ValueError(
                f"a Butcher tableau needs A of shape (s, s), b and c of length s; got A with rows "
                f"{[len(row) for row in a]}, len(b) = {len(b)}, len(c) = {len(c)}"
            )
        for i, row in enumerate(a):
            if not _negligible(math.fsum(row) - c[i], math.fsum(map(abs, row)) + abs(c[i])):
                raise ValueError(f"row {i} of A sums to {math.fsum(row)!r}, but c[{i}] = {c[i]!r}")
        if not _negligible(math.fsum(b) - 1.0, math.fsum(map(abs, b)) + 1.0):
            raise ValueError(f"the weights b sum to {math.fsum(b)!r}, not 1 (consistency)")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"order must be a positive int, got {self.order!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        """True when A is strictly lower triangular (each stage uses earlier stages only)."""
        return all(self.a[i][j] == 0.0 for i in range(self.stages) for j in range(i, self.stages))

    @property
    def algebraic_stability_matrix(self) -> np.ndarray:
        """M = BA + AᵀB - bbᵀ, M_ij = b_i a_ij + b_j a_ji - b_i b_j (B = diag b), (s, s). It vanishes for
        symplectic methods (Cooper's condition) and decides the contractivity radius
        (``sdl.stability.contractivity_radius``): M + B/r ⪰ 0."""
        a, b = np.array(self.a), np.array(self.b)
        weighted = b[:, None] * a
        return weighted + weighted.T - np.outer(b, b)

    @property
    def symplectic(self) -> bool:
        """True when b_i a_ij + b_j a_ji - b_i b_j = 0 for all i, j (Cooper's condition).

        Such a method preserves every quadratic invariant and is symplectic for every
        Hamiltonian system. No explicit method satisfies it.
        """
        a, b = np.array(self.a), np.array(self.b)
        weighted = np.abs(b[:, None] * a)
        return _negligible(self.algebraic_stability_matrix, weighted + weighted.T + np.outer(np.abs(b), np.abs(b)))

    @property
    def symmetric(self) -> bool:
        """True when a_ij + a_{s+1-i, s+1-j} = b_j and b_i = b_{s+1-i}: then Φ_{-h} = Φ_h⁻¹, the
        method is time-reversible (implicit midpoint, Gauss–Legendre). No explicit method is."""
        a, b = np.array(self.a), np.array(self.b)
        mirrored = a[::-1, ::-1]
        return _negligible(a + mirrored - b, np.abs(a) + np.abs(mirrored) + np.abs(b)) and _negligible(
            b - b[::-1], np.abs(b) + np.abs(b[::-1])
        )

    def stability_function(self, z: complex | np.ndarray) -> np.ndarray:
        """R(z) = 1 + z bᵀ (I - zA)⁻¹ 1: the step y_{n+1} = R(hλ) y_n on y' = λy. z: a number or an array of any
        shape, real or complex; returns a complex array of z's shape."""
        z = np.asarray(z, dtype=complex)
        a, b = np.array(self.a), np.array(self.b)
        flat = z.reshape(-1, 1, 1)
        rhs = np.ones((flat.shape[0], self.stages, 1))
        stages = np.linalg.solve(np.eye(self.stages) - flat * a, rhs)[..., 0]  # one batched solve
        return (1 + flat[:, 0, 0] * (stages @ b)).reshape(z.shape)


# A rooted tree is a sorted tuple of its subtrees; the single node is ().
Tree = tuple


@cache
def rooted_trees(order: int) -> tuple[Tree, ...]:
    """All rooted trees with ``order`` nodes (1, 1, 2, 4, 9, 20, … of them), canonical form."""
    if order == 1:
        return ((),)
    trees: set[Tree] = set()
    for tree in rooted_trees(order - 1):
        trees.update(_graft_leaf_everywhere(tree))
    return tuple(sorted(trees))


def _graft_leaf_everywhere(tree: Tree) -> set[Tree]:
    grown = {tuple(sorted((*tree, ())))}
    for i, child in enumerate(tree):
        for new_child in _graft_leaf_everywhere(child):
            grown.add(tuple(sorted((*tree[:i], new_child, *tree[i + 1 :]))))
    return grown


def _density(tree: Tree) -> int:
    """γ(τ) = |τ| Π γ(τ_k)."""
    return _size(tree) * math.prod(_density(child) for child in tree)


def _size(tree: Tree) -> int:
    return 1 + sum(_size(child) for child in tree)


def _stage_weights(tree: Tree, a: np.ndarray) -> np.ndarray:
    """Φ(τ) as a vector over stages."""
    phi = np.ones(a.shape[0])
    for child in tree:
        phi = phi * (a @ _stage_weights(child, a))
    return phi


def order_condition_residuals(tableau: ButcherTableau, order: int | None = None) -> dict[Tree, float]:
    """Residuals bᵀΦ(τ) - 1/γ(τ) for every rooted tree with at most ``order`` nodes.

    ``order`` defaults to the tableau's declared order. All residuals vanish (to round-off)
    exactly when the method has at least that order.
    """
    order = tableau.order if order is None else order
    a, b = np.array(tableau.a), np.array(tableau.b)
    return {
        tree: float(b @ _stage_weights(tree, a) - 1.0 / _density(tree)) for p in range(1, order + 1) for tree in rooted_trees(p)
    }
