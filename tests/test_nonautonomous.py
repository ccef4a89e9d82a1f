"""θ(t) between layers, non-autonomous Hamiltonians and their extended phase space (float64)."""

import math

import pytest
import torch

import sdl
from sdl.integrators import get, names
from sdl.models import (
    ExtendedField,
    HamiltonianField,
    InterpolatedHamiltonian,
    SeparableExtendedField,
    TimeDependentHamiltonian,
    extended_phase_space,
    interpolate_layers,
    prolong_layers,
)
from sdl.stability import symplecticity_defect

f64 = torch.float64
SYMPLECTIC = [name for name in names() if get(name).symplectic]
SPLITTINGS = [name for name in SYMPLECTIC if get(name).partitioned]


def _scalar(t):
    return t.squeeze(-1) if t.ndim else t


class _Anharmonic(TimeDependentHamiltonian):
    """H = |p|²/2 + (1 + sin(t)/2)|q|²/2 + |q|⁴/4: smooth in t, T independent of t."""

    kinetic_depends_on_time = False

    def kinetic(self, t, p):
        return 0.5 * p.square().sum(-1)

    def potential(self, t, q):
        r2 = q.square().sum(-1)
        return 0.5 * (1 + 0.5 * torch.sin(_scalar(t))) * r2 + 0.25 * r2.square()


class _TimeDependentMass(_Anharmonic):
    """The same with T = (1 + cos(t)/3)|p|²/2: K is not separable in (Q, P)."""

    kinetic_depends_on_time = True

    def kinetic(self, t, p):
        return 0.5 * (1 + torch.cos(_scalar(t)) / 3) * p.square().sum(-1)


def _start(field: ExtendedField, n=6, dim=2, t0=0.3):
    q, p = 0.7 * torch.randn(n, dim, dtype=f64), 0.7 * torch.randn(n, dim, dtype=f64)
    return field.join(q, torch.full((n,), t0, dtype=f64)), field.join(p, torch.zeros(n, dtype=f64))


def _step(field, method, t0, h):
    grid = torch.tensor([t0, t0 + h], dtype=f64)
    return lambda a, b: sdl.odeint(field, (a, b), grid, method=method, output="last")


def test_interpolation_through_the_layer_centres():
    theta = torch.randn(5, 3, 2, dtype=f64)
    centres = (torch.arange(5, dtype=f64) + 0.5) * 0.2  # T = 1, h = 0.2
    for kind in ("constant", "linear"):
        torch.testing.assert_close(interpolate_layers(theta, centres, 1.0, kind), theta, rtol=0, atol=1e-14)
    halfway = interpolate_layers(theta, torch.tensor(0.4, dtype=f64), 1.0, "linear")  # between s_1 and s_2
    torch.testing.assert_close(halfway, (theta[1] + theta[2]) / 2, rtol=0, atol=1e-15)
    inside = interpolate_layers(theta, torch.tensor([0.41, 0.59], dtype=f64), 1.0, "constant")
    assert torch.equal(inside, theta[[2, 2]])
    ends = interpolate_layers(theta, torch.tensor([0.0, 1.0], dtype=f64), 1.0, "linear")
    torch.testing.assert_close(ends, theta[[0, 4]], rtol=0, atol=1e-14)  # constant beyond the first and last centre


def test_prolongation_constant_repeats_and_linear_is_exact_on_linear_theta():
    theta = torch.randn(4, 3, dtype=f64)
    assert torch.equal(prolong_layers(theta, 3, "constant"), theta.repeat_interleave(3, 0))
    slope, offset = torch.randn(3, dtype=f64), torch.randn(3, dtype=f64)
    linear = offset + slope * torch.arange(4, dtype=f64)[:, None]  # θ^k on a line in k
    fine = prolong_layers(linear, 2, "linear")  # centres at k' = (j + ½)/2 - ½ in old units, inside [0, 3]
    position = ((torch.arange(8, dtype=f64) + 0.5) / 2 - 0.5).clamp(0, 3)
    torch.testing.assert_close(fine, offset + slope * position[:, None], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'; valid choices: constant, linear"):
        prolong_layers(theta, 2, "cubic")
    with pytest.raises(ValueError, match="factor must be a positive int"):
        prolong_layers(theta, 0)


def test_extended_phase_space_picks_the_separable_form_when_it_exists():
    assert isinstance(extended_phase_space(_Anharmonic()), SeparableExtendedField)
    field = extended_phase_space(_TimeDependentMass())
    assert isinstance(field, ExtendedField) and not isinstance(field, sdl.Separable)
    with pytest.raises(ValueError, match="does not depend on t"):
        SeparableExtendedField(_TimeDependentMass())


def test_extended_field_is_the_hamiltonian_vector_field_of_k():
    field = extended_phase_space(_TimeDependentMass())
    big_q, big_p = _start(field)
    big_q.requires_grad_(True), big_p.requires_grad_(True)
    k_q, k_p = torch.autograd.grad(field.energy(big_q, big_p).sum(), (big_q, big_p))
    dq, dp = field(torch.tensor(0.0, dtype=f64), (big_q, big_p))
    torch.testing.assert_close(dq, k_p, rtol=0, atol=1e-14)
    torch.testing.assert_close(dp, -k_q, rtol=0, atol=1e-14)
    assert torch.equal(dq[:, -1], torch.ones(len(dq), dtype=f64))  # dt/dτ = 1


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_extended_one_step_map_is_symplectic(name):
    field = extended_phase_space(_Anharmonic())
    big_q, big_p = _start(field)
    assert symplecticity_defect(_step(field, name, 0.3, 0.25), big_q, big_p) <= 1e-12


def test_extended_one_step_map_of_rk4_is_not_symplectic():
    field = extended_phase_space(_Anharmonic())
    big_q, big_p = _start(field)
    assert symplecticity_defect(_step(field, "rk4", 0.3, 0.25), big_q, big_p) > 1e-6


@pytest.mark.parametrize("name", [n for n in SYMPLECTIC if not get(n).partitioned])
def test_extended_map_with_time_dependent_kinetic_energy_is_symplectic_for_gauss(name):
    field = extended_phase_space(_TimeDependentMass())
    big_q, big_p = _start(field)
    assert symplecticity_defect(_step(field, name, 0.3, 0.25), big_q, big_p) <= 1e-12


@pytest.mark.parametrize("name", [*SYMPLECTIC, "rk4"])
def test_k_is_conserved_to_the_order_of_the_method(name):
    """|K(T) - K(0)| at T = 1 for h = 1/40 and 1/80: the observed order log₂ of the ratio of the
    errors is the method's order p (± 0.3); H itself changes by O(1)."""
    field = extended_phase_space(_Anharmonic())
    big_q, big_p = _start(field, t0=0.0)
    k0 = field.energy(big_q, big_p).detach()
    errors = []
    for steps in (40, 80):
        q1, p1 = sdl.odeint(field, (big_q, big_p), torch.linspace(0, 1, steps + 1, dtype=f64), method=name, output="last")
        errors.append(float((field.energy(q1, p1).detach() - k0).abs().max()))
    order = math.log2(errors[0] / errors[1])
    assert abs(order - get(name).order) < 0.3, (errors, order)
    assert float((field.hamiltonian(q1, p1) - field.hamiltonian(big_q, big_p)).detach().abs().max()) > 0.05  # H is not conserved


@pytest.mark.parametrize("name", SPLITTINGS)
def test_extended_splitting_moves_q_p_as_the_non_autonomous_splitting(name):
    """The (q, p) part of a splitting step on the extended system is the splitting step of the
    non-autonomous field with time advanced by the drifts: the two readings agree."""
    hamiltonian = _Anharmonic()
    field = extended_phase_space(hamiltonian)
    big_q, big_p = _start(field)
    new_q, new_p = get(name).step(field, torch.tensor(0.3, dtype=f64), 0.25, (big_q, big_p))
    q, p = get(name).step(hamiltonian, torch.tensor(0.3, dtype=f64), 0.25, (big_q[:, :-1], big_p[:, :-1]))
    torch.testing.assert_close(new_q[:, :-1], q, rtol=0, atol=1e-14)
    torch.testing.assert_close(new_p[:, :-1], p, rtol=0, atol=1e-14)
    torch.testing.assert_close(new_q[:, -1], torch.full((6,), 0.55, dtype=f64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_piecewise_constant_network_is_symplectic_in_q_p_per_step(name):
    """A layered Hamiltonian network: each step, with θ^k fixed, is a symplectic map of (q, p)."""
    field = HamiltonianField(2, num_layers=3, width=3).double()
    q, p = torch.randn(5, 2, dtype=f64), torch.randn(5, 2, dtype=f64)
    for k, layer in enumerate(field.layers()):
        t = torch.tensor(0.5 * k, dtype=f64)

        def step(a, b, layer=layer, t=t):
            return sdl.odeint(layer, (a, b), torch.stack([t, t + 0.5]), method=name, output="last")

        assert symplecticity_defect(step, q, p) <= 1e-12


def test_interpolated_hamiltonian_of_a_trained_field():
    """θ(t) of a layered field: inside step k with "constant" H is layer k's; "linear" is continuous,
    and its extended K is conserved by Verlet to O(h²) while H changes."""
    field = HamiltonianField(2, num_layers=15, width=3).double()
    q, p = torch.randn(5, 2, dtype=f64), torch.randn(5, 2, dtype=f64)
    constant = InterpolatedHamiltonian(field, 1.5, "constant")
    torch.testing.assert_close(constant.hamiltonian(torch.tensor(0.25, dtype=f64), q, p), field.hamiltonian(q, p, layer=2))
    linear = InterpolatedHamiltonian(field, 1.5, "linear")
    before, after = (linear.hamiltonian(torch.tensor(t, dtype=f64), q, p) for t in (0.4 - 1e-9, 0.4 + 1e-9))
    assert float((before - after).detach().abs().max()) < 1e-7
    extended = extended_phase_space(linear)
    big_q, big_p = extended.join(q, torch.zeros(5, dtype=f64)), extended.join(p, torch.zeros(5, dtype=f64))
    errors = []
    for steps in (60, 120):  # grid points on the centres s_k = (k + ½) 0.1, where θ(t) has kinks
        qs, ps = sdl.odeint(
            extended, (big_q, big_p), torch.linspace(0, 1.5, steps + 1, dtype=f64), method="verlet", output="last"
        )
        errors.append(float((extended.energy(qs, ps) - extended.energy(big_q, big_p)).abs().max().detach()))
    assert 1.7 < math.log2(errors[0] / errors[1]) < 2.3, errors  # second order through the kinks too
    with pytest.raises(ValueError, match="needs a layered HamiltonianField"):
        InterpolatedHamiltonian(HamiltonianField(2), 1.0)


def test_linear_theta_has_the_mean_slope_at_a_kink_reached_with_rounding():
    """0.15 · 10 - ½ misses the centre s_1 = 0.15 by an ulp; the slope there is still the mean of the
    one-sided slopes (a one-sided slope made K drift at order 1 under Verlet and RK4)."""
    theta = torch.tensor([[0.0], [1.0], [-3.0]], dtype=f64)  # slopes +10 and -40 per unit time around s_1
    t = torch.tensor(0.15, dtype=f64, requires_grad=True)
    (slope,) = torch.autograd.grad(interpolate_layers(theta, t, 0.3).sum(), t)
    assert float(slope) == pytest.approx(-15.0, abs=1e-9)
