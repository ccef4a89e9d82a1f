"""Non-expansive ODE-networks by construction: the step rules behind ``ODENet(constraint=...)``.

Every rule keeps each layer's constants inside a range where a proof says the step is
non-expansive in ‖·‖₂ (``sdl.stability.lipschitz_bound`` checks the same inequalities with exact
norms and issues the certificate; a rule never certifies itself):

- "nonexpansive" (rescale A; Sherry et al. 2024): a ``GradientFlowField`` f = -Aᵀσ(Az + b) with
  0 ≤ σ' ≤ L_σ has the circle condition of radius ρ = L_σ‖A‖₂²/2, and an explicit Runge–Kutta step
  of size h is non-expansive when hρ ≤ r, r = ``contractivity_radius(tableau)``. A parametrisation
  of ``field.weight`` (``torch.nn.utils.parametrize``) replaces A^k at every forward pass by

      c_k A^k,   c_k = min(1, (2r / (h L_σ ‖A^k‖₂²))^½),   so that h L_σ ‖c_k A^k‖₂² ≤ 2r;

  the gradient flows through c_k (as through ``spectral_norm``).
- "nonexpansive_step" (choose the step): A is left alone and layer k takes the step
  h_k = min(h, 2r / (L_σ ‖A^k‖₂²)); the steps are read to the host once per forward pass and no
  gradient flows through them. The network's time Σ h_k is then at most T.
- "switching" (Celledoni et al. 2022): a ``SwitchingField`` with explicit Euler; see
  ``switching_step_sizes``.

The norm ‖A^k‖₂ is exact (``torch.linalg.matrix_norm(A, 2)``, an SVD) unless ``norm="power"``: then
in training mode it is the warm-started power-iteration estimate uᵀAv (one iteration per forward
pass, u and v kept as buffers), which is a lower bound, so the rule can be violated slightly while
training; in eval mode the norm is always exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vector_fields import GradientFlowField, SwitchingField, _gradient_flow_circle

__all__ = ["CONSTRAINTS", "NORMS", "SpectralNorm", "nonexpansive_step_sizes", "rescale_to_rule", "switching_step_sizes"]

CONSTRAINTS: dict[str, str] = {
    "nonexpansive": "gradient-flow field; A rescaled at every forward pass so that h L_σ ‖A_k‖₂² ≤ 2r "
    "(r: the method's contractivity radius): every step 1-Lipschitz",
    "nonexpansive_step": "gradient-flow field; layer k steps h_k = min(h, 2r / (L_σ ‖A_k‖₂²)): every step 1-Lipschitz",
    "switching": "switching field, explicit Euler; contractive step h_c = min(h, 1/(L_σ‖A_c‖²)), expansive step "
    "h_e ≤ (1/κ_c - 1)/(L_σ‖A_e‖): every (expansive, contractive) pair 1-Lipschitz",
}
NORMS = ("exact", "power")
_POWER_START_ITERATIONS = 15  # as torch.nn.utils.parametrizations.spectral_norm at registration


class SpectralNorm(nn.Module):
    """‖A‖₂ of every matrix in a stack A: (..., m, n) -> (...).

    ``power=False``, or eval mode: exact (``torch.linalg.matrix_norm(A, 2)``). ``power=True`` in
    training mode: one power iteration from the kept vectors, v ← Aᵀu/‖Aᵀu‖, u ← Av/‖Av‖ (no
    gradient), then uᵀAv, differentiable in A and never above ‖A‖₂. A call without gradient (an
    adjoint's backward sweep recomputing the weights) reads the estimate without advancing it, so
    it sees the weights of the forward pass.
    """

    def __init__(self, weight: Tensor, power: bool = False) -> None:
        super().__init__()
        self.power = power
        if power:
            lead, rows = weight.shape[:-2], weight.shape[-2]
            generator = torch.Generator().manual_seed(0)  # the start vectors do not consume the global stream
            self.register_buffer("u", F.normalize(torch.randn(*lead, rows, generator=generator), dim=-1).to(weight))
            self.register_buffer("v", torch.zeros_like(weight[..., 0, :]))
            self._iterate(weight.detach(), _POWER_START_ITERATIONS)

    @torch.no_grad()
    def _iterate(self, weight: Tensor, iterations: int) -> None:
        for _ in range(iterations):
            self.v.copy_(F.normalize((self.u.unsqueeze(-2) @ weight).squeeze(-2), dim=-1))
            self.u.copy_(F.normalize((weight @ self.v.unsqueeze(-1)).squeeze(-1), dim=-1))

    def forward(self, weight: Tensor) -> Tensor:
        if not (self.power and self.training):
            return torch.linalg.matrix_norm(weight, 2)
        if torch.is_grad_enabled():
            self._iterate(weight.detach(), 1)
        u, v = self.u.clone(), self.v.clone()  # the graph keeps these; later iterations update the buffers in place
        return (u.unsqueeze(-2) @ weight @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)


class _RescaleToRule(nn.Module):
    """The parametrisation A ↦ c A, c = min(1, (bound / ‖A‖₂²)^½) per matrix, bound = 2r / (h L_σ)."""

    def __init__(self, weight: Tensor, squared_norm_bound: float, power: bool) -> None:
        super().__init__()
        self.squared_norm_bound = squared_norm_bound
        self.norm = SpectralNorm(weight, power)

    def forward(self, weight: Tensor) -> Tensor:
        scale = (self.squared_norm_bound**0.5 / self.norm(weight)).clamp(max=1.0)  # ‖A‖ = 0 gives inf, then 1
        return weight * scale.unsqueeze(-1).unsqueeze(-1)


def _squared_norm_bound(field: GradientFlowField, step_size: float, radius: float) -> float:
    """2r / (h L_σ): the largest ‖A‖₂² with h L_σ ‖A‖₂² ≤ 2r."""
    return 2.0 * radius / (step_size * field.activation.lipschitz)


def _check_gradient_flow(field, constraint: str) -> None:
    """The "nonexpansive" rules need a ``GradientFlowField`` with a monotone, Lipschitz activation."""
    if not isinstance(field, GradientFlowField):
        raise TypeError(f"constraint={constraint!r} needs a GradientFlowField, got {type(field).__name__}")
    if field.circle_radius() is None:
        raise ValueError(
            f"constraint={constraint!r} needs a monotone activation with a known Lipschitz constant (0 ≤ σ' ≤ L_σ); "
            f"got {field.activation.name!r}"
        )


def rescale_to_rule(field: GradientFlowField, *, step_size: float, radius: float, norm: str = "exact") -> None:
    """Register the "nonexpansive" parametrisation on ``field.weight`` (in place): every read of
    ``field.weight`` is then c_k A^k (module docstring); the learned A is
    ``field.parametrizations.weight.original``."""
    _check_gradient_flow(field, "nonexpansive")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid choices: {', '.join(NORMS)}")
    rule = _RescaleToRule(field.weight.detach(), _squared_norm_bound(field, step_size, radius), norm == "power")
    torch.nn.utils.parametrize.register_parametrization(field, "weight", rule)


def nonexpansive_step_sizes(field: GradientFlowField, step_size: float, radius: float, norm: SpectralNorm) -> Tensor:
    """h_k = min(h, 2r / (L_σ ‖A^k‖₂²)) per layer, (K,) or () for shared parameters; no gradient.
    ``norm`` is called in the caller's grad mode, so that a power iteration advances in training."""
    squared_norms = norm(field.weight).detach().square()
    bound = _squared_norm_bound(field, step_size, radius)
    return torch.where(squared_norms <= bound, step_size, step_size * bound / squared_norms)


def switching_step_sizes(field: SwitchingField, step_size: float) -> Tensor:
    """(K,) explicit Euler steps that make each pair (layer 2j expansive, 2j+1 contractive) non-expansive.

    With m ≤ σ' ≤ L, a contractive layer -Aᵀσ(Az + b) has the circle condition of radius
    ρ = L‖A‖²/2 and the one-sided bound ν = -α, α = m σ_min(A)² (``GradientFlowField``). For an Euler
    step, ‖Δz + hΔf‖² = ‖Δz‖² + 2h⟨Δf, Δz⟩ + h²‖Δf‖², and splitting ⟨Δf, Δz⟩ as θ times the
    one-sided bound plus (1 - θ) times the circle bound with θ = 1 - hρ (needs hρ ≤ 1) leaves

        Lip(contractive step) ≤ κ_c = (1 - 2h_c α (1 - h_c ρ))^½ < 1 when α > 0,

    smallest at h_c = 1/(2ρ) = 1/(L‖A_c‖²): we take h_c = min(h, 1/(L‖A_c‖²)). The expansive step
    z + h_e σ(A_e z + b_e) is (1 + h_e L‖A_e‖)-Lipschitz, so the pair is non-expansive when

        (1 + h_e L ‖A_e‖) κ_c ≤ 1:   h_e = min(h, (1/κ_c - 1) / (L‖A_e‖)).

    Exact singular values; no gradient. With α = 0 (m = 0, or A_c singular) κ_c = 1 and h_e = 0.
    """
    with torch.no_grad():
        circle, one_sided = _gradient_flow_circle(field.activation, field.weight[1::2])  # ρ, ν of each contractive layer
        strong = -one_sided  # α
        step_c = torch.where(2 * circle * step_size <= 1, step_size, 0.5 / circle)
        kappa = (1 - 2 * step_c * strong * (1 - step_c * circle)).clamp(min=0.0).sqrt()
        slack = 1 / kappa - 1  # kappa > 0 here: α ≤ 2ρ since m ≤ L and σ_min ≤ σ_max
        growth = field.activation.lipschitz * torch.linalg.matrix_norm(field.weight[0::2], 2)
        step_e = torch.where(growth * step_size <= slack, step_size, slack / growth)
        return torch.stack([step_e, step_c], dim=1).reshape(-1)


def _check_switching(field, stages: int) -> None:
    """``constraint="switching"`` needs a ``SwitchingField`` with m = inf σ' > 0 and explicit Euler."""
    if not isinstance(field, SwitchingField):
        raise TypeError(f"constraint='switching' needs a SwitchingField, got {type(field).__name__}")
    act = field.activation
    if not act.monotone_unit_slope or act.lipschitz is None or not act.min_slope:
        raise ValueError(
            f"constraint='switching' needs an activation with 0 < m ≤ σ' ≤ L_σ (e.g. sdl.models.leaky_relu(0.5)): "
            f"with m = 0 the contractive steps need not contract and every expansive step would be 0; got {act.name!r}"
        )
    if stages != 1:
        raise ValueError(f"constraint='switching' is derived for explicit Euler steps; got a {stages}-stage method")
