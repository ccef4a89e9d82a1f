"""Hamiltonian neural networks: the field is the symplectic gradient of the learned H, with every
method and both gradients; the separable form makes the explicit splittings exactly symplectic."""

import pytest
import torch

from sdl import odeint
from sdl.models.hnn import HNN, MLPField, SeparableHNN, mlp
from sdl.stability import symplecticity_defect


@pytest.fixture(autouse=True)
def _float64():
    """Exactness is claimed in float64: every module and tensor of these tests is float64, and the
    default is restored after each (other test modules see float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _states(n: int = 2, batch: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, generator=g), torch.randn(batch, n, generator=g)


@pytest.mark.parametrize("cls", [HNN, SeparableHNN])
def test_field_is_the_symplectic_gradient_of_h(cls):
    torch.manual_seed(0)
    model = cls(2, hidden=16)
    q, p = _states()
    q.requires_grad_(True), p.requires_grad_(True)
    dh_dq, dh_dp = torch.autograd.grad(model.hamiltonian(q, p).sum(), (q, p))
    dq, dp = model(None, (q.detach(), p.detach()))
    torch.testing.assert_close(dq, dh_dp, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(dp, -dh_dq, rtol=1e-13, atol=1e-13)


def test_separable_hnn_kinetic_depends_on_p_only():
    torch.manual_seed(0)
    model = SeparableHNN(2, hidden=16)
    q, p = _states()
    q2, _ = _states(seed=1)
    torch.testing.assert_close(model.velocity(None, p), model(None, (q2, p))[0])
    torch.testing.assert_close(model.force(None, q), model(None, (q, p * 3))[1])


@pytest.mark.parametrize("method", ["verlet", "rk4", "implicit_midpoint"])
def test_partial_derivatives_inside_a_recorded_step(method):
    """A splitting's p after a drift feeds the next q: ∂H/∂p must not pick up that path, so a step
    with a recorded graph equals one without and the adjoint's forward pass."""
    torch.manual_seed(0)
    model = HNN(1, hidden=16)
    q, p = _states(1, 5)
    t = torch.linspace(0, 1, 11)
    recorded = odeint(model, (q, p), t, method=method)[0][-1]
    with torch.no_grad():
        unrecorded = odeint(model, (q, p), t, method=method)[0][-1]
    adjoint = odeint(model, (q, p), t, method=method, gradient="otd")[0][-1]
    assert (recorded - unrecorded).abs().max() < 1e-14
    assert (recorded - adjoint).abs().max() < 1e-14


@pytest.mark.parametrize("cls,method", [(HNN, "implicit_midpoint"), (SeparableHNN, "verlet"), (MLPField, "rk4"), (HNN, "verlet")])
def test_dto_and_otd_gradients_agree(cls, method):
    torch.manual_seed(1)
    model = cls(1, hidden=12)
    q, p = _states(1, 4)
    t = torch.linspace(0, 0.8, 9)
    grads = []
    for gradient in ("dto", "otd"):
        model.zero_grad()
        qs, ps = odeint(model, (q, p), t, method=method, gradient=gradient)
        (qs.square().sum() + ps.sin().sum()).backward()
        grads.append(torch.cat([w.grad.reshape(-1) for w in model.parameters()]))
    assert grads[0].abs().max() > 1e-3
    assert (grads[0] - grads[1]).abs().max() < 1e-10 * grads[0].abs().max()


def test_separable_hnn_with_verlet_is_symplectic_and_a_general_hnn_is_not():
    torch.manual_seed(2)
    q, p = _states(2, 3)
    from sdl.integrators import get

    verlet = get("verlet")
    separable, general = SeparableHNN(2, hidden=16), HNN(2, hidden=16)
    for w in list(separable.parameters()) + list(general.parameters()):
        w.data.mul_(2.0)  # far from linear, where every method is symplectic for a quadratic H
    t0 = torch.tensor(0.0)
    assert symplecticity_defect(lambda a, b: verlet.step(separable, t0, 0.3, (a, b)), q, p) < 1e-12
    # Verlet on a non-separable H evaluates both halves at mixed states: not symplectic (the control)
    assert symplecticity_defect(lambda a, b: verlet.step(general, t0, 0.3, (a, b)), q, p) > 1e-5


def test_learned_energy_is_conserved_along_the_learned_flow():
    torch.manual_seed(3)
    model = HNN(1, hidden=16)
    q, p = _states(1, 4)
    t = torch.linspace(0, 2, 401)
    with torch.no_grad():
        qs, ps = odeint(model, (q, p), t, method="rk4")
    energy = model.hamiltonian(qs, ps).detach()
    assert (energy - energy[0]).abs().max() < 1e-9 * energy.abs().max()
    baseline = MLPField(1, hidden=16)
    with torch.no_grad():
        bq, bp = odeint(baseline, (q, p), t, method="rk4")
    drift = model.hamiltonian(bq, bp) - model.hamiltonian(q, p)  # another field does not conserve it
    assert drift.abs().max() > 1e-3


def test_mlp_has_the_hnn_papers_shape_and_orthogonal_weights():
    net = mlp(2, 200, 2, 1)
    shapes = [tuple(m.weight.shape) for m in net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(200, 2), (200, 200), (1, 200)]
    w = net[2].weight
    torch.testing.assert_close(w @ w.T, torch.eye(200, dtype=w.dtype), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="layers ≥ 1"):
        mlp(2, 20, 0, 1)
