"""sdl: structure-preserving deep learning. Deep networks as numerical integrators of ODEs."""

from . import integrators
from .adjoint import Adjoint
from .fields import AnalyticJacobian, CircleCondition, DimwiseDifferentiable, Layered, LipschitzBounded, PairField, Separable
from .odeint import odeint

__version__ = "0.1.0"

__all__ = [
    "Adjoint",
    "AnalyticJacobian",
    "CircleCondition",
    "DimwiseDifferentiable",
    "Layered",
    "LipschitzBounded",
    "PairField",
    "Separable",
    "integrators",
    "odeint",
]
