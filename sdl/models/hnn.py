"""Hamiltonian neural networks (Greydanus, Dzamba, Yosinski 2019) and the plain field they are compared with.

An ``HNN`` learns a scalar H_θ(q, p) and integrates its Hamiltonian field

    dq/dt = ∂H_θ/∂p,   dp/dt = -∂H_θ/∂q,

taken by autograd, so every solution of the learned system conserves H_θ exactly and a symplectic
method conserves it up to a bounded error. ``SeparableHNN`` restricts H_θ = T_θ(p) + V_θ(q), which
the explicit splittings (symplectic Euler, Störmer–Verlet, their compositions) integrate with one
evaluation of each half per kick or drift. ``MLPField`` is the unstructured baseline: the MLP is the
field itself. All three are fields ``f(t, (q, p)) -> (dq/dt, dp/dt)`` on pairs of shape (..., n)
that ``sdl.odeint`` integrates with any method and either gradient.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..fields import PairField, Separable
from .activations import activation

__all__ = ["HNN", "MLPField", "SeparableHNN", "mlp"]


def mlp(
    inputs: int, hidden: int, layers: int, outputs: int, activation_name: str = "tanh", bias_out: bool = True
) -> nn.Sequential:
    """x ↦ W_L σ(… σ(W_1 x + b_1) …) (+ b_L): ``layers`` hidden layers of width ``hidden``, weights
    orthogonally initialised as in the HNN code (biases keep torch's default)."""
    if layers < 1 or hidden < 1:
        raise ValueError(f"an MLP needs layers ≥ 1 and hidden ≥ 1; got layers={layers!r}, hidden={hidden!r}")
    sigma = activation(activation_name).sigma
    widths = [inputs] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        modules += [nn.Linear(a, b), _Elementwise(sigma)]
    modules.append(nn.Linear(hidden, outputs, bias=bias_out))
    for module in modules:
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight)
    return nn.Sequential(*modules)


class _Elementwise(nn.Module):
    def __init__(self, sigma) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        return self.sigma(x)


def _gradients(energy, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """∇ of Σ energy(*inputs) with respect to each input, shaped like it.

    Runs with autograd on whatever the caller's mode, so a field evaluated under ``no_grad`` (a
    rollout) still has its derivatives; keeps the graph (``create_graph``) only when the caller
    records one, which training through the field needs (the loss depends on ∂H/∂θ∂x).
    """
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        # a fresh node per input, so that ∂/∂q is the partial derivative: differentiating a q that
        # other inputs were computed from (a splitting's p after a drift) would add those paths
        leaves = tuple(x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True) for x in inputs)
        grads = torch.autograd.grad(
            energy(*leaves).sum(), leaves, create_graph=keep_graph, allow_unused=True, materialize_grads=True
        )  # an input H does not depend on (t, for a piecewise-constant θ(t)) has derivative 0
    return grads if keep_graph else tuple(g.detach() for g in grads)


class HNN(nn.Module, PairField):
    """H_θ(q, p) = MLP([q, p]), an MLP 2n → hidden (× ``layers``) → 1; the field (∂H_θ/∂p, -∂H_θ/∂q).

    ``hidden=200, layers=2, activation="tanh"`` is the network of the HNN paper.
    """

    def __init__(self, dim: int, hidden: int = 200, layers: int = 2, activation_name: str = "tanh") -> None:
        super().__init__()
        self.dim = dim
        self.energy = mlp(2 * dim, hidden, layers, 1, activation_name, bias_out=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        """H_θ(q, p): (..., n), (..., n) → (...,)."""
        return self.energy(torch.cat([q, p], dim=-1)).squeeze(-1)

    def forward(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        dh_dq, dh_dp = _gradients(self.hamiltonian, tuple(y))
        return dh_dp, -dh_dq


class SeparableHNN(nn.Module, Separable):
    """H_θ(q, p) = T_θ(p) + V_θ(q), two MLPs n → hidden (× ``layers``) → 1:
    dq/dt = ∇T_θ(p) (``velocity``), dp/dt = -∇V_θ(q) (``force``)."""

    def __init__(self, dim: int, hidden: int = 200, layers: int = 2, activation_name: str = "tanh") -> None:
        super().__init__()
        self.dim = dim
        self.kinetic = mlp(dim, hidden, layers, 1, activation_name, bias_out=False)
        self.potential = mlp(dim, hidden, layers, 1, activation_name, bias_out=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        """T_θ(p) + V_θ(q): (..., n), (..., n) → (...,)."""
        return (self.kinetic(p) + self.potential(q)).squeeze(-1)

    def velocity(self, t: Tensor, p: Tensor) -> Tensor:
        return _gradients(lambda x: self.kinetic(x), (p,))[0]

    def force(self, t: Tensor, q: Tensor) -> Tensor:
        return -_gradients(lambda x: self.potential(x), (q,))[0]

    def forward(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, p = y
        return self.velocity(t, p), self.force(t, q)


class MLPField(nn.Module, PairField):
    """The baseline: (dq/dt, dp/dt) = MLP([q, p]), an MLP 2n → hidden (× ``layers``) → 2n, with no
    structure (the HNN paper's "baseline NN")."""

    def __init__(self, dim: int, hidden: int = 200, layers: int = 2, activation_name: str = "tanh") -> None:
        super().__init__()
        self.dim = dim
        self.net = mlp(2 * dim, hidden, layers, 2 * dim, activation_name, bias_out=False)

    def forward(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return self.net(torch.cat(tuple(y), dim=-1)).split(self.dim, dim=-1)
