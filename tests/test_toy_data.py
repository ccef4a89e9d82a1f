import math

import numpy as np
import pytest
import torch

from sdl.data import Dataset, dataset_names, make_dataset
from sdl.data.real import REAL_SETS

NAMES = [name for name in dataset_names() if name not in REAL_SETS]  # the toy sets; real ones: test_real_data.py


def _moment(density, grid, power):
    """∫ ρ^power density / ∫ density on a fine uniform grid (the truncated radial law of a donut class)."""
    weights = density(grid)
    return float((grid**power * weights).sum() / weights.sum())


def test_names():
    assert NAMES == ["spiral2d", "donut2d", "donut1d", "squares2d", "swiss_roll", "double_moons", "double_circles"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [2, 7, 1000, 1001])
def test_shapes_dtypes_and_class_counts(name, n):
    data = make_dataset(name, n)
    assert isinstance(data, Dataset) and data.name == name and data.num_classes == 2
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
        assert x.shape == (n, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert y.shape == (n,) and y.dtype == torch.long
        ones = int(y.sum())
        expected = {"donut1d": math.ceil(n / 3)}.get(name, math.ceil(n / 2))
        if name in ("double_moons", "double_circles"):  # parts 0..3 get labels 0, 1, 0, 1
            expected = sum(n // 4 + (i < n % 4) for i in (1, 3))
        if name == "squares2d":  # labels by quadrant: Binomial(n, 1/2) ones
            assert abs(ones - n / 2) <= 5 * math.sqrt(n / 4) and int((y == 0).sum()) == n - ones
            continue
        assert ones == expected and int((y == 0).sum()) == n - expected


@pytest.mark.parametrize("name", NAMES)
def test_reproducible_and_seed_dependent(name):
    a, b, c = make_dataset(name, 200, seed=3), make_dataset(name, 200, seed=3), make_dataset(name, 200, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val) and torch.equal(a.x_val, b.x_val)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_train, a.x_val)  # independent draws


@pytest.mark.parametrize("name", NAMES)
def test_noise_is_added_after_sampling(name):
    clean = make_dataset(name, 4000, noise=0.0, seed=1, dtype=torch.float64)
    noisy = make_dataset(name, 4000, noise=0.2, seed=1, dtype=torch.float64)
    assert torch.equal(clean.y_train, noisy.y_train)
    difference = noisy.x_train - clean.x_train
    assert difference.std().item() == pytest.approx(0.2, rel=0.03)
    assert difference.mean(0).abs().max().item() < 0.02


def test_default_noise_levels():
    for name, noise in (("spiral2d", 0.05), ("donut2d", 0.1), ("donut1d", 0.1), ("squares2d", 0.1)):
        default = make_dataset(name, 500, seed=2, dtype=torch.float64)
        explicit = make_dataset(name, 500, noise=noise, seed=2, dtype=torch.float64)
        assert torch.equal(default.x_train, explicit.x_train)
    assert torch.equal(make_dataset("swiss_roll", 50).x_train, make_dataset("swiss_roll", 50, noise=0).x_train)


def test_float64_is_float32_unrounded(device):
    single, double = make_dataset("donut2d", 300), make_dataset("donut2d", 300, dtype=torch.float64)
    assert double.x_train.dtype == torch.float64
    assert torch.equal(double.x_train.float(), single.x_train)
    on_device = make_dataset("donut2d", 10, device=device)
    assert on_device.x_train.device.type == on_device.y_train.device.type == device


@pytest.mark.parametrize("n", [1000, 1001])
def test_spiral_arms_exact(n):
    data = make_dataset("spiral2d", n, noise=0.0, dtype=torch.float64)
    for label, m, phase in ((1, math.ceil(n / 2), math.pi), (0, n // 2, 0.0)):
        points = data.x_train[data.y_train == label]
        radius = points.norm(dim=1)
        order = radius.argsort()
        np.testing.assert_allclose(radius[order].numpy(), np.linspace(0.1, 1, m), atol=1e-14)
        angle = np.linspace(0.1, 2 * math.pi, m) + phase
        expected = np.linspace(0.1, 1, m)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        np.testing.assert_allclose(points[order].numpy(), expected, atol=1e-14)


def test_donut2d_radial_statistics():
    data = make_dataset("donut2d", 2000, noise=0.0, dtype=torch.float64)
    assert data.x_train.abs().max() <= 1.0
    inner = data.x_train[data.y_train == 1].norm(dim=1).numpy()
    outer = data.x_train[data.y_train == 0].norm(dim=1).numpy()
    # label 1: density exp(-ρ²/(2·0.1²)) in the plane, so ρ² ~ Exponential(mean 2·0.1²), sd 0.02.
    assert inner.size == 1000 and abs((inner**2).mean() - 0.02) < 5 * 0.02 / math.sqrt(1000)
    # label 0: radial law ∝ ρ exp(-(ρ - 0.5)²/(2·0.1²)).
    grid = np.linspace(0, math.sqrt(2), 20001)

    def law(r):
        return r * np.exp(-((r - 0.5) ** 2) / 0.02)

    mean, second = _moment(law, grid, 1), _moment(law, grid, 2)
    assert abs(outer.mean() - mean) < 5 * math.sqrt(second - mean**2) / math.sqrt(1000)
    assert abs(outer.std() - math.sqrt(second - mean**2)) < 0.1 * math.sqrt(second - mean**2)
    # With noise: a planar N(0, 0.1² I) added to label 1 gives E ρ² = 2·0.1² + 2·0.1².
    noisy = make_dataset("donut2d", 2000, dtype=torch.float64)
    radius2 = (noisy.x_train[noisy.y_train == 1] ** 2).sum(1)
    assert abs(radius2.mean().item() - 0.04) < 5 * 0.04 / math.sqrt(1000)


def test_donut1d_on_the_line():
    data = make_dataset("donut1d", 3000, noise=0.0, dtype=torch.float64)
    assert torch.all(data.x_train[:, 1] == 0) and data.x_train.abs().max() <= 1.0
    inner = data.x_train[data.y_train == 1, 0].numpy()
    outer = np.abs(data.x_train[data.y_train == 0, 0].numpy())
    assert inner.size == 1000 and abs((inner**2).mean() - 0.01) < 5 * 0.01 * math.sqrt(2) / math.sqrt(1000)
    assert abs(inner.mean()) < 5 * 0.1 / math.sqrt(1000)  # symmetric about 0
    assert abs(outer.mean() - 0.5) < 5 * 0.1 / math.sqrt(2000) and abs(outer.std() - 0.1) < 0.01
    assert abs((data.x_train[data.y_train == 0, 0] > 0).double().mean().item() - 0.5) < 0.06  # both sides


def test_squares_labels_are_quadrants():
    data = make_dataset("squares2d", 1000, noise=0.0, dtype=torch.float64)
    x = data.x_train
    assert x.abs().max() <= 0.7 and x.abs().max() > 0.65
    assert torch.equal(data.y_train, (x[:, 0] * x[:, 1] > 0).long())


def test_swiss_roll_arms():
    data = make_dataset("swiss_roll", 1000, noise=0.0, dtype=torch.float64)
    for label, offset in ((1, 0.0), (0, 0.2)):
        points = data.x_train[data.y_train == label]
        theta = 4 * math.pi * (points.norm(dim=1) - offset)  # r = offset + θ/(4π)
        assert theta.min() >= -1e-12 and theta.max() <= 4 * math.pi
        torch.testing.assert_close(
            points,
            (theta / (4 * math.pi) + offset)[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1),
            rtol=0,
            atol=1e-12,
        )


def test_double_circles_rings_alternate():
    data = make_dataset("double_circles", 2000, noise=0.0, dtype=torch.float64)
    radius = data.x_train.norm(dim=1)
    ring = radius.round()
    assert torch.all((radius - ring).abs() <= 0.3 * math.sqrt(2))
    assert set(ring.long().tolist()) == {1, 2, 3, 4}
    assert torch.equal(data.y_train, (ring.long() % 2 == 0).long())


def test_double_moons_geometry():
    data = make_dataset("double_moons", 2000, noise=0.0, dtype=torch.float64)
    jitter = 0.15 * math.sqrt(2)
    for label, centres, upper in ((0, ((0.0, 0.0), (2.0, 0.0)), True), (1, ((1.0, 0.5), (3.0, 0.5)), False)):
        points = data.x_train[data.y_train == label]
        distance = torch.stack([(points - torch.tensor(c, dtype=torch.float64)).norm(dim=1) for c in centres])
        assert torch.all((distance.min(0).values - 1).abs() <= jitter)
        side = points[:, 1] - (0.0 if upper else 0.5)
        assert torch.all(side >= -0.15) if upper else torch.all(side <= 0.15)


def test_bad_arguments():
    with pytest.raises(ValueError, match="spiral2d, donut2d, donut1d, squares2d, swiss_roll"):
        make_dataset("spiral")
    with pytest.raises(ValueError, match="at least 2"):
        make_dataset("donut2d", 1)
    with pytest.raises(TypeError, match="n must be an int"):
        make_dataset("donut2d", 10.0)
    with pytest.raises(TypeError, match="n must be an int"):
        make_dataset("donut2d", True)
    with pytest.raises(ValueError, match="noise"):
        make_dataset("donut2d", 10, noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        make_dataset("donut2d", 10, noise=float("nan"))
    with pytest.raises(TypeError, match="noise"):
        make_dataset("donut2d", 10, noise="0.1")
    with pytest.raises(ValueError, match="seed"):
        make_dataset("donut2d", 10, seed=-1)
    with pytest.raises(ValueError, match="dtype"):
        make_dataset("donut2d", 10, dtype=torch.long)
