"""sdl: structure-preserving deep learning. Deep networks as numerical integrators of ODEs."""

from . import integrators
from .adjoint import Adjoint
from .fields import DimwiseDifferentiable, Layered, Separable
from .odeint import odeint

__version__ = "0.1.0"

__all__ = ["Adjoint", "DimwiseDifferentiable", "Layered", "Separable", "integrators", "odeint"]
