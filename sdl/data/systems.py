"""Hamiltonian systems by name, and the trajectory data sets of the papers that learn them.

A system has n degrees of freedom; a state is x = (q, p) ∈ R^{2n}, positions first, and it
moves by Hamilton's equations dq/dt = ∂H/∂p, dp/dt = -∂H/∂q. Each system gives its
Hamiltonian and that field in closed form in torch (``System.hamiltonian``, ``System.field``),
draws initial states by a recipe (``System.initial_states``) and solves for trajectories
(``System.solve``: SciPy's DOP853 at rtol = atol = 1e-12, the exact flow for all purposes here).

The systems (``system_names()``):

- ``mass_spring`` (n = 1): H = q² + p², as the HNN code writes it (no ½), so dq/dt = 2p,
  dp/dt = -2q and q(t) = q₀ cos 2t + p₀ sin 2t.
- ``pendulum`` (n = 1): H = 3(1 - cos q) + p², the HNN pendulum.
- ``pendulum_sympnets`` (n = 1): H = p²/2 - cos q, the SympNets pendulum. It is a system of its
  own because the two papers use different pendulum Hamiltonians: every system has one H, the one
  its rollouts and energy errors are measured with.
- ``two_body`` (n = 4): two unit masses in the plane with G = 1, q = (x₁, y₁, x₂, y₂),
  p = (p_x1, p_y1, p_x2, p_y2) (momenta equal velocities), H = ½|p|² - 1/|r₁ - r₂|.
  (The HNN code orders its coordinates (x₁, x₂, y₁, y₂, p_x1, p_x2, p_y1, p_y2).)
- ``double_pendulum`` (n = 2): m₁ = m₂ = l₁ = l₂ = g = 1, q = (θ₁, θ₂) from the downward vertical,
  p their conjugate momenta, δ = q₁ - q₂:
  H = (p₁² + 2p₂² - 2p₁p₂ cos δ) / (2(1 + sin²δ)) - 2 cos q₁ - cos q₂,
  the SympNets code's H = (m₂l₂²p₁² + (m₁+m₂)l₁²p₂² - 2m₂l₁l₂p₁p₂ cos δ) / (2m₂l₁²l₂²(m₁ + m₂ sin²δ))
  - (m₁+m₂)g l₁ cos q₁ - m₂ g l₂ cos q₂ at unit parameters (its hand-coded gradient agrees).

The recipes (``RECIPES``), each as its authors' code has it; ``make_trajectories`` returns
(train, test) ``Trajectories`` with the exact states, the observed (noisy) states and the exact
field at the exact states.

``"hnn"``: Greydanus, Dzamba, Yosinski (2019), "Hamiltonian neural networks", code at
github.com/greydanus/hamiltonian-nn (read at commit bcc3622), files experiment-*/data.py:

- mass_spring: 50 trajectories; y₀ ~ U[-1, 1]², rescaled to a radius r ~ U[0.1, 1.0] (so its
  direction is that of a uniform point of the square, not uniform on the circle);
  t = linspace(0, 3, 30); noise σ = 0.1 on q and p of the observed states; the first 25
  trajectories train, the last 25 test.
- pendulum: the same with r ~ U[1.3, 2.3] and t = linspace(0, 3, 45).
- two_body (``random_config``): body 1 at r₁ ~ U[0.5, 1.5]², with the circular-orbit velocity
  v₁ = (-y₁, x₁) / (2|r₁|^{3/2}) scaled by 1 + 0.05 ε, ε ~ N(0, 1); body 2 at -r₁ with -v₁.
  1000 orbits on t = linspace(0, 20, 50); no noise; the first 200 orbits test (their split puts
  the first 20 % of the points in the test set), the other 800 train.

``"sympnets"``: Jin, Zhang, Zhu, Tang, Karniadakis (2020), "SympNets: intrinsic
structure-preserving symplectic networks for identifying Hamiltonian systems", code at
github.com/jpzxshi/sympnets (read at commit c5a98cb), files pendulum.py and double_pendulum.py.
One trajectory from a fixed x₀ with step h: the training set is its first ``train_num`` steps and
the test set the next ``test_num`` steps, starting where training ends (their ``X_test`` starts at
``y_train[-1]``). A flow of k steps has k + 1 states, so train has train_num + 1 states and test
test_num + 1; both ``t`` start at 0, and the test's t = 0 is the train's last time. No noise.

- pendulum (``pendulum_sympnets``): x₀ = (q, p) = (1, 0), h = 0.1, 40 training and 100 test steps.
- double_pendulum: x₀ = (q₁, q₂, p₁, p₂) = (3π/7, 3π/8, 0, 0), h = 0.75, 200 training and 100
  test steps.

Their states are ordered (p, q) (``x0 = [0, 1]`` is p = 0, q = 1); the values above are
reordered to (q, p). Their data come from a sixth-order Störmer–Verlet composition (10 substeps
of h for the pendulum, 5 with 10 fixed-point iterations for the double pendulum); here the same
initial value problems are solved by DOP853 at 1e-12, so the states agree with theirs to their
integrator's accuracy, not bit for bit. These numbers are confirmed in their code only; the
paper's text was not available to check them against. (The double pendulum is chaotic, and over
its 225 time units nearby trajectories separate, so "exact" means the accurate solution of this
initial value problem in float64.)

Randomness comes only from ``numpy.random.default_rng(seed)``: the recipe's initial states are
drawn first, then one standard normal per observed coordinate, scaled by ``noise``, so two calls
with the same seed differ exactly by the noise term. The papers seed NumPy's global state and
draw one trajectory at a time; the distributions here are theirs, the random streams are not.
The SympNets recipes start from a fixed x₀, so their seed only moves the noise (none by default).
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import final

import numpy as np
import torch
from torch import Tensor

from .._validation import check_choice, check_sampling

__all__ = [
    "RECIPES",
    "SYSTEMS",
    "DoublePendulum",
    "HNNPendulum",
    "MassSpring",
    "SympNetsPendulum",
    "System",
    "Trajectories",
    "TwoBody",
    "get_system",
    "make_trajectories",
    "system_names",
]

RECIPES = ("hnn", "sympnets")


@dataclass(frozen=True)
class System(ABC):
    """A Hamiltonian system with n = ``dim`` degrees of freedom; states x = (q, p) ∈ R^{2n}.

    Attributes:
        name: the system's name in ``system_names()``.
        dim: n, the number of coordinates of q (and of p).
    """

    name: str
    dim: int

    @abstractmethod
    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        """H(q, p): (..., n), (..., n) -> (...,); differentiable, dtype and device follow q."""

    def field(self, t: Tensor, y: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Hamilton's equations (dq/dt, dp/dt) = (∂H/∂p, -∂H/∂q) at y = (q, p), each (..., n),
        in closed form (the formulas in the class docstring); dtype and device follow q.

        The system is autonomous: ``t`` is accepted for the ``func(t, y)`` convention and unused.
        """
        q, p = y
        return self._equations(q, p, torch)

    @abstractmethod
    def _equations(self, q, p, xp):
        """(dq/dt, dp/dt) at (q, p), each (..., n), written once for two array libraries: ``xp`` is
        ``torch`` (for ``field``) or ``numpy`` (for ``solve``'s right-hand side, where a small
        torch op costs ~25 times a NumPy one: 0.65 s against 5.7 s for the double pendulum's
        37 000 evaluations). Only operators and functions both spell alike are used."""

    @property
    def recipes(self) -> tuple[str, ...]:
        """The recipes ``make_trajectories`` and ``initial_states`` accept for this system, the
        default first."""
        return tuple(recipe for system, recipe in _RECIPE_TABLE if system == self.name)

    def initial_states(self, count: int, rng: np.random.Generator, recipe: str = "hnn") -> np.ndarray:
        """``count`` initial states drawn from the recipe's distribution: (count, 2n) float64.

        Raises:
            ValueError: a recipe this system does not have (the message lists those it has).
        """
        return _recipe(self.name, recipe).initial(count, rng)

    def evaluation_states(self, count: int, rng: np.random.Generator, recipe: str = "hnn") -> np.ndarray:
        """``count`` initial states of the recipe's evaluation protocol: (count, 2n) float64. The HNN
        notebooks evaluate the spring and the pendulum from states of their own (each coordinate in
        ±[0.2, 1]); every other recipe evaluates from its training distribution."""
        plan = _recipe(self.name, recipe)
        return (plan.evaluation or plan.initial)(count, rng)

    def solve(self, x0: np.ndarray, t: np.ndarray, rtol: float = 1e-12, atol: float = 1e-12) -> np.ndarray:
        """The states at the times t of the trajectories from x0 (given at t[0]): (N, 2n), (T,) -> (N, T, 2n).

        ``scipy.integrate.solve_ivp(method="DOP853", t_eval=t)`` on up to 1024 trajectories at once,
        stacked into one system of dimension 2n·b for b trajectories: one solver call instead of b
        (0.3 s against 9.5 s for the 1000 two-body orbits). The trajectories stay independent, but
        the step-size control sees them together: it bounds the root mean square of the scaled local
        errors over all 2n·b coordinates, which lets one trajectory's error exceed its share by up
        to √b when the others are easy. So a stacked solve runs at rtol/√b and atol/√b: if the mean
        of b per-trajectory mean squares is at most 1/b, each of them is at most 1, the guarantee a
        trajectory gets when solved alone. (On the 1000 two-body orbits, against a reference at
        3e-14: stacked without the correction 2e-10, with it 1e-11, one by one 5e-11.) SciPy raises
        an rtol below 100 ε = 2.2e-14 to that floor, which loosens the guarantee when rtol/√b is
        below it; the default rtol keeps above it for every b ≤ 1024.

        Raises:
            ValueError: x0 not (N, 2n), t not a strictly increasing 1-D array, or the solver failed.
        """
        x0 = np.asarray(x0, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if x0.ndim != 2 or x0.shape[1] != 2 * self.dim:
            raise ValueError(f"x0 must be (N, {2 * self.dim}) for {self.name}, got shape {x0.shape}")
        if t.ndim != 1 or len(t) == 0 or not np.all(np.diff(t) > 0):
            raise ValueError(f"t must be a non-empty strictly increasing 1-D array, got {t!r}")
        if len(t) == 1 or len(x0) == 0:
            return np.repeat(x0[:, None, :], len(t), axis=1)
        starts = range(0, len(x0), _STACK)
        return np.concatenate([self._solve_stacked(x0[start : start + _STACK], t, rtol, atol) for start in starts])

    def _solve_stacked(self, x0: np.ndarray, t: np.ndarray, rtol: float, atol: float) -> np.ndarray:
        """One DOP853 solve of the b trajectories x0 (b, 2n) stacked, each held to (rtol, atol)."""
        from scipy.integrate import solve_ivp  # here, so that importing sdl.data does not cost 0.5 s

        count, n = len(x0), self.dim
        shrink = math.sqrt(count)

        def right_hand_side(time: float, flat: np.ndarray) -> np.ndarray:
            states = flat.reshape(count, 2 * n)
            dq, dp = self._equations(states[:, :n], states[:, n:], np)
            return np.concatenate([dq, dp], axis=-1).ravel()

        solution = solve_ivp(
            right_hand_side,
            (t[0], t[-1]),
            x0.ravel(),
            method="DOP853",
            t_eval=t,
            rtol=max(rtol / shrink, _SMALLEST_RTOL),
            atol=atol / shrink,
        )
        if not solution.success:
            raise ValueError(f"solve_ivp failed for {self.name}: {solution.message}")
        return solution.y.reshape(count, 2 * n, len(t)).transpose(0, 2, 1).copy()


_STACK = 1024  # trajectories per solve_ivp call
_SMALLEST_RTOL = 100 * np.finfo(np.float64).eps  # solve_ivp raises smaller rtol to this, with a warning


@final
@dataclass(frozen=True)
class MassSpring(System):
    """H = q² + p² (the HNN code's spring, without ½); field (2p, -2q); n = 1."""

    name: str = field(default="mass_spring", init=False)
    dim: int = field(default=1, init=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (q**2 + p**2).sum(-1)

    def _equations(self, q, p, xp):
        return 2 * p, -2 * q


@final
@dataclass(frozen=True)
class HNNPendulum(System):
    """H = 3(1 - cos q) + p² (the HNN pendulum); field (2p, -3 sin q); n = 1; name ``pendulum``."""

    name: str = field(default="pendulum", init=False)
    dim: int = field(default=1, init=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (3 * (1 - torch.cos(q)) + p**2).sum(-1)

    def _equations(self, q, p, xp):
        return 2 * p, -3 * xp.sin(q)


@final
@dataclass(frozen=True)
class SympNetsPendulum(System):
    """H = p²/2 - cos q (the SympNets pendulum); field (p, -sin q); n = 1; name ``pendulum_sympnets``."""

    name: str = field(default="pendulum_sympnets", init=False)
    dim: int = field(default=1, init=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (p**2 / 2 - torch.cos(q)).sum(-1)

    def _equations(self, q, p, xp):
        return p, -xp.sin(q)


@final
@dataclass(frozen=True)
class TwoBody(System):
    """Two unit masses in the plane, G = 1: q = (x₁, y₁, x₂, y₂), p = (p_x1, p_y1, p_x2, p_y2), n = 4.

    H = ½|p|² - 1/|r₁ - r₂|; dq/dt = p, dp₁/dt = -(r₁ - r₂)/|r₁ - r₂|³ = -dp₂/dt.
    """

    name: str = field(default="two_body", init=False)
    dim: int = field(default=4, init=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        separation = q[..., 0:2] - q[..., 2:4]
        return (p**2).sum(-1) / 2 - 1 / separation.norm(dim=-1)

    def _equations(self, q, p, xp):
        separation = q[..., 0:2] - q[..., 2:4]
        distance_squared = separation[..., 0:1] ** 2 + separation[..., 1:2] ** 2
        pull = separation / distance_squared**1.5  # the force on body 2, towards body 1
        return p, xp.concatenate([-pull, pull], axis=-1)


@final
@dataclass(frozen=True)
class DoublePendulum(System):
    """Double pendulum, m₁ = m₂ = l₁ = l₂ = g = 1, q = (θ₁, θ₂) from the downward vertical, n = 2.

    With δ = q₁ - q₂ and D = 1 + sin²δ (the determinant of the mass matrix [[2, cos δ], [cos δ, 1]]):
    H = (p₁² + 2p₂² - 2p₁p₂ cos δ)/(2D) - 2 cos q₁ - cos q₂, and
    dq₁/dt = (p₁ - p₂ cos δ)/D, dq₂/dt = (2p₂ - p₁ cos δ)/D,
    dp₁/dt = -2 sin q₁ - A + B, dp₂/dt = -sin q₂ + A - B, where A = p₁p₂ sin δ / D
    and B = (p₁² + 2p₂² - 2p₁p₂ cos δ) sin 2δ / (2D²) (the derivatives of the kinetic term in δ).
    """

    name: str = field(default="double_pendulum", init=False)
    dim: int = field(default=2, init=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        q1, q2, p1, p2 = q[..., 0], q[..., 1], p[..., 0], p[..., 1]
        delta = q1 - q2
        kinetic = (p1**2 + 2 * p2**2 - 2 * p1 * p2 * torch.cos(delta)) / (2 * (1 + torch.sin(delta) ** 2))
        return kinetic - 2 * torch.cos(q1) - torch.cos(q2)

    def _equations(self, q, p, xp):
        q1, q2, p1, p2 = q[..., 0], q[..., 1], p[..., 0], p[..., 1]
        delta = q1 - q2
        cos, sin = xp.cos(delta), xp.sin(delta)
        determinant = 1 + sin**2
        dq1 = (p1 - p2 * cos) / determinant
        dq2 = (2 * p2 - p1 * cos) / determinant
        a = p1 * p2 * sin / determinant
        b = (p1**2 + 2 * p2**2 - 2 * p1 * p2 * cos) * xp.sin(2 * delta) / (2 * determinant**2)
        dp1 = -2 * xp.sin(q1) - a + b
        dp2 = -xp.sin(q2) + a - b
        return xp.stack([dq1, dq2], axis=-1), xp.stack([dp1, dp2], axis=-1)


SYSTEMS: Mapping[str, System] = MappingProxyType(
    {system.name: system for system in (MassSpring(), HNNPendulum(), SympNetsPendulum(), TwoBody(), DoublePendulum())}
)


def system_names() -> list[str]:
    """The names ``get_system`` and ``make_trajectories`` accept."""
    return list(SYSTEMS)


def get_system(name: str) -> System:
    """The system called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    check_choice("system", name, system_names())
    return SYSTEMS[name]


# ---------------------------------------------------------------- initial states of the recipes

_InitialSampler = Callable[[int, np.random.Generator], np.ndarray]  # (count, rng) -> (count, 2n)


def _on_circles(low: float, high: float) -> _InitialSampler:
    """HNN's one-degree-of-freedom states: a point of U[-1, 1]² rescaled to a radius r ~ U[low, high]."""

    def sample(count: int, rng: np.random.Generator) -> np.ndarray:
        directions = rng.uniform(-1.0, 1.0, size=(count, 2))
        radii = rng.uniform(low, high, size=count)
        return directions / np.linalg.norm(directions, axis=1, keepdims=True) * radii[:, None]

    return sample


def _away_from_the_axes(count: int, rng: np.random.Generator) -> np.ndarray:
    """The initial states of HNN's evaluation of the spring and the pendulum (their notebooks):
    each coordinate uniform on [-1, -0.2] ∪ [0.2, 1]. These reach radius √2, beyond the spring's
    training radii (≤ 1), and lie inside the pendulum's (≥ 1.3): part of the protocol, kept as is."""
    x = rng.uniform(-0.8, 0.8, size=(count, 2))
    return x + 0.2 * np.sign(x)


def _near_circular_orbits(count: int, rng: np.random.Generator) -> np.ndarray:
    """HNN's ``random_config`` for two bodies: r₁ ~ U[0.5, 1.5]², r₂ = -r₁, the circular-orbit
    velocity v₁ = (-y₁, x₁)/(2|r₁|^{3/2}) times 1 + 0.05 N(0, 1), v₂ = -v₁; as (x₁, y₁, x₂, y₂, p...)."""
    position = rng.uniform(0.5, 1.5, size=(count, 2))
    radius = np.linalg.norm(position, axis=1, keepdims=True)
    # |v₁| = 1/(2√r) balances the pull 1/(2r)² at distance 2r from the other body: a circle of radius r.
    velocity = np.stack([-position[:, 1], position[:, 0]], axis=1) / (2 * radius**1.5)
    velocity = velocity * (1 + 0.05 * rng.standard_normal(size=(count, 1)))  # slightly elliptical
    return np.concatenate([position, -position, velocity, -velocity], axis=1)


def _fixed(state: tuple[float, ...]) -> _InitialSampler:
    """A recipe that starts from one given state: ``count`` copies of it; draws nothing."""

    def sample(count: int, rng: np.random.Generator) -> np.ndarray:
        return np.tile(np.asarray(state, dtype=np.float64), (count, 1))

    return sample


# ---------------------------------------------------------------- recipes as data


@dataclass(frozen=True)
class _Recipe(ABC):
    """How one paper samples one system.

    Attributes:
        system: the name of the System whose flow is sampled.
        noise: the default standard deviation of the Gaussian noise on the observed states.
        initial: (count, rng) -> (count, 2n) initial states.
    """

    system: str
    noise: float
    initial: _InitialSampler
    evaluation: _InitialSampler | None = field(default=None, kw_only=True)

    @abstractmethod
    def trajectory_count(self) -> int:
        """The number of trajectories to solve."""

    @abstractmethod
    def grid(self) -> np.ndarray:
        """(T,) the times the trajectories are solved at, from 0."""

    @abstractmethod
    def split(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(count, T, ...) per-trajectory arrays -> (train t, train part, test t, test part)."""


@final
@dataclass(frozen=True)
class _Ensemble(_Recipe):
    """``count`` independent trajectories on linspace(0, span, points), split by trajectory."""

    count: int
    span: float
    points: int
    train: slice
    test: slice

    def trajectory_count(self) -> int:
        return self.count

    def grid(self) -> np.ndarray:
        return np.linspace(0.0, self.span, self.points)

    def split(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.grid(), arrays[self.train], self.grid(), arrays[self.test]


@final
@dataclass(frozen=True)
class _Continuation(_Recipe):
    """One trajectory with step h: ``train_steps`` steps train, the next ``test_steps`` test."""

    step: float
    train_steps: int
    test_steps: int

    def trajectory_count(self) -> int:
        return 1

    def grid(self) -> np.ndarray:
        return self.step * np.arange(self.train_steps + self.test_steps + 1)

    def split(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # The test trajectory starts at the last training state, as SympNets' X_test[0] = y_train[-1].
        train_grid = self.step * np.arange(self.train_steps + 1)
        test_grid = self.step * np.arange(self.test_steps + 1)
        return train_grid, arrays[:, : self.train_steps + 1], test_grid, arrays[:, self.train_steps :]


_SYMPNETS_PENDULUM = _Continuation(
    "pendulum_sympnets", noise=0.0, initial=_fixed((1.0, 0.0)), step=0.1, train_steps=40, test_steps=100
)

# (system name, recipe name) -> recipe; a system's first recipe is its default.
_RECIPE_TABLE: dict[tuple[str, str], _Recipe] = {
    ("mass_spring", "hnn"): _Ensemble(
        "mass_spring",
        noise=0.1,
        initial=_on_circles(0.1, 1.0),
        count=50,
        span=3.0,
        points=30,
        train=slice(0, 25),
        test=slice(25, 50),
        evaluation=_away_from_the_axes,
    ),
    ("pendulum", "hnn"): _Ensemble(
        "pendulum",
        noise=0.1,
        initial=_on_circles(1.3, 2.3),
        count=50,
        span=3.0,
        points=45,
        train=slice(0, 25),
        test=slice(25, 50),
        evaluation=_away_from_the_axes,
    ),
    ("pendulum_sympnets", "sympnets"): _SYMPNETS_PENDULUM,
    ("two_body", "hnn"): _Ensemble(
        "two_body",
        noise=0.0,
        initial=_near_circular_orbits,
        count=1000,
        span=20.0,
        points=50,
        train=slice(200, 1000),
        test=slice(0, 200),
    ),
    ("double_pendulum", "sympnets"): _Continuation(
        "double_pendulum",
        noise=0.0,
        initial=_fixed((3 * math.pi / 7, 3 * math.pi / 8, 0.0, 0.0)),
        step=0.75,
        train_steps=200,
        test_steps=100,
    ),
}


def _recipe(system: str, recipe: str) -> _Recipe:
    check_choice("system", system, system_names())
    valid = SYSTEMS[system].recipes
    check_choice(f"recipe of {system}", recipe, valid)
    return _RECIPE_TABLE[(system, recipe)]


# ---------------------------------------------------------------- data sets


@dataclass(frozen=True, eq=False)
class Trajectories:
    """Trajectories of one system on one uniform time grid.

    Attributes:
        t: (T,) the times, t[0] = 0.
        states: (N, T, 2n) the observed states x = (q, p), with the recipe's noise.
        clean: (N, T, 2n) the exact states.
        derivatives: (N, T, 2n) the exact field (dq/dt, dp/dt) at the clean states (the HNN
            recipe's regression targets).
    """

    t: Tensor
    states: Tensor
    clean: Tensor
    derivatives: Tensor

    @property
    def step(self) -> float:
        """The time step t[1] - t[0]."""
        return float(self.t[1] - self.t[0])


_SPLIT_FIELDS = ("t", "states", "clean", "derivatives")


def make_trajectories(
    system: str,
    recipe: str | None = None,
    *,
    seed: int = 0,
    noise: float | None = None,
    cache_dir: Path | str | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Trajectories, Trajectories]:
    """The (train, test) trajectories of ``system`` drawn by ``recipe`` (see the module docstring).

    Shapes per recipe (N trajectories of T times, 2n coordinates):

    ======================  ==============  ================
    system, recipe          train           test
    ======================  ==============  ================
    mass_spring, hnn        (25, 30, 2)     (25, 30, 2)
    pendulum, hnn           (25, 45, 2)     (25, 45, 2)
    pendulum_sympnets       (1, 41, 2)      (1, 101, 2)
    two_body, hnn           (800, 50, 8)    (200, 50, 8)
    double_pendulum, symp.  (1, 201, 4)     (1, 101, 4)
    ======================  ==============  ================

    Args:
        system: one of ``system_names()``.
        recipe: one of the system's recipes (``get_system(system).recipes``); None takes its
            default: "hnn" for mass_spring, pendulum and two_body, "sympnets" for
            pendulum_sympnets and double_pendulum.
        seed: non-negative int; the only source of randomness (``numpy.random.default_rng(seed)``).
        noise: standard deviation of the Gaussian noise added to every coordinate of the observed
            states, ≥ 0; None takes the recipe's (0.1 for the HNN spring and pendulum, else 0).
        cache_dir: a folder to keep the generated arrays in, as one ``.npz`` file per system,
            recipe, seed and noise, written atomically (a temporary file in the same folder, then
            ``os.replace``) and loaded by the next call with the same arguments. A file that
            cannot be read as such, or was written by another version of these recipes
            (``_DATA_VERSION``), is generated again and replaced. None: nothing touches the disk.
        dtype: floating dtype of the tensors (the data are generated in float64).
        device: device of the tensors; default the CPU.

    Raises:
        ValueError: an unknown system or recipe (the message lists the valid ones), a negative
            seed, negative or non-finite noise, or a non-floating dtype.
        TypeError: seed not an int, noise not a real number.
    """
    if recipe is None:
        check_choice("system", system, system_names())
        recipe = SYSTEMS[system].recipes[0]
    plan = _recipe(system, recipe)
    noise = _check_generation_arguments(seed, noise, dtype, plan.noise)

    arrays = None
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{system}-{recipe}-seed{seed}-noise{_noise_label(noise)}.npz"
        arrays = _load(path)
    if arrays is None:
        arrays = _generate(plan, seed, noise)
        if path is not None:
            _save_atomically(path, arrays)

    def tensors(part: str) -> Trajectories:
        return Trajectories(*(torch.as_tensor(arrays[f"{part}_{name}"], dtype=dtype, device=device) for name in _SPLIT_FIELDS))

    return tensors("train"), tensors("test")


def _check_generation_arguments(seed: int, noise: float | None, dtype: torch.dtype, default_noise: float) -> float:
    """The noise level to use, after checking seed, noise and dtype."""
    check_sampling(seed, noise, dtype)
    return default_noise if noise is None else float(noise)


def _generate(plan: _Recipe, seed: int, noise: float) -> dict[str, np.ndarray]:
    """The train and test arrays of ``plan`` as float64 NumPy arrays, keyed ``{train,test}_{field}``."""
    system = SYSTEMS[plan.system]
    rng = np.random.default_rng(seed)
    x0 = plan.initial(plan.trajectory_count(), rng)
    clean = system.solve(x0, plan.grid())
    # Drawn whatever the noise level, so that the stream (and the initial states) do not depend on it.
    observed = clean + noise * rng.standard_normal(clean.shape)
    q, p = torch.from_numpy(clean).split(system.dim, dim=-1)
    derivatives = torch.cat(system.field(torch.tensor(0.0, dtype=torch.float64), (q, p)), dim=-1).numpy()

    arrays: dict[str, np.ndarray] = {}
    for name, values in (("states", observed), ("clean", clean), ("derivatives", derivatives)):
        train_t, train, test_t, test = plan.split(values)
        arrays.update({"train_t": train_t, f"train_{name}": train, "test_t": test_t, f"test_{name}": test})
    return {name: np.ascontiguousarray(values) for name, values in arrays.items()}


def _noise_label(noise: float) -> str:
    """The shortest decimal that reads back as ``noise`` ("0", "0.1"), so distinct levels name distinct files."""
    return np.format_float_positional(noise, trim="-")


_CACHE_KEYS = tuple(f"{part}_{name}" for part in ("train", "test") for name in _SPLIT_FIELDS)
# Stored in every cache file; raise it whenever a system or a recipe changes its data, so that
# files written before are regenerated rather than served.
_DATA_VERSION = 1


def _load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path``, or None when there is no complete file of this ``_DATA_VERSION``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if set(archive.files) != {*_CACHE_KEYS, "version"} or int(archive["version"]) != _DATA_VERSION:
                return None
            return {key: archive[key] for key in _CACHE_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # not a complete npz archive
        return None


def _save_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that ``path`` is either absent or complete, never partial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            # numpy's stub types **kwds as if a key could be allow_pickle (a bool); these keys are array names
            np.savez(file, version=np.array(_DATA_VERSION), **arrays)  # type: ignore[arg-type]
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
