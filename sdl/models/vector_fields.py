"""Vector fields f(t, z; θ) as small ``nn.Module``s, with per-layer or shared parameters.

Every field holds one affine map z ↦ A z + b per layer (A: (width, dim), b: (width,)); with
``num_layers=K`` the parameters carry a leading axis K and step k of an integration uses θ^k
(``sdl.fields.Layered``); with ``num_layers=None`` they are shared by all steps and the
field is an ordinary autonomous ``func(t, z)``.

Shapes: z is (..., dim); the output has the shape of z.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fields import AnalyticJacobian, CircleCondition, Layered, LipschitzBounded, Separable, _has_layers
from .activations import Activation, activation
from .interpolation import prolong_layers

__all__ = [
    "AntisymmetricField",
    "GradientFlowField",
    "HamiltonianField",
    "ResNetField",
    "SwitchingField",
    "parameter_smoothness",
]


def _affine_parameters(lead: tuple[int, ...], width: int, dim: int, scale: float) -> tuple[nn.Parameter, nn.Parameter]:
    """A ~ U(-s, s), b ~ U(-s, s), s = scale / √dim (nn.Linear's default when scale = 1)."""
    bound = scale / math.sqrt(dim)
    weight = nn.Parameter(torch.empty(*lead, width, dim).uniform_(-bound, bound))
    bias = nn.Parameter(torch.empty(*lead, width).uniform_(-bound, bound))
    return weight, bias


class _Field(Layered):
    """Shared machinery: parameters per layer or shared, and binding θ^k to a callable."""

    activation: Activation  # σ, set by every field

    def __init__(self, dim: int, num_layers: int | None) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if num_layers is not None and (not isinstance(num_layers, int) or num_layers < 1):
            raise ValueError(f"num_layers must be a positive int or None (shared parameters), got {num_layers!r}")
        self.dim = dim
        self._num_layers = num_layers

    @property
    def num_layers(self) -> int | None:
        return self._num_layers

    @property
    def _lead(self) -> tuple[int, ...]:
        return () if self._num_layers is None else (self._num_layers,)

    def forward(self, t: Tensor, z):
        return self._evaluate(self._shared_parameters(), t, z)

    def _shared_parameters(self) -> tuple[Tensor, ...]:
        if self._num_layers is not None:
            raise TypeError(
                f"{type(self).__name__} has one parameter set per layer ({self._num_layers}); integrate it with "
                f"sdl.odeint on a grid of {self._num_layers + 1} points, or evaluate layer k as field.layer(k)(t, z)"
            )
        return self.layer_parameters()

    @abstractmethod
    def _evaluate(self, params: tuple[Tensor, ...], t: Tensor, z):
        """f(t, z; θ) for one layer's parameters."""

    def _prolong(self, factor: int, interpolation: str) -> None:
        """In place: θ on factor·K layers of the same time interval (``prolong_layers``); a field
        whose parameters all steps share is left as it is (θ(t) is constant)."""
        if self._num_layers is None:
            return
        per_layer = {id(p) for p in self.layer_parameters()}
        constants = [name for name, b in self.named_buffers(recurse=False) if id(b) in per_layer]
        if constants:
            raise ValueError(
                f"{type(self).__name__} cannot be refined: its per-layer constants {', '.join(constants)} (the kinds of its "
                f"layers) are not values of a function of time"
            )
        for name, param in list(self.named_parameters(recurse=False)):
            if id(param) in per_layer:
                setattr(self, name, nn.Parameter(prolong_layers(param.detach(), factor, interpolation)))
        self._num_layers = factor * self._num_layers


class _Layer:
    """A field with the parameters of one layer bound: ``layer(t, z)``."""

    def __init__(self, field: _Field, params: tuple[Tensor, ...]) -> None:
        self.field = field
        self.params = params

    def __call__(self, t: Tensor, z):
        return self.field._evaluate(self.params, t, z)


class _AnalyticLayer(_Layer, AnalyticJacobian, LipschitzBounded):
    """One layer of a field with a closed-form Jacobian and a Lipschitz bound: also
    ``layer.jacobian(t, z)`` and ``layer.lipschitz_bound()`` (shape ())."""

    field: ResNetField | GradientFlowField | AntisymmetricField | SwitchingField

    def jacobian(self, t: Tensor | None, z: Tensor) -> Tensor:
        return self.field._jacobian(self.params, t, z)

    def lipschitz_bound(self) -> Tensor:
        return self.field._lipschitz(self.params)


class _DissipativeLayer(_AnalyticLayer, CircleCondition):
    """One layer of a field that may satisfy the circle condition: also its radius and one-sided bound."""

    field: GradientFlowField | SwitchingField

    def circle_radius(self) -> Tensor | None:
        return self.field._circle(self.params)[0]

    def one_sided_lipschitz_bound(self) -> Tensor | None:
        return self.field._circle(self.params)[1]


def _activation_lipschitz(field: _Field) -> float:
    """L_σ of the field's activation, or a clear error when it is not known."""
    bound = field.activation.lipschitz
    if bound is None:
        raise ValueError(
            f"{type(field).__name__}: the Lipschitz constant of activation {field.activation.name!r} is not known; "
            f"give it as Activation(..., lipschitz=L) with L = sup |σ'|"
        )
    return bound


def _gradient_flow_circle(act: Activation, weight: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(ρ, ν) of f = -Aᵀσ(Az + b) for A = ``weight`` (..., width, dim): ρ = L_σ σ_max(A)² / 2 and
    ν = -m σ_min(A)², exact singular values; (None, None) unless σ is monotone with a known L_σ."""
    if not act.monotone_unit_slope or act.lipschitz is None:
        return None, None
    singular = torch.linalg.svdvals(weight)  # (..., min(width, dim)), descending
    radius = 0.5 * act.lipschitz * singular[..., 0].square()
    if weight.shape[-2] < weight.shape[-1] or not act.min_slope:  # AᵀA is singular, or σ' may vanish
        return radius, torch.zeros_like(radius)
    return radius, -act.min_slope * singular[..., -1].square()


class ResNetField(_Field, LipschitzBounded):
    """f(t, z) = σ(A z + b), A: (dim, dim). Explicit Euler with h = 1 is the plain ResNet layer.

    Jacobian ∂f/∂z = diag σ'(Az + b) A (not normal in general), offered by each bound layer
    (``sdl.fields.AnalyticJacobian``). Lipschitz bound L_σ ‖A‖₂ (``lipschitz_bound``).
    """

    def __init__(
        self, dim: int, activation_name: str | Activation = "tanh", num_layers: int | None = None, init_scale: float = 1.0
    ) -> None:
        super().__init__(dim, num_layers)
        self.activation = activation(activation_name)
        self.weight, self.bias = _affine_parameters(self._lead, dim, dim, init_scale)

    def layer_parameters(self):
        return (self.weight, self.bias)

    def bind(self, params) -> _AnalyticLayer:
        return _AnalyticLayer(self, params)

    def lipschitz_bound(self) -> Tensor:
        """L_σ ‖A^k‖₂ per layer, (K,) or (): ‖σ(Az₁ + b) - σ(Az₂ + b)‖ ≤ L_σ ‖A(z₁ - z₂)‖, with the
        exact spectral norm (not a power-iteration estimate, which would be a lower bound)."""
        return self._lipschitz(self.layer_parameters())

    def _lipschitz(self, params) -> Tensor:
        return _activation_lipschitz(self) * torch.linalg.matrix_norm(params[0], 2)

    def _evaluate(self, params, t, z):
        weight, bias = params
        return self.activation.sigma(F.linear(z, weight, bias))

    def _jacobian(self, params, t, z):
        weight, bias = params
        slope = self.activation.derivative(F.linear(z, weight, bias))
        return slope.unsqueeze(-1) * weight


class GradientFlowField(_Field, LipschitzBounded, CircleCondition):
    """f(t, z) = -Aᵀσ(A z + b) = -∇V(z),  V(z) = 1ᵀγ(A z + b),  A: (width, dim).

    Jacobian -Aᵀ diag σ'(Az + b) A: symmetric, and negative semidefinite when σ' ≥ 0, so for
    0 ≤ σ' ≤ 1 the one-sided Lipschitz constant satisfies -σ_min(A)² ≤ ν ≤ 0 (the flow contracts).
    Each bound layer offers it (``sdl.fields.AnalyticJacobian``). Lipschitz bound L_σ ‖A‖₂².

    Circle condition (``sdl.fields.CircleCondition``), for a monotone σ with m ≤ σ' ≤ L_σ: for
    any z₁, z₂, f(z₁) - f(z₂) = -Aᵀ D A (z₁ - z₂) with D diagonal, D_jj ∈ [m, L_σ] the divided
    differences of σ (ReLU included), so with Δz = z₁ - z₂, Δf = f(z₁) - f(z₂):
    ‖Δf‖² ≤ ‖A‖² L_σ (AΔz)ᵀD(AΔz) = -L_σ‖A‖² ⟨Δf, Δz⟩, i.e. radius ρ = L_σ ‖A‖₂² / 2; and
    ⟨Δf, Δz⟩ ≤ -m ‖AΔz‖² ≤ -m σ_min(A)² ‖Δz‖², i.e. ν = -m σ_min(A)² (σ_min = 0 when width < dim).
    """

    def __init__(
        self,
        dim: int,
        activation_name: str | Activation = "tanh",
        num_layers: int | None = None,
        width: int | None = None,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__(dim, num_layers)
        self.activation = activation(activation_name)
        self.width = dim if width is None else width
        self.weight, self.bias = _affine_parameters(self._lead, self.width, dim, init_scale)

    def layer_parameters(self):
        return (self.weight, self.bias)

    def bind(self, params) -> _DissipativeLayer:
        return _DissipativeLayer(self, params)

    def lipschitz_bound(self) -> Tensor:
        """L_σ ‖A^k‖₂² per layer, (K,) or (): z ↦ Az, σ and Aᵀ are ‖A‖-, L_σ- and ‖A‖-Lipschitz;
        exact spectral norm. Equal to the Lipschitz constant for σ(s) = s (f = -AᵀA z - Aᵀb)."""
        return self._lipschitz(self.layer_parameters())

    def circle_radius(self) -> Tensor | None:
        """ρ = L_σ ‖A^k‖₂² / 2 per layer, (K,) or (); None unless 0 ≤ σ' ≤ L_σ (a monotone σ)."""
        return self._circle(self.layer_parameters())[0]

    def one_sided_lipschitz_bound(self) -> Tensor | None:
        """ν = -m σ_min(A^k)² per layer, (K,) or (), m = inf σ' (0 when not known); None as ``circle_radius``."""
        return self._circle(self.layer_parameters())[1]

    def _lipschitz(self, params) -> Tensor:
        return _activation_lipschitz(self) * torch.linalg.matrix_norm(params[0], 2).square()

    def _circle(self, params) -> tuple[Tensor | None, Tensor | None]:
        return _gradient_flow_circle(self.activation, params[0])

    def _evaluate(self, params, t, z):
        weight, bias = params
        return -self.activation.sigma(F.linear(z, weight, bias)) @ weight

    def _jacobian(self, params, t, z):
        weight, bias = params
        slope = self.activation.derivative(F.linear(z, weight, bias))
        return -(weight.T * slope.unsqueeze(-2)) @ weight

    def potential(self, z: Tensor, layer: int = 0) -> Tensor:
        """V(z) = 1ᵀγ(A^k z + b^k), shape z.shape[:-1]."""
        weight, bias = cast(_Layer, self.layer(layer)).params  # bind() returns a _Layer
        return self.activation.antiderivative(F.linear(z, weight, bias)).sum(-1)


class AntisymmetricField(_Field, LipschitzBounded):
    """f(t, z) = σ((W - Wᵀ - γI) z + b), W: (dim, dim), γ ≥ 0 (Haber & Ruthotto 2017; Chang et al. 2018).

    For σ(s) = s the Jacobian W - Wᵀ - γI is a normal matrix with eigenvalues -γ ± iω: the linear
    flow neither grows nor decays (γ = 0), or decays at rate γ; for σ with σ' ≥ 0 the Jacobian
    diag σ'(·) (W - Wᵀ - γI) keeps eigenvalues near the imaginary axis. γ is fixed, not learned
    (Meganet uses 1e-4). Bound layers offer the Jacobian (``sdl.fields.AnalyticJacobian``);
    Lipschitz bound L_σ ‖W - Wᵀ - γI‖₂ = L_σ (‖W - Wᵀ‖₂² + γ²)^½ (normal matrix), computed as a norm.
    """

    def __init__(
        self,
        dim: int,
        activation_name: str | Activation = "tanh",
        num_layers: int | None = None,
        gamma: float = 1e-4,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__(dim, num_layers)
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma < math.inf):
            raise ValueError(f"gamma must be a finite number ≥ 0, got {gamma!r}")
        self.activation = activation(activation_name)
        self.gamma = float(gamma)
        self.weight, self.bias = _affine_parameters(self._lead, dim, dim, init_scale)

    def layer_parameters(self):
        return (self.weight, self.bias)

    def bind(self, params) -> _AnalyticLayer:
        return _AnalyticLayer(self, params)

    def matrix(self, weight: Tensor) -> Tensor:
        """W - Wᵀ - γI for W: (..., dim, dim)."""
        return weight - weight.mT - self.gamma * torch.eye(self.dim, dtype=weight.dtype, device=weight.device)

    def lipschitz_bound(self) -> Tensor:
        """L_σ ‖W^k - W^kᵀ - γI‖₂ per layer, (K,) or (), exact spectral norm."""
        return self._lipschitz(self.layer_parameters())

    def _lipschitz(self, params) -> Tensor:
        return _activation_lipschitz(self) * torch.linalg.matrix_norm(self.matrix(params[0]), 2)

    def _evaluate(self, params, t, z):
        weight, bias = params
        return self.activation.sigma(F.linear(z, self.matrix(weight), bias))

    def _jacobian(self, params, t, z):
        weight, bias = params
        matrix = self.matrix(weight)
        return self.activation.derivative(F.linear(z, matrix, bias)).unsqueeze(-1) * matrix


class SwitchingField(_Field, LipschitzBounded):
    """Alternating layers (Celledoni et al. 2022), A^k: (dim, dim), u = σ(A^k z + b^k):

        k even (expansive):    f_k(z) = u                (a ResNet layer)
        k odd  (contractive):  f_k(z) = -A^kᵀ u          (a gradient-flow layer)

    Written as one formula, f_k = e_k u - (1 - e_k) A^kᵀ u with the constant e_k = 1 on even and
    0 on odd layers (the buffer ``expansive``, a third per-layer tensor), so that a bound layer
    carries its kind with its parameters and every gradient method binds the right formula.

    With explicit Euler, ``sdl.models.constrained.switching_step_sizes`` chooses the two step sizes so that
    each (expansive, contractive) pair is non-expansive (``ODENet(..., constraint="switching")``).
    Bound layers offer the Jacobian e D A - (1 - e) AᵀDA (D = diag σ'(Az + b)), the Lipschitz
    bound L_σ‖A‖ (e + (1 - e)‖A‖) and, on contractive layers, the circle condition of
    ``GradientFlowField`` (ρ = L_σ‖A‖²/2, ν = -m σ_min(A)²; ``circle_radius`` is None on expansive ones).
    """

    def __init__(
        self, dim: int, activation_name: str | Activation = "leaky_relu", num_layers: int = 2, init_scale: float = 1.0
    ) -> None:
        if not isinstance(num_layers, int) or num_layers < 2 or num_layers % 2:
            raise ValueError(f"num_layers must be an even int ≥ 2 (expansive, contractive pairs), got {num_layers!r}")
        super().__init__(dim, num_layers)
        self.activation = activation(activation_name)
        self.weight, self.bias = _affine_parameters(self._lead, dim, dim, init_scale)
        self.register_buffer("expansive", (torch.arange(num_layers) % 2 == 0).to(self.weight.dtype), persistent=False)

    def layer_parameters(self):
        return (self.weight, self.bias, self.expansive)

    def bind(self, params) -> _DissipativeLayer:
        return _DissipativeLayer(self, params)

    def lipschitz_bound(self) -> Tensor:
        """L_σ ‖A^k‖₂ on expansive and L_σ ‖A^k‖₂² on contractive layers, (K,), exact norms."""
        return self._lipschitz(self.layer_parameters())

    def _lipschitz(self, params) -> Tensor:
        weight, _, expansive = params
        norm = torch.linalg.matrix_norm(weight, 2)
        return _activation_lipschitz(self) * norm * (expansive + (1 - expansive) * norm)

    def _circle(self, params) -> tuple[Tensor | None, Tensor | None]:
        """(ρ, ν) of one contractive layer, (None, None) for an expansive one (reads e to the host)."""
        if bool(params[2]):
            return None, None
        return _gradient_flow_circle(self.activation, params[0])

    def _evaluate(self, params, t, z):
        weight, bias, expansive = params
        u = self.activation.sigma(F.linear(z, weight, bias))
        return expansive * u - (1 - expansive) * (u @ weight)

    def _jacobian(self, params, t, z):
        weight, bias, expansive = params
        slope = self.activation.derivative(F.linear(z, weight, bias))
        return expansive * slope.unsqueeze(-1) * weight - (1 - expansive) * (weight.T * slope.unsqueeze(-2)) @ weight


KINETIC_MODELS = ("quadratic", "coupled", "learned")


class HamiltonianField(_Field, Separable):
    """A separable Hamiltonian field on (q, p): H = T(p) + V(q), V(q) = 1ᵀγ(A q + b),

        dq/dt = ∂H/∂p,   dp/dt = -∂H/∂q = -Aᵀσ(A q + b),

    with the kinetic energy T chosen by ``kinetic``:
      - "quadratic": T = ½|p|², dq/dt = p; eliminating p gives q'' = -Aᵀσ(Aq + b).
      - "coupled": T = 1ᵀγ(A p + b) with the same A, b: dq/dt = Aᵀσ(A p + b).
      - "learned": T = 1ᵀγ₁(A₁ p + b₁) with its own A₁, b₁ and activation ``kinetic_activation``.
    A (and A₁) are (width, dim). The state is a pair (q, p) of tensors of shape (..., dim).
    """

    def __init__(
        self,
        dim: int,
        activation_name: str | Activation = "tanh",
        num_layers: int | None = None,
        kinetic: str = "quadratic",
        kinetic_activation: str | Activation = "tanh",
        width: int | None = None,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__(dim, num_layers)
        if kinetic not in KINETIC_MODELS:
            raise ValueError(f"unknown kinetic model {kinetic!r}; valid choices: {', '.join(KINETIC_MODELS)}")
        self.kinetic = kinetic
        self.activation = activation(activation_name)
        self.kinetic_activation = activation(kinetic_activation) if kinetic == "learned" else self.activation
        self.width = dim if width is None else width
        self.weight, self.bias = _affine_parameters(self._lead, self.width, dim, init_scale)
        if kinetic == "learned":
            self.kinetic_weight, self.kinetic_bias = _affine_parameters(self._lead, self.width, dim, init_scale)

    def layer_parameters(self):
        if self.kinetic == "learned":
            return (self.weight, self.bias, self.kinetic_weight, self.kinetic_bias)
        return (self.weight, self.bias)

    def bind(self, params):
        return _SeparableLayer(self, params)

    def _kinetic_parameters(self, params):
        return params[2:] if self.kinetic == "learned" else params[:2]

    def _velocity(self, params, p: Tensor) -> Tensor:
        if self.kinetic == "quadratic":
            return p
        weight, bias = self._kinetic_parameters(params)
        return self.kinetic_activation.sigma(F.linear(p, weight, bias)) @ weight

    def _force(self, params, q: Tensor) -> Tensor:
        weight, bias = params[:2]
        return -self.activation.sigma(F.linear(q, weight, bias)) @ weight

    def _evaluate(self, params, t, y):
        q, p = y
        return self._velocity(params, p), self._force(params, q)

    def velocity(self, t: Tensor, p: Tensor) -> Tensor:
        return self._velocity(self._shared_parameters(), p)

    def force(self, t: Tensor, q: Tensor) -> Tensor:
        return self._force(self._shared_parameters(), q)

    def hamiltonian(self, q: Tensor, p: Tensor, layer: int = 0) -> Tensor:
        """H(q, p) = T(p) + V(q) with the parameters of ``layer``; shape q.shape[:-1]."""
        params = cast(_Layer, self.layer(layer)).params  # bind() returns a _Layer
        return self.kinetic_energy(params, p) + self.potential_energy(params, q)

    # The energies take the parameters explicitly (the tensors of ``layer_parameters()``), each with
    # one layer's shape or with leading axes that broadcast against the points' batch, one parameter
    # set per point (θ(t) at a per-point time, ``sdl.models.nonautonomous``).

    def potential_energy(self, params: tuple[Tensor, ...], q: Tensor) -> Tensor:
        """V(q) = 1ᵀγ(A q + b): (..., dim) → (...)."""
        weight, bias = params[:2]
        return self.activation.antiderivative(_affine(q, weight, bias)).sum(-1)

    def kinetic_energy(self, params: tuple[Tensor, ...], p: Tensor) -> Tensor:
        """T(p): ½|p|², or 1ᵀγ(A p + b) with the kinetic model's A, b: (..., dim) → (...)."""
        if self.kinetic == "quadratic":
            return 0.5 * p.square().sum(-1)
        weight, bias = self._kinetic_parameters(params)
        return self.kinetic_activation.antiderivative(_affine(p, weight, bias)).sum(-1)


def _affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """A x + b for x: (..., dim), A: (width, dim) or per point (..., width, dim), b: (width,) or (..., width)."""
    if weight.ndim == 2:
        return F.linear(x, weight, bias)
    return (weight @ x.unsqueeze(-1)).squeeze(-1) + bias


class _SeparableLayer(_Layer, Separable):
    """One layer of a Hamiltonian field: splittings call its halves separately."""

    field: HamiltonianField

    def velocity(self, t: Tensor, p: Tensor) -> Tensor:
        return self.field._velocity(self.params, p)

    def force(self, t: Tensor, q: Tensor) -> Tensor:
        return self.field._force(self.params, q)


SMOOTHNESS_FORMS = ("derivative", "difference")


def parameter_smoothness(field: nn.Module, h: float, form: str = "derivative") -> Tensor:
    """The roughness of θ(t) over the layers, summed over the per-layer parameters of ``field``
    (its ``layer_parameters()``; a parameter shared by all steps is constant in t: roughness 0).

    form="derivative":  R_h(θ) = h Σ_k ‖(θ^{k+1} - θ^k)/h‖²  (the discretisation of ∫‖θ'(t)‖² dt,
                        Benning et al. 2019; it grows like 1/h for rough θ)
    form="difference":  R_h(θ) = h Σ_k ‖θ^{k+1} - θ^k‖²       (the same without the 1/h², as some
                        reference codes write it: 1/h² times weaker)

    Multiply by λ for the penalty. Zero for shared parameters (and for a field that is not ``Layered``).
    h is the step size, finite and > 0.
    The field's buffers (constants such as the layer kinds of ``SwitchingField``) are left out.
    """
    if not (isinstance(h, (int, float)) and 0.0 < h < math.inf):
        raise ValueError(f"h must be a finite positive number, got {h!r}")
    if form not in SMOOTHNESS_FORMS:
        raise ValueError(f"unknown smoothness form {form!r}; valid choices: {', '.join(SMOOTHNESS_FORMS)}")
    if not _has_layers(field):
        return torch.zeros((), device=next(field.parameters()).device)
    constants = list(field.buffers())
    learned = [p for p in field.layer_parameters() if not any(p is b for b in constants)]
    if not learned:
        return torch.zeros((), device=next(field.parameters()).device)
    terms = [p.diff(dim=0).square().sum() for p in learned]
    squares = sum(terms[1:], terms[0])
    return squares / h if form == "derivative" else squares * h
