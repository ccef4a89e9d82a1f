"""Binomial checkpointing (Griewank 1992; Griewank & Walther 2000, "revolve"): the order in which
the backward sweep recomputes the states of K steps from at most c stored ones.

Reversing K steps needs every y_k, k = K-1, …, 0, from the forward states y_{k+1} = Φ(y_k). With c
snapshots (y_0 among them) and steps advanced at most r times each, at most β(c, r) = C(c + r, c)
steps can be reversed, and the fewest advances (steps recomputed without a graph; the first sweep
from y_0 to y_{K-1} included, the K recorded steps not) are

    t(K, c) = r K - β(c + 1, r - 1),   r the least integer with K ≤ β(c, r).

A schedule attains it by advancing ĵ steps, storing a snapshot there, reversing the right part with
c - 1 snapshots and then the left part with c, whenever both parts sit in the linear piece of t of
the right slope: β(c, r - 2) ≤ ĵ ≤ β(c, r - 1) and β(c - 1, r - 1) ≤ K - ĵ ≤ β(c - 1, r) (t is convex
and piecewise linear in K, so the sum of the parts' costs is then exactly t(K, c)). With c = 1 every
state is recomputed from y_0: t = K(K - 1)/2. With c ≥ K every state is kept: t = K - 1.

The forward sweep of ``sdl.adjoint`` keeps the snapshots of the schedule's first sweep
(``first_sweep``); the backward sweep runs ``backward_plan``, which recomputes
t(K, c) - (last first-sweep snapshot) steps.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["DROP", "RECORD", "STORE", "advances", "backward_plan", "first_sweep", "repetitions"]

STORE, RECORD, DROP = "store", "record", "drop"


def _beta(snapshots: int, repeats: int) -> int:
    """β(c, r) = C(c + r, c): the most steps c snapshots reverse with each step advanced ≤ r times."""
    return math.comb(snapshots + repeats, snapshots) if repeats >= 0 else 0


def repetitions(steps: int, snapshots: int) -> int:
    """r(K, c): the least r with K ≤ β(c, r) (0 for K ≤ 1)."""
    repeats = 0
    while _beta(snapshots, repeats) < steps:
        repeats += 1
    return repeats


def advances(steps: int, snapshots: int) -> int:
    """t(K, c) = r K - β(c + 1, r - 1): the fewest steps advanced without a graph to reverse K steps
    with c snapshots, the first sweep (K - 1 steps) included."""
    if steps <= 1:
        return 0
    repeats = repetitions(steps, snapshots)
    return repeats * steps - _beta(snapshots + 1, repeats - 1)


def _split(steps: int, snapshots: int) -> int:
    """An optimal distance ĵ from the segment's start to its next snapshot (steps ≥ 2, snapshots ≥ 2)."""
    repeats = repetitions(steps, snapshots)
    low = max(_beta(snapshots, repeats - 2), steps - _beta(snapshots - 1, repeats), 1)
    high = min(_beta(snapshots, repeats - 1), steps - _beta(snapshots - 1, repeats - 1), steps - 1)
    assert low <= high, (steps, snapshots)  # the theorem in the module docstring; tested against brute force
    return high


def first_sweep(steps: int, snapshots: int) -> tuple[int, ...]:
    """The positions k of the snapshots y_k the forward sweep keeps, 0 first: the splits of the right-most
    segments, each with one snapshot fewer, until a segment is one step long or no snapshot is left."""
    positions, start, free = [0], 0, snapshots - 1
    while steps - start > 1 and free > 0:
        start += _split(steps - start, free + 1)
        positions.append(start)
        free -= 1
    return tuple(positions)


def backward_plan(steps: int, snapshots: int) -> tuple[tuple[str, int, int], ...]:
    """The backward sweep as actions (kind, position, source), run in order from the snapshots of
    ``first_sweep``:

    - (STORE, j, i): advance from snapshot y_i to y_j and keep it as a snapshot;
    - (RECORD, k, i): advance from snapshot y_i to y_k and take step k backward (k = K-1, …, 0 in order);
    - (DROP, j, j): release snapshot y_j.

    At most ``snapshots`` snapshots are held at any time; the advances add up to
    t(K, c) - max(first_sweep(K, c))."""
    if steps < 1 or snapshots < 1:
        raise ValueError(f"binomial checkpointing needs steps ≥ 1 and snapshots ≥ 1; got {steps} and {snapshots}")
    live = list(first_sweep(steps, snapshots))  # increasing: the snapshots on the path to the current segment
    plan: list[tuple[str, int, int]] = []
    segments = [(0, steps, snapshots - 1)]  # (start, end, snapshots free besides y_start), a stack
    while segments:
        start, end, free = segments.pop()
        while live[-1] >= end:  # the right part is reversed: its snapshots go
            plan.append((DROP, live[-1], live[-1]))
            live.pop()
        if end - start == 1 or free == 0:  # no snapshot to spare: every state from y_start
            plan.extend((RECORD, k, start) for k in reversed(range(start, end)))
            continue
        split = start + _split(end - start, free + 1)
        if split > live[-1]:  # else a snapshot of the first sweep, kept already
            plan.append((STORE, split, start))
            live.append(split)
        segments.append((start, split, free))
        segments.append((split, end, free - 1))
    return tuple(plan)


# Cached per (K, c): a solve asks for both on every forward and backward pass. Wrapped here rather than with
# @lru_cache, since mutmut (scripts/mutation.py) leaves decorated functions unmutated.
first_sweep = lru_cache(maxsize=64)(first_sweep)
backward_plan = lru_cache(maxsize=64)(backward_plan)
