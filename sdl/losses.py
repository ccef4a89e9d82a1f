"""Classification losses and accuracy, on logits: (N,) for two classes (logistic), (N, C) for C > 2 (softmax)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "accuracy", "loss_value"]

LOSSES = ("squared", "cross_entropy")


def loss_value(name: str, logits: Tensor, labels: Tensor) -> Tensor:
    """Mean loss over the batch.

    "squared": ½‖η(logits) - onehot(y)‖², η the logistic function for 2 classes (logits (N,)),
    softmax otherwise (the loss of Benning et al.); "cross_entropy": -log η(logits)_y.
    """
    if logits.ndim == 1:
        target = labels.to(logits.dtype)
        if name == "squared":
            return 0.5 * (torch.sigmoid(logits) - target).square().mean()
        return F.binary_cross_entropy_with_logits(logits, target)
    if name == "squared":
        target = F.one_hot(labels.long(), logits.shape[-1]).to(logits.dtype)
        return 0.5 * (torch.softmax(logits, -1) - target).square().sum(-1).mean()
    return F.cross_entropy(logits, labels.long())


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """The fraction of points whose largest logit (for 2 classes: the sign) names their label."""
    predicted = (logits > 0).long() if logits.ndim == 1 else logits.argmax(-1)
    return (predicted == labels.long()).double().mean().item()
