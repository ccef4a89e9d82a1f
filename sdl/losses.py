"""Classification losses and accuracy, on logits: (N,) for two classes (logistic), (N, C) for C > 2 (softmax)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "accuracy", "loss_value", "margins"]

LOSSES = ("squared", "cross_entropy", "hinge")


def loss_value(name: str, logits: Tensor, labels: Tensor, margin: float = 1.0) -> Tensor:
    """Mean loss over the batch.

    "squared": ½‖η(logits) - onehot(y)‖², η the logistic function for 2 classes (logits (N,)),
    softmax otherwise (the loss of Benning et al.); "cross_entropy": -log η(logits)_y;
    "hinge": max(0, m - M), M the margin of the true class, z_y - max_{j≠y} z_j for C classes and
    (2y - 1) z for one logit; m = ``margin``. With an L-Lipschitz logit map, a point with M > 0 keeps
    its class within radius M / (√2 L) (M / L for one logit): the loss asks for that room.
    """
    if name == "hinge":
        return torch.relu(margin - margins(logits, labels)).mean()
    if logits.ndim == 1:
        target = labels.to(logits.dtype)
        if name == "squared":
            return 0.5 * (torch.sigmoid(logits) - target).square().mean()
        return F.binary_cross_entropy_with_logits(logits, target)
    if name == "squared":
        target = F.one_hot(labels.long(), logits.shape[-1]).to(logits.dtype)
        return 0.5 * (torch.softmax(logits, -1) - target).square().sum(-1).mean()
    return F.cross_entropy(logits, labels.long())


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """(N,) margin of the true class: z_y - max_{j≠y} z_j for logits (N, C), (2y - 1) z for logits (N,).
    Positive exactly where the point is classified correctly."""
    if logits.ndim == 1:
        return (2 * labels.to(logits.dtype) - 1) * logits
    true = logits.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, labels.long().unsqueeze(-1), -torch.inf)
    return true - others.amax(-1)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """The fraction of points whose largest logit (for 2 classes: the sign) names their label."""
    predicted = (logits > 0).long() if logits.ndim == 1 else logits.argmax(-1)
    return (predicted == labels.long()).double().mean().item()
