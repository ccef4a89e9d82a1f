"""Jacobian spectra and one-sided Lipschitz constants of a vector field, over a set of points.

For a field f: R^d → R^d (one layer, or one time, of dz/dt = f(t, z)) with Jacobian J(z):

- logarithmic 2-norm μ₂(J) = λ_max((J + Jᵀ)/2);
- one-sided Lipschitz constant on a convex set S:
  ν = sup_{z1 ≠ z2 ∈ S} ⟨f(z2) - f(z1), z2 - z1⟩ / ‖z2 - z1‖² = sup_{z ∈ S} μ₂(J(z)), and then
  ‖z2(t) - z1(t)‖ ≤ e^{νt} ‖z2(0) - z1(0)‖ for solutions staying in S;
- max Re λ(J(z)), the linear (frozen-coefficient) stability indicator; always
  max Re λ(J) ≤ μ₂(J), with equality for symmetric J (gradient flows).

A field is a callable ``f(z) -> (N, d)`` on a batch ``z: (N, d)`` whose rows are independent
(e.g. ``lambda z: field(t, z)``). Jacobians are computed with
``torch.func.vmap(torch.func.jacrev(...))``, so ``f`` must be vmap-compatible (tensor
operations only: no ``.item()``, no Python branching on values). Where an analytic Jacobian is
known, pass ``jac(z) -> (N, d, d)`` instead; it is used as given.

Estimates from samples are lower bounds of the supremum over the sampled region. Results are
detached from the autograd graph; dtype and device follow ``z``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import jacrev, vmap

__all__ = [
    "LayerStability",
    "LipschitzBounds",
    "PointwiseMaximum",
    "gradient_flow_lipschitz_bounds",
    "jacobians",
    "log_norm2",
    "max_real_eigenvalue",
    "one_sided_lipschitz",
    "per_layer_stability",
]

Field = Callable[[Tensor], Tensor]
JacobianField = Callable[[Tensor], Tensor]

# Refinement: first step as a fraction of the sampled box's largest side; the per-point step
# grows after an accepted step and shrinks after a rejected one (a crude trust region).
_FIRST_STEP_FRACTION = 1e-2
_GROW, _SHRINK = 1.5, 0.5


@dataclass(frozen=True, eq=False)
class PointwiseMaximum:
    """The largest value of a per-point quantity q(z) over a set of points.

    Attributes:
        value: max_i values[i], a float.
        point: (d,) the point where the maximum is attained.
        values: (N,) q at each point of ``points``.
        points: (N, d) the points (the sampled ones, or where refinement moved them).
    """

    value: float
    point: Tensor
    values: Tensor
    points: Tensor


class LipschitzBounds(NamedTuple):
    """Lower and upper bounds of the one-sided Lipschitz constant ν, each shaped like A's batch."""

    lower: Tensor
    upper: Tensor


class LayerStability(NamedTuple):
    """Per-layer data of Owren's plot: max over the layer's states of max Re λ(J) and of μ₂(J).

    Attributes:
        max_real_eigenvalue: (K,) max_i max Re λ(J_k(z_i^k)).
        one_sided_lipschitz: (K,) max_i μ₂(J_k(z_i^k)), the sampled estimate of ν_k.
    """

    max_real_eigenvalue: Tensor
    one_sided_lipschitz: Tensor


def jacobians(f: Field, z: Tensor) -> Tensor:
    """J(z_i) = ∂f/∂z at every point: (N, d, d) for z: (N, d), with J[i, a, b] = ∂f_a/∂z_b (z_i).

    One reverse-mode Jacobian per point, batched by ``vmap`` (no Python loop over points);
    ``f`` is called on batches of one point, ``f(z_i[None]) -> (1, d)``.
    """
    _check_points(z)

    def single(point: Tensor) -> Tensor:
        return f(point.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(single))(z)


def log_norm2(jac: Tensor) -> Tensor:
    """μ₂(J) = λ_max((J + Jᵀ)/2), the logarithmic 2-norm, for jac: (..., d, d) -> (...)."""
    if jac.ndim < 2 or jac.shape[-1] != jac.shape[-2]:
        raise ValueError(f"log_norm2 needs square matrices (..., d, d), got shape {tuple(jac.shape)}")
    return torch.linalg.eigvalsh(0.5 * (jac + jac.mT))[..., -1]


def one_sided_lipschitz(
    f: Field,
    z: Tensor,
    jac: JacobianField | None = None,
    refine_steps: int = 0,
    *,
    refine_points: int | None = 64,
) -> PointwiseMaximum:
    """Estimate ν = sup_z μ₂(J(z)) by the maximum over the points z: (N, d).

    With ``refine_steps > 0`` the ``refine_points`` points of largest μ₂ (all with ``None``)
    then climb μ₂(J(·)) by normalised gradient ascent,
    z ← Π(z + s ∇μ₂/‖∇μ₂‖), with Π the projection onto the bounding box of the given points
    (a convex set containing them, so the result stays a lower bound of ν on that box). A step
    is kept only if it increases μ₂ at that point (then s grows by 1.5, else it halves), so the
    estimate never decreases with more steps. The first s is 1% of the box's largest side.
    Each step costs one Jacobian evaluation and one backward pass through it.

    Args:
        f: the field, ``f(z: (N, d)) -> (N, d)``.
        z: (N, d) points, e.g. the states of the data at one layer.
        jac: optional analytic Jacobian, ``jac(z: (N, d)) -> (N, d, d)``, used instead of autograd
            (refinement differentiates it, so it must be built from differentiable torch operations).
        refine_steps: number of ascent steps; 0 evaluates the given points only.
        refine_points: how many of the best sampled points to refine (the cost of a step is
            proportional to it); ``None`` refines every point.

    Returns:
        ``PointwiseMaximum`` of μ₂(J): ``value`` is the estimate of ν.
    """
    return _pointwise_maximum(f, z, jac, log_norm2, refine_steps, refine_points)


def max_real_eigenvalue(f: Field, z: Tensor, jac: JacobianField | None = None) -> PointwiseMaximum:
    """max over the points z: (N, d) of max_j Re λ_j(J(z_i)); see ``one_sided_lipschitz`` for f, jac."""
    return _pointwise_maximum(f, z, jac, _max_real_part, 0, None)


def gradient_flow_lipschitz_bounds(weight: Tensor) -> LipschitzBounds:
    """The bounds -σ_min(A)² ≤ ν ≤ 0 of f(z) = -Aᵀσ(Az + b) for any b and any σ with 0 ≤ σ' ≤ 1.

    J = -Aᵀ D A with D = diag σ'(Az + b) and 0 ⪯ D ⪯ I, so J is symmetric with
    -AᵀA ⪯ J ⪯ 0, hence -λ_min(AᵀA) ≤ μ₂(J(z)) ≤ 0 at every z. For A: (m, d),
    λ_min(AᵀA) = σ_min(A)² when m ≥ d and 0 when m < d (AᵀA is singular). The lower bound is
    attained for σ(s) = s. Over layers (a batch of A), take ``lower.min()`` for a bound on all.

    Args:
        weight: A, shape (..., m, d); leading dimensions are a batch (layers, times).

    Returns:
        ``LipschitzBounds(lower, upper)``, tensors of shape A.shape[:-2].
    """
    if weight.ndim < 2:
        raise ValueError(f"weight must be a matrix A of shape (..., m, d), got shape {tuple(weight.shape)}")
    m, d = weight.shape[-2:]
    smallest = torch.linalg.svdvals(weight.detach())[..., -1]
    lower = -(smallest**2) if m >= d else torch.zeros_like(smallest)
    return LipschitzBounds(lower, torch.zeros_like(lower))


def per_layer_stability(
    layer_fields: Sequence[Field],
    layer_states: Tensor | Sequence[Tensor],
    layer_jacobians: Sequence[JacobianField] | None = None,
    refine_steps: int = 0,
) -> LayerStability:
    """Max Re λ and ν of each layer's field over that layer's states (Owren's plot).

    Layer k integrates dz/dt = f_k(z) from the states z^k, so pass the states *entering*
    each layer: for states from ``odeint`` (K + 1 of them), ``layer_states = states[:-1]``.
    Each layer's Jacobians are evaluated once and give both numbers.

    Args:
        layer_fields: K callables ``f_k(z: (N, d)) -> (N, d)``, e.g.
            ``[lambda z, f=f, t=t: f(t, z) for f, t in zip(field.layers(), times[:-1])]``.
        layer_states: (K, N, d), or K tensors (N_k, d).
        layer_jacobians: optional K callables ``jac_k(z) -> (N, d, d)``.
        refine_steps: passed to ``one_sided_lipschitz`` (the eigenvalues use the given states),
            which refines its 64 best points.

    Returns:
        ``LayerStability`` of two (K,) tensors, dtype and device of the states.
    """
    num_layers = len(layer_fields)
    if len(layer_states) != num_layers:
        raise ValueError(
            f"got {num_layers} layer fields but {len(layer_states)} layer states; pass the states entering "
            f"each layer (for the K + 1 states of odeint, states[:-1])"
        )
    if layer_jacobians is not None and len(layer_jacobians) != num_layers:
        raise ValueError(f"got {num_layers} layer fields but {len(layer_jacobians)} layer Jacobians")
    eigen, lipschitz = [], []
    for k, (f, z) in enumerate(zip(layer_fields, layer_states, strict=True)):
        jac = None if layer_jacobians is None else layer_jacobians[k]
        matrices = _jacobians(f, z, jac)
        eigen.append(_max_real_part(matrices).max())
        if refine_steps:
            lipschitz.append(one_sided_lipschitz(f, z, jac, refine_steps).values.max())
        else:
            lipschitz.append(log_norm2(matrices).max())
    return LayerStability(torch.stack(eigen), torch.stack(lipschitz))


def _max_real_part(jac: Tensor) -> Tensor:
    return torch.linalg.eigvals(jac).real.amax(-1)


def _check_points(z: Tensor) -> None:
    if not isinstance(z, Tensor) or z.ndim != 2 or not z.is_floating_point():
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"points must be a floating tensor of shape (N, d), got {shape}")
    if z.shape[0] == 0:
        raise ValueError("points must contain at least one point, got N = 0")


def _jacobians(f: Field, z: Tensor, jac: JacobianField | None) -> Tensor:
    _check_points(z)
    with torch.no_grad():
        matrices = jacobians(f, z) if jac is None else jac(z)
    n, d = z.shape
    if matrices.shape != (n, d, d):
        raise ValueError(
            f"the Jacobian of a field on points {tuple(z.shape)} must have shape {(n, d, d)}, got {tuple(matrices.shape)}"
        )
    return matrices.detach()


def _pointwise_maximum(
    f: Field,
    z: Tensor,
    jac: JacobianField | None,
    quantity: Callable[[Tensor], Tensor],
    refine_steps: int,
    refine_points: int | None,
) -> PointwiseMaximum:
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise ValueError(f"refine_steps must be an int ≥ 0, got {refine_steps!r}")
    if refine_points is not None and (isinstance(refine_points, bool) or not isinstance(refine_points, int) or refine_points < 1):
        raise ValueError(f"refine_points must be an int ≥ 1 or None, got {refine_points!r}")
    points = z.detach()
    values = quantity(_jacobians(f, points, jac))
    if refine_steps:
        chosen = values.topk(min(refine_points or len(values), len(values))).indices
        lower, upper = points.amin(0), points.amax(0)
        moved, improved = _ascend(
            lambda x: quantity(jac(x) if jac is not None else jacobians(f, x)),
            points[chosen],
            values[chosen],
            refine_steps,
            lower,
            upper,
        )
        points, values = points.clone(), values.clone()
        points[chosen], values[chosen] = moved, improved
    best = int(values.argmax())
    return PointwiseMaximum(float(values[best]), points[best], values, points)


def _ascend(
    score: Callable[[Tensor], Tensor], points: Tensor, values: Tensor, steps: int, lower: Tensor, upper: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-point projected gradient ascent on ``score`` inside the box [lower, upper], monotone."""
    side = float((upper - lower).max())
    step = torch.full_like(values, _FIRST_STEP_FRACTION * side if side > 0 else _FIRST_STEP_FRACTION)
    grad = _value_and_gradient(score, points)[1]
    for _ in range(steps):
        direction = grad / grad.norm(dim=1, keepdim=True).clamp_min(torch.finfo(grad.dtype).tiny)
        trial = torch.clamp(points + step[:, None] * direction, lower, upper)
        trial_values, trial_grad = _value_and_gradient(score, trial)
        better = trial_values > values
        points = torch.where(better[:, None], trial, points)
        values = torch.where(better, trial_values, values)
        grad = torch.where(better[:, None], trial_grad, grad)
        step = torch.where(better, step * _GROW, step * _SHRINK)
    return points, values


def _value_and_gradient(score: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        values = score(x)
        if not values.requires_grad:  # a Jacobian that does not depend on z (a linear field)
            return values.detach(), torch.zeros_like(x)
        # μ₂(J(z)) is locally constant for piecewise-linear activations (relu): the graph may miss z
        (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True, materialize_grads=True)
    return values.detach(), grad
