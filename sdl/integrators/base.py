"""The integrator interface: one step of a one-step method, y_{n+1} = Φ_h(t_n, y_n)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["Integrator", "ConvergenceError"]

State = Any  # a Tensor, or a (q, p) pair of Tensors for partitioned methods


class ConvergenceError(RuntimeError):
    """An implicit stage solver did not reach its tolerance."""


class Integrator(ABC):
    """A one-step method. Concrete integrators are frozen dataclasses (they hold no learned state).

    Class attributes say what the method is, so callers never ask for it by name:
        order: classical order of accuracy.
        symplectic: True when one step is a symplectic map for every Hamiltonian system the
            method accepts.
        partitioned: True when the method needs the state as a pair (q, p) and treats the
            halves differently; otherwise a pair is flattened into one tensor at the edge.
    """

    order: int
    symplectic: bool
    partitioned: bool = False

    @abstractmethod
    def step(self, func: Callable, t: Tensor, h: float, y: State) -> State:
        """One step of size h from (t, y). ``t`` is a 0-d tensor, ``h`` a float (may be < 0)."""
