"""HollowNets (Chen & Duvenaud 2019): vector fields with exact dimension-wise derivatives in one pass.

A HollowNet splits f: R^d → R^d into a conditioner and a transformer,

    h_i = c_i(x_{-i})          (h_i ∈ R^k never sees x_i),
    f_i(x) = τ([x_i, h_i])     (one small network τ, shared by all i),

so that the Jacobian is a diagonal plus a hollow matrix (zero diagonal):

    ∂f/∂x = diag(∂τ/∂x_i |_{h fixed}) + (∂τ/∂h)(∂h/∂x),   [(∂h/∂x)]_{i,i} = 0.

Holding h fixed (differentiating with respect to the tensor that feeds x_i into τ only) gives
the Jacobian diagonal D_dim f = (∂f_i/∂x_i)_i exactly in one backward pass, and the k-th
dimension-wise derivative D^k_dim f = (∂^k f_i/∂x_i^k)_i in k passes, whatever d is; its sum
is the exact divergence div f = tr(∂f/∂x).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..fields import DimwiseDifferentiable

__all__ = ["HollowNet", "dimwise_derivative", "divergence"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "softplus": F.softplus, "silu": F.silu}


class HollowNet(nn.Module, DimwiseDifferentiable[Tensor]):
    """f_i(t, x) = τ([x_i, h_i]),  h_i = c_i(t, x_{-i}) ∈ R^k,  for x: (..., d) → f: (..., d).

    Conditioner (weights shared over i, except a learned per-dimension offset e_i):

        h_i^(1) = σ(Σ_{j≠i} x_j w_j + e_i + t w_t),   h_i^(l+1) = σ(W_l h_i^(l) + b_l),

    where the sum over j ≠ i is formed from an exclusive prefix sum and an exclusive suffix
    sum of the terms x_j w_j, so x_i never enters h_i: ∂h_i/∂x_i is zero by construction, not
    by cancellation. Transformer τ (shared over i): u = x_i v + U h_i + b, then an MLP of
    width m ending in one output. Cost O(d·k·(k + m)) per point, linear in d.

    Args:
        dim: d, the state dimension (≥ 1).
        hidden: k, width of each h_i.
        conditioner_depth: number of layers of the conditioner (≥ 1).
        transformer_hidden: m, width of τ's hidden layers.
        transformer_depth: number of hidden layers of τ (≥ 1).
        time_dependent: if True, t enters every h_i through t w_t; otherwise t is ignored.
        activation: "tanh", "softplus" or "silu"; smooth, so every D^k_dim f exists.

    ``forward(t, x)`` makes it a field for ``sdl.odeint``; ``value_and_jacobian_diagonal``
    (the ``DimwiseDifferentiable`` capability) is used by the Jacobi–Newton stage solver.
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 32,
        conditioner_depth: int = 2,
        transformer_hidden: int = 32,
        transformer_depth: int = 1,
        time_dependent: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("dim", dim, 1),
            ("hidden", hidden, 1),
            ("conditioner_depth", conditioner_depth, 1),
            ("transformer_hidden", transformer_hidden, 1),
            ("transformer_depth", transformer_depth, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}; got {value!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(_ACTIVATIONS)}")
        self.dim = dim
        self.time_dependent = time_dependent
        self.activation = activation
        self._sigma = _ACTIVATIONS[activation]

        bound = dim**-0.5  # the fan-in of Σ_j x_j w_j, as nn.Linear would initialise it
        self.input_weight = nn.Parameter(torch.empty(dim, hidden).uniform_(-bound, bound))  # row j: w_j
        self.dim_offset = nn.Parameter(torch.empty(dim, hidden).uniform_(-bound, bound))  # row i: e_i
        self.time_weight = nn.Parameter(torch.empty(hidden).uniform_(-1.0, 1.0)) if time_dependent else None
        self.conditioner_layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(conditioner_depth - 1))

        self.self_weight = nn.Parameter(torch.empty(transformer_hidden).uniform_(-1.0, 1.0))  # v
        self.hidden_to_transformer = nn.Linear(hidden, transformer_hidden)  # U, b
        self.transformer_layers = nn.ModuleList(
            nn.Linear(transformer_hidden, transformer_hidden) for _ in range(transformer_depth - 1)
        )
        self.transformer_out = nn.Linear(transformer_hidden, 1)

    def conditioner(self, t: Tensor | float, x: Tensor) -> Tensor:
        """h: (..., d, k), row i a function of t and x_{-i} only. x: (..., d)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension {self.dim}; got shape {tuple(x.shape)}")
        terms = x.unsqueeze(-1) * self.input_weight  # (..., d, k), row j: x_j w_j
        edge = terms.new_zeros(*terms.shape[:-2], 1, terms.shape[-1])
        before = torch.cat([edge, terms[..., :-1, :].cumsum(-2)], dim=-2)  # Σ_{j<i}
        after = torch.cat([terms[..., 1:, :].flip(-2).cumsum(-2).flip(-2), edge], dim=-2)  # Σ_{j>i}
        pre = before + after + self.dim_offset
        if self.time_weight is not None:
            pre = pre + torch.as_tensor(t, dtype=x.dtype, device=x.device) * self.time_weight
        h = self._sigma(pre)
        for layer in self.conditioner_layers:
            h = self._sigma(layer(h))
        return h

    def transformer(self, x: Tensor, h: Tensor) -> Tensor:
        """f_i = τ([x_i, h_i]) for every i: x (..., d), h (..., d, k) → (..., d)."""
        z = self._sigma(x.unsqueeze(-1) * self.self_weight + self.hidden_to_transformer(h))
        for layer in self.transformer_layers:
            z = self._sigma(layer(z))
        return self.transformer_out(z).squeeze(-1)

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        """f(t, x): (..., d) → (..., d)."""
        return self.transformer(x, self.conditioner(t, x))

    def value_and_jacobian_diagonal(self, t: Tensor | float, y: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(f(t, y), D_dim f(t, y)), both (..., d); one forward and one backward pass through τ."""
        value, (diagonal,) = dimwise_derivative(self, t, y, create_graph=create_graph)
        return value, diagonal


def dimwise_derivative(
    net: HollowNet, t: Tensor | float, x: Tensor, order: int = 1, *, create_graph: bool = False
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """f(t, x) and its dimension-wise derivatives D^j_dim f = (∂^j f_i / ∂x_i^j)_i for j = 1..order.

    Exact, in ``order`` backward passes through τ alone: x_i is fed to τ through a separate
    node x̂ (a view of x), h is computed from x, and D^j = ∂(Σ D^{j-1}) / ∂x̂. Since h_i does not
    depend on x_i and τ treats each (point, i) apart, this is ∂^j f_i/∂x_i^j.

    Args:
        net: the HollowNet.
        t: time, a float or 0-d tensor (ignored unless ``net.time_dependent``).
        x: (..., d).
        order: the highest order wanted (≥ 1).
        create_graph: keep the graph of the derivatives, so that losses built from them
            (a CNF's log-density, a Fokker–Planck residual) can be differentiated.

    Returns:
        ``(f, (D^1, …, D^order))``, each (..., d), dtype and device of x. f keeps its full
        graph (to x through both x̂ and h, and to the parameters), so parameter gradients of
        any loss of f are the true ones. If grad mode is off on entry, everything returned is
        detached.
    """
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"order must be an integer ≥ 1; got {order!r}")
    track = torch.is_grad_enabled()
    with torch.enable_grad():
        x_self = x.view_as(x) if (track and x.requires_grad) else x.detach().requires_grad_(True)
        value = net.transformer(x_self, net.conditioner(t, x))
        derivatives = []
        current = value
        for j in range(order):
            keep_graph = (create_graph and track) or j < order - 1
            if current.requires_grad:
                (grad,) = torch.autograd.grad(
                    current.sum(), x_self, create_graph=keep_graph, retain_graph=True, allow_unused=True
                )
            else:
                grad = None
            current = torch.zeros_like(x) if grad is None else grad
            derivatives.append(current)
    if not track:
        return value.detach(), tuple(d.detach() for d in derivatives)
    if not create_graph:
        derivatives = [d.detach() for d in derivatives]
    return value, tuple(derivatives)


def divergence(net: HollowNet, t: Tensor | float, x: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """f(t, x): (..., d) and its exact divergence div f = Σ_i ∂f_i/∂x_i: (...), in one backward pass."""
    value, (diagonal,) = dimwise_derivative(net, t, x, create_graph=create_graph)
    return value, diagonal.sum(-1)
