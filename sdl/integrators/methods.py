"""The registered methods: each one a tableau or a coefficient sequence, and a name."""

from __future__ import annotations

import math
from collections.abc import Callable

from .base import Integrator
from .runge_kutta import ExplicitRungeKutta, FixedPointSolver, ImplicitRungeKutta, JacobiNewtonSolver, NewtonSolver
from .splitting import SplittingMethod
from .tableau import ButcherTableau

__all__ = ["SPLITTINGS", "TABLEAUS", "get", "names"]

_SQRT3 = math.sqrt(3.0)
# Yoshida's triple jump: Verlet with steps w1 h, w0 h, w1 h is of order 4.
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W0 = 1.0 - 2.0 * _W1

TABLEAUS: dict[str, ButcherTableau] = {
    "euler": ButcherTableau(a=((0,),), b=(1,), c=(0,), order=1, aliases=("forward Euler", "ResNet")),
    "midpoint": ButcherTableau(
        a=((0, 0), ("1/2", 0)), b=(0, 1), c=(0, "1/2"), order=2, aliases=("explicit midpoint", "modified Euler")
    ),
    "heun": ButcherTableau(
        a=((0, 0), (1, 0)), b=("1/2", "1/2"), c=(0, 1), order=2, aliases=("improved Euler", "explicit trapezoidal")
    ),
    "ralston": ButcherTableau(
        a=((0, 0), ("2/3", 0)), b=("1/4", "3/4"), c=(0, "2/3"), order=2, aliases=("Ralston's second order",)
    ),
    "kutta3": ButcherTableau(
        a=((0, 0, 0), ("1/2", 0, 0), (-1, 2, 0)),
        b=("1/6", "2/3", "1/6"),
        c=(0, "1/2", 1),
        order=3,
        aliases=("Kutta's third order", "RK3"),
    ),
    "ssprk3": ButcherTableau(
        a=((0, 0, 0), (1, 0, 0), ("1/4", "1/4", 0)),
        b=("1/6", "1/6", "2/3"),
        c=(0, 1, "1/2"),
        order=3,
        aliases=("Shu–Osher", "strong-stability-preserving RK3"),
    ),
    "rk4": ButcherTableau(
        a=((0, 0, 0, 0), ("1/2", 0, 0, 0), (0, "1/2", 0, 0), (0, 0, 1, 0)),
        b=("1/6", "1/3", "1/3", "1/6"),
        c=(0, "1/2", "1/2", 1),
        order=4,
        aliases=("classical Runge–Kutta",),
    ),
    "rk4_38": ButcherTableau(
        a=((0, 0, 0, 0), ("1/3", 0, 0, 0), ("-1/3", 1, 0, 0), (1, -1, 1, 0)),
        b=("1/8", "3/8", "3/8", "1/8"),
        c=(0, "1/3", "2/3", 1),
        order=4,
        aliases=("Kutta's 3/8 rule",),
    ),
    "backward_euler": ButcherTableau(a=((1,),), b=(1,), c=(1,), order=1, aliases=("implicit Euler",)),
    "implicit_midpoint": ButcherTableau(a=(("1/2",),), b=(1,), c=("1/2",), order=2, aliases=("Gauss–Legendre, 1 stage",)),
    "gauss_legendre4": ButcherTableau(
        a=((0.25, 0.25 - _SQRT3 / 6), (0.25 + _SQRT3 / 6, 0.25)),
        b=(0.5, 0.5),
        c=(0.5 - _SQRT3 / 6, 0.5 + _SQRT3 / 6),
        order=4,
        aliases=("Gauss–Legendre, 2 stages", "Hammer–Hollingsworth"),
    ),
}

SPLITTINGS: dict[str, SplittingMethod] = {
    # kick p with F(q_n), then drift q with V(p_{n+1})
    "symplectic_euler": SplittingMethod(kicks=(1,), drifts=(1,), order=1, aliases=("symplectic Euler A",)),
    # drift q with V(p_n), then kick p with F(q_{n+1})
    "symplectic_euler_b": SplittingMethod(kicks=(0, 1), drifts=(1, 0), order=1, aliases=("symplectic Euler B",)),
    "verlet": SplittingMethod(
        kicks=(0.5, 0.5), drifts=(1, 0), order=2, aliases=("velocity Verlet", "Störmer–Verlet, kick-drift-kick")
    ),
    "leapfrog": SplittingMethod(
        kicks=(0, 1), drifts=(0.5, 0.5), order=2, aliases=("position Verlet", "Störmer–Verlet, drift-kick-drift")
    ),
    "yoshida4": SplittingMethod(
        kicks=(_W1 / 2, (_W1 + _W0) / 2, (_W0 + _W1) / 2, _W1 / 2),
        drifts=(_W1, _W0, _W1, 0),
        order=4,
        aliases=("Yoshida's triple jump of velocity Verlet",),
    ),
    # The neighbouring half drifts of the three leapfrog steps stay separate: merged into one drift
    # at the midpoint of the joint interval, a time-dependent V(t, p) loses two orders.
    "forest_ruth4": SplittingMethod(
        kicks=(0, _W1, 0, _W0, 0, _W1),
        drifts=(_W1 / 2, _W1 / 2, _W0 / 2, _W0 / 2, _W1 / 2, _W1 / 2),
        order=4,
        aliases=("Forest–Ruth", "triple jump of position Verlet"),
    ),
}

_SOLVERS = {"fixed_point": FixedPointSolver, "newton": NewtonSolver, "jacobi_newton": JacobiNewtonSolver}


def names() -> list[str]:
    """All registered method names, explicit Runge–Kutta first."""
    return list(TABLEAUS) + list(SPLITTINGS)


def get(name: str, *, solver: str = "fixed_point", tol: float | None = None, max_iter: int | None = None) -> Integrator:
    """The integrator registered as ``name``.

    ``solver``, ``tol`` and ``max_iter`` set the stage solver of implicit methods
    (``"fixed_point"``, ``"newton"``, or ``"jacobi_newton"`` for ``DimwiseDifferentiable`` fields;
    ``tol=None`` is 100 ulp of the state's dtype) and are ignored by explicit ones. The solvers take
    the leading axis of a state with ndim ≥ 2 as a batch of independent samples; for a field that
    couples samples, pass ``ImplicitRungeKutta(TABLEAUS[name], NewtonSolver(per_sample=False))``
    (or another solver with ``per_sample=False``) as the method instead.
    """
    if name in SPLITTINGS:
        return SPLITTINGS[name]
    if name not in TABLEAUS:
        raise ValueError(f"unknown integrator {name!r}; valid names: {', '.join(names())}")
    tableau = TABLEAUS[name]
    if tableau.explicit:
        return ExplicitRungeKutta(tableau)
    if solver not in _SOLVERS:
        raise ValueError(f"unknown stage solver {solver!r}; valid solvers: {', '.join(_SOLVERS)}")
    solver_cls: Callable = _SOLVERS[solver]
    options = {"tol": tol} if max_iter is None else {"tol": tol, "max_iter": max_iter}
    return ImplicitRungeKutta(tableau, solver_cls(**options))
