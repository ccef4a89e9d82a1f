import math

import pytest
import torch

from sdl.data import density_names, sample_density

N = 20_000


def test_names():
    assert density_names() == ("two_moons", "eight_gaussians", "checkerboard", "rings")


@pytest.mark.parametrize("name", density_names())
def test_shape_dtype_and_seeding(name):
    points = sample_density(name, N, seed=3)
    assert points.shape == (N, 2) and points.dtype == torch.get_default_dtype()
    assert torch.isfinite(points).all() and points.abs().max() < 6.0
    assert torch.equal(points, sample_density(name, N, seed=3))
    assert not torch.equal(points, sample_density(name, N, seed=4))
    generator = torch.Generator().manual_seed(3)
    assert torch.equal(sample_density(name, N, generator), points)
    assert not torch.equal(sample_density(name, N, generator), points)  # generator advanced
    assert sample_density(name, 5, seed=0, dtype=torch.float64).dtype == torch.float64


def test_eight_gaussians_cluster_at_their_centres():
    points = sample_density("eight_gaussians", N, seed=0, dtype=torch.float64)
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = 2 * math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    distance, nearest = torch.cdist(points, centres).min(-1)
    counts = torch.bincount(nearest, minlength=8).double()
    assert (counts / N - 1 / 8).abs().max() < 0.01
    # Each coordinate has standard deviation 0.5 / √2, so E|x - μ|² = 0.25.
    assert distance.square().mean().item() == pytest.approx(0.25, rel=0.03)


def test_rings_have_the_declared_radii():
    radius = sample_density("rings", N, seed=0, dtype=torch.float64).norm(dim=-1)
    radii = torch.tensor([0.75, 1.5, 2.25, 3.0], dtype=torch.float64)
    offset, ring = (radius[:, None] - radii).abs().min(-1)
    assert offset.max() < 0.5 and offset.mean() < 0.1
    assert ((torch.bincount(ring, minlength=4).double() / N) - 0.25).abs().max() < 0.015


def test_checkerboard_fills_only_black_cells_uniformly():
    points = sample_density("checkerboard", N, seed=0, dtype=torch.float64)
    assert points.min() >= -4 and points.max() < 4
    cell = torch.floor((points + 4) / 2).long()
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).double()
    assert ((counts[counts > 0] / N) - 1 / 8).abs().max() < 0.01 and (counts > 0).sum() == 8


def test_two_moons_lie_on_two_half_circles():
    sample = sample_density("two_moons", N, seed=0, dtype=torch.float64)
    assert sample.mean(0).abs().max() < 0.03  # centred
    points = sample / 2 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    outer = points.norm(dim=-1)
    inner = (points - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=-1)
    offset = torch.minimum((outer - 1).abs(), (inner - 1).abs())
    assert offset.mean() < 0.06  # noise 0.1 / 2 after undoing the scaling, radial part ≈ 0.04


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="'two_moons', 'eight_gaussians', 'checkerboard', 'rings'"):
        sample_density("spiral", 10)
    with pytest.raises(TypeError, match="seed"):
        sample_density("rings", 10, seed=1.5)
    with pytest.raises(ValueError, match="num_samples"):
        sample_density("rings", -1)
