"""The odeint entry point: shapes, dtypes, devices, pair states, layered fields, errors."""

import math

import pytest
import torch
from problems import Pendulum

import sdl
from sdl.integrators import TABLEAUS, ImplicitRungeKutta, NewtonSolver, get, names


class LayeredLinear(sdl.Layered):
    """f_k(t, z) = z @ W_kᵀ: one weight per step."""

    def __init__(self, num_layers, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(0.1 * torch.randn(num_layers, dim, dim))

    @property
    def num_layers(self):
        return self.weight.shape[0]

    def layer_parameters(self):
        return (self.weight,)

    def bind(self, params):
        (w,) = params
        return lambda t, z: z @ w.T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", names())
def test_output_is_time_first_and_follows_dtype_and_device(name, dtype, device):
    t = torch.linspace(0, 1, 6)
    y0 = torch.randn(7, 3, dtype=dtype, device=device)
    if get(name).partitioned:
        q, p = sdl.odeint(Pendulum(), (y0, y0.clone()), t, method=name)
        assert q.shape == p.shape == (6, 7, 3)
        assert q.dtype == dtype and q.device == y0.device
    else:
        y = sdl.odeint(lambda t, z: -z, y0, t, method=name)
        assert y.shape == (6, 7, 3) and y.dtype == dtype and y.device == y0.device
        assert torch.equal(y[0], y0)


@pytest.mark.parametrize("name", ["rk4", "gauss_legendre4"])
def test_pair_states_with_different_shapes_are_flattened_and_restored(name):
    q0, p0 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)

    def func(t, y):
        q, p = y
        return p[:, None].expand_as(q) * 0.5, -q.sum(-1)

    q, p = sdl.odeint(func, (q0, p0), torch.linspace(0, 1, 5, dtype=torch.float64), method=name)
    assert q.shape == (5, 4, 2) and p.shape == (5, 4)
    # same as integrating the concatenated vector by hand
    flat = sdl.odeint(
        lambda t, z: torch.cat([func(t, (z[:8].view(4, 2), z[8:]))[0].reshape(-1), func(t, (z[:8].view(4, 2), z[8:]))[1]]),
        torch.cat([q0.reshape(-1), p0]),
        torch.linspace(0, 1, 5, dtype=torch.float64),
        method=name,
    )
    torch.testing.assert_close(q[-1].reshape(-1), flat[-1, :8], rtol=0, atol=1e-15)
    torch.testing.assert_close(p[-1], flat[-1, 8:], rtol=0, atol=1e-15)


def test_decreasing_grid_integrates_backward():
    y = sdl.odeint(lambda t, z: z, torch.ones(1, dtype=torch.float64), torch.linspace(1, 0, 101, dtype=torch.float64))
    assert abs(y[-1].item() - math.exp(-1.0)) < 1e-9


def test_non_uniform_grid_uses_each_interval():
    t = torch.tensor([0.0, 0.1, 0.3, 0.7, 1.0], dtype=torch.float64)
    y = sdl.odeint(lambda t, z: torch.ones_like(z) * 2 * t, torch.zeros(1, dtype=torch.float64), t, method="midpoint")
    torch.testing.assert_close(y.squeeze(-1), t**2, rtol=0, atol=1e-15)  # midpoint is exact for y' = 2t


def test_layered_field_uses_parameters_of_step_k_in_every_stage():
    field = LayeredLinear(num_layers=4, dim=3).double()
    z0 = torch.randn(5, 3, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    zs = sdl.odeint(field, z0, t, method="rk4")
    # by hand: step k is RK4 for the linear field z' = W_k z, i.e. z ← z Pᵀ with P the RK4 polynomial
    z = z0
    for w in field.weight:
        hw = 0.25 * w
        eye = torch.eye(3, dtype=torch.float64)
        poly = eye + hw + hw @ hw / 2 + hw @ hw @ hw / 6 + hw @ hw @ hw @ hw / 24
        z = z @ poly.T
    torch.testing.assert_close(zs[-1], z, rtol=0, atol=1e-14)


def test_changing_layer_k_changes_only_later_states():
    field = LayeredLinear(num_layers=5, dim=2).double()
    z0 = torch.randn(3, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    before = sdl.odeint(field, z0, t, method="heun")
    with torch.no_grad():
        field.weight[2] += 1.0
    after = sdl.odeint(field, z0, t, method="heun")
    assert torch.equal(before[:3], after[:3])
    assert (before[3:] - after[3:]).abs().min() > 0


def test_layered_field_needs_a_matching_grid():
    with pytest.raises(ValueError, match="parameters for 4 layers but t has 2 intervals; pass a grid of 5 points"):
        sdl.odeint(LayeredLinear(4, 2), torch.zeros(2), torch.linspace(0, 1, 3))


def test_gradients_flow_to_initial_state_and_parameters():
    field = LayeredLinear(num_layers=3, dim=2).double()
    z0 = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    sdl.odeint(field, z0, torch.linspace(0, 1, 4, dtype=torch.float64))[-1].square().sum().backward()
    assert z0.grad is not None and field.weight.grad.abs().min() > 0


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown integrator 'rk5'; valid names: euler, midpoint, .*verlet"):
        sdl.odeint(lambda t, y: y, torch.ones(1), torch.linspace(0, 1, 3), method="rk5")


def test_unknown_gradient_lists_valid_choices():
    with pytest.raises(ValueError, match=r"unknown gradient 'magic'; valid choices: dto, otd, or an sdl.Adjoint"):
        sdl.odeint(lambda t, y: y, torch.ones(1), torch.linspace(0, 1, 3), gradient="magic")


def test_unknown_stage_solver_lists_valid_choices():
    with pytest.raises(ValueError, match="unknown stage solver 'bisect'; valid solvers: fixed_point, newton"):
        sdl.integrators.get("gauss_legendre4", solver="bisect")


@pytest.mark.parametrize(
    "t, message",
    [
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), r"strictly increasing or strictly decreasing; t\[1\] = 0.5 and t\[2\] = 0.5"),
        (torch.tensor([0.0, 1.0, 0.5]), r"t\[1\] = 1.0 and t\[2\] = 0.5"),
        (torch.tensor([0.0, float("nan"), 1.0]), "t must be finite"),
        (torch.tensor([0.0, float("inf")]), "t must be finite"),
        (torch.tensor([0.0]), "at least 2 points"),
        (torch.zeros(2, 2), "1-D grid"),
    ],
)
def test_bad_grids_are_rejected(t, message):
    with pytest.raises(ValueError, match=message):
        sdl.odeint(lambda t, y: y, torch.ones(1), t)


def test_func_output_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"func returned shape \(3,\) .* state y of shape \(4,\)"):
        sdl.odeint(lambda t, y: y[:3], torch.ones(4), torch.linspace(0, 1, 3))


def test_func_output_dtype_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"dtype torch.float64 for state y of shape"):
        sdl.odeint(lambda t, y: y.double(), torch.ones(4), torch.linspace(0, 1, 3))


def test_a_flattened_pair_keeps_its_batch_axis_for_the_stage_solvers(monkeypatch):
    """q (B, 2) and p (B,) flatten to (B, 3), not (3B,), so Newton solves B blocks of size s·3; a
    single sample (q (2,), p ()) stays one system. Both give the steps of the dense whole-state Newton."""
    solve, shapes = torch.linalg.solve, []
    monkeypatch.setattr(torch.linalg, "solve", lambda a, b: shapes.append(tuple(a.shape)) or solve(a, b))

    def func(t, y):  # stiff within each sample, samples independent
        q, p = y
        return -100.0 * q + p[..., None] * torch.tanh(q), -50.0 * p + q.sum(-1)

    t = torch.linspace(0, 0.2, 3, dtype=torch.float64)
    q0, p0 = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    dense = ImplicitRungeKutta(TABLEAUS["backward_euler"], NewtonSolver(tol=1e-14, per_sample=False))
    for state, blocks in (((q0, p0), (5, 3, 3)), ((q0[0], p0[0]), (1, 3, 3))):
        shapes.clear()
        q, p = sdl.odeint(func, state, t, method="backward_euler", solver="newton", tol=1e-14)
        assert set(shapes) == {blocks}
        q_dense, p_dense = sdl.odeint(func, state, t, method=dense)
        torch.testing.assert_close(q, q_dense, rtol=0, atol=1e-13)
        torch.testing.assert_close(p, p_dense, rtol=0, atol=1e-13)


def test_pair_func_must_return_a_pair():
    with pytest.raises(TypeError, match=r"must return a pair \(dq/dt, dp/dt\)"):
        sdl.odeint(lambda t, y: y[0], (torch.ones(2), torch.ones(2)), torch.linspace(0, 1, 3), method="verlet")


def test_partitioned_method_needs_a_pair_state():
    with pytest.raises(TypeError, match=r"needs the state as a \(q, p\) tuple; got Tensor"):
        sdl.odeint(lambda t, y: y, torch.ones(2), torch.linspace(0, 1, 3), method="leapfrog")


def test_integer_state_is_rejected():
    with pytest.raises(TypeError, match="floating dtype"):
        sdl.odeint(lambda t, y: y, torch.ones(2, dtype=torch.long), torch.linspace(0, 1, 3))


def test_unknown_or_misplaced_options_are_rejected():
    decay = lambda t, y: -y  # noqa: E731
    y0, t = torch.ones(2), torch.linspace(0, 1, 3)
    with pytest.raises(
        TypeError,
        match=r"unexpected keyword argument.s. rtol; its extra options are the stage-solver settings solver, tol, max_iter",
    ):
        sdl.odeint(decay, y0, t, rtol=1e-3)
    with pytest.raises(TypeError, match="tol configure a method given by name; got an ImplicitRungeKutta instance"):
        sdl.odeint(decay, y0, t, method=get("backward_euler"), tol=1e-8)
    assert sdl.odeint(decay, y0, t, method="backward_euler", solver="newton", tol=1e-6).shape == (3, 2)


def test_fields_that_differentiate_internally_work():
    """f = -∇U computed by autograd inside the field (a Hamiltonian-network pattern)."""

    def force(t, y):
        return -torch.autograd.grad((1 - torch.cos(y)).sum(), y, create_graph=True)[0]

    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    y = sdl.odeint(force, y0, torch.linspace(0, 1, 5, dtype=torch.float64), method="euler")
    expected = y0.detach().clone()
    for _ in range(4):
        expected = expected - 0.25 * torch.sin(expected)
    torch.testing.assert_close(y[-1].detach(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", ["backward_euler", "gauss_legendre4"])
def test_implicit_stage_tolerance_is_relative_at_every_scale(method):
    """The stage solver's test is relative to max(|y|/h, |K|), so tiny states are solved as
    accurately as unit ones (it used to be absolute below 1)."""
    rate = 0.8
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    stability = get(method).tableau.stability_function(complex(-rate * 0.25)).real
    for scale in (1.0, 1e-8, 1e-14):
        y = sdl.odeint(lambda t, y: -rate * y, torch.full((3,), scale, dtype=torch.float64), t, method=method, output="last")
        torch.testing.assert_close(y, torch.full((3,), scale * stability**4, dtype=torch.float64), rtol=1e-13, atol=0)


def test_implicit_steps_accept_an_empty_batch():
    y = sdl.odeint(
        lambda t, y: -y,
        torch.ones(0, 3, dtype=torch.float64),
        torch.linspace(0, 1, 3, dtype=torch.float64),
        method="backward_euler",
    )
    assert y.shape == (3, 0, 3)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(max_iter=0), "max_iter must be a positive int, got 0"),
        (dict(tol=-1.0), "tol must be None .* or a finite number > 0, got -1.0"),
    ],
)
def test_bad_stage_solver_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        get("backward_euler", **options)
