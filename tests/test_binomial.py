"""Binomial checkpointing: the schedule attains the fewest recomputed steps within its snapshot budget."""

import math
from functools import cache

import pytest

from sdl._binomial import DROP, STORE, advances, backward_plan, first_sweep, repetitions


@cache
def fewest_advances(steps: int, snapshots: int) -> int:
    """Brute force over every first snapshot position: advance j steps, keep y_j, reverse the right part
    with one snapshot fewer and then the left part with all of them; with one snapshot, every state
    is recomputed from y_0."""
    if steps <= 1:
        return 0
    if snapshots == 1:
        return steps * (steps - 1) // 2
    return min(j + fewest_advances(steps - j, snapshots - 1) + fewest_advances(j, snapshots) for j in range(1, steps))


def run_plan(steps: int, snapshots: int) -> tuple[list[int], int, int]:
    """(steps recorded in order, steps advanced, most snapshots held) of the backward plan, checking that
    every advance starts from a snapshot that is held."""
    held = set(first_sweep(steps, snapshots))
    recorded, advanced, most = [], 0, len(held)
    for kind, position, source in backward_plan(steps, snapshots):
        if kind == DROP:  # (DROP, j, j), as documented
            assert source == position
            held.remove(position)
            continue
        assert source in held and source <= position
        advanced += position - source
        if kind == STORE:
            held.add(position)
            most = max(most, len(held))
        else:
            recorded.append(position)
    return recorded, advanced, most


def test_the_closed_form_is_the_brute_force_minimum():
    """t(K, c) = r K - C(c + r, c + 1), r the least with K ≤ C(c + r, c) (Griewank 1992)."""
    for steps in range(1, 41):
        for snapshots in range(1, 7):
            assert advances(steps, snapshots) == fewest_advances(steps, snapshots), (steps, snapshots)


@pytest.mark.parametrize("steps", [*range(1, 41), 1000])
def test_the_plan_reverses_every_step_at_the_fewest_advances_within_its_budget(steps):
    for snapshots in (1, 2, 3, 5, 8, 32, steps, steps + 5):
        recorded, advanced, most = run_plan(steps, snapshots)
        assert recorded == list(reversed(range(steps)))
        assert most <= snapshots
        first = first_sweep(steps, snapshots)
        assert first[0] == 0 and len(first) <= snapshots and list(first) == sorted(set(first))
        # the forward sweep made the advances up to its last snapshot
        assert advanced == advances(steps, snapshots) - first[-1]


def test_budgets_of_one_and_of_every_state():
    """c = 1 recomputes every state from y_0; c ≥ K keeps every state and recomputes none."""
    assert run_plan(10, 1)[1] == 45
    assert first_sweep(10, 10) == tuple(range(10)) and run_plan(10, 10)[1] == 0


def test_repetitions_is_the_least_count_whose_binomial_bound_covers_the_steps():
    """r(K, c) is the least r ≥ 0 with K ≤ C(c + r, c): 0 for K ≤ 1, and at K = C(c + r, c) exactly r, not r + 1
    (e.g. r(10, 3) = 2, since C(5, 3) = 10)."""
    assert repetitions(10, 3) == 2 and repetitions(11, 3) == 3
    for snapshots in range(1, 7):
        for steps in range(0, 60):
            r = repetitions(steps, snapshots)
            assert steps <= math.comb(snapshots + r, snapshots), (steps, snapshots)
            assert r == 0 or steps > math.comb(snapshots + r - 1, snapshots), (steps, snapshots)


@pytest.mark.parametrize("steps, snapshots", [(0, 3), (3, 0), (-1, 2)])
def test_a_plan_needs_a_step_and_a_snapshot(steps, snapshots):
    """K ≥ 1 and c ≥ 1: anything else is refused with both values named."""
    with pytest.raises(
        ValueError, match=f"^binomial checkpointing needs steps ≥ 1 and snapshots ≥ 1; got {steps} and {snapshots}$"
    ):
        backward_plan(steps, snapshots)
