"""Potential energies for Boltzmann generators, by name, and a seeded reference MCMC sampler.

Every energy is *reduced*: u(x) = U(x)/kT, so the target density is p(x) ∝ exp(-u(x)) and energy
differences are in units of kT. Each one has a closed-form force -∇u, a reaction coordinate
r(x) = w·x that splits space into two states (A: r < r*, B: r ≥ r*), and starting points for chains.

- "double_well" (Noé et al. 2019, Boltzmann generators, Fig. 2), d = 2:
  u(x) = ¼ a x₁⁴ - ½ b x₁² + c x₁ + ½ d x₂², a = 1, b = 6, c = 1, d = 1; r = x₁, r* at the
  barrier top (x₁ ≈ 0.167). The left well is ≈ 5 kT deeper than the right one; the barrier is
  ≈ 11 kT above the left minimum.
- "muller_brown" (Müller & Brown 1979), d = 2: U(x) = Σ_{k=1}^4 A_k exp(a_k (x₁-X_k)² +
  b_k (x₁-X_k)(x₂-Y_k) + c_k (x₂-Y_k)²) with the published constants, at kT = 10 energy units
  (u = U/10: minima -14.7, -10.8, -8.1; barrier from the deepest minimum ≈ 7.4 kT); r = x₁ - x₂,
  r* = -1.2 (the deepest well A against the other two).
- "phi4", d = L² (L × L periodic lattice; Nicoli et al. 2021's parametrisation plus a field h):
  u(φ) = Σ_x [-2κ Σ_{μ=1,2} φ_x φ_{x+μ} + (1 - 2λ) φ_x² + λ φ_x⁴ - h φ_x],
  κ = 0.28, λ = 0.022 (two states; at L = 8 local moves at kT = 1 almost never cross), h = 0.01; r = magnetisation (1/d) Σ φ_x,
  r* = 0 (the states of positive and negative magnetisation; h makes B the likelier one).

The sampler (``sample_mcmc``) is Metropolis-adjusted Langevin (MALA) on a ladder of temperatures
with replica exchange, vectorised over independent chains, so it crosses the barriers above.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "DoubleWell",
    "Energy",
    "MCMCResult",
    "MullerBrown",
    "Phi4",
    "energy_names",
    "get_energy",
    "sample_mcmc",
    "state_free_energy_quadrature",
]


class Energy(ABC):
    """A reduced potential energy u(x) = U(x)/kT on ℝ^d with its force and two states.

    Attributes:
        dim: d.
        reaction_weights: w, with r(x) = w·x the reaction coordinate (a tuple of d floats).
        dividing_value: r*; state A is r < r*, state B is r ≥ r*.
        box: for d = 2, ((x₁ low, x₁ high), (x₂ low, x₂ high)), where the density lives (plots,
            quadrature); None otherwise.
    """

    dim: int
    dividing_value: float
    box: tuple[tuple[float, float], tuple[float, float]] | None = None

    @abstractmethod
    def energy(self, x: Tensor) -> Tensor:
        """u(x): (..., d) → (...,)."""

    @abstractmethod
    def force(self, x: Tensor) -> Tensor:
        """-∇u(x) in closed form: (..., d) → (..., d)."""

    @property
    @abstractmethod
    def reaction_weights(self) -> tuple[float, ...]:
        """w of r(x) = w·x."""

    def reaction_coordinate(self, x: Tensor) -> Tensor:
        """r(x) = w·x: (..., d) → (...,)."""
        return x @ torch.tensor(self.reaction_weights, dtype=x.dtype, device=x.device)

    def in_state_b(self, x: Tensor) -> Tensor:
        """r(x) ≥ r*, a bool tensor: (..., d) → (...,)."""
        return self.reaction_coordinate(x) >= self.dividing_value

    @abstractmethod
    def initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        """n starting points of chains, float64 (n, d), spread over both states."""

    def mcmc_settings(self) -> dict:
        """``temperatures`` and ``step_size`` of ``sample_mcmc`` that cross this energy's barrier
        (swap acceptance ≈ 0.5-0.75, measured)."""
        return {"temperatures": (1.0, 1.8, 3.2, 5.8, 10.0), "step_size": 0.3}

    def _check(self, x: Tensor) -> None:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"{self.name} energy: expected inputs of shape (..., {self.dim}), got {tuple(x.shape)}")

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class DoubleWell(Energy):
    """Noé's 2-D double well u(x) = ¼ a x₁⁴ - ½ b x₁² + c x₁ + ½ d x₂² (see the module docstring)."""

    a: float = 1.0
    b: float = 6.0
    c: float = 1.0
    d: float = 1.0
    dim: int = 2
    dividing_value: float = field(init=False)
    box: tuple = ((-4.0, 4.0), (-4.0, 4.0))

    def __post_init__(self) -> None:
        # r* = the local maximum of ¼ a x⁴ - ½ b x² + c x: the root of a x³ - b x + c nearest 0.
        roots = torch.linalg.eigvals(
            torch.tensor([[0.0, self.b / self.a, -self.c / self.a], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
        )
        real = [float(r.real) for r in roots if abs(float(r.imag)) < 1e-9]
        object.__setattr__(self, "dividing_value", min(real, key=abs))

    @property
    def reaction_weights(self) -> tuple[float, ...]:
        return (1.0, 0.0)

    def energy(self, x: Tensor) -> Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return 0.25 * self.a * x1**4 - 0.5 * self.b * x1**2 + self.c * x1 + 0.5 * self.d * x2**2

    def force(self, x: Tensor) -> Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return torch.stack([-(self.a * x1**3 - self.b * x1 + self.c), -self.d * x2], -1)

    def initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        wells = torch.tensor([-2.5, 2.4], dtype=torch.float64)[torch.arange(n) % 2]
        return torch.stack([wells, torch.zeros(n, dtype=torch.float64)], -1) + 0.1 * torch.randn(
            n, 2, generator=generator, dtype=torch.float64
        )


_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_X = (1.0, 0.0, -0.5, -1.0)
_MB_Y = (0.0, 0.5, 1.5, 1.0)
_MB_MINIMA = ((-0.558, 1.442), (-0.050, 0.467), (0.623, 0.028))


@dataclass(frozen=True)
class MullerBrown(Energy):
    """The Müller–Brown potential at temperature ``kT`` (energy units of the published constants)."""

    kT: float = 10.0
    dim: int = 2
    dividing_value: float = -1.2
    box: tuple = ((-1.8, 1.3), (-0.6, 2.2))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kT) and self.kT > 0):
            raise ValueError(f"kT must be a finite positive number, got {self.kT!r}")

    @property
    def reaction_weights(self) -> tuple[float, ...]:
        return (1.0, -1.0)

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self._check(x)
        constants = torch.tensor([_MB_A, _MB_a, _MB_b, _MB_c, _MB_X, _MB_Y], dtype=x.dtype, device=x.device)
        big_a, a, b, c, x0, y0 = constants
        dx, dy = x[..., :1] - x0, x[..., 1:] - y0  # (..., 4)
        terms = big_a * torch.exp(a * dx**2 + b * dx * dy + c * dy**2) / self.kT
        return terms, 2 * a * dx + b * dy, b * dx + 2 * c * dy

    def energy(self, x: Tensor) -> Tensor:
        return self._terms(x)[0].sum(-1)

    def force(self, x: Tensor) -> Tensor:
        terms, d1, d2 = self._terms(x)
        return -torch.stack([(terms * d1).sum(-1), (terms * d2).sum(-1)], -1)

    def mcmc_settings(self) -> dict:
        return {"temperatures": (1.0, 1.8, 3.2, 5.8), "step_size": 0.05}

    def initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        minima = torch.tensor(_MB_MINIMA, dtype=torch.float64)[torch.arange(n) % 3]
        return minima + 0.05 * torch.randn(n, 2, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class Phi4(Energy):
    """The φ⁴ lattice field theory on an L × L periodic lattice, d = L², φ flattened row-major."""

    lattice: int = 8
    kappa: float = 0.28
    lam: float = 0.022
    h: float = 0.01
    dividing_value: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.lattice, bool) or not isinstance(self.lattice, int) or self.lattice < 3:
            raise ValueError(
                f"phi4 lattice: L must be an int ≥ 3 (d = L², e.g. 4, 8, 16 for d = 16, 64, 256), got {self.lattice!r}"
            )
        for key in ("kappa", "lam", "h"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"phi4 {key} must be finite, got {getattr(self, key)!r}")
        if not self.lam >= 0:
            raise ValueError(f"phi4 lam must be ≥ 0 (a density needs a bounded-below action), got {self.lam!r}")

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.lattice**2

    @property
    def reaction_weights(self) -> tuple[float, ...]:
        return (1.0 / self.dim,) * self.dim

    def _field(self, x: Tensor) -> Tensor:
        self._check(x)
        return x.reshape(*x.shape[:-1], self.lattice, self.lattice)

    def energy(self, x: Tensor) -> Tensor:
        phi = self._field(x)
        hopping = phi * (phi.roll(-1, -1) + phi.roll(-1, -2))  # each bond once
        site = (1 - 2 * self.lam) * phi**2 + self.lam * phi**4 - self.h * phi
        return (-2 * self.kappa * hopping + site).sum((-1, -2))

    def force(self, x: Tensor) -> Tensor:
        phi = self._field(x)
        neighbours = phi.roll(1, -1) + phi.roll(-1, -1) + phi.roll(1, -2) + phi.roll(-1, -2)
        force = 2 * self.kappa * neighbours - 2 * (1 - 2 * self.lam) * phi - 4 * self.lam * phi**3 + self.h
        return force.reshape(x.shape)

    def mcmc_settings(self) -> dict:
        # Energy fluctuations grow like √d, so neighbouring temperatures must come closer as d grows;
        # the ladder ends near 1.7, where the sign of the magnetisation flips freely at L ≤ 16.
        ratio = 1.0 + 0.6 / math.sqrt(self.dim)
        count = math.ceil(math.log(1.7) / math.log(ratio)) + 1
        return {"temperatures": tuple(ratio**i for i in range(count)), "step_size": 0.1}

    def initial_states(self, n: int, generator: torch.Generator) -> Tensor:
        # Ordered starts of both signs at about the mean-field |φ|: the chains begin in both states.
        sign = 1.0 - 2.0 * (torch.arange(n) % 2).double()
        level = math.sqrt(max((4 * self.kappa * 2 - 2 * (1 - 2 * self.lam)) / (4 * self.lam), 0.0)) if self.lam > 0 else 1.0
        return sign[:, None] * level + 0.1 * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)


_ENERGIES = {"double_well": DoubleWell, "muller_brown": MullerBrown, "phi4": Phi4}


def energy_names() -> tuple[str, ...]:
    """Names accepted by ``get_energy``."""
    return tuple(_ENERGIES)


def get_energy(name: str, lattice: int | None = None) -> Energy:
    """The energy ``name``; ``lattice`` is L of "phi4" (default 8, d = 64) and must be None for the others."""
    if name not in _ENERGIES:
        raise ValueError(f"unknown energy {name!r}; valid: {', '.join(map(repr, _ENERGIES))}")
    if name == "phi4":
        return Phi4(8 if lattice is None else lattice)
    if lattice is not None:
        raise ValueError(f"lattice={lattice!r} is only for 'phi4'; {name!r} is 2-dimensional")
    return _ENERGIES[name]()


@dataclass(frozen=True)
class MCMCResult:
    """Samples of p ∝ exp(-u) and the sampler's statistics.

    Attributes:
        samples: (steps // thin, chains, d) float64 states of the kT = 1 replica after burn-in.
        acceptance: (K,) MALA acceptance rate per temperature after burn-in.
        swap_acceptance: (K - 1,) replica-exchange acceptance per neighbouring pair.
        step_sizes: (K,) the MALA step sizes ε_k reached by the burn-in adaptation.
    """

    samples: Tensor
    acceptance: Tensor
    swap_acceptance: Tensor
    step_sizes: Tensor


def sample_mcmc(
    energy: Energy,
    steps: int,
    *,
    chains: int = 64,
    temperatures: tuple[float, ...] = (1.0,),
    step_size: float = 0.1,
    burn_in: int = 1000,
    thin: int = 1,
    seed: int = 0,
) -> MCMCResult:
    """MALA with replica exchange, vectorised over ``chains`` independent chains per temperature.

    Replica k targets p_k ∝ exp(-u/T_k). One sweep: a MALA step for every replica,

        y = x + ½ε_k² F(x)/T_k + ε_k ξ,  ξ ~ N(0, I),  accepted with probability
        min(1, p_k(y) q(x | y) / (p_k(x) q(y | x))),  q(y | x) = N(y; x + ½ε_k² F(x)/T_k, ε_k² I),

    then a swap attempt between the neighbouring temperatures (k, k+1) for k of alternating parity,
    accepted with min(1, exp((1/T_k - 1/T_{k+1})(u_k - u_{k+1}))). Both keep each p_k invariant, so
    the T = 1 replica samples p. During ``burn_in`` sweeps each ε_k adapts (log ε_k += 0.05 (a - 0.57))
    towards MALA's optimal acceptance 0.57; after burn-in ε_k is fixed, so the chain is exact.
    Everything is float64 on the CPU and drawn from one generator seeded with ``seed``.

    Args:
        energy: the target's reduced energy u.
        steps: sweeps after burn-in; every ``thin``-th state of the T = 1 replica is kept.
        temperatures: T_1 = 1 < T_2 < … (a ladder, increasing).
        step_size: the initial ε at T = 1 (ε_k starts at ε √T_k).
    """
    for key, value, low in (("steps", steps, 1), ("chains", chains, 1), ("burn_in", burn_in, 0), ("thin", thin, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be an int ≥ {low}, got {value!r}")
    ladder = torch.tensor(temperatures, dtype=torch.float64)
    if ladder.ndim != 1 or len(ladder) < 1 or ladder[0] != 1.0 or not bool((ladder[1:] > ladder[:-1]).all()):
        raise ValueError(f"temperatures must start at 1.0 and increase, got {temperatures!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite positive number, got {step_size!r}")
    generator = torch.Generator().manual_seed(seed)
    k = len(ladder)
    temperature = ladder[:, None]  # (K, 1)
    x = energy.initial_states(k * chains, generator).reshape(k, chains, energy.dim)
    u, force = energy.energy(x), energy.force(x)
    epsilon = step_size * ladder.sqrt()
    kept, accepted, swaps, swap_tries = (
        [],
        torch.zeros(k, dtype=torch.float64),
        torch.zeros(max(k - 1, 0), dtype=torch.float64),
        torch.zeros(max(k - 1, 0), dtype=torch.float64),
    )
    for sweep in range(burn_in + steps):
        eps = epsilon[:, None, None]
        mean_x = x + 0.5 * eps**2 * force / temperature[..., None]
        y = mean_x + eps * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        u_y, force_y = energy.energy(y), energy.force(y)
        mean_y = y + 0.5 * eps**2 * force_y / temperature[..., None]
        log_ratio = (u - u_y) / temperature + ((y - mean_x).square().sum(-1) - (x - mean_y).square().sum(-1)) / (
            2 * eps[..., 0] ** 2
        )
        accept = torch.rand(log_ratio.shape, generator=generator, dtype=torch.float64).log() < log_ratio
        x = torch.where(accept[..., None], y, x)
        u = torch.where(accept, u_y, u)
        force = torch.where(accept[..., None], force_y, force)
        rate = accept.double().mean(-1)
        if sweep < burn_in:
            epsilon = epsilon * torch.exp(0.05 * (rate - 0.57))
        else:
            accepted += rate
        if k > 1:  # swap neighbours (k, k+1), k of the sweep's parity
            lower = torch.arange(sweep % 2, k - 1, 2)
            upper = lower + 1
            beta = 1.0 / ladder
            log_swap = (beta[lower, None] - beta[upper, None]) * (u[lower] - u[upper])
            swap = torch.rand(log_swap.shape, generator=generator, dtype=torch.float64).log() < log_swap
            for tensor in (x, u, force):
                shape = swap.shape + (1,) * (tensor.ndim - 2)
                low_values, up_values = tensor[lower], tensor[upper]
                tensor[lower] = torch.where(swap.reshape(shape), up_values, low_values)
                tensor[upper] = torch.where(swap.reshape(shape), low_values, up_values)
            if sweep >= burn_in:
                swaps[lower] += swap.double().mean(-1)
                swap_tries[lower] += 1
        if sweep >= burn_in and (sweep - burn_in) % thin == thin - 1:
            kept.append(x[0].clone())
    return MCMCResult(
        samples=torch.stack(kept),
        acceptance=accepted / steps,
        swap_acceptance=swaps / swap_tries.clamp(min=1),
        step_sizes=epsilon,
    )


@functools.lru_cache(maxsize=16)
def state_free_energy_quadrature(energy: Energy, nodes: int = 400) -> tuple[float, float]:
    """(F_B - F_A in kT, P(B)) for a 2-D energy by numerical quadrature of Z_S = ∫_S exp(-u) over
    each state S inside ``energy.box``: F_B - F_A = -log(Z_B / Z_A).

    The outer integral over x₁ is scipy's adaptive ``quad`` (the dividing line r = r* as a break
    point when it is vertical); the inner one over x₂, on each side of the line, is Gauss–Legendre
    with ``nodes`` points, vectorised (the integrand is smooth there)."""
    import numpy as np
    from scipy.integrate import quad

    if energy.dim != 2 or energy.box is None:
        raise ValueError(f"quadrature needs a 2-D energy with a box, got {energy.name} with d = {energy.dim}")
    (x_low, x_high), (y_low, y_high) = energy.box
    grid = torch.cartesian_prod(
        torch.linspace(x_low, x_high, 401, dtype=torch.float64), torch.linspace(y_low, y_high, 401, dtype=torch.float64)
    )
    shift = float(energy.energy(grid).min())  # exp(-(u - min u)) stays in range
    points, weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(nodes))
    w1, w2 = energy.reaction_weights
    r_star = energy.dividing_value

    def inner(x: float, low: float, high: float) -> float:
        if high <= low:
            return 0.0
        y = low + (high - low) * (points + 1) / 2
        u = energy.energy(torch.stack([torch.full_like(y, x), y], -1))
        return float((weights * torch.exp(-(u - shift))).sum()) * (high - low) / 2

    def split(x: float) -> float:  # the x₂ where r(x₁, x₂) = r*, clipped to the box
        return min(max((r_star - w1 * x) / w2, y_low), y_high)

    options = {"epsabs": 0.0, "epsrel": 1e-10, "limit": 200}
    if w2 == 0.0:  # the states split along x₁ = r*/w₁
        boundary = r_star / w1
        left = quad(lambda x: inner(x, y_low, y_high), x_low, boundary, **options)[0]
        right = quad(lambda x: inner(x, y_low, y_high), boundary, x_high, **options)[0]
        z_a, z_b = (left, right) if w1 > 0 else (right, left)
    else:
        below = quad(lambda x: inner(x, y_low, split(x)), x_low, x_high, **options)[0]
        above = quad(lambda x: inner(x, split(x), y_high), x_low, x_high, **options)[0]
        z_a, z_b = (above, below) if w2 < 0 else (below, above)
    return -math.log(z_b / z_a), z_b / (z_a + z_b)
