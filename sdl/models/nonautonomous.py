"""Non-autonomous Hamiltonian networks: θ(t) between the layers, and the extended phase space.

A layered network's θ^0, …, θ^{K-1}, read as a function of time θ(t) (``sdl.models.interpolation``:
piecewise constant, or piecewise linear and continuous), give a Hamiltonian network the energy
H(t, q, p) = T(t, p) + V(t, q) (``TimeDependentHamiltonian``; ``InterpolatedHamiltonian`` for a
trained ``HamiltonianField``), which its flow does not conserve.
The extended phase space (Owren's talk; ``../shared/NOTES.md`` §9) adds the time t as a position
and its conjugate momentum p_t, with K(q, t, p, p_t) = H(t, q, p) + p_t and Ω = dp∧dq + dp_t∧dt:

    dq/dt = ∂H/∂p,   dt/dt = 1,   dp/dt = -∂H/∂q,   dp_t/dt = -∂H/∂t.

This system is autonomous and Hamiltonian, so K is conserved by its flow, and any symplectic method
applied to it is canonical for Ω (``ExtendedField``; the state is the pair Q = (q, t), P = (p, p_t),
each (..., n + 1)). When T does not depend on t, K = [T(p) + p_t] + V(t, q) is separable in (Q, P),
and the explicit splittings apply (``SeparableExtendedField``).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from ..fields import PairField, Separable, layer_count
from .hnn import _gradients
from .interpolation import _check_interpolation, interpolate_layers
from .vector_fields import HamiltonianField

__all__ = [
    "ExtendedField",
    "InterpolatedHamiltonian",
    "SeparableExtendedField",
    "TimeDependentHamiltonian",
    "extended_phase_space",
]


class TimeDependentHamiltonian(nn.Module, Separable):
    """H(t, q, p) = T(t, p) + V(t, q) and its field dq/dt = ∂T/∂p (t, p), dp/dt = -∂V/∂q (t, q).

    A subclass gives ``kinetic`` and ``potential``; the derivatives come from autograd, and keep a
    graph when the caller records one (training through the field). ``t`` is a 0-d tensor (one
    time for all points, as ``sdl.odeint`` passes it) or (..., 1), one time per point (the extended
    phase space). Set ``kinetic_depends_on_time = False`` when T ignores t: the extended system is
    then separable.
    """

    kinetic_depends_on_time: bool = True

    @abstractmethod
    def kinetic(self, t: Tensor, p: Tensor) -> Tensor:
        """T(t, p), p: (..., n) → (...)."""

    @abstractmethod
    def potential(self, t: Tensor, q: Tensor) -> Tensor:
        """V(t, q), q: (..., n) → (...)."""

    def hamiltonian(self, t: Tensor, q: Tensor, p: Tensor) -> Tensor:
        """H(t, q, p) = T(t, p) + V(t, q): (...)."""
        return self.kinetic(t, p) + self.potential(t, q)

    def velocity(self, t: Tensor, p: Tensor) -> Tensor:
        return _gradients(lambda p_: self.kinetic(t, p_), (p,))[0]

    def force(self, t: Tensor, q: Tensor) -> Tensor:
        return -_gradients(lambda q_: self.potential(t, q_), (q,))[0]

    def forward(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, p = y
        return self.velocity(t, p), self.force(t, q)


class InterpolatedHamiltonian(TimeDependentHamiltonian):
    """The H(t, q, p) of a layered ``HamiltonianField`` trained on K steps of [0, t_final], with
    θ(t) = ``interpolate_layers`` of its per-layer parameters ("linear": continuous in t).

    Its parameters are the field's (no copy): training the field changes H.
    """

    def __init__(self, field: HamiltonianField, t_final: float, interpolation: str = "linear") -> None:
        super().__init__()
        if not isinstance(field, HamiltonianField) or layer_count(field) is None:
            raise ValueError(f"InterpolatedHamiltonian needs a layered HamiltonianField (num_layers=K); got {field!r}")
        if not t_final > 0:
            raise ValueError(f"t_final must be positive, got {t_final!r}")
        _check_interpolation(interpolation)
        self.field, self.t_final, self.interpolation = field, float(t_final), interpolation
        self.dim = field.dim
        self.kinetic_depends_on_time = field.kinetic != "quadratic"

    def parameters_at(self, t: Tensor) -> tuple[Tensor, ...]:
        """θ(t), each tensor of ``field.layer_parameters()`` at t (0-d, or (..., 1) per point)."""
        times = t.squeeze(-1) if t.ndim else t
        return tuple(
            interpolate_layers(theta, times, self.t_final, self.interpolation) for theta in self.field.layer_parameters()
        )

    def kinetic(self, t: Tensor, p: Tensor) -> Tensor:
        return self.field.kinetic_energy(self.parameters_at(t), p)

    def potential(self, t: Tensor, q: Tensor) -> Tensor:
        return self.field.potential_energy(self.parameters_at(t), q)


class ExtendedField(nn.Module, PairField):
    """The extended system of ``hamiltonian`` on the pair Q = (q, t), P = (p, p_t), each (..., n + 1):

        K(Q, P) = H(t, q, p) + p_t,   dQ/dτ = ∂K/∂P = (∂H/∂p, 1),   dP/dτ = -∂K/∂Q = (-∂H/∂q, -∂H/∂t).

    Autonomous: the integration time τ passed to it is not used (t is a coordinate, and equals τ
    when the orbit starts at t = τ_0). Derivatives by autograd, with a graph when the caller records one.
    Build it with ``extended_phase_space``, which picks ``SeparableExtendedField`` when it applies.
    """

    def __init__(self, hamiltonian: TimeDependentHamiltonian) -> None:
        super().__init__()
        if not isinstance(hamiltonian, TimeDependentHamiltonian):
            raise TypeError(f"hamiltonian must be a sdl.models.TimeDependentHamiltonian; got {type(hamiltonian).__name__}")
        self.hamiltonian_of_time = hamiltonian

    @staticmethod
    def join(x: Tensor, s: Tensor) -> Tensor:
        """(x, s) → X = (x, s): (..., n) and (...) or (..., 1) → (..., n + 1)."""
        s = s if s.ndim == x.ndim else s.unsqueeze(-1)
        return torch.cat([x, s.expand(*x.shape[:-1], 1).to(x)], dim=-1)

    @staticmethod
    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        """X = (x, s) → x (..., n), s (..., 1): Q → (q, t), P → (p, p_t)."""
        return x[..., :-1], x[..., -1:]

    def energy(self, big_q: Tensor, big_p: Tensor) -> Tensor:
        """K(Q, P) = H(t, q, p) + p_t: (...), conserved by the extended flow."""
        (q, t), (p, p_t) = self.split(big_q), self.split(big_p)
        return self.hamiltonian_of_time.hamiltonian(t, q, p) + p_t.squeeze(-1)

    def hamiltonian(self, big_q: Tensor, big_p: Tensor) -> Tensor:
        """H(t, q, p) at the state's own time t: (...), not conserved."""
        (q, t), (p, _) = self.split(big_q), self.split(big_p)
        return self.hamiltonian_of_time.hamiltonian(t, q, p)

    def forward(self, tau: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        big_q, big_p = y
        (q, t), (p, _) = self.split(big_q), self.split(big_p)
        h_q, h_t, h_p = _gradients(lambda q_, t_, p_: self.hamiltonian_of_time.hamiltonian(t_, q_, p_), (q, t, p))
        return torch.cat([h_p, torch.ones_like(t)], -1), -torch.cat([h_q, h_t], -1)


class SeparableExtendedField(ExtendedField, Separable):
    """``ExtendedField`` of an H whose T does not depend on t: K = [T(p) + p_t] + V(t, q) is separable,
    dQ/dτ = (∂T/∂p, 1) depends on P only and dP/dτ = (-∂V/∂q, -∂V/∂t) on Q only, so the explicit
    splittings of ``sdl.integrators`` (Verlet, Yoshida, …) are symplectic for Ω on it."""

    def __init__(self, hamiltonian: TimeDependentHamiltonian) -> None:
        super().__init__(hamiltonian)
        if hamiltonian.kinetic_depends_on_time:
            raise ValueError("SeparableExtendedField needs a kinetic energy T(p) that does not depend on t; use ExtendedField")

    def velocity(self, tau: Tensor, big_p: Tensor) -> Tensor:
        p, p_t = self.split(big_p)
        (h_p,) = _gradients(lambda p_: self.hamiltonian_of_time.kinetic(tau, p_), (p,))
        return torch.cat([h_p, torch.ones_like(p_t)], -1)

    def force(self, tau: Tensor, big_q: Tensor) -> Tensor:
        q, t = self.split(big_q)
        h_q, h_t = _gradients(lambda q_, t_: self.hamiltonian_of_time.potential(t_, q_), (q, t))
        return -torch.cat([h_q, h_t], -1)


def extended_phase_space(hamiltonian: TimeDependentHamiltonian) -> ExtendedField:
    """The extended system of ``hamiltonian``: a ``SeparableExtendedField`` when its kinetic energy
    does not depend on t (then splittings are symplectic on it), else an ``ExtendedField``
    (symplectic under Gauss–Legendre and implicit midpoint)."""
    if isinstance(hamiltonian, TimeDependentHamiltonian) and not hamiltonian.kinetic_depends_on_time:
        return SeparableExtendedField(hamiltonian)
    return ExtendedField(hamiltonian)
