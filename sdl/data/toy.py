"""Two-dimensional toy classification sets, by name: ``make_dataset(name, n, noise, seed)``; the same
function draws the small real sets of ``sdl.data.real`` (digits and three tabular sets).

Each set is a sampler of clean points and labels, followed by isotropic Gaussian noise
x ← x + noise · N(0, I₂) added after labelling (so a label records which curve or region a
point was drawn from, not where the noise moved it). Train and validation sets are two
independent draws from the same distribution.

From the code of Benning et al. (2019), "inspired by playground.tensorflow.org" (labels 1/0):

- ``spiral2d``: two arms, r = linspace(0.1, 1, m), a = linspace(0.1, 2π, m); label 0 at
  r(cos a, sin a), label 1 at r(cos(a + π), sin(a + π)); noise 0.05.
- ``donut2d``: points with density ∝ exp(-(ρ - c)²/(2·0.1²)) on [-1, 1]², ρ = ‖x‖;
  c = 0 gives label 1, c = 0.5 label 0; noise 0.1.
- ``donut1d``: the same densities on the segment [-1, 1] × {0}, ρ = |x₁|; noise 0.1 (both
  coordinates).
- ``squares2d``: x ~ U[-0.7, 0.7]², label [x₁x₂ > 0]; noise 0.1.

Others:

- ``swiss_roll`` (Haber & Ruthotto 2017, Meganet's random variant): θ ~ U[0, 4π);
  label 1 at r = θ/(4π), label 0 at r = 0.2 + θ/(4π), both at angle θ; noise 0.
- ``double_moons`` (Galimberti et al. 2021, "Hamiltonian deep neural networks"): two pairs
  of interleaved half circles, θ ~ U[0, π]; label 0 at (cos θ, sin θ) and (2 + cos θ, sin θ),
  label 1 at (1 - cos θ, 0.5 - sin θ) and (3 - cos θ, 0.5 - sin θ); each coordinate jittered
  by U[-0.15, 0.15]; noise 0. Spans about [-1.2, 4.2] × [-0.7, 1.2].
- ``double_circles`` (same source): four rings of radius 1, 2, 3, 4 with labels 0, 1, 0, 1,
  θ ~ U[0, 2π), each coordinate jittered by U[-0.3, 0.3]; noise 0. Spans about [-4.3, 4.3]².

Their code zero-pads the last two to 4 features; do that in the model (augmentation), not here.

Class sizes: for the two-class sets, label 1 gets ⌈n/2⌉ points (⌈n/3⌉ for ``donut1d``) and
label 0 the rest; ``double_circles`` gives ring i (i = 0..3) ⌊n/4⌋ points plus one more for
i < n mod 4, and ``double_moons`` splits its four moons the same way. ``squares2d`` labels by
quadrant, so its class sizes are Binomial(n, 1/2). Points are shuffled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._validation import check_sampling
from .real import REAL_SETS, real_arrays

__all__ = ["Dataset", "dataset_classes", "dataset_features", "dataset_names", "make_dataset"]

_Sampler = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
_DONUT_WIDTH = 0.1


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled toy set: training and validation draws of the same distribution.

    Labels are class indices 0, …, ``num_classes`` - 1 as int64 (``torch.long``): pass them
    directly to ``F.cross_entropy``, or use ``y.to(x.dtype)`` for a logistic (0/1) loss.

    Attributes:
        name: the set's name in ``dataset_names()``.
        x_train: (n, d) points (d = ``dataset_features(name)``), dtype and device as requested.
        y_train: (n,) int64 labels.
        x_val: (n, d) points, an independent draw.
        y_val: (n,) int64 labels.
        num_classes: number of classes (2 for every toy set).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    num_classes: int


@dataclass(frozen=True)
class _ToySet:
    sampler: _Sampler  # (n, rng) -> clean points (n, 2) float64, labels (n,) int64
    default_noise: float
    num_classes: int = 2
    features: int = 2


def _split(n: int, parts: int) -> list[int]:
    """n points into ``parts`` groups as even as possible, the first groups one larger."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def _labels(counts: list[int], labels: list[int]) -> np.ndarray:
    return np.repeat(np.asarray(labels, dtype=np.int64), counts)


def _spiral2d(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ones, zeros = math.ceil(n / 2), n // 2
    arms = []
    for m, phase in ((ones, math.pi), (zeros, 0.0)):
        r, a = np.linspace(0.1, 1.0, m), np.linspace(0.1, 2 * math.pi, m) + phase
        arms.append(np.stack([r * np.cos(a), r * np.sin(a)], axis=1))
    return np.concatenate(arms), _labels([ones, zeros], [1, 0])


def _radial_rejection(count: int, center: float, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points of [-1, 1]^dim with density ∝ exp(-(‖x‖ - center)²/(2·0.1²)).

    Uniform proposals on the cube, accepted with probability exp(-(‖x‖ - center)²/(2·0.1²)) ≤ 1.
    """
    # The acceptance rate is known up to the truncation by the cube (negligible at 0.1 width):
    # ∫ exp(-(ρ - c)²/(2s²)) dx over R^dim divided by the cube's volume 2^dim.
    s = _DONUT_WIDTH
    if dim == 1:
        mass = math.sqrt(2 * math.pi) * s * (1 if center == 0 else 2)
    else:
        mass = 2 * math.pi * (s**2 if center == 0 else center * s * math.sqrt(2 * math.pi))
    rate = mass / 2**dim
    accepted: list[np.ndarray] = []
    found = 0
    while found < count:
        proposals = rng.uniform(-1.0, 1.0, size=(int(1.2 * (count - found) / rate) + 64, dim))
        rho = np.linalg.norm(proposals, axis=1)
        keep = rng.uniform(size=len(proposals)) < np.exp(-((rho - center) ** 2) / (2 * s**2))
        accepted.append(proposals[keep])
        found += int(keep.sum())
    return np.concatenate(accepted)[:count]


def _donut(n: int, rng: np.random.Generator, dim: int, inner_fraction: int) -> tuple[np.ndarray, np.ndarray]:
    ones = math.ceil(n / inner_fraction)
    points = np.concatenate([_radial_rejection(ones, 0.0, dim, rng), _radial_rejection(n - ones, 0.5, dim, rng)])
    if dim == 1:
        points = np.concatenate([points, np.zeros_like(points)], axis=1)
    return points, _labels([ones, n - ones], [1, 0])


def _donut2d(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _donut(n, rng, dim=2, inner_fraction=2)


def _donut1d(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _donut(n, rng, dim=1, inner_fraction=3)


def _squares2d(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = rng.uniform(-0.7, 0.7, size=(n, 2))
    return points, (points[:, 0] * points[:, 1] > 0).astype(np.int64)


def _swiss_roll(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ones = math.ceil(n / 2)
    theta = rng.uniform(0.0, 4 * math.pi, size=n)
    r = theta / (4 * math.pi) + np.where(np.arange(n) < ones, 0.0, 0.2)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1), _labels([ones, n - ones], [1, 0])


def _double_moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    counts = _split(n, 4)
    # (x shift, y shift, orientation): upper moons open downwards, lower moons upwards.
    moons = ((0.0, 0.0, 1.0), (1.0, 0.5, -1.0), (2.0, 0.0, 1.0), (3.0, 0.5, -1.0))
    parts = []
    for count, (dx, dy, sign) in zip(counts, moons, strict=True):
        theta = rng.uniform(0.0, math.pi, size=count)
        parts.append(np.stack([dx + sign * np.cos(theta), dy + sign * np.sin(theta)], axis=1))
    points = np.concatenate(parts) + rng.uniform(-0.15, 0.15, size=(n, 2))
    return points, _labels(counts, [0, 1, 0, 1])


def _double_circles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    counts = _split(n, 4)
    radius = np.repeat(np.array([1.0, 2.0, 3.0, 4.0]), counts)
    theta = rng.uniform(0.0, 2 * math.pi, size=n)
    points = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return points + rng.uniform(-0.3, 0.3, size=(n, 2)), _labels(counts, [0, 1, 0, 1])


_SETS: dict[str, _ToySet] = {
    "spiral2d": _ToySet(_spiral2d, default_noise=0.05),
    "donut2d": _ToySet(_donut2d, default_noise=0.1),
    "donut1d": _ToySet(_donut1d, default_noise=0.1),
    "squares2d": _ToySet(_squares2d, default_noise=0.1),
    "swiss_roll": _ToySet(_swiss_roll, default_noise=0.0),
    "double_moons": _ToySet(_double_moons, default_noise=0.0),
    "double_circles": _ToySet(_double_circles, default_noise=0.0),
}


def dataset_names() -> list[str]:
    """The names ``make_dataset`` accepts: the toy sets, then the real ones (``sdl.data.real``)."""
    return list(_SETS) + list(REAL_SETS)


def dataset_features(name: str) -> int:
    """The number of input features of the set ``name`` (its points are (n, features))."""
    if name not in dataset_names():
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(dataset_names())}")
    return (REAL_SETS[name] if name in REAL_SETS else _SETS[name]).features


def dataset_classes(name: str) -> int:
    """The number of classes of the set ``name``."""
    dataset_features(name)  # the check of the name
    return (REAL_SETS[name] if name in REAL_SETS else _SETS[name]).num_classes


def make_dataset(
    name: str,
    n: int | None = None,
    noise: float | None = None,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Dataset:
    """Draw the toy set ``name``: n training and n validation points with labels (n = None: 1000);
    or split a real set (``sdl.data.real``: digits, iris, wine, breast_cancer), keeping at most n
    training points (None: all).

    The clean points of a toy set are sampled as described in the module docstring, then
    x ← x + noise · ε, ε ~ N(0, I₂), then shuffled. The random stream does not depend on
    ``noise``, so two calls with the same seed differ exactly by the noise term; train and
    validation use two independent streams spawned from ``seed`` (NumPy ``SeedSequence``),
    and the result is the same for every dtype and device.

    Args:
        name: one of ``dataset_names()``.
        n: points per split of a toy set (default 1000), an int ≥ 2; for a real set, at most this
            many training points (default all; the validation split is always a quarter of the set).
        noise: standard deviation of the Gaussian noise, ≥ 0; ``None`` takes the set's
            default (0.05 for spiral2d, 0.1 for the donuts and squares, 0 for the others; a real
            set takes none).
        seed: non-negative int.
        dtype: floating dtype of the points (labels are always int64).
        device: device of all tensors; default the CPU.

    Raises:
        ValueError: unknown name (the message lists the valid ones), n < 2, negative or
            non-finite noise, negative seed, or a non-floating dtype.
        TypeError: n or seed not an int, noise not a real number.
    """
    toy = _check_arguments(name, n, noise, seed, dtype)
    if toy is None:
        x_train, y_train, x_val, y_val = (
            torch.as_tensor(a, dtype=dtype if a.dtype == np.float64 else torch.long, device=device)
            for a in real_arrays(name, n, seed)
        )
        return Dataset(name, x_train, y_train, x_val, y_val, REAL_SETS[name].num_classes)
    n = 1000 if n is None else n
    noise = toy.default_noise if noise is None else float(noise)
    splits = []
    for stream in np.random.SeedSequence(seed).spawn(2):
        rng = np.random.default_rng(stream)
        points, labels = toy.sampler(n, rng)
        points = points + noise * rng.standard_normal(points.shape)
        order = rng.permutation(n)
        splits.append(
            (
                torch.as_tensor(points[order], dtype=dtype, device=device),
                torch.as_tensor(labels[order], dtype=torch.long, device=device),
            )
        )
    (x_train, y_train), (x_val, y_val) = splits
    return Dataset(name, x_train, y_train, x_val, y_val, toy.num_classes)


def _check_arguments(name: str, n: int | None, noise: float | None, seed: int, dtype: torch.dtype) -> _ToySet | None:
    """The toy set ``name`` (None for a real one) after checking every argument."""
    if name not in dataset_names():
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(dataset_names())}")
    if isinstance(n, bool) or not isinstance(2 if n is None else n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {n!r} of type {type(n).__name__}")
    check_sampling(seed, noise, dtype)
    if n is not None and n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if name in REAL_SETS and n is not None and n < REAL_SETS[name].num_classes:
        raise ValueError(f"n must be at least the number of classes of {name} ({REAL_SETS[name].num_classes}), got {n}")
    if name in REAL_SETS and noise not in (None, 0, 0.0):
        raise ValueError(f"noise must be None for the real data set {name!r} (its points are as measured), got {noise!r}")
    return _SETS.get(name)
