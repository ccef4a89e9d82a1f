"""ℓ₂ adversarial attacks: projected gradient ascent on the classification margin, with restarts.

For logits g and label y the margin is m = g_y - max_{j≠y} g_j (C > 2 classes), or m = (2y - 1) g
(2 classes, one logit, class [g > 0]): the point is classified correctly when m > 0 (a tie m = 0
counts as an error here). The attack minimises
m over ‖δ‖₂ ≤ ε (and x + δ in a box, optionally) by steps along the normalised gradient,

    δ ← Π(δ - α ∇m / ‖∇m‖₂),   Π: scale δ onto the ball ‖δ‖₂ ≤ ε, then clip x + δ to the box,

and keeps, per point, the δ of least margin seen over all steps and restarts. The margin is a
minimum over classes j of g_y - g_j, and its gradient follows whichever j is lowest now, which need
not be the class whose boundary is nearest; ``targeted=True`` runs the attack once per class j
against g_y - g_j instead (the multi-targeted attack of Gowal et al. 2019; C - 1 times the cost),
which is exact for linear models: each target's gradient is constant. Clipping after the
ball projection moves each coordinate of x + δ towards x (x lies in the box), so ‖δ‖ ≤ ε still
holds; it is not the exact projection onto the intersection. Restart 0 starts at δ = 0, the
others uniformly in the ball. An attack finds a lower bound on the damage: robust accuracy under
it is an upper bound on the true robust accuracy, and a certified radius a lower bound on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from ..losses import margins

__all__ = ["classification_margin", "pgd_l2", "robust_accuracy"]


classification_margin = margins  # m(x): (N,), positive exactly where x is classified correctly


def pgd_l2(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    *,
    steps: int = 20,
    restarts: int = 1,
    step_size: float | None = None,
    bounds: tuple[float, float] | None = None,
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The adversarial points x + δ, ‖δ‖₂ ≤ ε, of least margin found (module docstring).

    Args:
        model: x (N, d) -> logits (N,) or (N, C); evaluated as it is (put a network in eval mode first).
        x: (N, d) points; y: (N,) int64 class indices.
        eps: the ℓ₂ radius ε ≥ 0, one for all points or (N,) one per point (e.g. certified radii).
        steps, restarts: gradient steps per restart, and restarts (≥ 1).
        step_size: α; default 2.5 ε / steps (Madry et al.), so a straight path can cross the ball.
        bounds: (low, high) box for x + δ, e.g. (0, 1) for pixels; None for no box.
        targeted: attack every class j ≠ y separately (softmax heads; module docstring).
        generator: random starts of restarts 1, 2, ….

    Returns:
        (N, d) in the dtype and on the device of x, detached.
    """
    x = x.detach()
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(x.shape[0]).unsqueeze(-1)  # (N, 1)
    if not bool((radius >= 0).all()):
        raise ValueError(f"eps must be ≥ 0, got {eps!r}")
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be ≥ 1, got {steps} and {restarts}")
    alpha = 2.5 * radius / steps if step_size is None else torch.full_like(radius, float(step_size))
    best_delta = torch.zeros_like(x)
    with torch.no_grad():
        logits = model(x)
        best_margin = classification_margin(logits, y)
    targets = range(logits.shape[-1]) if targeted and logits.ndim == 2 else (None,)
    for target, restart in itertools.product(targets, range(restarts)):
        delta = _project(_random_in_ball(x, radius, generator) if restart else torch.zeros_like(x), x, radius, bounds)
        for _ in range(steps):
            with torch.enable_grad():
                delta.requires_grad_(True)
                logits = model(x + delta)
                margin = classification_margin(logits, y)
                objective = margin if target is None else _target_margin(logits, y, target, margin)
                (gradient,) = torch.autograd.grad(objective.sum(), delta)
            with torch.no_grad():
                _keep_least(best_margin, best_delta, margin.detach(), delta.detach())
                direction = gradient / gradient.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
                delta = _project(delta.detach() - alpha * direction, x, radius, bounds)
        with torch.no_grad():
            _keep_least(best_margin, best_delta, classification_margin(model(x + delta), y), delta)
    return (x + best_delta).detach()


def _target_margin(logits: Tensor, y: Tensor, target: int, margin: Tensor) -> Tensor:
    """g_y - g_target, and the plain margin for the points whose label is the target."""
    own = logits.gather(-1, y[:, None]).squeeze(-1)
    return torch.where(y == target, margin, own - logits[:, target])


def _keep_least(best_margin: Tensor, best_delta: Tensor, margin: Tensor, delta: Tensor) -> None:
    better = margin < best_margin
    best_margin[better] = margin[better]
    best_delta[better] = delta[better]


def _project(delta: Tensor, x: Tensor, radius: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    norm = delta.norm(dim=-1, keepdim=True)
    delta = delta * (radius / norm.clamp_min(torch.finfo(x.dtype).tiny)).clamp(max=1.0)
    if bounds is not None:
        delta = (x + delta).clamp(bounds[0], bounds[1]) - x
    return delta


def _random_in_ball(x: Tensor, radius: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform in the ball ‖δ‖₂ ≤ ε: a Gaussian direction times ε U^{1/d}."""
    direction = torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)
    scale = torch.rand(x.shape[0], 1, dtype=x.dtype, generator=generator).to(x.device) ** (1.0 / x.shape[-1])
    return direction / direction.norm(dim=-1, keepdim=True) * radius * scale


def robust_accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, eps: float | Tensor, **attack) -> float:
    """The fraction of points still classified correctly after ``pgd_l2(model, x, y, eps, **attack)``
    (an upper bound on the accuracy under every attack within ε)."""
    adversarial = pgd_l2(model, x, y, eps, **attack)
    with torch.no_grad():
        return float((classification_margin(model(adversarial), y) > 0).double().mean())
