"""Integrators: Butcher tableaus and splitting coefficients as data, a few generic steppers.

``names()`` lists the registered methods; ``get(name)`` returns an ``Integrator`` with
``.order``, ``.symplectic`` and ``.partitioned``. A new Runge–Kutta method is a new
``ButcherTableau`` passed to ``ExplicitRungeKutta`` or ``ImplicitRungeKutta``.
"""

from .base import ConvergenceError, Integrator
from .methods import SPLITTINGS, TABLEAUS, get, names
from .runge_kutta import ExplicitRungeKutta, FixedPointSolver, ImplicitRungeKutta, JacobiNewtonSolver, NewtonSolver
from .splitting import SplittingMethod
from .tableau import ButcherTableau, order_condition_residuals, rooted_trees

__all__ = [
    "SPLITTINGS",
    "TABLEAUS",
    "ButcherTableau",
    "ConvergenceError",
    "ExplicitRungeKutta",
    "FixedPointSolver",
    "ImplicitRungeKutta",
    "Integrator",
    "JacobiNewtonSolver",
    "NewtonSolver",
    "SplittingMethod",
    "get",
    "names",
    "order_condition_residuals",
    "rooted_trees",
]
