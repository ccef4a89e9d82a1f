"""ODENet.refine (deep limits, multilevel training) and ODENet.inverse (reversibility), float64."""

import itertools
import math

import pytest
import torch

from sdl.integrators import get, names
from sdl.models import GradientFlowField, HamiltonianField, ODENet, ResNetField, SwitchingField

f64 = torch.float64
REVERSIBLE = [name for name in names() if get(name).time_reversible]
IRREVERSIBLE = [name for name in names() if not get(name).time_reversible]


def _resnet(method="rk4", layers=5, **options):
    return ODENet(ResNetField(2, num_layers=layers, init_scale=2.0), method=method, t_final=1.5, **options).double()


def test_refine_makes_a_new_network_and_leaves_the_old_one():
    net = _resnet()
    before = [p.clone() for p in net.parameters()]
    fine = net.refine(2)
    assert (net.num_steps, fine.num_steps, fine.field.num_layers) == (5, 10, 10)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert torch.equal(fine.field.weight, net.field.weight.repeat_interleave(2, 0))
    assert fine.step_size == pytest.approx(net.step_size / 2)
    x = torch.randn(4, 2, dtype=f64)
    torch.testing.assert_close(net.refine(1, "linear")(x), net(x), rtol=0, atol=1e-13)  # same centres, same θ


def test_refining_a_piecewise_constant_theta_converges_at_the_order_of_the_method():
    """θ(t) unchanged ("constant"), steps halved: the outputs approach the ODE flow as h⁴ (RK4) and h²
    (Verlet); the observed order log₂ of successive changes is within 0.3 of it."""
    x = torch.randn(16, 2, dtype=f64)
    for net, order in ((_resnet(), 4), (ODENet(HamiltonianField(2, num_layers=5, init_scale=2.0), method="verlet").double(), 2)):
        with torch.no_grad():
            outputs = [net.refine(f)(x) for f in (1, 2, 4, 8)]
        changes = [float((b - a).abs().max()) for a, b in itertools.pairwise(outputs)]
        assert abs(math.log2(changes[-2] / changes[-1]) - order) < 0.3, changes


def test_refine_shared_parameters_takes_more_steps():
    net = ODENet(ResNetField(2), num_steps=4).double()
    fine = net.refine(3, "linear")
    assert fine.num_steps == 12 and torch.equal(fine.field.weight, net.field.weight)


def test_refine_refuses_what_it_cannot_prolong():
    with pytest.raises(ValueError, match="unknown interpolation 'spline'; valid choices: constant, linear"):
        _resnet().refine(2, "spline")
    with pytest.raises(ValueError, match="factor must be a positive int, got 0"):
        _resnet().refine(0)
    with pytest.raises(ValueError, match="SwitchingField cannot be refined"):
        ODENet(SwitchingField(2, num_layers=4), method="euler").refine(2)
    with pytest.raises(ValueError, match="constraint='nonexpansive' cannot be refined"):
        ODENet(GradientFlowField(2, num_layers=4), method="euler", constraint="nonexpansive").refine(2)


@pytest.mark.parametrize("name", REVERSIBLE)
def test_inverse_recovers_the_input_to_round_off(name):
    net = ODENet(HamiltonianField(2, num_layers=20, init_scale=2.0), method=name, t_final=2.0).double()
    x = torch.randn(16, 2, dtype=f64)
    with torch.no_grad():
        q, p = net.inverse(net.final_state(x))
    assert float((q - x).abs().max()) <= 1e-12 and float(p.abs().max()) <= 1e-12


def test_inverse_of_a_single_state_network():
    net = _resnet("implicit_midpoint", layers=10)
    x = torch.randn(8, 2, dtype=f64)
    with torch.no_grad():
        assert float((net.inverse(net.final_state(x)) - x).abs().max()) <= 1e-12


@pytest.mark.parametrize("name", ["euler", "rk4", "symplectic_euler"])
def test_inverse_refuses_a_method_that_is_not_reversible(name):
    field = HamiltonianField(2, num_layers=10)
    net = ODENet(field, method=name).double()
    x = torch.randn(8, 2, dtype=f64)
    with pytest.raises(ValueError, match=f"inverse needs a time-reversible method .*'{name}' is not"):
        net.inverse(net.final_state(x))
    with torch.no_grad():  # run backward anyway: an inverse only up to the method's local errors
        q, _ = net.integrate_backward(net.final_state(x))
    assert 1e-12 < float((q - x).abs().max()) < 0.5


def test_irreversible_methods_are_all_refused():
    assert "rk4" in IRREVERSIBLE and "verlet" in REVERSIBLE and "yoshida4" in REVERSIBLE
