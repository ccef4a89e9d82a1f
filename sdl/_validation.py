"""Checks shared by every config section: each failure is a ``ConfigError`` naming the key, the value
and what would be valid."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ConfigError", "check_at_least", "check_choice", "check_finite"]


class ConfigError(ValueError):
    """A config that cannot run: the message names the key, the value and the valid choices."""


def check_choice(key: str, value: Any, valid) -> None:
    try:
        known = value in valid
    except TypeError:  # an unhashable value (a list, a mapping) tested against a set or a registry
        known = False
    if not known:
        raise ConfigError(f"{key}: {value!r} is not valid; valid choices: {', '.join(map(str, valid))}")


def check_at_least(key: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{key}: {value!r} must be ≥ {low}")


def check_finite(key: str, value: float, condition: str) -> None:
    """``condition`` is "> 0" or "≥ 0"."""
    ok = math.isfinite(value) and (value > 0 if condition == "> 0" else value >= 0)
    if not ok:
        raise ConfigError(f"{key}: {value!r} must be a finite number {condition}")


def check_sampling(seed, noise, dtype) -> None:
    """TypeError/ValueError unless ``seed`` is an int ≥ 0, ``noise`` None or a finite standard
    deviation ≥ 0, and ``dtype`` a floating torch dtype: the arguments of every data generator."""
    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r} of type {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)):
            raise TypeError(f"noise must be a real number or None, got {noise!r}")
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite standard deviation ≥ 0, got {noise!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float64, got {dtype!r}")
