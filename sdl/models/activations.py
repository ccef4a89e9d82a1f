"""Elementwise activations σ with their derivative σ' and antiderivative γ (γ' = σ, γ(0) = 0).

γ turns a gradient or Hamiltonian field into its potential: f = -Aᵀσ(Az + b) = -∇V with
V(z) = 1ᵀγ(Az + b). σ' gives analytic Jacobians, e.g. ∂f/∂z = -Aᵀ diag σ'(Az + b) A.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Activation", "activation", "activation_names", "leaky_relu"]

_LOG2 = math.log(2.0)
_PI2_6 = math.pi**2 / 6


@dataclass(frozen=True)
class Activation:
    """σ, σ' and γ of one activation. ``monotone_unit_slope``: 0 ≤ σ' ≤ 1 everywhere, the
    condition under which a gradient-flow field is contractive (-σ_min(A)² ≤ ν ≤ 0).
    ``lipschitz``: L_σ = sup |σ'|, the Lipschitz constant of σ, or None when not known (then the
    fields built on σ offer no Lipschitz bound). ``min_slope``: m = inf σ' when known, so that
    m ≤ σ' ≤ L_σ; a gradient-flow layer is then strongly monotone when m > 0 and A has full column
    rank (``sdl.models.SwitchingField`` needs it)."""

    name: str
    sigma: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    antiderivative: Callable[[Tensor], Tensor]
    monotone_unit_slope: bool
    lipschitz: float | None = None
    min_slope: float | None = None

    def __call__(self, x: Tensor) -> Tensor:
        return self.sigma(x)


def _log_cosh(x: Tensor) -> Tensor:
    """log cosh x = |x| + log(1 + e^{-2|x|}) - log 2, without overflow."""
    ax = x.abs()
    return ax + torch.log1p(torch.exp(-2 * ax)) - _LOG2


def _dilog_small(x: Tensor, terms: int = 64) -> Tensor:
    """Li₂(x) = Σ_{k≥1} x^k / k² for |x| ≤ 1/2 (error below 2^-64)."""
    k = torch.arange(1, terms + 1, dtype=x.dtype, device=x.device)
    return (x.unsqueeze(-1) ** k / k**2).sum(-1)


def _dilog_negative(x: Tensor) -> Tensor:
    """Li₂(x) for -1 ≤ x ≤ 0; below -1/2 by Landen's identity Li₂(x) = -½ log²(1-x) - Li₂(x/(x-1)),
    whose argument lies in [1/3, 1/2], so the series always converges fast and nothing is singular."""
    small = x >= -0.5
    xs = torch.where(small, x, torch.zeros_like(x))
    xl = torch.where(small, -torch.ones_like(x), x)
    landen = -0.5 * torch.log1p(-xl) ** 2 - _dilog_small(xl / (xl - 1))
    return torch.where(small, _dilog_small(xs), landen)


def _softplus(x: Tensor) -> Tensor:
    return torch.logaddexp(x, torch.zeros_like(x))


def _softplus_antiderivative(x: Tensor) -> Tensor:
    """∫₀ˣ log(1 + eˢ) ds = -Li₂(-eˣ) - π²/12, written with e^{-|x|} so it never overflows:
    for x > 0 it is x²/2 + π²/12 + Li₂(-e^{-x})."""
    u = -torch.exp(-x.abs())
    li = _dilog_negative(u)
    return torch.where(x > 0, 0.5 * x * x + _PI2_6 / 2 + li, -li - _PI2_6 / 2)


def leaky_relu(negative_slope: float) -> Activation:
    """σ(x) = x for x > 0, a·x otherwise, with a = ``negative_slope`` in [0, 1]: a ≤ σ' ≤ 1.
    γ(x) = x²/2 for x > 0, a·x²/2 otherwise. Registered as "leaky_relu" with PyTorch's a = 0.01."""
    a = float(negative_slope)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"negative_slope must lie in [0, 1] (so that 0 ≤ σ' ≤ 1), got {negative_slope!r}")
    return Activation(
        "leaky_relu" if a == 0.01 else f"leaky_relu({a:g})",
        lambda x: F.leaky_relu(x, a),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, a)),
        lambda x: 0.5 * torch.where(x > 0, torch.ones_like(x), torch.full_like(x, a)) * x * x,
        True,
        lipschitz=1.0,
        min_slope=a,
    )


_ACTIVATIONS = {
    # sup |σ'|: tanh' = 1 - tanh² ≤ 1 (at 0); relu' ∈ {0, 1}; softplus' = sigmoid < 1 (→ 1 as x → ∞);
    # inf σ' = 0 for all three (tanh' and sigmoid → 0 far out)
    "tanh": Activation("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, _log_cosh, True, lipschitz=1.0, min_slope=0.0),
    "relu": Activation(
        "relu", F.relu, lambda x: (x > 0).to(x.dtype), lambda x: 0.5 * F.relu(x) ** 2, True, lipschitz=1.0, min_slope=0.0
    ),
    "identity": Activation("identity", lambda x: x, torch.ones_like, lambda x: 0.5 * x * x, True, lipschitz=1.0, min_slope=1.0),
    # log(1 + eˣ) exactly: F.softplus returns x itself above x = 20, off by up to 2e-9.
    "softplus": Activation("softplus", _softplus, torch.sigmoid, _softplus_antiderivative, True, lipschitz=1.0, min_slope=0.0),
    "leaky_relu": leaky_relu(0.01),
    # The logistic function, SympNets' default (Jin et al. 2020). σ' = σ(x)σ(-x) rather than σ(1 - σ),
    # which loses all digits once σ rounds to 1; sup σ' = 1/4 at 0, inf σ' = 0.
    # γ(x) = log(1 + eˣ) - log 2 (= softplus(x) - softplus(0)).
    "sigmoid": Activation(
        "sigmoid",
        torch.sigmoid,
        lambda x: torch.sigmoid(x) * torch.sigmoid(-x),
        lambda x: _softplus(x) - _LOG2,
        True,
        lipschitz=0.25,
        min_slope=0.0,
    ),
}


def activation_names() -> list[str]:
    return list(_ACTIVATIONS)


def activation(name: str | Activation) -> Activation:
    """The activation registered as ``name`` (an ``Activation`` is passed through)."""
    if isinstance(name, Activation):
        return name
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]
