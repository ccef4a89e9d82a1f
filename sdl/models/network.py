"""ODE-networks: lift the input, integrate a vector field for K steps (one step = one layer), classify."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal, spectral_norm

from ..adjoint import Adjoint
from ..fields import Capabilities, Layered, PairField, layer_count
from ..integrators import ExplicitRungeKutta, Integrator
from ..odeint import integrate
from ..solve import TimeGrid, UniformGrid, resolve_solve
from ..stability.contractivity import contractivity_radius
from .constrained import (
    CONSTRAINTS,
    NORMS,
    SpectralNorm,
    _check_gradient_flow,
    _check_switching,
    nonexpansive_step_sizes,
    rescale_to_rule,
    switching_step_sizes,
)
from .interpolation import _check_interpolation
from .vector_fields import _Field

__all__ = ["HEADS", "LIFTS", "ODENet"]

LIFTS = ("pad", "linear", "orthogonal", "spectral")
HEADS = ("linear", "orthogonal", "spectral")
MOMENTA = ("zero", "linear")
_STEP_RULES = ("nonexpansive_step", "switching")  # constraints that choose the step sizes h_k


class ODENet(nn.Module):
    """x ↦ η(wᵀ z^K + μ), where z^K is K steps of ``method`` for dz/dt = f(t, z; θ) over [0, T].

        z^0 = lift(x)                       (N, dim): zero padding, or a learned linear map
        z^{k+1} = Φ_{h_k}(z^k; θ^k)         one integrator step per layer, h_k = h = T/K (a step rule: h_k ≤ h)
        logits = z^K wᵀ + μ                 (N,) for 2 classes (logistic head), (N, C) for C > 2 (softmax)

    For a field on pairs (``sdl.PairField``, e.g. ``HamiltonianField``, or a learned
    non-separable H(q, p)) the state is (q, p) with q^0 = lift(x) and p^0 = 0 or a learned linear
    map of x (``momentum``); the head reads q^K. Splitting methods need such a field; they use
    the velocity/force halves of a ``Separable`` one (symplectic) and evaluate both halves of any
    other (then not symplectic).

    The solve (method, state layout, gradient, stage solver) is resolved and checked once, here
    (``sdl.solve.resolve_solve``); a forward pass then runs it with no further checks and no host
    sync: K steps of an s-stage explicit method evaluate the field s·K times.

    Args:
        field: the vector field module, with attribute ``dim``; a ``Layered`` field's
            ``num_layers`` is K (None: parameters shared by all steps).
        num_steps: K; defaults to ``field.num_layers``.
        t_final: T, so the step is h = T / K.
        method: integrator name or ``Integrator``; swapping it changes nothing else.
        in_dim: input features; num_classes: 2 for a logistic head, more for softmax.
        lift: "pad" (needs dim ≥ in_dim, an isometry), "linear", "orthogonal" (orthonormal columns,
            or rows when dim < in_dim: ‖·‖₂ = 1, by ``torch.nn.utils.parametrizations.orthogonal``)
            or "spectral" (``spectral_norm``: the weight divided by a power-iteration estimate of
            its norm, which is a lower bound, so ‖·‖₂ can exceed 1 slightly).
        head: "linear", "orthogonal" or "spectral", as for the lift.
        constraint: None, or a name from ``sdl.models.CONSTRAINTS`` (``sdl.models.constrained``):
            "nonexpansive" registers a parametrisation on ``field.weight`` that rescales A^k so that
            h L_σ ‖A^k‖₂² ≤ 2r (r = ``sdl.stability.contractivity_radius`` of the method);
            "nonexpansive_step" and "switching" choose the step sizes h_k from the weights at
            every forward pass (``step_sizes()``), read to the host once per pass.
        constraint_norm: "exact" (SVD) or "power" (one warm-started power iteration per training
            forward pass; exact in eval mode) for ‖A^k‖₂ in the "nonexpansive" rules.
        gradient: "dto", "otd" or an ``sdl.Adjoint``, as for ``sdl.odeint``.
        **method_options: the stage-solver settings ``solver``, ``tol``, ``max_iter`` of a method
            given by name.
    """

    def __init__(
        self,
        field: nn.Module,
        *,
        num_steps: int | None = None,
        t_final: float = 1.0,
        method: str | Integrator = "rk4",
        in_dim: int = 2,
        num_classes: int = 2,
        lift: str = "pad",
        head: str = "linear",
        momentum: str = "zero",
        constraint: str | None = None,
        constraint_norm: str = "exact",
        gradient: str | Adjoint = "dto",
        **method_options,
    ) -> None:
        super().__init__()
        self.field = field
        self.dim = field.dim
        self.pair_state = isinstance(field, PairField)  # the state is (q, p)
        layers = layer_count(field)
        self._layers = layers
        num_steps = layers if num_steps is None else num_steps
        if num_steps is None:
            raise ValueError("num_steps is needed when the field shares its parameters across steps")
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if layers is not None and layers != num_steps:
            raise ValueError(f"the field has {layers} layers but num_steps={num_steps}")
        if not t_final > 0:
            raise ValueError(f"t_final must be positive, got {t_final!r}")
        self.num_steps, self.t_final = num_steps, float(t_final)
        self.solve = resolve_solve(method, gradient, field=Capabilities.of(field), output="last", **method_options)
        self._trajectory_solve = dataclasses.replace(self.solve, output="all")
        self.gradient = gradient
        self._grid = UniformGrid(0.0, self.t_final, num_steps)  # t_k and h as floats; tensors once per dtype/device

        if lift not in LIFTS:
            raise ValueError(f"unknown lift {lift!r}; valid choices: {', '.join(LIFTS)}")
        if lift == "pad" and self.dim < in_dim:
            raise ValueError(f"lift='pad' needs the field's dim ({self.dim}) ≥ in_dim ({in_dim}); use lift='linear'")
        self.lift_kind, self.in_dim = lift, in_dim
        self.lift_map = None if lift == "pad" else _linear(in_dim, self.dim, lift)
        if momentum not in MOMENTA:
            raise ValueError(f"unknown momentum {momentum!r}; valid choices: {', '.join(MOMENTA)}")
        if momentum != "zero" and not self.pair_state:
            raise ValueError(
                f"momentum={momentum!r} needs a field on (q, p) pairs such as HamiltonianField; got {type(field).__name__}"
            )
        self.momentum_map = nn.Linear(in_dim, self.dim) if self.pair_state and momentum == "linear" else None

        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid choices: {', '.join(HEADS)}")
        self.head_kind = head
        self.head = _linear(self.dim, 1 if num_classes == 2 else num_classes, head)
        self._constrain(constraint, constraint_norm)

    def _constrain(self, constraint: str | None, norm: str) -> None:
        """Check the constraint against the field and the method, and install its rule. Sets
        ``radius``, the method's contractivity radius r (the "nonexpansive" rules), and ``step_norm``,
        the norm module of "nonexpansive_step"."""
        self.constraint, self.radius, self.step_norm = constraint, None, None
        if constraint is None:
            return
        if constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {constraint!r}; valid choices: {', '.join(CONSTRAINTS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown constraint_norm {norm!r}; valid choices: {', '.join(NORMS)}")
        if not isinstance(self.integrator, ExplicitRungeKutta):
            raise ValueError(
                f"constraint={constraint!r} needs an explicit Runge–Kutta method; got {type(self.integrator).__name__}"
            )
        tableau = self.integrator.tableau
        if constraint == "switching":
            _check_switching(self.field, tableau.stages)
            if norm != "exact":
                raise ValueError("constraint='switching' uses exact singular values (σ_min too); use constraint_norm='exact'")
            return
        self.radius = contractivity_radius(tableau)
        if self.radius == 0:
            raise ValueError(
                f"constraint={constraint!r}: this method's contractivity radius is 0 (sdl.stability.contractivity_radius): "
                f"no step size makes its steps non-expansive for every gradient flow; use e.g. euler, heun, ssprk3 or rk4"
            )
        if constraint == "nonexpansive":
            rescale_to_rule(self.field, step_size=self.step_size, radius=self.radius, norm=norm)
        else:
            _check_gradient_flow(self.field, constraint)
            self.step_norm = SpectralNorm(self.field.weight.detach(), power=norm == "power")

    @property
    def integrator(self) -> Integrator:
        """The one-step method of the resolved solve."""
        return self.solve.integrator

    @property
    def step_size(self) -> float:
        """h = T/K; the steps themselves are ``step_sizes()`` (h_k ≤ h under a step rule)."""
        return self.t_final / self.num_steps

    def step_sizes(self) -> tuple[float, ...]:
        """h_k of the K steps: all h, or chosen by the constraint from the current weights (a host
        read; in training mode with constraint_norm="power" each call advances the power iteration)."""
        if self.constraint == "nonexpansive_step":
            steps = nonexpansive_step_sizes(self.field, self.step_size, self.radius, self.step_norm)
        elif self.constraint == "switching":
            steps = switching_step_sizes(self.field, self.step_size)
        else:
            return self._grid.steps
        return tuple(steps.expand(self.num_steps).tolist())

    def _time_grid(self, dtype: torch.dtype, device: torch.device) -> TimeGrid:
        if self.constraint not in _STEP_RULES:
            return self._grid.on(dtype, device)
        steps = self.step_sizes()
        times = torch.tensor([0.0, *itertools.accumulate(steps)], dtype=dtype, device=device)
        return TimeGrid(times.unbind(), steps)

    @property
    def hamiltonian(self) -> bool:
        """The old name of ``pair_state``: the state is a pair (q, p)."""
        return self.pair_state

    def lift(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """z^0 (N, dim), or (q^0, p^0) for a field on pairs; x: (N, in_dim)."""
        if x.ndim != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected input of shape (N, {self.in_dim}) (in_dim={self.in_dim}), got {tuple(x.shape)}")
        if self.lift_map is not None:
            z = self.lift_map(x)
        else:
            z = torch.nn.functional.pad(x, (0, self.dim - x.shape[-1]))
        if not self.pair_state:
            return z
        p = self.momentum_map(x) if self.momentum_map is not None else torch.zeros_like(z)
        return z, p

    def trajectory(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """The states at every layer: (K+1, N, dim), or a pair of them (q, p)."""
        with parametrize.cached():
            return self._integrate(x, self._trajectory_solve)

    def time_grid(self, like: Tensor) -> Tensor:
        """t_k = h_0 + … + h_{k-1}, k = 0..K, (K+1,), in the dtype and on the device of ``like``."""
        return torch.stack(self._time_grid(like.dtype, like.device).times)

    def _integrate(self, x: Tensor, solve):
        return integrate(solve, self.field, self.lift(x), self._time_grid(x.dtype, x.device))

    def classify(self, z_final: Tensor) -> Tensor:
        """Logits from the final state: (N,) for 2 classes, (N, C) otherwise."""
        logits = self.head(z_final)
        return logits.squeeze(-1) if self.num_classes == 2 else logits

    def forward(self, x: Tensor) -> Tensor:
        # one evaluation of each parametrised weight (constraint, lift, head) per pass: the adjoint
        # reads the field's parameters more than once, and all reads must see the same tensors
        with parametrize.cached():
            # only z^K: an adjoint with checkpoint or reverse recovery then keeps O(K/m) or O(1) states
            final = self._integrate(x, self.solve)
            return self.classify(final[0] if self.pair_state else final)

    def predict_proba(self, x: Tensor) -> Tensor:
        """η(logits): P(class 1) (N,) for 2 classes, softmax (N, C) otherwise."""
        logits = self(x)
        return torch.sigmoid(logits) if self.num_classes == 2 else torch.softmax(logits, -1)

    def final_state(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """z^K (N, dim), or the pair (q^K, p^K), for inputs x: (N, in_dim): what the head reads."""
        with parametrize.cached():
            return self._integrate(x, dataclasses.replace(self.solve, adjoint=None))

    def integrate_backward(self, state: Tensor | tuple[Tensor, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
        """K steps of the network's method from t_K = T back to t_0 = 0, with steps -h_k and the
        layers in reverse order: z^k ≈ Φ_{-h_k}(t_{k+1}, z^{k+1}; θ^k). For a time-reversible method
        (Φ_{-h}(t + h, ·) = Φ_h(t, ·)⁻¹) this inverts the forward pass up to round-off (``inverse``);
        for any other (RK4) it is only an approximate inverse, off by the O(h^{p+1}) defect of each step.

        state: z^K (N, dim), or the pair (q^K, p^K); returns z^0 in the same layout (dtype and device follow it).
        """
        reference = state[0] if self.pair_state else state
        grid = self._time_grid(reference.dtype, reference.device)
        backward = TimeGrid(tuple(reversed(grid.times)), tuple(-h for h in reversed(grid.steps)))
        field = self.field if self._layers is None else _ReversedLayers(self.field)
        solve = dataclasses.replace(self.solve, adjoint=None, output="last")
        with parametrize.cached():
            return integrate(solve, field, tuple(state) if self.pair_state else state, backward)

    def inverse(self, state: Tensor | tuple[Tensor, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
        """The input state z^0 (lifted: ``lift(x)``) of the final state z^K: the forward map run
        backward (``integrate_backward``), exact up to round-off because the method is time-reversible
        (symmetric: a palindromic splitting such as Verlet or Yoshida-4, or a symmetric tableau such
        as Gauss–Legendre; ``Integrator.time_reversible``). Raises ValueError for any other method.
        Under a step rule (a constraint choosing h_k from the weights) the same h_k are used."""
        if not self.integrator.time_reversible:
            raise ValueError(
                f"inverse needs a time-reversible method (Φ_-h = Φ_h⁻¹: a symmetric tableau or a palindromic splitting); "
                f"{self.solve.method_name or type(self.integrator).__name__!r} is not. "
                f"integrate_backward runs it backward as an approximate inverse"
            )
        return self.integrate_backward(state)

    def refine(self, factor: int = 2, interpolation: str = "constant") -> ODENet:
        """A new network with factor·K steps of the same [0, T] (step h/factor): θ(t) prolonged to the new
        layers (``sdl.models.interpolation.prolong_layers``: "constant" keeps θ(t) the same function,
        "linear" samples the continuous piecewise-linear θ(t) through the layers' centres), the lift,
        head, method and gradient unchanged. A network with shared parameters only takes more steps.
        This network is not changed. Not for networks with a constraint (its rule depends on h)."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive int, got {factor!r}")
        if self.constraint is not None:
            raise ValueError(f"refine: a network with constraint={self.constraint!r} cannot be refined (the rule depends on h)")
        if self._layers is not None and not isinstance(self.field, _Field):
            raise TypeError(
                f"refine: cannot prolong the layers of a {type(self.field).__name__}; it works for sdl's vector fields"
            )
        refined = copy.deepcopy(self)
        if self._layers is not None:
            refined.field._prolong(factor, interpolation)
            refined._layers = factor * self._layers
        else:
            _check_interpolation(interpolation)
        refined.num_steps = factor * self.num_steps
        refined._grid = UniformGrid(0.0, self.t_final, refined.num_steps)
        return refined

    def layer_fields(self) -> Sequence:
        """K callables f_k(t, z), the field of each layer (the same one K times when shared)."""
        if self._layers is not None:
            return list(self.field.layers())
        if isinstance(self.field, Layered):  # shared parameters: its one bound layer, K times
            return list(self.field.layers()) * self.num_steps
        return [self.field] * self.num_steps


class _ReversedLayers(Layered):
    """A layered field with its layers in reverse order: layer k is the field's layer K-1-k."""

    def __init__(self, field: Layered) -> None:
        super().__init__()
        self.field = field

    @property
    def num_layers(self) -> int | None:
        return self.field.num_layers

    def layer_parameters(self) -> tuple[Tensor, ...]:
        return tuple(p.flip(0) for p in self.field.layer_parameters())

    def bind(self, params):
        return self.field.bind(params)


def _linear(in_features: int, out_features: int, kind: str) -> nn.Linear:
    """nn.Linear, with its weight kept orthogonal or spectrally normalised (PyTorch's parametrisations)."""
    layer = nn.Linear(in_features, out_features)
    if kind == "orthogonal":
        return orthogonal(layer)
    if kind == "spectral":
        return spectral_norm(layer)
    return layer
