"""Checks shared by every config section: each failure is a ``ConfigError`` naming the key, the value
and what would be valid."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ConfigError", "check_at_least", "check_choice", "check_finite"]


class ConfigError(ValueError):
    """A config that cannot run: the message names the key, the value and the valid choices."""


def check_choice(key: str, value: Any, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{key}: {value!r} is not valid; valid choices: {', '.join(map(str, valid))}")


def check_at_least(key: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{key}: {value!r} must be ≥ {low}")


def check_finite(key: str, value: float, condition: str) -> None:
    """``condition`` is "> 0" or "≥ 0"."""
    ok = math.isfinite(value) and (value > 0 if condition == "> 0" else value >= 0)
    if not ok:
        raise ConfigError(f"{key}: {value!r} must be a finite number {condition}")
