"""sdl.data.energies: hand-computed energies, forces against autograd, the MCMC sampler against
quadrature (with a statistical tolerance from independent chains), quadrature against a grid sum."""

import math

import pytest
import torch

from sdl.data.energies import (
    DoubleWell,
    MullerBrown,
    Phi4,
    energy_names,
    get_energy,
    sample_mcmc,
    state_free_energy_quadrature,
)


def test_names_and_errors_name_the_valid_choices():
    assert energy_names() == ("double_well", "muller_brown", "phi4")
    with pytest.raises(ValueError, match="unknown energy 'alanine'; valid: 'double_well', 'muller_brown', 'phi4'"):
        get_energy("alanine")
    for bad in (2, 0, -4, 4.0, "8", True):
        with pytest.raises(ValueError, match=r"L must be an int ≥ 3 .*got"):
            get_energy("phi4", bad)
    with pytest.raises(ValueError, match="lattice=8 is only for 'phi4'"):
        get_energy("double_well", 8)
    assert get_energy("phi4").dim == 64 and get_energy("phi4", 16).dim == 256
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        DoubleWell().energy(torch.zeros(3, 4))


def test_energies_equal_hand_computed_values():
    well = DoubleWell()
    x = torch.tensor([[1.0, 2.0], [-2.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(well.energy(x), torch.tensor([0.25 - 3 + 1 + 2, 4 - 12 - 2], dtype=torch.float64), atol=1e-14)
    origin = (-200 * math.exp(-1) - 100 * math.exp(-2.5) - 170 * math.exp(-24.5) + 15 * math.exp(0.8)) / 10
    assert abs(MullerBrown().energy(torch.zeros(2, dtype=torch.float64)).item() - origin) < 1e-12
    field = Phi4(3, kappa=0.3, lam=0.02, h=0.1)
    c, a, b = 0.7, 1.3, -0.4
    per_site = -2 * 0.3 * 2 * c * c + 0.96 * c * c + 0.02 * c**4 - 0.1 * c
    assert abs(field.energy(torch.full((9,), c, dtype=torch.float64)).item() - 9 * per_site) < 1e-12
    pair = torch.zeros(9, dtype=torch.float64)
    pair[0], pair[1] = a, b  # neighbours along a row; every other bond touches a zero site

    def site(p):
        return 0.96 * p * p + 0.02 * p**4 - 0.1 * p

    expected = -2 * 0.3 * a * b + site(a) + site(b)
    assert abs(field.energy(pair).item() - expected) < 1e-12


@pytest.mark.parametrize("energy", [DoubleWell(), MullerBrown(), Phi4(4, h=0.3)], ids=["double_well", "muller_brown", "phi4"])
def test_forces_equal_minus_the_autograd_gradient(energy):
    x = (0.7 * torch.randn(5, energy.dim, dtype=torch.float64)).requires_grad_(True)
    (gradient,) = torch.autograd.grad(energy.energy(x).sum(), x)
    assert torch.allclose(energy.force(x.detach()), -gradient, atol=1e-11, rtol=1e-11)


def test_quadrature_agrees_with_a_fine_grid_sum():
    for energy in (DoubleWell(), MullerBrown()):
        free_energy, p_b = state_free_energy_quadrature(energy)
        (x_low, x_high), (y_low, y_high) = energy.box
        grid = torch.cartesian_prod(
            torch.linspace(x_low, x_high, 1501, dtype=torch.float64), torch.linspace(y_low, y_high, 1501, dtype=torch.float64)
        )
        u = energy.energy(grid)
        weight = torch.exp(-(u - u.min()))
        grid_p_b = float(weight[energy.in_state_b(grid)].sum() / weight.sum())
        assert abs(p_b - grid_p_b) < 2e-3 * p_b
        assert abs(free_energy + math.log(p_b / (1 - p_b))) < 1e-9


@pytest.mark.parametrize("energy", [DoubleWell(), MullerBrown()], ids=["double_well", "muller_brown"])
def test_replica_exchange_mala_reproduces_the_state_probability_and_moments(energy):
    chains = 64
    result = sample_mcmc(energy, 1500, chains=chains, burn_in=300, seed=1, **energy.mcmc_settings())
    assert result.samples.shape == (1500, chains, 2) and result.samples.dtype == torch.float64
    assert bool(((result.acceptance > 0.45) & (result.acceptance < 0.7)).all())
    assert bool((result.swap_acceptance > 0.3).all())
    _, p_b = state_free_energy_quadrature(energy)
    per_chain = energy.in_state_b(result.samples).double().mean(0)  # chains are independent
    error = per_chain.std().item() / math.sqrt(chains)
    assert abs(per_chain.mean().item() - p_b) < 4 * error + 1e-3 * p_b
    if isinstance(energy, DoubleWell):  # x₂ ~ N(0, 1) exactly, independent of x₁
        second = result.samples[..., 1].square().mean(0)
        assert abs(second.mean().item() - 1.0) < 4 * second.std().item() / math.sqrt(chains)


def test_sampler_is_seeded_and_checks_its_arguments():
    energy = DoubleWell()
    first, second = (sample_mcmc(energy, 20, chains=4, burn_in=5, seed=3).samples for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(first, sample_mcmc(energy, 20, chains=4, burn_in=5, seed=4).samples)
    assert sample_mcmc(energy, 20, chains=4, burn_in=0, thin=5).samples.shape == (4, 4, 2)
    with pytest.raises(ValueError, match=r"temperatures must start at 1.0 and increase"):
        sample_mcmc(energy, 10, temperatures=(1.0, 0.5))
    with pytest.raises(ValueError, match="steps must be an int ≥ 1, got 0"):
        sample_mcmc(energy, 0)
