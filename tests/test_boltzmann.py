"""sdl.boltzmann and the boltzmann task: losses, importance weights, ESS, free energies, the task
through configs and run folders."""

import math

import pytest
import torch

from sdl.boltzmann import (
    effective_sample_size,
    free_energy_difference,
    log_importance_weights,
    mcmc_free_energy,
    mirror_free_energy,
    reverse_kl,
)
from sdl.config import ConfigError, config_from_dict
from sdl.data.energies import Energy, Phi4, sample_mcmc
from sdl.experiment import analyse_run, build, run_job
from sdl.models import CNF, HollowNet
from sdl.models.flows import realnvp
from sdl.tasks.boltzmann import BoltzmannGenerator


class _Gaussian(Energy):
    """u(x) = ½‖x‖²: p is the flows' base distribution."""

    dim, dividing_value = 3, 0.0
    reaction_weights = (1.0, 0.0, 0.0)

    def energy(self, x):
        return 0.5 * x.square().sum(-1)

    def force(self, x):
        return -x

    def initial_states(self, n, generator):
        return torch.randn(n, 3, generator=generator, dtype=torch.float64)


def test_ess_and_free_energy_equal_hand_computed_values():
    assert effective_sample_size(torch.zeros(7, dtype=torch.float64)) == pytest.approx(1.0, abs=1e-15)
    log_w = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    assert effective_sample_size(log_w) == pytest.approx(100 / (4 * 30), rel=1e-14)
    assert effective_sample_size(torch.tensor([0.0, -math.inf, -math.inf], dtype=torch.float64)) == pytest.approx(
        1 / 3, rel=1e-14
    )
    assert effective_sample_size(torch.full((3,), -math.inf)) == 0.0
    in_b = torch.tensor([False, False, True, True])
    assert free_energy_difference(log_w, in_b) == pytest.approx(-math.log(7 / 3), rel=1e-14)
    assert free_energy_difference(log_w, torch.zeros(4, dtype=torch.bool)) == math.inf
    weights = log_importance_weights(torch.tensor([1.0, math.inf]), torch.tensor([-0.5, 0.0]))
    assert weights[0] == -0.5 and weights[1] == -math.inf


@pytest.mark.parametrize("flow", ["realnvp-p4inv", "cnf"])
def test_from_noise_gives_the_log_density_that_log_prob_gives(flow):
    torch.manual_seed(2)
    if flow == "cnf":
        model = CNF(HollowNet(3, hidden=8), 3, num_steps=4).double()
    else:
        model = realnvp(3, 3, 8, "p4inv").double()
        for p in model.parameters():  # leave the identity at initialisation
            p.data.add_(0.1 * torch.randn_like(p))
    z = torch.randn(16, 3, dtype=torch.float64)
    x, log_q = model.from_noise(z)
    tolerance = 1e-10 if flow != "cnf" else 1e-3  # the CNF's two solves (back and forth) differ by the RK4 error
    assert torch.allclose(model.log_prob(x), log_q, atol=tolerance)


def test_an_exact_flow_has_ess_one_and_reverse_kl_minus_log_z():
    energy = _Gaussian()
    flow = realnvp(3, 2, 8, "permutation").double()  # fresh couplings: the identity, q = N(0, I) ∝ exp(-u)
    z = torch.randn(200, 3, dtype=torch.float64)
    log_z = 1.5 * math.log(2 * math.pi)
    assert reverse_kl(flow, energy, z).item() == pytest.approx(-log_z, abs=1e-12)
    x, log_q = flow.from_noise(z)
    assert effective_sample_size(log_importance_weights(energy.energy(x), log_q)) == pytest.approx(1.0, abs=1e-12)


_SMALL = {
    "task": {"kind": "boltzmann", "forward_weight": 1.0, "reverse_weight": 0.1},
    "data": {"energy": "double_well", "chains": 8, "steps": 200, "burn_in": 100, "thin": 5, "eval_samples": 1000},
    "model": {"flow": "realnvp", "mixing": "p4inv", "couplings": 2, "hidden": 16},
    "train": {"iterations": 30, "batch_size": 64, "lr": 0.003, "log_every": 15},
}


def test_configs_check_energies_lattices_weights_and_plots():
    config = config_from_dict(_SMALL)
    assert config.plots == ("history", "ess", "samples", "reaction_coordinate")
    phi4 = config_from_dict({**_SMALL, "data": {**_SMALL["data"], "energy": "phi4", "lattice": 4}})
    assert phi4.plots == ("history", "ess", "reaction_coordinate")
    for change, message in [
        ({"data": {"energy": "lj13"}}, "data.energy: 'lj13' is not valid; valid choices: double_well, muller_brown, phi4"),
        ({"data": {"energy": "phi4", "lattice": 2}}, "data.lattice: phi4 lattice: L must be an int ≥ 3"),
        ({"data": {"energy": "muller_brown", "lattice": 8}}, "lattice=8 is only for 'phi4'"),
        ({"task": {"kind": "boltzmann", "forward_weight": 0.0, "reverse_weight": 0.0}}, "both 0: nothing to train"),
        ({"data": {"energy": "phi4"}, "plots": ["samples"]}, "plots: 'samples' needs a 2-D energy"),
        ({"train": {"iterations": 3}}, "train.batch_size: None"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            config_from_dict({**_SMALL, **change})


def test_a_run_trains_writes_its_folder_plots_and_analysis(tmp_path):
    config = config_from_dict({**_SMALL, "name": "bg"})
    result = run_job(config, tmp_path, progress=False)
    names = {p.name for p in (result.run_dir / "plots").iterdir()}
    assert names == {"history.png", "ess.png", "samples.png", "reaction_coordinate.png"}
    assert len(list((result.run_dir / "data").glob("mcmc-*.pt"))) == 1
    metrics = result.metrics
    assert 0 < metrics["ess"] <= 1 and math.isfinite(metrics["test_nll"])
    assert metrics["free_energy_error"] == pytest.approx(metrics["free_energy"] - 4.777550353, abs=1e-6)
    assert result.history["iteration"] == [15, 30]
    analysis = analyse_run(result.run_dir)
    assert (analysis / "analysis.json").is_file() and (analysis / "reaction_coordinate.png").is_file()
    task, _ = build(config)
    assert torch.equal(task.train, build(config)[0].train)  # the MCMC data depend on data.seed alone


def test_mcmc_free_energy_and_its_standard_error_equal_hand_computed_values():
    # chain 0 spends 2 of 4 states in B, chain 1 one of 4: p = 3/8, f = (1/2, 1/4)
    in_b = torch.tensor([[True, True], [True, False], [False, False], [False, False]])
    value, error = mcmc_free_energy(in_b)
    assert value == pytest.approx(-math.log(3 / 5), rel=1e-14)
    assert error == pytest.approx((0.25 / math.sqrt(2)) / math.sqrt(2) / (3 / 8 * 5 / 8), rel=1e-14)
    with pytest.raises(ValueError, match="never visit state B"):
        mcmc_free_energy(torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"chains ≥ 2\), got shape \(4,\)"):
        mcmc_free_energy(torch.zeros(4, dtype=torch.bool))


class _ShiftedGaussian(_Gaussian):
    """u(x) = ½‖x - m‖², m = (μ, 0.3, -0.2): r = x₁ ~ N(μ, 1), so p_B = Φ(μ) and ΔF = -log(Φ(μ) / Φ(-μ))."""

    mu = 0.4

    def energy(self, x):
        return 0.5 * (x - torch.tensor([self.mu, 0.3, -0.2], dtype=x.dtype)).square().sum(-1)


def _in_one_state(energy, b: bool, kept: int, chains: int, seed: int) -> torch.Tensor:
    """Exact samples of p restricted to one state, (kept, chains, 3): chains that never cross."""
    x = torch.randn(8 * kept * chains, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x + torch.tensor([energy.mu, 0.3, -0.2], dtype=torch.float64)
    return x[energy.in_state_b(x) == b][: kept * chains].reshape(kept, chains, 3)


def test_mirror_free_energy_needs_equilibrium_within_each_state_only():
    """Half the chains in A and half in B, each in equilibrium inside its state: the state counts say
    ΔF ≈ 0, the mirror estimate gives the exact -log(Φ(μ)/Φ(-μ)) within its standard error."""
    energy = _ShiftedGaussian()
    phi = 0.5 * (1 + math.erf(energy.mu / math.sqrt(2)))
    exact = -math.log(phi / (1 - phi))  # -0.632
    samples = torch.cat([_in_one_state(energy, False, 400, 8, 0), _in_one_state(energy, True, 400, 8, 1)], dim=1)
    assert mcmc_free_energy(energy.in_state_b(samples))[0] == pytest.approx(0.0, abs=1e-12)
    value, error = mirror_free_energy(energy, samples)
    assert 0.005 < error < 0.05 and abs(value - exact) < 4 * error
    b_only, b_error = mirror_free_energy(energy, _in_one_state(energy, True, 400, 8, 2))  # one state is enough
    assert abs(b_only - exact) < 4 * b_error and b_error > error
    assert mirror_free_energy(_Gaussian(), samples) == (0.0, 0.0)  # u even: e^{-Δ} = 1 exactly
    with pytest.raises(ValueError, match=r"samples must be \(kept states ≥ 1, chains ≥ 2, 3\), got shape \(400, 3\)"):
        mirror_free_energy(energy, samples[:, 0])


def test_phi4_task_takes_its_free_energy_reference_from_a_separate_mcmc_run():
    data = {**_SMALL["data"], "energy": "phi4", "lattice": 4, "reference_chains": 8, "reference_steps": 300}
    config = config_from_dict({**_SMALL, "data": data})
    task, model = build(config)
    energy = Phi4(4)
    # the reference is the run of seed + 1 with the reference's chains and sweeps, not the training data
    reference = sample_mcmc(energy, 300, chains=8, burn_in=100, thin=5, seed=1, **energy.mcmc_settings()).samples
    value, error = mirror_free_energy(energy, reference)  # within each state: the populations relax slowly
    assert task.reference_free_energy == pytest.approx(value, rel=1e-12) and task.reference_error == pytest.approx(error)
    assert 0 < error < 1
    training = torch.cat([task.train, task.test]).double()
    fraction = energy.in_state_b(training).double().mean()
    assert task.reference_free_energy != pytest.approx(-math.log(fraction / (1 - fraction)), abs=1e-6)
    assert task.train.shape[-1] == 16 and model.dim == 16
    other = build(config_from_dict({**_SMALL, "data": {**data, "reference_seed": 7}}))[0]
    assert other.reference_free_energy != pytest.approx(task.reference_free_energy, abs=1e-9)
    with pytest.raises(ConfigError, match=r"data\.reference_seed: 0 equals data\.seed"):
        config_from_dict({**_SMALL, "data": {**data, "reference_seed": 0}})


class _WallGaussian(_Gaussian):
    """½‖x‖² with an infinite wall at x₁ > 2: a flow sample beyond it has u = inf."""

    def energy(self, x):
        return torch.where(x[..., 0] > 2, math.inf, 0.5 * x.square().sum(-1))


def test_forward_kl_alone_keeps_a_finite_objective_when_a_flow_sample_has_infinite_energy():
    data = 0.5 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    flow = realnvp(3, 2, 8, "permutation").double()  # fresh couplings: x is the noise, permuted
    task = BoltzmannGenerator(_WallGaussian(), data, data, noise, 0.0, reverse_weight=0.0)
    objective, metrics = task.evaluate(flow)
    assert metrics["reverse_kl"] == math.inf
    assert objective.item() == pytest.approx(metrics["test_nll"], rel=1e-12)
    weighted = BoltzmannGenerator(_WallGaussian(), data, data, noise, 0.0, reverse_weight=0.1)
    assert weighted.evaluate(flow)[0].item() == math.inf  # with a weight, the infinite term counts
    u, u_test = _WallGaussian().energy(task.flow_samples(flow)[0]), _WallGaussian().energy(data)
    assert not bool(torch.isfinite(u).all()) and bool(torch.isfinite(u_test).all())
    assert metrics["energy_shift"] == pytest.approx((u[torch.isfinite(u)].mean() - u_test.mean()).item(), rel=1e-12)
    assert metrics["energy_shift_median"] == pytest.approx((u.median() - u_test.median()).item(), rel=1e-12)
