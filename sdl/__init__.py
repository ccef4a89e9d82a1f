"""sdl: structure-preserving deep learning. Deep networks as numerical integrators of ODEs."""

from . import integrators
from .fields import Layered, Separable
from .odeint import odeint

__version__ = "0.1.0"

__all__ = ["Layered", "Separable", "integrators", "odeint"]
