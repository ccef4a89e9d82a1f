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
    picks θ^k (up to the rounding of t_k); "linear" is continuous and differentiable in t except at
    the centres s_k. Outside [0, t_final] the end values continue."""
    _check_interpolation(kind)
    num_layers = theta.shape[0]
    position = t.detach() * (num_layers / t_final)  # t / h
    if kind == "constant":
        return theta[position.floor().clamp(0, num_layers - 1).long()]
    if num_layers == 1:
        return theta[torch.zeros_like(position, dtype=torch.long)]
    x = (t * (num_layers / t_final) - 0.5).clamp(0, num_layers - 1)  # keeps t's graph: ∂θ/∂t
    index = x.detach().floor().clamp(max=num_layers - 2).long()
    weight = (x - index).to(theta.dtype).reshape(*x.shape, *[1] * (theta.ndim - 1))
    return torch.lerp(theta[index], theta[index + 1], weight)


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
