"""Continuous normalizing flows: a density carried by an ODE, with the divergence exact or estimated.

Along dx/dt = f(t, x) the log-density obeys d log p(x(t), t)/dt = -div f(t, x(t)) (the
instantaneous change of variables, Chen et al. 2018). The flow state is the pair
(x (B, d), log p (B,)) with field (f, -div f), integrated by ``sdl.odeint`` with any method.
How div f is obtained is a choice passed in, beside the field:

- ``ExactDivergence``: Σ_i [D_dim f]_i from a ``DimwiseDifferentiable`` field (a HollowNet):
  one backward pass, no variance.
- ``HutchinsonDivergence``: εᵀ(∂f/∂x)ε with one probe ε per solve: one backward pass through
  the whole field, unbiased, with variance (Grathwohl et al. 2019, FFJORD).
- ``BruteForceDivergence``: Σ_i (e_iᵀ ∂f/∂x)_i: exact for any field, d backward passes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from ..adjoint import Adjoint
from ..fields import Capabilities, DimwiseDifferentiable, PairField
from ..integrators import Integrator
from ..odeint import integrate
from ..solve import UniformGrid, resolve_solve

__all__ = ["CNF", "BruteForceDivergence", "DivergenceEstimator", "ExactDivergence", "HutchinsonDivergence"]


class DivergenceEstimator(ABC):
    """How ``CNF`` obtains div f(t, x) together with f(t, x). Concrete ones are frozen dataclasses."""

    def noise(self, x: Tensor) -> Tensor | None:
        """Random probes for one whole solve, shaped like x, or None for a deterministic estimator."""
        return None

    def check_field(self, field: Callable) -> None:
        """Raises TypeError when the estimator cannot be used with ``field``."""
        return None  # by default every field will do; an estimator with needs overrides this

    @abstractmethod
    def __call__(
        self, field: Callable, t: Tensor, x: Tensor, noise: Tensor | None, *, create_graph: bool
    ) -> tuple[Tensor, Tensor]:
        """(f(t, x): (B, d), div f(t, x) or its estimate: (B,)).

        With ``create_graph`` the divergence carries its graph (for training); f always does
        when grad mode is on. If grad mode is off on entry, both come back detached.
        """


@dataclass(frozen=True)
class ExactDivergence(DivergenceEstimator):
    """div f = Σ_i [D_dim f]_i from the field's dimension-wise derivative; needs ``DimwiseDifferentiable``."""

    def check_field(self, field: Callable) -> None:
        if not isinstance(field, DimwiseDifferentiable):
            raise TypeError(
                f"ExactDivergence needs a field that is sdl.fields.DimwiseDifferentiable (such as a HollowNet); "
                f"got {type(field).__name__}; use BruteForceDivergence or HutchinsonDivergence for other fields"
            )

    def __call__(self, field, t, x, noise, *, create_graph):
        value, diagonal = field.value_and_jacobian_diagonal(t, x, create_graph=create_graph)
        return value, diagonal.sum(-1)


@dataclass(frozen=True)
class HutchinsonDivergence(DivergenceEstimator):
    """div f ≈ εᵀ (∂f/∂x) ε, E[εεᵀ] = I, one vector-Jacobian product; ε drawn once per solve.

    ``distribution``: "rademacher" (ε_i = ±1, the lower-variance choice) or "gaussian".
    """

    distribution: str = "rademacher"

    def __post_init__(self) -> None:
        if self.distribution not in ("rademacher", "gaussian"):
            raise ValueError(f"unknown distribution {self.distribution!r}; valid choices: rademacher, gaussian")

    def noise(self, x: Tensor) -> Tensor:
        if self.distribution == "gaussian":
            return torch.randn_like(x)
        return torch.randint_like(x, 2).mul_(2).sub_(1)

    def __call__(self, field, t, x, noise, *, create_graph):
        if noise is None or noise.shape != x.shape:
            got = None if noise is None else tuple(noise.shape)
            raise ValueError(f"Hutchinson probes must be shaped like x {tuple(x.shape)}; got {got}")
        track = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (track and x.requires_grad) else x.detach().requires_grad_(True)
            value = field(t, x_in)
            (vjp,) = torch.autograd.grad(value, x_in, grad_outputs=noise, create_graph=create_graph and track, retain_graph=True)
        estimate = (vjp * noise).sum(-1)
        return (value, estimate) if track else (value.detach(), estimate.detach())


@dataclass(frozen=True)
class BruteForceDivergence(DivergenceEstimator):
    """div f = Σ_i [e_iᵀ ∂f/∂x]_i: exact for any field, at the cost of d backward passes."""

    def __call__(self, field, t, x, noise, *, create_graph):
        track = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if (track and x.requires_grad) else x.detach().requires_grad_(True)
            value = field(t, x_in)
            estimate = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
            for i in range(x.shape[-1]):
                (row,) = torch.autograd.grad(value[..., i].sum(), x_in, create_graph=create_graph and track, retain_graph=True)
                estimate = estimate + row[..., i]
        return (value, estimate) if track else (value.detach(), estimate.detach())


class _FlowField(nn.Module, PairField):
    """(t, (x, log p)) ↦ (f(t, x), -div f(t, x)): the CNF's field on pairs, probes fixed per solve."""

    def __init__(self, field: nn.Module, estimator: DivergenceEstimator, noise: Tensor | None) -> None:
        super().__init__()
        self.field = field
        self.estimator = estimator
        self.noise = noise

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, _ = state
        value, div = self.estimator(self.field, t, x, self.noise, create_graph=torch.is_grad_enabled())
        return value, -div

    @staticmethod
    def of(field: nn.Module, estimator: DivergenceEstimator, noise: Tensor | None) -> _FlowField:
        """The flow field, ``DimwiseDifferentiable`` (for Jacobi–Newton stage solves) when ``field`` is."""
        return (_DimwiseFlowField if isinstance(field, DimwiseDifferentiable) else _FlowField)(field, estimator, noise)


class _DimwiseFlowField(_FlowField, DimwiseDifferentiable[tuple[Tensor, Tensor]]):
    """The flow field of a ``DimwiseDifferentiable`` f. Neither f nor div f depends on log p, so the pair
    field (f, -div f) has the Jacobian diagonal (D_dim f, 0) with respect to (x, log p)."""

    def value_and_jacobian_diagonal(self, t: Tensor, state: tuple[Tensor, Tensor], *, create_graph: bool = False):
        x, log_p = state
        field = cast(DimwiseDifferentiable[Tensor], self.field)  # of() chose this class because it is one
        if isinstance(self.estimator, ExactDivergence):  # its divergence is Σ D_dim f: one pass gives all three
            value, diagonal = field.value_and_jacobian_diagonal(t, x, create_graph=torch.is_grad_enabled())
            flow = (value, -diagonal.sum(-1))
            diagonal = diagonal if create_graph else diagonal.detach()
        else:
            flow = self(t, state)
            _, diagonal = field.value_and_jacobian_diagonal(t, x, create_graph=create_graph)
        return flow, (diagonal, torch.zeros_like(log_p))


class CNF(nn.Module):
    """A continuous normalizing flow on R^d: data at t = 0, standard normal base at t = t1.

    x(0) = x, dx/dt = f(t, x), z = x(t1), and log p(x) = log N(z; 0, I) + ∫_0^{t1} div f(t, x(t)) dt,
    computed as the pair state (x, ℓ) with dℓ/dt = -div f, ℓ(0) = 0, log p(x) = log N(z) - ℓ(t1).
    Both integrals use ``num_steps`` equal steps of ``method``; gradients are taken as
    ``gradient`` says (``"dto"``: autograd through the steps). Nothing here depends on the
    gradient choice, so any choice ``sdl.odeint`` accepts works unchanged. The solve is resolved
    and checked once, at construction (``sdl.solve.resolve_solve``): what ``sdl.odeint`` would
    refuse is refused here.

    Args:
        field: the vector field f(t, x), x: (B, d) → (B, d); an ``nn.Module`` (its parameters are
            the flow's).
        dim: d.
        divergence: an ``ExactDivergence`` (default; the field must be ``DimwiseDifferentiable``),
            ``HutchinsonDivergence`` or ``BruteForceDivergence``.
        t1: the end time (> 0).
        num_steps: steps of the solver over [0, t1].
        method: a name from ``sdl.integrators.names()`` (not a partitioned one) or an ``Integrator``.
        gradient: passed to ``sdl.odeint``.
        **solver_options: passed to ``sdl.integrators.get`` (stage solver of implicit methods).
    """

    _like: Tensor

    def __init__(
        self,
        field: nn.Module,
        dim: int,
        *,
        divergence: DivergenceEstimator = ExactDivergence(),
        t1: float = 1.0,
        num_steps: int = 8,
        method: str | Integrator = "rk4",
        gradient: str | Adjoint = "dto",
        **solver_options,
    ) -> None:
        super().__init__()
        if not isinstance(field, nn.Module):
            raise TypeError(f"field must be an nn.Module; got {type(field).__name__}")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be an integer ≥ 1; got {dim!r}")
        if not (isinstance(num_steps, int) and num_steps >= 1):
            raise ValueError(f"num_steps must be an integer ≥ 1; got {num_steps!r}")
        if not (math.isfinite(t1) and t1 > 0):
            raise ValueError(f"t1 must be finite and positive; got {t1!r}")
        self._check_estimator(divergence, field)
        # the state (x, log p) is a pair, flattened for every Runge–Kutta method; the field is the flow field
        flow = Capabilities.of(_FlowField.of(field, divergence, None))
        self.solve = resolve_solve(method, gradient, pair=True, field=flow, output="last", **solver_options)
        if self.solve.integrator.partitioned:
            raise ValueError(f"{method!r} is a partitioned (splitting) method; a CNF needs a Runge–Kutta method")
        self.field = field
        self.dim = dim
        self.divergence = divergence
        self.t1 = float(t1)
        self.num_steps = num_steps
        self.gradient = gradient
        self._grids = {"density": UniformGrid(0.0, self.t1, num_steps), "sample": UniformGrid(self.t1, 0.0, num_steps)}
        self.register_buffer("_like", torch.zeros(()), persistent=False)  # dtype and device for sample()

    @property
    def integrator(self) -> Integrator:
        """The one-step method of the resolved solve."""
        return self.solve.integrator

    def base_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I): (B, d) → (B,)."""
        return -0.5 * z.pow(2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def forward(self, x: Tensor) -> Tensor:
        """log p(x): (B, d) → (B,)."""
        return self.log_prob(x)

    def log_prob(self, x: Tensor, *, divergence: DivergenceEstimator | None = None) -> Tensor:
        """log p(x): (B, d) → (B,). ``divergence`` overrides the flow's estimator (e.g. exact evaluation)."""
        self._check_input(x)
        z, change = self._solve(x, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device), "density", divergence)
        return self.base_log_prob(z) - change

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, divergence: DivergenceEstimator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n samples x: (n, d) and their log p(x): (n,), by integrating z ~ N(0, I) from t1 back to 0."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer ≥ 1; got {n!r}")
        z = torch.randn(n, self.dim, generator=generator, dtype=self._like.dtype, device=self._like.device)
        return self.from_noise(z, divergence=divergence)

    def from_noise(self, z: Tensor, *, divergence: DivergenceEstimator | None = None) -> tuple[Tensor, Tensor]:
        """x and log p(x) for given base noise z: (B, d) → (B, d), (B,), integrating from t1 back to 0.
        Differentiable (reverse-KL training); ``divergence`` overrides the flow's estimator."""
        self._check_input(z)
        return self._solve(z, self.base_log_prob(z), "sample", divergence)

    def _solve(self, x: Tensor, log_p: Tensor, direction: str, divergence: DivergenceEstimator | None) -> tuple[Tensor, Tensor]:
        """(x(end), log p(end)) from (x, log p) at the start of the ``direction``'s grid:
        "density" runs 0 → t1, "sample" t1 → 0."""
        estimator = self.divergence if divergence is None else divergence
        if divergence is not None:
            self._check_estimator(estimator, self.field)
        flow = _FlowField.of(self.field, estimator, estimator.noise(x))
        return integrate(self.solve, flow, (x, log_p), self._grids[direction].on(x.dtype, x.device))

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[-1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a (batch, {self.dim}) tensor; got {shape}")

    @staticmethod
    def _check_estimator(estimator: DivergenceEstimator, field: Callable) -> None:
        if not isinstance(estimator, DivergenceEstimator):
            raise TypeError(
                f"divergence must be ExactDivergence(), HutchinsonDivergence() or BruteForceDivergence(); got {estimator!r}"
            )
        estimator.check_field(field)
