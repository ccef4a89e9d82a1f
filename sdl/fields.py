"""What a vector field can tell the integrators, beyond being a callable ``func(t, y)``.

Capabilities are abstract base classes that a field opts into; nothing asks for a concrete class:

- ``PairField``: the field acts on pair states y = (q, p) and returns (dq/dt, dp/dt). An ODENet
  then carries (q, p); splitting methods need such a state, every other method flattens it.
- ``Separable``: a ``PairField`` of the form dq/dt = V(t, p), dp/dt = F(t, q). The explicit
  symplectic (splitting) methods call ``velocity`` and ``force`` separately and so evaluate only
  the half they need. Any other pair callable works with them too, at twice the cost (each
  half-step evaluates both halves), and the step is then not symplectic.
- ``Layered``: the parameters are piecewise constant in time, θ(t) = θ^k on step k, and
  every stage of step k uses θ^k (Benning et al. 2019). ``odeint`` then takes one
  callable per step from ``layers()``, so no stage at t_k + c_i h = t_{k+1} can pick up
  θ^{k+1} by rounding. ``layer_count(field)`` says whether a field is layered.
- ``DimwiseDifferentiable``: the field gives its Jacobian diagonal D_dim f = (∂f_m/∂y_m)_m
  together with its value, at about the cost of one backward pass (a HollowNet does). The
  Jacobi–Newton stage solver of the implicit Runge–Kutta methods needs it.
- ``AnalyticJacobian``: the field gives its full Jacobian ∂f/∂z in closed form (the bound
  layers of ``ResNetField`` and ``GradientFlowField`` do); stability diagnostics use it instead
  of autograd.
- ``LipschitzBounded``: the field gives a proven upper bound on its ℓ₂ Lipschitz constant in z.
- ``CircleCondition``: the field satisfies the circle condition of Dahlquist and Jeltsch with a
  known radius ρ (and a one-sided Lipschitz bound ν ≤ 0): then explicit Runge–Kutta steps of size
  h with hρ ≤ r are non-expansive (``sdl.stability.contractivity_radius``).

A bound layer (one entry of ``layers()``) is a field with one parameter set; the capabilities
that describe one layer (``AnalyticJacobian``, ``LipschitzBounded``, ``CircleCondition``) are
declared by the bound layers, so that a certificate can ask each step for its own constants.

``Capabilities`` collects what a field declares as plain booleans, from a field or from a field
class before any instance exists (a config), for ``sdl.solve.resolve_solve``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeGuard, TypeVar

from torch import Tensor, nn

__all__ = [
    "AnalyticJacobian",
    "Capabilities",
    "CircleCondition",
    "DimwiseDifferentiable",
    "Layered",
    "LipschitzBounded",
    "PairField",
    "Separable",
    "layer_count",
]


class PairField:
    """A field on pair states: ``f(t, (q, p)) -> (dq/dt, dp/dt)``, each part shaped like its state.

    A marker: it promises the state layout only. A learned non-separable H(q, p) is a
    ``PairField``; one with velocity(p) and force(q) halves is ``Separable`` as well.
    """


class Separable(PairField, ABC):
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
    and how to evaluate the field for one layer's slices (``bind``); ``layers`` follows. Any
    other parameter of the module (a global scale, say) is shared by all steps.
    """

    @property
    @abstractmethod
    def num_layers(self) -> int | None:
        """K, the number of steps (layers) the field has parameters for; None when one parameter
        set is shared by all steps (then ``odeint`` calls the field itself at every step)."""

    @abstractmethod
    def layer_parameters(self) -> tuple[Tensor, ...]:
        """The per-layer parameters, each (K, ...) when layered, in a fixed order; the module's
        other parameters are shared by all steps."""

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
        return [self.bind(layer) for layer in zip(*(p.unbind(0) for p in params), strict=True)]

    def layer(self, k: int) -> Callable:
        """Layer k alone, ``f_k(t, y)`` (the one shared layer when ``num_layers`` is None), without
        binding the others: for looking at one layer; ``layers()`` is the form to integrate with."""
        params = self.layer_parameters()
        return self.bind(params if self.num_layers is None else tuple(p[k] for p in params))


def layer_count(field: object) -> int | None:
    """K when ``field`` is ``Layered`` with one parameter set per step; None for a field whose
    parameters all steps share, and for any other callable."""
    return field.num_layers if isinstance(field, Layered) else None


def _has_layers(field: object) -> TypeGuard[Layered]:
    """``layer_count(field) is not None``, in a form that tells the type checker ``field`` is ``Layered``."""
    return layer_count(field) is not None


State = TypeVar("State")  # a tensor y, or a pair (q, p)


class DimwiseDifferentiable(ABC, Generic[State]):
    """A field f(t, y) that returns its Jacobian diagonal D_dim f = (∂f_m/∂y_m)_m with its value.

    ``DimwiseDifferentiable[Tensor]`` for a field on tensors, ``[tuple[Tensor, Tensor]]`` on pairs."""

    __call__: Callable[..., Any]  # f(t, y); declared for the type checker, nn.Module provides it

    @abstractmethod
    def value_and_jacobian_diagonal(self, t: Tensor, y: State, *, create_graph: bool = False) -> tuple[State, State]:
        """(f(t, y), D_dim f(t, y)), both shaped like y.

        The value keeps its autograd graph; the diagonal has one only when ``create_graph``.
        """


class AnalyticJacobian(ABC):
    """A field f(t, z) on a single tensor state with its Jacobian in closed form."""

    @abstractmethod
    def jacobian(self, t: Tensor | None, z: Tensor) -> Tensor:
        """∂f/∂z at z: (..., d) → (..., d, d), J[..., a, b] = ∂f_a/∂z_b, differentiable."""


class LipschitzBounded(ABC):
    """A field with a proven bound L: ‖f(t, z₁) - f(t, z₂)‖₂ ≤ L ‖z₁ - z₂‖₂ for all z₁, z₂ and t."""

    @abstractmethod
    def lipschitz_bound(self) -> Tensor:
        """L, an upper bound (never an estimate) on the ℓ₂ Lipschitz constant of z ↦ f(t, z):
        shape (K,) for a layered field (layer k's bound), () when all steps share the parameters.
        It keeps its graph, so it can be penalised during training."""


class CircleCondition(ABC):
    """A field with the circle condition of radius ρ (Dahlquist & Jeltsch 1979): for all z₁, z₂, t,

        ‖f(z₁) - f(z₂) + ρ (z₁ - z₂)‖₂ ≤ ρ ‖z₁ - z₂‖₂,   equivalently   ⟨Δf, Δz⟩ ≤ -‖Δf‖² / (2ρ),

    with Δf = f(t, z₁) - f(t, z₂), Δz = z₁ - z₂ (expand the square). It implies ‖Δf‖ ≤ 2ρ‖Δz‖ and
    ⟨Δf, Δz⟩ ≤ 0. A gradient flow f = -∇V with V convex and ∇V Λ-Lipschitz has it with ρ = Λ/2.
    """

    @abstractmethod
    def circle_radius(self) -> Tensor | None:
        """ρ, a proven radius: (K,) for a layered field, () for one parameter set; None when the
        field cannot promise the condition (e.g. its activation is not monotone)."""

    @abstractmethod
    def one_sided_lipschitz_bound(self) -> Tensor | None:
        """ν ≤ 0 with ⟨Δf, Δz⟩ ≤ ν ‖Δz‖² for all z₁, z₂ (ν < 0: strongly monotone -f); shapes as
        ``circle_radius``; None when the condition does not hold."""


@dataclass(frozen=True)
class Capabilities:
    """What a field declares, as the checks of ``sdl.solve.resolve_solve`` need it.

    Attributes:
        name: the field's type name, for messages.
        pair: acts on pair states (q, p) (``PairField``).
        separable: has velocity/force halves (``Separable``); implies ``pair``.
        dimwise_differentiable: the callables the stepper sees give D_dim f (for a layered field,
            its bound layers must be ``DimwiseDifferentiable``).
        layered: one parameter set per step (``layer_count(field)`` is not None).
    """

    name: str
    pair: bool = False
    separable: bool = False
    dimwise_differentiable: bool = False
    layered: bool = False

    def __post_init__(self) -> None:
        if self.separable and not self.pair:
            raise ValueError(f"{self.name}: a separable field acts on pairs (q, p); pass pair=True as well")

    @classmethod
    def of(cls, field: Callable) -> Capabilities:
        """The capabilities of a field instance (any callable; a plain function declares none)."""
        layered = _has_layers(field)
        stepped = field.layer(0) if _has_layers(field) else field  # what a stepper calls
        return cls(
            name=type(field).__name__,
            pair=isinstance(field, PairField),
            separable=isinstance(field, Separable),
            dimwise_differentiable=isinstance(stepped, DimwiseDifferentiable),
            layered=layered,
        )

    @classmethod
    def of_type(cls, field_type: type, *, layered: bool = False) -> Capabilities:
        """The capabilities of instances of ``field_type``, before any exists (e.g. in a config).
        ``layered``: whether the instance will have one parameter set per step (a class cannot say)."""
        if not isinstance(field_type, type):
            raise TypeError(f"field_type must be a class; got {field_type!r}")
        if layered and not issubclass(field_type, Layered):
            raise ValueError(f"layered=True needs a sdl.fields.Layered field type; {field_type.__name__} is not")
        return cls(
            name=field_type.__name__,
            pair=issubclass(field_type, PairField),
            separable=issubclass(field_type, Separable),
            dimwise_differentiable=issubclass(field_type, DimwiseDifferentiable) and not layered,
            layered=layered,
        )
