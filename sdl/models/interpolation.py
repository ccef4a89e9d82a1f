"""θ(t) of a layered network between its layers, and its prolongation to more layers.

A layered field holds θ^0, …, θ^{K-1} on K equal steps of [0, T] (h = T/K). Read as a function of
time, with s_k = (k + ½) h the centre of step k:

    "constant":  θ(t) = θ^k on [t_k, t_{k+1})                      (what the layered network computes)
    "linear":    θ(t) linear between (s_k, θ^k) and (s_{k+1}, θ^{k+1}), constant before s_0 and after s_{K-1}

Prolongation to factor·K layers samples θ(t) at the new step centres (multilevel training,
``ODENet.refine``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["INTERPOLATIONS", "interpolate_layers", "prolong_layers"]

INTERPOLATIONS = ("constant", "linear")


def _check_interpolation(kind: str) -> None:
    if kind not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {kind!r}; valid choices: {', '.join(INTERPOLATIONS)}")


def interpolate_layers(theta: Tensor, t: Tensor, t_final: float, kind: str = "linear") -> Tensor:
    """θ(t) from the layer values ``theta`` (K, ...) on K equal steps of [0, t_final], at times
    ``t`` of any shape S: (*S, ...). "constant" is right-continuous, so at a step boundary t_k it
    picks θ^k (up to the rounding of t_k); "linear" is continuous, differentiable in t except at the
    centres s_k (where autograd gives the mean of the two one-sided slopes), and costs O(K) per time.
    Outside [0, t_final] the end values continue."""
    _check_interpolation(kind)
    num_layers = theta.shape[0]
    if kind == "constant":
        return theta[(t.detach() * (num_layers / t_final)).floor().clamp(0, num_layers - 1).long()]
    # θ(x) = θ^0 + Σ_k (θ^{k+1} - θ^k) r(x - k), x = t/h - ½, r(y) = clamp(y, 0, 1). At a kink (y = 0 or 1,
    # to within a few ulp of x: a time t_n + c h computed in floats misses s_k by an ulp) the slope
    # r' is ½, the mean of its one-sided slopes, which a quadrature node (a Runge–Kutta stage) placed
    # at a kink needs to stay second-order accurate: a one-sided slope there costs an O(h) error.
    x = t * (num_layers / t_final) - 0.5
    offsets = x.unsqueeze(-1) - torch.arange(num_layers - 1, dtype=x.dtype, device=x.device)  # (*S, K-1)
    near = 16 * torch.finfo(x.dtype).eps * max(num_layers, 1)
    at_kink = (offsets.detach().abs() <= near) | ((offsets.detach() - 1).abs() <= near)
    inside = ((offsets.detach() > 0) & (offsets.detach() < 1)).to(x.dtype)
    slope = torch.where(at_kink, torch.full_like(inside, 0.5), inside)
    ramps = offsets.detach().clamp(0, 1) + slope * (offsets - offsets.detach())  # value clamp(y, 0, 1), slope r'
    increments = theta.diff(dim=0).flatten(1)  # (K-1, numel θ^k)
    values = theta[0].flatten() + ramps.to(theta.dtype) @ increments
    return values.reshape(*t.shape, *theta.shape[1:])


def prolong_layers(theta: Tensor, factor: int, kind: str = "constant") -> Tensor:
    """θ on ``factor`` times as many equal steps of the same interval: (K, ...) → (factor·K, ...),
    the values of ``interpolate_layers`` at the new step centres (j + ½) h / factor. "constant"
    repeats each θ^k ``factor`` times, so the refined network's θ(t) is the same function."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive int, got {factor!r}")
    _check_interpolation(kind)
    num_layers = theta.shape[0]
    if kind == "constant":
        return theta.repeat_interleave(factor, dim=0)
    centres = (torch.arange(factor * num_layers, dtype=torch.float64) + 0.5) / factor  # in units of the old h
    return interpolate_layers(theta, centres.to(theta.device), float(num_layers), kind)
