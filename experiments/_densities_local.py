"""TEMPORARY private copy of the four 2-D densities of the flow experiments, for cnf_density.py.

``sdl.data.densities.sample_density`` (written on another branch) replaces it after the merge;
cnf_density.py imports this file only when that import fails. Delete it then.
The densities follow FFJORD's toy data (Grathwohl et al. 2019), all on about [-4, 4]².
"""

from __future__ import annotations

import math

import torch

__all__ = ["sample_density"]


def _two_moons(n: int, gen: torch.Generator) -> torch.Tensor:
    # sklearn's make_moons(noise=0.1) with uniform angles, scaled by 2 and shifted by (-1, -0.2)
    upper = torch.rand(n, generator=gen, dtype=torch.float64) < 0.5
    angle = math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], -1) + 0.1 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return 2 * points + torch.tensor([-1.0, -0.2], dtype=torch.float64)


def _eight_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    angle = (math.pi / 4) * torch.randint(8, (n,), generator=gen).double()
    centers = 4 * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return (centers + 0.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)) / 1.414


def _checkerboard(n: int, gen: torch.Generator) -> torch.Tensor:
    x1 = 4 * torch.rand(n, generator=gen, dtype=torch.float64) - 2
    x2 = torch.rand(n, generator=gen, dtype=torch.float64) - 2 * torch.randint(2, (n,), generator=gen).double()
    x2 = x2 + torch.floor(x1) % 2
    return 2 * torch.stack([x1, x2], -1)


def _rings(n: int, gen: torch.Generator) -> torch.Tensor:
    radius = 3 * torch.tensor([1.0, 0.8, 0.55, 0.25], dtype=torch.float64)[torch.randint(4, (n,), generator=gen)]
    angle = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    points = radius.unsqueeze(-1) * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return points + 0.08 * torch.randn(n, 2, generator=gen, dtype=torch.float64)


_DENSITIES = {
    "two_moons": _two_moons,
    "eight_gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "rings": _rings,
}


def sample_density(name: str, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """n i.i.d. samples (n, 2) of the density ``name``, reproducible from ``seed``."""
    if name not in _DENSITIES:
        raise ValueError(f"unknown density {name!r}; valid names: {', '.join(_DENSITIES)}")
    gen = torch.Generator().manual_seed(seed)
    return _DENSITIES[name](n, gen).to(dtype)
