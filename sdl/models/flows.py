"""Normalizing flows built from invertible layers: P4Inv mixing, bijective activations, RealNVP.

Convention: every bijection maps data towards noise, ``forward(x) -> (z, logdet)`` with
logdet = log|det ∂z/∂x| per sample, and ``inverse(z) -> (x, logdet)`` with logdet = log|det ∂x/∂z|.
The density of a flow with standard normal base is the change of variables

    log p(x) = log N(z; 0, I) + log|det ∂z/∂x|,   z = T(x),

and sampling draws z ~ N(0, I) and returns x = T⁻¹(z).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .p4inv import P4InvLinear, _check_last_dim

__all__ = [
    "AffineCoupling",
    "BentIdentity",
    "FlowSequence",
    "NormalizingFlow",
    "Permutation",
    "alternating_flow",
    "realnvp",
]

_MIXINGS = ("permutation", "p4inv")


class BentIdentity(nn.Module):
    """Smooth elementwise bijection of ℝ with an analytic inverse: f(x) = x + a(√(x² + 1) - 1).

    f'(x) = 1 + a x / √(x² + 1) lies in (1 - |a|, 1 + |a|), so f is strictly increasing for
    |a| < 1; it bends the identity into a smooth leaky-ReLU shape (slopes 1 - a and 1 + a far
    left and right). Solving f(x) = y, with c = y + a:

        x = (c - a √(c² + 1 - a²)) / (1 - a²).

    Args:
        bend: a, with |a| < 1 (default 0.5).
    """

    def __init__(self, bend: float = 0.5) -> None:
        super().__init__()
        if not (isinstance(bend, (int, float)) and abs(bend) < 1.0):
            raise ValueError(f"bend must be a float with |bend| < 1, got {bend!r}")
        self.bend = float(bend)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = f(x) elementwise and Σ_i log f'(x_i). Shapes: x (..., n) → y (..., n), logdet (...,)."""
        root = torch.sqrt(x * x + 1.0)
        y = x + self.bend * (root - 1.0)
        return y, torch.log1p(self.bend * x / root).sum(-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f⁻¹(y) elementwise and Σ_i log (f⁻¹)'(y_i) = -Σ_i log f'(x_i)."""
        a = self.bend
        c = y + a
        x = (c - a * torch.sqrt(c * c + (1.0 - a * a))) / (1.0 - a * a)
        return x, -torch.log1p(a * x / torch.sqrt(x * x + 1.0)).sum(-1)

    def extra_repr(self) -> str:
        return f"bend={self.bend}"


class Permutation(nn.Module):
    """Fixed permutation z_i = x_{π(i)}; logdet 0. Default π reverses the features."""

    def __init__(self, dim: int, permutation: Sequence[int] | torch.Tensor | None = None) -> None:
        super().__init__()
        indices = torch.arange(dim - 1, -1, -1) if permutation is None else torch.as_tensor(permutation)
        if sorted(indices.tolist()) != list(range(dim)):
            raise ValueError(f"permutation must be a permutation of range({dim}), got {indices.tolist()}")
        self.register_buffer("indices", indices.long())
        self.register_buffer("inverse_indices", torch.argsort(indices).long())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes: x (..., n) → z (..., n), logdet (...,)."""
        _check_last_dim(x, len(self.indices))
        return x[..., self.indices], x.new_zeros(x.shape[:-1])

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_last_dim(z, len(self.indices))
        return z[..., self.inverse_indices], z.new_zeros(z.shape[:-1])


class AffineCoupling(nn.Module):
    """RealNVP affine coupling: the first k features condition an affine map of the rest.

    With x = (x_a, x_b), x_a of size k = ⌊n/2⌋, and (s, t) = net(x_a):

        z_a = x_a,  z_b = x_b ⊙ exp(s) + t,   log|det ∂z/∂x| = Σ s,

    where s = c tanh(s̃ / c) softly clamps the raw log-scale s̃ to (-c, c) for stability.
    The network's last layer starts at zero, so a fresh coupling is the identity.

    Args:
        dim: n ≥ 2.
        hidden_features: width of the two hidden layers of the conditioner MLP.
        scale_clamp: c.
    """

    def __init__(self, dim: int, hidden_features: int = 64, scale_clamp: float = 3.0) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(f"a coupling layer needs dim >= 2, got {dim!r}")
        self.dim = dim
        self.split = dim // 2
        self.scale_clamp = float(scale_clamp)
        out = dim - self.split
        self.net = nn.Sequential(
            nn.Linear(self.split, hidden_features),
            nn.SiLU(),
            nn.Linear(hidden_features, hidden_features),
            nn.SiLU(),
            nn.Linear(hidden_features, 2 * out),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, conditioner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_scale, shift = self.net(conditioner).chunk(2, dim=-1)
        return self.scale_clamp * torch.tanh(raw_scale / self.scale_clamp), shift

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes: x (..., n) → z (..., n), logdet (...,)."""
        _check_last_dim(x, self.dim)
        x_a, x_b = x[..., : self.split], x[..., self.split :]
        log_scale, shift = self._scale_shift(x_a)
        return torch.cat([x_a, x_b * torch.exp(log_scale) + shift], -1), log_scale.sum(-1)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_b = (z_b - t) ⊙ exp(-s); logdet = -Σ s."""
        _check_last_dim(z, self.dim)
        z_a, z_b = z[..., : self.split], z[..., self.split :]
        log_scale, shift = self._scale_shift(z_a)
        return torch.cat([z_a, (z_b - shift) * torch.exp(-log_scale)], -1), -log_scale.sum(-1)


class FlowSequence(nn.Module):
    """Composition T = T_K ∘ … ∘ T_1 of bijections; log-determinants add.

    Each layer is an ``nn.Module`` with ``forward(x) -> (y, logdet)`` and
    ``inverse(y) -> (x, logdet)``; ``inverse`` runs the layers in reverse order.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.new_zeros(x.shape[:-1])
        for layer in self.layers:
            x, logdet = layer(x)
            total = total + logdet
        return x, total

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.layers):
            z, logdet = layer.inverse(z)
            total = total + logdet
        return z, total


class NormalizingFlow(nn.Module):
    """Density p(x) = N(T(x); 0, I) |det ∂T/∂x| for a bijection T (data → noise)."""

    def __init__(self, transform: nn.Module, dim: int) -> None:
        super().__init__()
        self.transform = transform
        self.dim = dim

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = -½‖z‖² - (n/2) log 2π + log|det ∂z/∂x|. Shapes: x (..., n) → (...,)."""
        z, logdet = self.transform(x)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2.0 * math.pi) + logdet

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """x = T⁻¹(z), z ~ N(0, I). Shape (num_samples, n); dtype/device default to the flow's."""
        reference = next(self.parameters(), None)
        dtype = dtype or (reference.dtype if reference is not None else torch.get_default_dtype())
        device = device or (reference.device if reference is not None else None)
        z = torch.randn(num_samples, self.dim, generator=generator, dtype=dtype, device=device)
        return self.transform.inverse(z)[0]

    def from_noise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = T⁻¹(z) and log q(x) = log N(z; 0, I) - log|det ∂x/∂z| for given base noise z.
        Shapes: z (..., n) → x (..., n), log q (...,). Differentiable (reverse-KL training)."""
        x, logdet = self.transform.inverse(z)
        return x, -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2.0 * math.pi) - logdet


def _mixing_factory(mixing: str | Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
    if callable(mixing):
        return mixing
    if mixing == "permutation":
        return Permutation
    if mixing == "p4inv":
        # Starts as the reversal, i.e. as the permutation flow, and learns from there.
        return lambda dim: P4InvLinear(dim, init="reverse")
    raise ValueError(f"unknown mixing {mixing!r}; valid: {', '.join(map(repr, _MIXINGS))} or a callable dim -> layer")


def realnvp(
    dim: int,
    num_couplings: int = 4,
    hidden_features: int = 64,
    mixing: str | Callable[[int], nn.Module] = "permutation",
) -> NormalizingFlow:
    """RealNVP: ``num_couplings`` affine couplings with a mixing layer between consecutive ones.

    ``mixing`` is "permutation" (fixed reversal), "p4inv" (``P4InvLinear`` initialised to the
    reversal), or a callable ``dim -> bijection`` (e.g. an LU-parameterised layer).
    """
    if not isinstance(num_couplings, int) or num_couplings < 1:
        raise ValueError(f"num_couplings must be a positive int, got {num_couplings!r}")
    make_mixing = _mixing_factory(mixing)
    layers: list[nn.Module] = []
    for index in range(num_couplings):
        if index:
            layers.append(make_mixing(dim))
        layers.append(AffineCoupling(dim, hidden_features))
    return NormalizingFlow(FlowSequence(layers), dim)


def alternating_flow(dim: int, num_blocks: int = 4, bend: float = 0.5) -> NormalizingFlow:
    """P4InvLinear, BentIdentity, P4InvLinear, …, P4InvLinear: ``num_blocks`` activations in all."""
    if not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
    layers: list[nn.Module] = [P4InvLinear(dim)]
    for _ in range(num_blocks):
        layers += [BentIdentity(bend), P4InvLinear(dim)]
    return NormalizingFlow(FlowSequence(layers), dim)
