"""ODE-networks: lift the input, integrate a vector field for K steps (one step = one layer), classify."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..adjoint import Adjoint
from ..fields import Capabilities, Layered, PairField, layer_count
from ..integrators import Integrator
from ..odeint import integrate
from ..solve import UniformGrid, resolve_solve

__all__ = ["ODENet", "LIFTS"]

LIFTS = ("pad", "linear")
MOMENTA = ("zero", "linear")


class ODENet(nn.Module):
    """x ↦ η(wᵀ z^K + μ), where z^K is K steps of ``method`` for dz/dt = f(t, z; θ) over [0, T].

        z^0 = lift(x)                       (N, dim): zero padding, or a learned linear map
        z^{k+1} = Φ_h(z^k; θ^k), h = T/K    one integrator step per layer
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
        lift: "pad" (needs dim ≥ in_dim) or "linear".
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
        momentum: str = "zero",
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
        self.integrator, self.gradient = self.solve.integrator, gradient
        self._grid = UniformGrid(0.0, self.t_final, num_steps)  # t_k and h as floats; tensors once per dtype/device

        if lift not in LIFTS:
            raise ValueError(f"unknown lift {lift!r}; valid choices: {', '.join(LIFTS)}")
        if lift == "pad" and self.dim < in_dim:
            raise ValueError(f"lift='pad' needs the field's dim ({self.dim}) ≥ in_dim ({in_dim}); use lift='linear'")
        self.lift_kind, self.in_dim = lift, in_dim
        self.lift_map = nn.Linear(in_dim, self.dim) if lift == "linear" else None
        if momentum not in MOMENTA:
            raise ValueError(f"unknown momentum {momentum!r}; valid choices: {', '.join(MOMENTA)}")
        if momentum != "zero" and not self.pair_state:
            raise ValueError(f"momentum={momentum!r} needs a field on (q, p) pairs such as HamiltonianField; got {type(field).__name__}")
        self.momentum_map = nn.Linear(in_dim, self.dim) if self.pair_state and momentum == "linear" else None

        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.head = nn.Linear(self.dim, 1 if num_classes == 2 else num_classes)

    @property
    def step_size(self) -> float:
        return self.t_final / self.num_steps

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
        return self._integrate(x, self._trajectory_solve)

    def time_grid(self, like: Tensor) -> Tensor:
        """t_k = k h, k = 0..K, (K+1,), in the dtype and on the device of ``like``."""
        return torch.stack(self._grid.on(like.dtype, like.device).times)

    def _integrate(self, x: Tensor, solve):
        return integrate(solve, self.field, self.lift(x), self._grid.on(x.dtype, x.device))

    def classify(self, z_final: Tensor) -> Tensor:
        """Logits from the final state: (N,) for 2 classes, (N, C) otherwise."""
        logits = self.head(z_final)
        return logits.squeeze(-1) if self.num_classes == 2 else logits

    def forward(self, x: Tensor) -> Tensor:
        # only z^K: an adjoint with checkpoint or reverse recovery then keeps O(K/m) or O(1) states
        final = self._integrate(x, self.solve)
        return self.classify(final[0] if self.pair_state else final)

    def predict_proba(self, x: Tensor) -> Tensor:
        """η(logits): P(class 1) (N,) for 2 classes, softmax (N, C) otherwise."""
        logits = self(x)
        return torch.sigmoid(logits) if self.num_classes == 2 else torch.softmax(logits, -1)

    def layer_fields(self) -> Sequence:
        """K callables f_k(t, z), the field of each layer (the same one K times when shared)."""
        if self._layers is not None:
            return list(self.field.layers())
        if isinstance(self.field, Layered):  # shared parameters: its one bound layer, K times
            return list(self.field.layers()) * self.num_steps
        return [self.field] * self.num_steps
