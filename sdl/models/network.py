"""ODE-networks: lift the input, integrate a vector field for K steps (one step = one layer), classify."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..fields import Layered, Separable
from ..integrators import Integrator, get
from ..adjoint import Adjoint
from ..odeint import GRADIENTS, odeint

__all__ = ["ODENet", "LIFTS"]

LIFTS = ("pad", "linear")
MOMENTA = ("zero", "linear")


class ODENet(nn.Module):
    """x ↦ η(wᵀ z^K + μ), where z^K is K steps of ``method`` for dz/dt = f(t, z; θ) over [0, T].

        z^0 = lift(x)                       (N, dim): zero padding, or a learned linear map
        z^{k+1} = Φ_h(z^k; θ^k), h = T/K    one integrator step per layer
        logits = z^K wᵀ + μ                 (N,) for 2 classes (logistic head), (N, C) for C > 2 (softmax)

    For a field on pairs (``sdl.Separable``, e.g. ``HamiltonianField``) the state is (q, p) with
    q^0 = lift(x) and p^0 = 0 or a learned linear map of x (``momentum``); the head reads q^K.

    Args:
        field: the vector field module, with attribute ``dim``; a ``Layered`` field's
            ``num_layers`` is K (None: parameters shared by all steps).
        num_steps: K; defaults to ``field.num_layers``.
        t_final: T, so the step is h = T / K.
        method: integrator name or ``Integrator``; swapping it changes nothing else.
        in_dim: input features; num_classes: 2 for a logistic head, more for softmax.
        lift: "pad" (needs dim ≥ in_dim) or "linear".
        gradient: how ``odeint`` differentiates the steps.
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
        gradient: str = "dto",
        **method_options,
    ) -> None:
        super().__init__()
        self.field = field
        self.dim = field.dim
        self.hamiltonian = isinstance(field, Separable)  # a field on pairs (q, p)
        layers = field.num_layers if isinstance(field, Layered) else None
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
        if isinstance(method, Integrator) and method_options:
            raise TypeError(
                f"{', '.join(method_options)} configure a method given by name; got an {type(method).__name__} instance"
            )
        self.integrator = method if isinstance(method, Integrator) else get(method, **method_options)
        if self.integrator.partitioned and not self.hamiltonian:
            raise ValueError(
                f"{method!r} is a splitting method for (q, p) states and needs a field on pairs such as HamiltonianField; "
                f"got {type(field).__name__}"
            )
        if not isinstance(gradient, Adjoint) and gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; valid choices: {', '.join(GRADIENTS)}, or an sdl.Adjoint")
        self.gradient = gradient

        if lift not in LIFTS:
            raise ValueError(f"unknown lift {lift!r}; valid choices: {', '.join(LIFTS)}")
        if lift == "pad" and self.dim < in_dim:
            raise ValueError(f"lift='pad' needs the field's dim ({self.dim}) ≥ in_dim ({in_dim}); use lift='linear'")
        self.lift_kind, self.in_dim = lift, in_dim
        self.lift_map = nn.Linear(in_dim, self.dim) if lift == "linear" else None
        if momentum not in MOMENTA:
            raise ValueError(f"unknown momentum {momentum!r}; valid choices: {', '.join(MOMENTA)}")
        if momentum != "zero" and not self.hamiltonian:
            raise ValueError(f"momentum={momentum!r} needs a field on (q, p) pairs such as HamiltonianField; got {type(field).__name__}")
        self.momentum_map = nn.Linear(in_dim, self.dim) if self.hamiltonian and momentum == "linear" else None

        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.head = nn.Linear(self.dim, 1 if num_classes == 2 else num_classes)

    @property
    def step_size(self) -> float:
        return self.t_final / self.num_steps

    def lift(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """z^0 (N, dim), or (q^0, p^0) for a Hamiltonian field; x: (N, in_dim)."""
        if x.ndim != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected input of shape (N, {self.in_dim}) (in_dim={self.in_dim}), got {tuple(x.shape)}")
        if self.lift_map is not None:
            z = self.lift_map(x)
        else:
            z = torch.nn.functional.pad(x, (0, self.dim - x.shape[-1]))
        if not self.hamiltonian:
            return z
        p = self.momentum_map(x) if self.momentum_map is not None else torch.zeros_like(z)
        return z, p

    def trajectory(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """The states at every layer: (K+1, N, dim), or a pair of them (q, p)."""
        return self._integrate(x, output="all")

    def time_grid(self, like: Tensor) -> Tensor:
        """t_k = k h, k = 0..K, (K+1,), in the dtype and on the device of ``like`` (built there, so a
        float64 network steps with float64 h)."""
        return torch.linspace(0.0, self.t_final, self.num_steps + 1, dtype=like.dtype, device=like.device)

    def _integrate(self, x: Tensor, output: str):
        t = self.time_grid(x)
        return odeint(self.field, self.lift(x), t, method=self.integrator, gradient=self.gradient, output=output)

    def classify(self, z_final: Tensor) -> Tensor:
        """Logits from the final state: (N,) for 2 classes, (N, C) otherwise."""
        logits = self.head(z_final)
        return logits.squeeze(-1) if self.num_classes == 2 else logits

    def forward(self, x: Tensor) -> Tensor:
        # only z^K: an adjoint with checkpoint or reverse recovery then keeps O(K/m) or O(1) states
        final = self._integrate(x, output="last")
        return self.classify(final[0] if self.hamiltonian else final)

    def predict_proba(self, x: Tensor) -> Tensor:
        """η(logits): P(class 1) (N,) for 2 classes, softmax (N, C) otherwise."""
        logits = self(x)
        return torch.sigmoid(logits) if self.num_classes == 2 else torch.softmax(logits, -1)

    def layer_fields(self) -> Sequence:
        """K callables f_k(t, z), the field of each layer (the same one K times when shared)."""
        if not isinstance(self.field, Layered):
            return [self.field] * self.num_steps
        layers = list(self.field.layers())
        return layers * self.num_steps if self._layers is None else layers
