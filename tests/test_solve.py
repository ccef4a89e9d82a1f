"""One resolved solve: every combination checked once, at resolution; a resolved network runs
its steps with no extra evaluation and no host sync."""

import pytest
import torch

import sdl
from sdl import Adjoint, PairField
from sdl.fields import Capabilities
from sdl.integrators import get
from sdl.models import CNF, BruteForceDivergence, GradientFlowField, HamiltonianField, HollowNet, ODENet, ResNetField
from sdl.solve import Solve, resolve_solve

F64 = torch.float64


class CountingLayers(sdl.Layered):
    """A layered field that counts the evaluations of its bound layers."""

    def __init__(self, field):
        super().__init__()
        self.inner, self.dim, self.calls = field, field.dim, 0

    @property
    def num_layers(self):
        return self.inner.num_layers

    def layer_parameters(self):
        return self.inner.layer_parameters()

    def bind(self, params):
        layer = self.inner.bind(params)

        def counted(t, z):
            self.calls += 1
            return layer(t, z)

        return counted


class CountingShared(torch.nn.Module):
    """f(t, z) = tanh(A z + b) with one parameter set for all steps, counting its evaluations."""

    def __init__(self, dim):
        super().__init__()
        self.linear, self.dim, self.calls = torch.nn.Linear(dim, dim), dim, 0

    def forward(self, t, z):
        self.calls += 1
        return torch.tanh(self.linear(z))


@pytest.mark.parametrize("method, stages", [("euler", 1), ("heun", 2), ("rk4", 4)])
@pytest.mark.parametrize("gradient", ["dto", "otd"])
@pytest.mark.parametrize("layered", [True, False])
def test_a_network_forward_evaluates_the_field_once_per_stage(method, stages, gradient, layered):
    """K steps of an s-stage explicit method: s·K evaluations (odeint's first-call check used to add one)."""
    steps = 7
    field = CountingLayers(ResNetField(3, num_layers=steps)) if layered else CountingShared(3)
    net = ODENet(field, num_steps=steps, method=method, gradient=gradient)
    net(torch.randn(10, 2))
    assert field.calls == stages * steps
    field.calls = 0
    net.trajectory(torch.randn(10, 2))
    assert field.calls == stages * steps


@pytest.mark.parametrize("gradient", ["dto", "otd"])
@pytest.mark.parametrize("field, method", [(ResNetField(3, num_layers=5), "rk4"), (HamiltonianField(3, num_layers=5), "verlet")])
def test_a_network_forward_and_backward_read_nothing_back_to_the_host(monkeypatch, field, method, gradient):
    """No .item(), .tolist() or bool(tensor) per call: the grid and its step sizes are fixed at
    construction (the old path checked and read back the time grid on every forward)."""
    net = ODENet(field, method=method, gradient=gradient, momentum="linear" if method == "verlet" else "zero")
    x = torch.randn(8, 2)

    def host_sync(*args, **kwargs):
        raise AssertionError("a host sync in the forward pass")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, host_sync)
    net(x).sum().backward()
    net.trajectory(x)


def test_a_float32_network_steps_with_the_step_size_it_was_built_with():
    """h = T/K as a float fixed at construction, and grid tensors kept per dtype: a float64 copy of
    the network steps with the same h in float64."""
    torch.manual_seed(0)
    net = ODENet(ResNetField(2, num_layers=3), t_final=1.0, method="euler")
    x = torch.randn(5, 2)
    z = x.clone()
    for k in range(3):
        z = torch.add(z, torch.tanh(z @ net.field.weight[k].T + net.field.bias[k]), alpha=1 / 3)
    assert torch.equal(net(x), net.classify(z))
    assert net.time_grid(x).dtype == torch.float32 and net.double().time_grid(x.double()).dtype == F64


# -- refused at resolution ---------------------------------------------------------------------


def test_reverse_recovery_of_a_method_that_is_not_time_reversible_is_refused_at_resolution():
    message = r"recovery='reverse' needs a time-reversible method .* reversible methods: implicit_midpoint"
    with pytest.raises(ValueError, match=message):
        resolve_solve("rk4", "otd", pair=False, recovery="reverse")
    with pytest.raises(ValueError, match=message):  # at construction, no longer at the first backward pass
        ODENet(ResNetField(2, num_layers=3), method="rk4", gradient=Adjoint(recovery="reverse"))
    assert resolve_solve("leapfrog", Adjoint(recovery="reverse"), pair=True).adjoint.recovery == "reverse"


def test_jacobi_newton_for_a_field_without_dimwise_derivatives_is_refused_at_resolution():
    with pytest.raises(
        TypeError, match=r"solver='jacobi_newton' needs a field that is sdl.fields.DimwiseDifferentiable .*; got ResNetField"
    ):
        ODENet(ResNetField(2, num_layers=3), method="backward_euler", solver="jacobi_newton")
    with pytest.raises(TypeError, match="got HamiltonianField"):
        resolve_solve("gauss_legendre4", solver="jacobi_newton", field=Capabilities.of_type(HamiltonianField))
    with pytest.raises(TypeError, match=r"needs a field that is sdl.fields.DimwiseDifferentiable"):
        CNF(torch.nn.Linear(2, 2), 2, divergence=BruteForceDivergence(), method="backward_euler", solver="jacobi_newton")
    # a DimwiseDifferentiable field is accepted; an explicit method ignores the stage solver
    assert resolve_solve("backward_euler", solver="jacobi_newton", field=Capabilities.of(HollowNet(2))).pair is False
    assert ODENet(ResNetField(2, num_layers=3), method="rk4", solver="jacobi_newton").num_steps == 3


@pytest.mark.parametrize("model", ["odeint", "ODENet", "CNF"])
def test_stage_solver_options_for_an_integrator_instance_are_refused_alike_everywhere(model):
    """CNF used to drop them without a word."""
    method, message = get("backward_euler"), "tol configure a method given by name; got an ImplicitRungeKutta instance"
    with pytest.raises(TypeError, match=message):
        if model == "odeint":
            sdl.odeint(lambda t, y: -y, torch.ones(2), torch.linspace(0, 1, 3), method=method, tol=1e-8)
        elif model == "ODENet":
            ODENet(ResNetField(2, num_layers=3), method=method, tol=1e-8)
        else:
            CNF(HollowNet(2), 2, method=method, tol=1e-8)
    with pytest.raises(TypeError, match=r"unexpected keyword argument.s. rtol; its extra options are the stage-solver settings"):
        CNF(HollowNet(2), 2, rtol=1e-3)


def test_a_field_on_pairs_needs_a_pair_state():
    with pytest.raises(
        TypeError, match=r"HamiltonianField acts on pairs .q, p. .it is an sdl.PairField.; got a single tensor state"
    ):
        sdl.odeint(HamiltonianField(2), torch.ones(3, 2), torch.linspace(0, 1, 3))


def test_the_torchdiffeq_adjoint_is_checked_at_resolution():
    with pytest.raises(ValueError, match="needs the forward method by name"):
        resolve_solve(get("rk4_38"), Adjoint(method="torchdiffeq"), pair=False)
    with pytest.raises(ValueError, match="no fixed-grid method equal to 'kutta3'"):
        resolve_solve("kutta3", Adjoint(method="torchdiffeq"), pair=False)
    with pytest.raises(ValueError, match="supports shared parameters only"):
        resolve_solve("euler", Adjoint(method="torchdiffeq"), field=Capabilities.of_type(ResNetField, layered=True))


@pytest.mark.parametrize(
    "field_type, layered, method, options, error, message",
    [
        (
            ResNetField,
            True,
            "verlet",
            {},
            ValueError,
            "'verlet' is a splitting method for .q, p. states and needs a field on pairs such as HamiltonianField; "
            "got ResNetField",
        ),
        (GradientFlowField, False, "leapfrog", {}, ValueError, "got GradientFlowField"),
        (HamiltonianField, True, "rk4", {"recovery": "reverse"}, ValueError, "recovery='reverse' needs a time-reversible method"),
        (ResNetField, True, "gauss_legendre4", {"solver": "jacobi_newton"}, TypeError, "got ResNetField"),
        (
            ResNetField,
            True,
            "rk4",
            {"gradient": "magic"},
            ValueError,
            "unknown gradient 'magic'; valid choices: dto, otd, or an sdl.Adjoint",
        ),
        (ResNetField, True, "rk9", {}, ValueError, "unknown integrator 'rk9'; valid names"),
        (
            ResNetField,
            True,
            "rk4",
            {"adjoint_method": "rk4"},
            ValueError,
            "adjoint_method: used only with gradient='otd'; got gradient='dto'",
        ),
    ],
)
def test_a_config_can_check_a_solve_from_field_types_alone(field_type, layered, method, options, error, message):
    gradient = options.pop("gradient", "otd" if "recovery" in options else "dto")
    with pytest.raises(error, match=message):
        resolve_solve(method, gradient, field=Capabilities.of_type(field_type, layered=layered), **options)


@pytest.mark.parametrize(
    "field_type, method, gradient",
    [
        (HamiltonianField, "verlet", Adjoint(recovery="reverse")),
        (ResNetField, "gauss_legendre4", "otd"),
        (HollowNet, "backward_euler", "dto"),
    ],
)
def test_a_config_accepts_what_can_run(field_type, method, gradient):
    solve = resolve_solve(
        method, gradient, field=Capabilities.of_type(field_type, layered=field_type is not HollowNet), solver="newton"
    )
    assert isinstance(solve, Solve) and solve.pair == (field_type is HamiltonianField)


def test_resolve_solve_needs_capabilities_not_a_field():
    with pytest.raises(TypeError, match=r"field must be sdl.fields.Capabilities"):
        resolve_solve("rk4", field=ResNetField(2))
    with pytest.raises(TypeError, match="pair=None takes the state layout from the field"):
        resolve_solve("rk4")


# -- a field on pairs that is not separable ------------------------------------------------------


class QuadraticPairField(torch.nn.Module, PairField):
    """dq/dt = ∂H/∂p, dp/dt = -∂H/∂q for H(q, p) = ½ (q, p) M (q, p)ᵀ with q-p coupling: a field
    on pairs that is not separable (no velocity(p)/force(q) halves)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        root = torch.randn(2 * dim, 2 * dim, dtype=F64)
        self.matrix = torch.nn.Parameter(0.5 * (root @ root.T) / dim)

    def hamiltonian(self, q, p):
        z = torch.cat([q, p], -1)
        return 0.5 * ((z @ self.matrix) * z).sum(-1)

    def forward(self, t, y):
        q, p = y
        grad = torch.cat([q, p], -1) @ self.matrix
        return grad[..., self.dim :], -grad[..., : self.dim]


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss_legendre4"])
def test_a_network_on_a_non_separable_pair_field_keeps_its_quadratic_energy_with_gauss_methods(method):
    field = QuadraticPairField(3)
    net = ODENet(field, num_steps=10, method=get(method, tol=1e-15, max_iter=500), momentum="linear").double()
    q, p = net.trajectory(torch.randn(6, 2, dtype=F64))
    energy = field.hamiltonian(q, p)
    assert q.shape == p.shape == (11, 6, 3)
    assert (energy - energy[0]).abs().max() <= 1e-13 * energy.abs().max()
    assert (q[-1] - q[0]).abs().max() > 1e-2


def test_a_splitting_method_evaluates_both_halves_of_a_non_separable_pair_field():
    field = QuadraticPairField(2)
    net = ODENet(field, num_steps=4, method="verlet", momentum="linear").double()
    x = torch.randn(5, 2, dtype=F64)
    q, p = net.lift(x)
    h = 0.25
    for _ in range(4):  # kick with F(q, p), drift with V(q, p), kick: each half from the whole field
        p = p + h / 2 * field(None, (q, p))[1]
        q = q + h * field(None, (q, p))[0]
        p = p + h / 2 * field(None, (q, p))[1]
    q_net, p_net = net.trajectory(x)
    torch.testing.assert_close(q_net[-1], q, rtol=0, atol=1e-14)
    torch.testing.assert_close(p_net[-1], p, rtol=0, atol=1e-14)


def test_a_network_on_a_non_separable_pair_field_flattens_the_pair_for_runge_kutta_methods():
    field = QuadraticPairField(2)
    net = ODENet(field, num_steps=4, method="rk4", momentum="linear").double()
    x = torch.randn(5, 2, dtype=F64)
    q, p = net.trajectory(x)
    q_ref, p_ref = sdl.odeint(field, net.lift(x), torch.linspace(0, 1, 5, dtype=F64), method="rk4")
    torch.testing.assert_close(q, q_ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(p, p_ref, rtol=0, atol=1e-14)
    assert net(x).shape == (5,)
