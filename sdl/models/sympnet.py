"""SympNets (Jin, Zhang, Zhu, Tang, Karniadakis 2020): learned one-step maps that are exactly
symplectic and have explicit inverses, and an unstructured MLP one-step map as the baseline.

State layout: x = (q, p) ∈ ℝ²ⁿ, q first, batch dimensions leading, x: (..., 2n). The symplectic
form in this layout is Ω = [[0, I], [-I, 0]], and a map Φ is symplectic when

    DΦ(x)ᵀ Ω DΦ(x) = Ω   for every x,

which makes it volume preserving as well (det DΦ = 1).

Building block, a shear with a potential V: ℝⁿ → ℝ (a "module" in the paper):

    up:   (q, p) ↦ (q, p + h ∇V(q)),        low:  (q, p) ↦ (q + h ∇V(p), p).

Its Jacobian, [[I, 0], [h ∇²V, I]] for up, is symplectic because the Hessian ∇²V is symmetric, and
its inverse subtracts the same increment, which depends only on the half that the shear leaves
unchanged: Φ_h⁻¹ = Φ_{-h}, exact up to round-off. Three potentials give the paper's three modules:

    linear:      ∇V(z) = (S + Sᵀ) z,           V(z) = ½ zᵀ(S + Sᵀ)z,         S: (n, n)
    activation:  ∇V(z) = a ⊙ σ(z),             V(z) = Σᵢ aᵢ γ(zᵢ),           a: (n,)
    gradient:    ∇V(z) = Kᵀ(a ⊙ σ(K z + b)),   V(z) = Σᵢ aᵢ γ((K z + b)ᵢ),   K: (width, n), a, b: (width,)

with γ' = σ. Compositions of symplectic maps are symplectic, and the inverse of a composition runs
the inverses in reverse order.

Conventions as in the authors' reference code (github.com/jpzxshi/learner, ``learner/nn/sympnet.py``),
which implements the paper (arXiv:2001.03750; Neural Networks 132, 2020):

- "up" and "low" name the block of the matrix [[I, S], [0, I]] or [[I, 0], [S, I]] acting on the
  paper's state order (p, q): up changes p using q, low changes q using p. sdl keeps the names and
  the meaning, not the order: x = (q, p) here.
- Every increment is multiplied by the step h, the bias of a linear block included (the paper's
  extension to a step given as input, for data sampled at varying steps); at h = 0 every map is the
  identity. h is a keyword of ``forward`` and ``inverse``; it defaults to the module's ``step``.
- A linear block alternates up and low shears, starting with up, then adds h·b. An LA-SympNet with
  ``layers`` = L is l_L ∘ N_{L-1} ∘ l_{L-1} ∘ … ∘ N_1 ∘ l_1: L linear blocks l and L - 1 activation
  shears N alternating up, low, … (as ``layers`` counts in the reference code). A G-SympNet is
  ``layers`` gradient shears alternating up, low, …
- Initialisation as in the reference code: S, a and K have entries 0.01·N(0, 1); the gradient
  shear's b and the linear block's bias start at 0; σ is the sigmoid unless chosen otherwise. The
  untrained network is then a small perturbation of the identity: on inputs with entries in [-1, 1]
  a G-SympNet (4 layers, width 20, n = 2) moves x by about 10⁻³, an LA-SympNet (3 layers, 2
  sublayers), whose linear shears act on all of x, by about 10⁻¹.

``MLPMap`` is the baseline without structure: x ↦ x + h·MLP(x). It is not symplectic and has no
explicit inverse, so it has no ``inverse`` method.
"""

from __future__ import annotations

import itertools
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from . import activations
from .activations import Activation
from .p4inv import _check_last_dim

__all__ = [
    "ActivationShear",
    "GSympNet",
    "GradientShear",
    "LASympNet",
    "LinearShear",
    "LinearSymplectic",
    "MLPMap",
    "SymplecticMap",
]

_MODES = ("up", "low")
# Entries of S, a and K at initialisation are this times N(0, 1), as in the authors' code.
_INIT_STD = 0.01


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_step(step: object) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step):
        raise ValueError(f"step must be a finite real number, got {step!r}")
    return float(step)


def _resolve_step(x: Tensor, h: float | Tensor | None, default: float) -> float | Tensor:
    """The step to use for inputs x (..., d): ``default`` when h is None, a float as given, or a
    tensor broadcastable to (..., 1) (one step per sample, say) cast to x's dtype.

    A tensor of shape (B,) for x of shape (B, d) is rejected rather than broadcast: against the
    (B, n) increments it would pair every step with every sample.
    """
    if h is None:
        return default
    if isinstance(h, Tensor):
        target = (*x.shape[:-1], 1)
        try:
            fits = torch.broadcast_shapes(h.shape, target) == target
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"h must be a float or a tensor broadcastable to the batch shape (..., 1) = {target}, "
                f"got a tensor of shape {tuple(h.shape)}"
            )
        return h.to(x.dtype)
    if isinstance(h, bool) or not isinstance(h, numbers.Real):
        raise TypeError(f"h must be a float, a tensor or None (the module's step), got {type(h).__name__}")
    return float(h)


class SymplecticMap(nn.Module, ABC):
    """An exactly symplectic map Φ_h: ℝ²ⁿ → ℝ²ⁿ with an explicit inverse.

    ``forward(x, h=None)`` is Φ_h(x) and ``inverse(x, h=None)`` is Φ_h⁻¹(x); both map (..., 2n) to
    (..., 2n), x in the dtype and on the device of the parameters. h is a float or a tensor
    broadcastable to (..., 1) (cast to x's dtype) and defaults to ``step``.

    Attributes:
        n: degrees of freedom (q and p each have n entries).
        dim: 2n, the size of the state.
        step: the default step h.
    """

    def __init__(self, n: int, step: float = 1.0) -> None:
        super().__init__()
        self.n = _check_positive_int("n", n)
        self.dim = 2 * self.n
        self.step = _check_step(step)

    def forward(self, x: Tensor, h: float | Tensor | None = None) -> Tensor:
        """Φ_h(x). Shapes: x (..., 2n) → (..., 2n)."""
        q, p, h = self._split(x, h)
        return torch.cat(self._map(q, p, h), -1)

    def inverse(self, x: Tensor, h: float | Tensor | None = None) -> Tensor:
        """Φ_h⁻¹(x), so that ``inverse(forward(x, h), h) = x`` up to round-off. Shapes: (..., 2n) → (..., 2n)."""
        q, p, h = self._split(x, h)
        return torch.cat(self._inverse_map(q, p, h), -1)

    def _split(self, x: Tensor, h: float | Tensor | None) -> tuple[Tensor, Tensor, float | Tensor]:
        """(q, p, h) from a checked x (..., 2n) and a resolved h. The maps work on the halves, split
        once here and joined once at the end; the halves are made contiguous because elementwise
        activations on a strided half of x run many times slower on the CPU (tanh on a (4096, 2)
        half of a (4096, 4) tensor: 280 µs strided, 7 µs contiguous, torch 2.13)."""
        _check_last_dim(x, self.dim)
        return x[..., : self.n].contiguous(), x[..., self.n :].contiguous(), _resolve_step(x, h, self.step)

    @abstractmethod
    def _map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        """Φ_h(q, p) for q, p (..., n) and a resolved h (float or tensor broadcastable to (..., 1))."""

    @abstractmethod
    def _inverse_map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        """Φ_h⁻¹(q, p), arguments as for ``_map``."""


class _Shear(SymplecticMap):
    """up: (q, p) ↦ (q, p + h ∇V(q)); low: (q, p) ↦ (q + h ∇V(p), p). A subclass gives ∇V."""

    def __init__(self, n: int, mode: str, step: float) -> None:
        super().__init__(n, step)
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(map(repr, _MODES))}")
        self.mode = mode

    @abstractmethod
    def potential_gradient(self, z: Tensor) -> Tensor:
        """∇V(z). Shapes: z (..., n) → (..., n)."""

    def _map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        if self.mode == "up":
            return q, p + h * self.potential_gradient(q)
        return q + h * self.potential_gradient(p), p

    def _inverse_map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        # The increment depends only on the half the shear leaves unchanged: subtract it again.
        return self._map(q, p, -h)

    def extra_repr(self) -> str:
        return f"n={self.n}, mode={self.mode!r}, step={self.step}"


class LinearShear(_Shear):
    """Linear shear (the paper's linear module, one sublayer): ∇V(z) = (S + Sᵀ) z, S: (n, n) learned.

    up: p ← p + h (S + Sᵀ) q;  low: q ← q + h (S + Sᵀ) p. S (``weight``) starts with entries 0.01·N(0, 1).
    """

    def __init__(self, n: int, mode: str = "up", step: float = 1.0) -> None:
        super().__init__(n, mode, step)
        self.weight = nn.Parameter(_INIT_STD * torch.randn(n, n))

    def symmetric_matrix(self) -> Tensor:
        """S + Sᵀ, the Hessian of V. Shape (n, n)."""
        return self.weight + self.weight.T

    def potential_gradient(self, z: Tensor) -> Tensor:
        """(S + Sᵀ) z. Shapes: z (..., n) → (..., n)."""
        return z @ self.symmetric_matrix()  # symmetric, so z (S + Sᵀ) is the row form of (S + Sᵀ) z


class ActivationShear(_Shear):
    """Activation shear (the paper's activation module): ∇V(z) = a ⊙ σ(z), a: (n,) learned.

    up: p ← p + h a ⊙ σ(q);  low: q ← q + h a ⊙ σ(p). a (``scale``) starts with entries 0.01·N(0, 1).

    Args:
        n: degrees of freedom.
        mode: "up" or "low".
        activation: σ, a name from ``sdl.models.activation_names()`` or an ``Activation``.
        step: default h.
    """

    def __init__(self, n: int, mode: str = "up", activation: str | Activation = "sigmoid", step: float = 1.0) -> None:
        super().__init__(n, mode, step)
        self.activation = activations.activation(activation)
        self.scale = nn.Parameter(_INIT_STD * torch.randn(n))

    def potential_gradient(self, z: Tensor) -> Tensor:
        """a ⊙ σ(z). Shapes: z (..., n) → (..., n)."""
        return self.scale * self.activation(z)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation.name!r}"


class GradientShear(_Shear):
    """Gradient shear (the paper's gradient module): ∇V(z) = Kᵀ(a ⊙ σ(K z + b)), the gradient of
    V(z) = Σᵢ aᵢ γ((K z + b)ᵢ); K: (width, n), a, b: (width,) learned.

    up: p ← p + h Kᵀ(a ⊙ σ(K q + b));  low: q ← q + h Kᵀ(a ⊙ σ(K p + b)).
    K (``weight``) and a (``scale``) start with entries 0.01·N(0, 1), b (``bias``) at 0.

    Args:
        n: degrees of freedom.
        width: number of terms of V (rows of K).
        mode: "up" or "low".
        activation: σ, a name from ``sdl.models.activation_names()`` or an ``Activation``.
        step: default h.
    """

    def __init__(self, n: int, width: int, mode: str = "up", activation: str | Activation = "sigmoid", step: float = 1.0) -> None:
        super().__init__(n, mode, step)
        self.width = _check_positive_int("width", width)
        self.activation = activations.activation(activation)
        self.weight = nn.Parameter(_INIT_STD * torch.randn(width, n))
        self.scale = nn.Parameter(_INIT_STD * torch.randn(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def potential_gradient(self, z: Tensor) -> Tensor:
        """Kᵀ(a ⊙ σ(K z + b)). Shapes: z (..., n) → (..., n)."""
        hidden = self.scale * self.activation(z @ self.weight.T + self.bias)  # (..., width)
        return hidden @ self.weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, width={self.width}, activation={self.activation.name!r}"


class LinearSymplectic(SymplecticMap):
    """Linear block (the paper's linear module): ``sublayers`` linear shears alternating up, low, …
    (up first), then a shift by h·b:

        ℓ_h(x) = L_k ∘ … ∘ L_1 (x) + h b,   b ∈ ℝ²ⁿ learned (b = (b_q, b_p), starting at 0).

    The inverse subtracts h b and undoes the shears in reverse order.

    Args:
        n: degrees of freedom.
        sublayers: k, the number of shears.
        step: default h.
    """

    def __init__(self, n: int, sublayers: int = 2, step: float = 1.0) -> None:
        super().__init__(n, step)
        self.sublayers = _check_positive_int("sublayers", sublayers)
        self.shears = nn.ModuleList(LinearShear(n, _MODES[i % 2], step) for i in range(sublayers))
        self.bias = nn.Parameter(torch.zeros(2 * n))

    def _map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        for shear in cast(Sequence[LinearShear], self.shears):  # ModuleList types its items as Module
            q, p = shear._map(q, p, h)
        return q + h * self.bias[: self.n], p + h * self.bias[self.n :]

    def _inverse_map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        q, p = q - h * self.bias[: self.n], p - h * self.bias[self.n :]
        for shear in reversed(cast(Sequence[LinearShear], self.shears)):
            q, p = shear._inverse_map(q, p, h)
        return q, p


class _Composition(SymplecticMap):
    """Φ_h = φ_m ∘ … ∘ φ_1 of symplectic maps sharing one h; Φ_h⁻¹ = φ_1⁻¹ ∘ … ∘ φ_m⁻¹."""

    def __init__(self, n: int, maps: Sequence[SymplecticMap], step: float) -> None:
        super().__init__(n, step)
        self.maps = nn.ModuleList(maps)

    def _map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        for part in cast(Sequence[SymplecticMap], self.maps):  # ModuleList types its items as Module
            q, p = part._map(q, p, h)
        return q, p

    def _inverse_map(self, q: Tensor, p: Tensor, h: float | Tensor) -> tuple[Tensor, Tensor]:
        for part in reversed(cast(Sequence[SymplecticMap], self.maps)):
            q, p = part._inverse_map(q, p, h)
        return q, p


class LASympNet(_Composition):
    """LA-SympNet: linear blocks and activation shears,

        Φ_h = ℓ_L ∘ N_{L-1} ∘ ℓ_{L-1} ∘ … ∘ N_1 ∘ ℓ_1,

    L = ``layers`` linear blocks ℓ (each ``LinearSymplectic`` with ``sublayers`` shears) and L - 1
    activation shears N alternating up, low, … (N_1 is up). Parameters: L (k n² + 2n) + (L - 1) n
    for k = ``sublayers``.

    Args:
        n: degrees of freedom; inputs are (..., 2n).
        layers: L ≥ 1 (L = 1 is a linear symplectic map plus a shift).
        sublayers: shears per linear block.
        activation: σ, a name from ``sdl.models.activation_names()`` or an ``Activation``; the
            paper's default is the sigmoid.
        step: default h.
    """

    def __init__(
        self, n: int, layers: int = 3, sublayers: int = 2, activation: str | Activation = "sigmoid", step: float = 1.0
    ) -> None:
        layers = _check_positive_int("layers", layers)
        sigma = activations.activation(activation)
        maps: list[SymplecticMap] = []
        for index in range(layers - 1):
            maps.append(LinearSymplectic(n, sublayers, step))
            maps.append(ActivationShear(n, _MODES[index % 2], sigma, step))
        maps.append(LinearSymplectic(n, sublayers, step))
        super().__init__(n, maps, step)
        self.layers = layers
        self.sublayers = sublayers
        self.activation = sigma


class GSympNet(_Composition):
    """G-SympNet: ``layers`` gradient shears alternating up, low, … (the first is up),

        Φ_h = G_L ∘ … ∘ G_1,   G_i up for odd i, low for even i.

    Parameters: L (2 width + width n).

    Args:
        n: degrees of freedom; inputs are (..., 2n).
        layers: L ≥ 1, the number of gradient shears (2 or more for both q and p to change).
        width: terms per potential (rows of each K).
        activation: σ, a name from ``sdl.models.activation_names()`` or an ``Activation``; the
            paper's default is the sigmoid.
        step: default h.
    """

    def __init__(
        self, n: int, layers: int = 3, width: int = 20, activation: str | Activation = "sigmoid", step: float = 1.0
    ) -> None:
        layers = _check_positive_int("layers", layers)
        sigma = activations.activation(activation)
        maps = [GradientShear(n, width, _MODES[index % 2], sigma, step) for index in range(layers)]
        super().__init__(n, maps, step)
        self.layers = layers
        self.width = width
        self.activation = sigma


class MLPMap(nn.Module):
    """The unstructured baseline: a residual one-step map x ↦ x + h · MLP(x).

    MLP(x) = W_{m+1} σ(… σ(W_1 x + c_1) …) + c_{m+1} with m = ``layers`` hidden layers of size
    ``hidden`` (PyTorch's default initialisation). Neither symplectic nor volume preserving, and with
    no explicit inverse, so the class has no ``inverse`` method.

    Args:
        dim: size of the state (2n for x = (q, p), though any size works).
        hidden: width of the hidden layers.
        layers: m ≥ 1, the number of hidden layers.
        activation: σ, a name from ``sdl.models.activation_names()`` or an ``Activation``.
        step: default h.
    """

    def __init__(
        self, dim: int, hidden: int = 64, layers: int = 2, activation: str | Activation = "tanh", step: float = 1.0
    ) -> None:
        super().__init__()
        self.dim = _check_positive_int("dim", dim)
        self.hidden = _check_positive_int("hidden", hidden)
        self.layers = _check_positive_int("layers", layers)
        self.activation = activations.activation(activation)
        self.step = _check_step(step)
        sizes = [dim] + [hidden] * layers + [dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: Tensor, h: float | Tensor | None = None) -> Tensor:
        """x + h · MLP(x). Shapes: x (..., dim) → (..., dim); h a float or a tensor broadcastable to (..., 1)."""
        _check_last_dim(x, self.dim)
        h = _resolve_step(x, h, self.step)
        y = x
        for linear in self.linears[:-1]:
            y = self.activation(linear(y))
        return x + h * self.linears[-1](y)
