"""What a vector field can tell the integrators, beyond being a callable ``func(t, y)``.

Three capabilities, each an abstract base class that a field opts into:

- ``Layered``: the parameters are piecewise constant in time, θ(t) = θ^k on step k, and
  every stage of step k uses θ^k (Benning et al. 2019). ``odeint`` then takes one
  callable per step from ``layers()``, so no stage at t_k + c_i h = t_{k+1} can pick up
  θ^{k+1} by rounding.
- ``Separable``: a field on pairs (q, p) with dq/dt = V(t, p) and dp/dt = F(t, q). The
  explicit symplectic (splitting) methods call ``velocity`` and ``force`` separately and so
  evaluate only the half they need. Any other ``func(t, (q, p))`` works too, at twice
  the cost, since each half-step then evaluates both halves.
- ``DimwiseDifferentiable``: the field gives its Jacobian diagonal D_dim f = (∂f_m/∂y_m)_m
  together with its value, at about the cost of one backward pass (a HollowNet does). The
  Jacobi–Newton stage solver of the implicit Runge–Kutta methods needs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["DimwiseDifferentiable", "Layered", "Separable"]


class Separable(ABC):
    """A field on (q, p) of the form dq/dt = velocity(t, p), dp/dt = force(t, q)."""

    @abstractmethod
    def velocity(self, t: Tensor, p: Tensor) -> Tensor:
        """dq/dt, shaped like q; depends on p (and t) only."""

    @abstractmethod
    def force(self, t: Tensor, q: Tensor) -> Tensor:
        """dp/dt, shaped like p; depends on q (and t) only."""

    def __call__(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, p = y
        return self.velocity(t, p), self.force(t, q)


class Layered(nn.Module, ABC):
    """A field whose parameters θ^0, …, θ^{K-1} are constant on each of K integration steps.

    A subclass says which tensors hold θ (``layer_parameters``, each with a leading axis K)
    and how to evaluate the field for one layer's slices (``bind``); ``layers`` follows.
    """

    @property
    @abstractmethod
    def num_layers(self) -> int | None:
        """K, the number of steps (layers) the field has parameters for; None when one parameter
        set is shared by all steps (then ``odeint`` calls the field itself at every step)."""

    @abstractmethod
    def layer_parameters(self) -> tuple[Tensor, ...]:
        """Every parameter of the field, each (K, ...) when layered, in a fixed order."""

    @abstractmethod
    def bind(self, params: tuple[Tensor, ...]) -> Callable:
        """The field with one layer's parameters (slices of ``layer_parameters``): ``f_k(t, y)``."""

    def layers(self) -> Sequence[Callable]:
        """K callables ``f_k(t, y)``, the field with θ^k (one when shared); built once per integration.

        Slicing by ``unbind`` once, rather than indexing per step, keeps the backward pass
        from materialising a full-size gradient for every layer.
        """
        params = self.layer_parameters()
        if self.num_layers is None:
            return (self.bind(params),)
        return [self.bind(layer) for layer in zip(*(p.unbind(0) for p in params))]


class DimwiseDifferentiable(ABC):
    """A field f(t, y) that returns its Jacobian diagonal D_dim f = (∂f_m/∂y_m)_m with its value."""

    @abstractmethod
    def value_and_jacobian_diagonal(self, t: Tensor, y: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(f(t, y), D_dim f(t, y)), both shaped like y.

        The value keeps its autograd graph; the diagonal has one only when ``create_graph``.
        """
