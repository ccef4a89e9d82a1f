"""Certified ℓ₂ robustness of ODE-networks: a proven Lipschitz bound of x ↦ logits, and the radius it certifies.

An ``ODENet`` is logits = head(Φ_{K-1} ∘ … ∘ Φ_0(lift(x))), so its ℓ₂ Lipschitz constant is at most

    ‖lift‖₂ · Π_k Lip(Φ_k) · ‖head‖₂

with exact spectral norms (an SVD, not a power-iteration estimate, which would be a lower bound),
and for one explicit Runge–Kutta step Φ of size h of a field with Lipschitz bound L
(``step_lipschitz_bound``) the least of the bounds that apply:

- any field: the stage recursion L_{Y_i} ≤ 1 + h Σ_j |a_ij| L L_{Y_j}, Lip(Φ) ≤ 1 + h Σ_i |b_i| L L_{Y_i};
- a field with the circle condition of radius ρ (``sdl.fields.CircleCondition``) and b ≥ 0: with
  X = M + B/(hρ) (``sdl.stability.contractivity``), ‖Δy₁‖² ≤ ‖Δy₀‖² - Σ_ij X_ij ⟨u_i, u_j⟩ and
  ‖u_i‖ ≤ h L L_{Y_i} ‖Δy₀‖, so Lip(Φ)² ≤ 1 + max(0, -λ_min(X)) Σ_i (h L L_{Y_i})²: exactly 1
  when hρ ≤ r (the rule holds, checked here), and close to 1 when it almost holds;
- explicit Euler and a field with the circle condition and one-sided bound ν ≤ 0, hρ ≤ 1:
  Lip(Φ)² ≤ 1 + 2hν(1 - hρ) (``sdl.models.constrained.switching_step_sizes``).

The bound holds for the map in exact arithmetic with the model's stored parameters; norms and
eigenvalues are computed in float64 (a float32 model is certified through its float64 twin, whose
parametrised weights and chosen steps are recomputed in float64), so it is exact up to float64
round-off. The model is certified in eval mode: spectral_norm and power-iteration estimates are
then not advanced, and every constraint uses exact norms.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import overload

import numpy as np
import torch
from torch import Tensor, nn

from ..fields import CircleCondition, LipschitzBounded
from ..integrators import ButcherTableau, ExplicitRungeKutta

__all__ = ["certified_accuracy", "certified_radius", "lipschitz_bound", "step_lipschitz_bound"]


def step_lipschitz_bound(tableau: ButcherTableau, step_size: float, layer) -> float:
    """A proven bound on the ℓ₂ Lipschitz constant of z ↦ Φ_h(z), one explicit step of ``tableau``
    of size h = ``step_size`` ≥ 0 for the field ``layer`` (one parameter set: a bound layer, shape ()
    bounds), ``sdl.fields.LipschitzBounded`` and possibly ``CircleCondition`` (module docstring)."""
    if not tableau.explicit:
        raise ValueError("step_lipschitz_bound needs an explicit method; an implicit step is not bounded here")
    if not isinstance(layer, LipschitzBounded):
        raise TypeError(f"the field must be sdl.fields.LipschitzBounded to bound its steps; got {type(layer).__name__}")
    h = float(step_size)
    if not (0.0 <= h < math.inf):
        raise ValueError(f"step_size must be finite and ≥ 0, got {step_size!r}")
    lipschitz = _scalar(layer.lipschitz_bound())
    circle = layer if isinstance(layer, CircleCondition) else None
    radius = _scalar(circle.circle_radius()) if circle is not None else None
    if radius is not None:
        lipschitz = min(lipschitz, 2.0 * radius)  # ‖Δf‖ ≤ 2ρ‖Δz‖ follows from the circle condition
    a, b = np.array(tableau.a), np.array(tableau.b)
    stages = np.ones(tableau.stages)  # L_{Y_i}, the Lipschitz constants of z ↦ Y_i
    for i in range(1, tableau.stages):
        stages[i] = 1.0 + h * lipschitz * float(np.abs(a[i, :i]) @ stages[:i])
    bound = 1.0 + h * lipschitz * float(np.abs(b) @ stages)
    if circle is not None and radius is not None:
        bound = min(bound, _circle_bound(tableau, h, radius, h * lipschitz * stages))
        one_sided = _scalar(circle.one_sided_lipschitz_bound())
        if tableau.stages == 1 and one_sided is not None and h * radius <= 1.0:
            bound = min(bound, math.sqrt(max(0.0, 1.0 + 2.0 * h * one_sided * (1.0 - h * radius))))
    return bound


def _circle_bound(tableau: ButcherTableau, h: float, radius: float, stage_growth: np.ndarray) -> float:
    """Lip(Φ) ≤ (1 + max(0, -λ_min(M + B/(hρ))) Σ_i ‖u_i‖²/‖Δy₀‖²)^½, ‖u_i‖ ≤ stage_growth_i ‖Δy₀‖; inf if some b_i < 0."""
    b = np.array(tableau.b)
    if (b < 0).any():
        return math.inf
    if h * radius == 0.0:  # Δf = 0 (ρ = 0) or no step: Φ moves both points alike
        return 1.0
    x = tableau.algebraic_stability_matrix + np.diag(b) / (h * radius)
    deficit = max(0.0, -float(np.linalg.eigvalsh(x)[0]))
    return math.sqrt(1.0 + deficit * float(stage_growth @ stage_growth))


@overload
def _scalar(value: Tensor) -> float: ...
@overload
def _scalar(value: Tensor | None) -> float | None: ...
def _scalar(value: Tensor | None) -> float | None:
    if value is None:
        return None
    if value.numel() != 1:
        raise ValueError(f"expected the bound of one layer (shape ()), got shape {tuple(value.shape)}")
    return float(value.detach().double())


def lipschitz_bound(model) -> float:
    """A proven upper bound L on the ℓ₂ Lipschitz constant of x ↦ logits of an ``sdl.models.ODENet``:
    ‖lift‖₂ · Π_k ``step_lipschitz_bound``(tableau, h_k, layer k) · ‖head‖₂ (module docstring).

    Raises TypeError for what it cannot bound: a pair state (q, p), a method that is not an explicit
    Runge–Kutta method (implicit stages are solved to a tolerance; splittings act on pairs), a layer
    that is not ``sdl.fields.LipschitzBounded``.
    """
    from ..models.network import ODENet

    if not isinstance(model, ODENet):
        raise TypeError(f"lipschitz_bound needs an sdl.models.ODENet, got {type(model).__name__}")
    if model.pair_state:
        raise TypeError("lipschitz_bound cannot bound a network on pair states (q, p); only single-state fields")
    if not isinstance(model.integrator, ExplicitRungeKutta):
        raise TypeError(
            f"lipschitz_bound needs an explicit Runge–Kutta method; got {type(model.integrator).__name__} (implicit stages "
            f"are solved only to a tolerance)"
        )
    with _certifiable(model) as twin:
        bound = 1.0 if twin.lift_map is None else _norm(twin.lift_map.weight)
        bound *= _norm(twin.head.weight)
        tableau = twin.integrator.tableau
        for k, (h, layer) in enumerate(zip(twin.step_sizes(), twin.layer_fields(), strict=True)):
            if not isinstance(layer, LipschitzBounded):
                raise TypeError(f"layer {k} ({type(layer).__name__}) is not sdl.fields.LipschitzBounded: no bound for its step")
            bound *= step_lipschitz_bound(tableau, h, layer)
    return bound


def _norm(weight: Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().double(), 2))


@contextlib.contextmanager
def _certifiable(model: nn.Module):
    """The model in float64 and eval mode, without gradients (a copy unless it is float64 already).
    The modes are switched by ``sdl.training.evaluation_mode``, so the model's own are restored as
    they were, module by module."""
    from ..training import evaluation_mode

    is_float64 = all(p.dtype == torch.float64 for p in model.parameters())
    twin = model if is_float64 else copy.deepcopy(model).double()
    with torch.no_grad(), evaluation_mode(twin):
        yield twin


def _logits_and_radius(model, x: Tensor, lipschitz: float | None) -> tuple[Tensor, Tensor]:
    bound = lipschitz_bound(model) if lipschitz is None else float(lipschitz)
    with _certifiable(model) as twin:
        logits = twin(x.to(torch.float64))
    if logits.ndim == 1:
        return logits, logits.abs() / bound
    top = logits.topk(2, dim=-1).values
    return logits, (top[:, 0] - top[:, 1]) / (math.sqrt(2.0) * bound)


def certified_radius(model, x: Tensor, lipschitz: float | None = None) -> Tensor:
    """The ℓ₂ radius around each point within which the model's prediction cannot change.

    With L = ``lipschitz`` (default ``lipschitz_bound(model)``) and g the logits (eval mode, float64):
    2 classes (one logit, class = [g > 0]): |g(x)| / L, since |g(x + δ) - g(x)| ≤ L‖δ‖;
    C > 2 classes: (g_top - g_second)(x) / (√2 L), since every difference g_i - g_j is √2 L-Lipschitz
    (‖(e_i - e_j)ᵀJ‖ ≤ √2 ‖J‖). x: (N, in_dim) → (N,) float64. A prediction is certified at ε when
    the radius exceeds ε.
    """
    return _logits_and_radius(model, x, lipschitz)[1]


def certified_accuracy(model, x: Tensor, y: Tensor, eps: float, lipschitz: float | None = None) -> float:
    """The fraction of points predicted correctly with a certified radius above ``eps``; y: (N,) class indices."""
    logits, radius = _logits_and_radius(model, x, lipschitz)
    predicted = (logits > 0).long() if logits.ndim == 1 else logits.argmax(-1)
    return float(((predicted == y) & (radius > eps)).double().mean())
