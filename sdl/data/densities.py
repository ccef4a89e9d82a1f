"""Two-dimensional densities for flow experiments, sampled by name.

Each generator returns (num_samples, 2) points, roughly within [-4, 4]²:

- "two_moons": two interleaved half circles, outer (cos t, sin t), inner (1 - cos t, 1/2 - sin t),
  t ~ U[0, π], centred at (1/2, 1/4), scaled by 2, plus N(0, 0.1²) noise.
- "eight_gaussians": equal mixture of N(μ_k, 0.5²/2 I), μ_k = 2√2 (cos kπ/4, sin kπ/4), k = 0..7.
- "checkerboard": uniform on the 8 black cells of a 4 × 4 board of side-2 cells on [-4, 4]².
- "rings": four concentric circles of radius 0.75, 1.5, 2.25, 3 (equal mass), angle uniform,
  plus N(0, 0.08²) radial-and-tangential noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["density_names", "sample_density"]


def _two_moons(n: int, g: torch.Generator) -> torch.Tensor:
    angle = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    outer = torch.rand(n, generator=g) < 0.5
    x = torch.where(outer, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(outer, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], -1) * 2.0
    return points + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    component = torch.randint(8, (n,), generator=g).double()
    angle = component * (math.pi / 4.0)
    centres = 2.0 * math.sqrt(2.0) * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + (0.5 / math.sqrt(2.0)) * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    # A cell (i, j) of the 4 × 4 board is black when i + j is even.
    x = 4.0 * torch.rand(n, generator=g, dtype=torch.float64)
    row_within_column = 2.0 * torch.randint(2, (n,), generator=g).double()
    y = torch.rand(n, generator=g, dtype=torch.float64) + row_within_column + torch.floor(x) % 2.0
    return torch.stack([x, y], -1) * 2.0 - 4.0


_RING_RADII = (0.75, 1.5, 2.25, 3.0)


def _rings(n: int, g: torch.Generator) -> torch.Tensor:
    radii = torch.tensor(_RING_RADII, dtype=torch.float64)
    radius = radii[torch.randint(len(_RING_RADII), (n,), generator=g)]
    angle = 2.0 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    points = radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return points + 0.08 * torch.randn(n, 2, generator=g, dtype=torch.float64)


_GENERATORS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "two_moons": _two_moons,
    "eight_gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "rings": _rings,
}


def density_names() -> tuple[str, ...]:
    """Names accepted by ``sample_density``."""
    return tuple(_GENERATORS)


def sample_density(
    name: str,
    num_samples: int,
    seed: int | torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``num_samples`` points of the named 2-D density. Shape (num_samples, 2).

    ``seed`` is an int (a fresh CPU generator seeded with it), a CPU ``torch.Generator`` (advanced
    in place) or None (torch's global generator). Points are drawn in float64 on the CPU and then
    cast to ``dtype`` (default: torch's default dtype) on ``device``, so a seed gives the same
    points everywhere.
    """
    if name not in _GENERATORS:
        raise ValueError(f"unknown density {name!r}; valid: {', '.join(map(repr, _GENERATORS))}")
    if not isinstance(num_samples, int) or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
    if isinstance(seed, torch.Generator):
        generator = seed
    elif seed is None:
        generator = torch.default_generator
    elif isinstance(seed, int):
        generator = torch.Generator().manual_seed(seed)
    else:
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
    points = _GENERATORS[name](num_samples, generator)
    return points.to(dtype=dtype or torch.get_default_dtype(), device=device)
