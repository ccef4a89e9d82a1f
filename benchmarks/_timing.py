"""Interleaved timing of several candidates, so that machine noise hits all of them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def compare(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin ``repeats`` times."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def table(medians: dict[str, float], baseline: str, unit: str = "ms") -> str:
    """A markdown table of medians and their ratio to ``baseline``."""
    scale = {"ms": 1e3, "us": 1e6}[unit]
    rows = [f"| candidate | median ({unit}) | ratio to {baseline} |", "|---|---:|---:|"]
    for name, seconds in medians.items():
        rows.append(f"| {name} | {seconds * scale:.3f} | {seconds / medians[baseline]:.2f} |")
    return "\n".join(rows)
