"""HollowNet: exact dimension-wise derivatives, the hollow Jacobian structure, Jacobi–Newton stage solves."""

import pytest
import torch
from torch import nn

import sdl
from sdl.fields import DimwiseDifferentiable
from sdl.integrators import TABLEAUS, ConvergenceError, ImplicitRungeKutta
from sdl.integrators.runge_kutta import JacobiNewtonSolver
from sdl.models.hollow import HollowNet, dimwise_derivative, divergence

F64 = torch.float64


def _net(dim, **kwargs):
    kwargs.setdefault("time_dependent", True)
    return HollowNet(dim, **kwargs).to(F64)


def _jacobian(net, t, x):
    """(B, d, d) autograd Jacobian of x ↦ net(t, x), one row per backward pass."""
    return torch.func.vmap(torch.func.jacrev(lambda xb: net(t, xb)))(x)


@pytest.mark.parametrize("dim", [2, 3, 8, 17, 64])
@pytest.mark.parametrize("activation", ["tanh", "softplus", "silu"])
def test_jacobian_diagonal_and_divergence_are_exact(dim, activation):
    net = _net(dim, activation=activation, conditioner_depth=3, transformer_depth=2)
    t = torch.tensor(0.7, dtype=F64)
    x = 1.5 * torch.randn(6, dim, dtype=F64)
    jac = _jacobian(net, t, x)
    value, (diagonal,) = dimwise_derivative(net, t, x)
    assert torch.equal(value, net(t, x))
    assert torch.allclose(diagonal, jac.diagonal(dim1=-2, dim2=-1), rtol=0, atol=1e-10)
    _, div = divergence(net, t, x)
    brute_force_trace = jac.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert torch.allclose(div, brute_force_trace, rtol=0, atol=1e-10)
    assert diagonal.abs().max() > 1e-3  # the check is not a comparison of zeros


@pytest.mark.parametrize("dim", [2, 8, 64])
def test_hollow_part_of_the_jacobian_has_an_exactly_zero_diagonal(dim):
    net = _net(dim)
    t = torch.tensor(0.3, dtype=F64)
    x = torch.randn(5, dim, dtype=F64)
    # ∂h/∂x with x_i's own path into τ held fixed: the interactions only.
    hollow = torch.func.vmap(torch.func.jacrev(lambda xb, fixed: net.transformer(fixed, net.conditioner(t, xb))))(x, x)
    assert torch.all(hollow.diagonal(dim1=-2, dim2=-1) == 0.0)
    assert hollow.abs().max() > 1e-3
    # and the diagonal part plus the hollow part is the whole Jacobian
    _, (diagonal,) = dimwise_derivative(net, t, x)
    assert torch.allclose(torch.diag_embed(diagonal) + hollow, _jacobian(net, t, x), rtol=0, atol=1e-12)


def test_conditioner_row_i_never_sees_x_i():
    dim = 6
    net = _net(dim)
    x = torch.randn(4, dim, dtype=F64)
    h = net.conditioner(0.2, x)
    for i in range(dim):
        moved = x.clone()
        moved[:, i] += torch.randn(4, dtype=F64) * 10
        h_moved = net.conditioner(0.2, moved)
        assert torch.equal(h_moved[:, i], h[:, i])
        assert not torch.equal(h_moved[:, (i + 1) % dim], h[:, (i + 1) % dim])


def test_higher_order_dimwise_derivatives_in_k_passes():
    dim = 5
    net = _net(dim, activation="softplus", transformer_depth=2)
    t = torch.tensor(-0.4, dtype=F64)
    x = torch.randn(3, dim, dtype=F64)
    _, derivatives = dimwise_derivative(net, t, x, order=3)
    one_point = lambda xb: net(t, xb)  # noqa: E731
    second = torch.func.vmap(torch.func.jacfwd(torch.func.jacrev(one_point)))(x)
    third = torch.func.vmap(torch.func.jacfwd(torch.func.jacfwd(torch.func.jacrev(one_point))))(x)
    i = torch.arange(dim)
    assert len(derivatives) == 3
    assert torch.allclose(derivatives[1], second[:, i, i, i], rtol=0, atol=1e-10)
    assert torch.allclose(derivatives[2], third[:, i, i, i, i], rtol=0, atol=1e-10)


def test_parameter_and_input_gradients_through_value_and_divergence_are_the_true_ones():
    dim = 7
    net = _net(dim)
    t = torch.tensor(0.5, dtype=F64)
    x = torch.randn(4, dim, dtype=F64, requires_grad=True)
    weights = torch.randn(4, dim, dtype=F64)
    params = [x, *net.parameters()]

    value, div = divergence(net, t, x, create_graph=True)
    loss = (weights * value).sum() + (div**2).sum()
    grads = torch.autograd.grad(loss, params)

    value_ref = net(t, x)
    trace = sum(torch.autograd.grad(value_ref[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(dim))
    loss_ref = (weights * value_ref).sum() + (trace**2).sum()
    grads_ref = torch.autograd.grad(loss_ref, params)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)


def test_batch_shapes_float32_and_no_grad():
    net = HollowNet(4, hidden=8, transformer_hidden=8)
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        value, (diagonal,) = dimwise_derivative(net, 0.0, x)
    assert value.shape == diagonal.shape == (2, 3, 4)
    assert value.dtype == diagonal.dtype == torch.float32
    assert not value.requires_grad and not diagonal.requires_grad
    jac = torch.func.vmap(torch.func.jacrev(lambda xb: net(0.0, xb)))(x.reshape(6, 4))
    assert torch.allclose(diagonal.reshape(6, 4), jac.diagonal(dim1=-2, dim2=-1), atol=1e-6)
    assert isinstance(net, DimwiseDifferentiable)


def test_is_a_field_for_odeint():
    net = _net(3)
    x0 = torch.randn(5, 3, dtype=F64)
    t = torch.linspace(0, 1, 5, dtype=F64)
    ys = sdl.odeint(net, x0, t, method="rk4")
    assert ys.shape == (5, 5, 3) and torch.isfinite(ys).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="activation"):
        HollowNet(3, activation="relu")
    with pytest.raises(ValueError, match="dim"):
        HollowNet(0)
    with pytest.raises(ValueError, match="conditioner_depth"):
        HollowNet(3, conditioner_depth=0)
    net = HollowNet(3)
    with pytest.raises(ValueError, match="order"):
        dimwise_derivative(net, 0.0, torch.randn(2, 3), order=0)
    with pytest.raises(ValueError, match="last dimension 3"):
        net(0.0, torch.randn(2, 4))


# ----- Jacobi–Newton stage solver -------------------------------------------------------------------


class _StiffHollowField(nn.Module, DimwiseDifferentiable):
    """f(t, y) = -λ ⊙ y + g(t, y), g a HollowNet; stiff along the diagonal when max λ h ≫ 1."""

    def __init__(self, dim, stiffness):
        super().__init__()
        self.net = _net(dim)
        self.register_buffer("rates", torch.logspace(0, torch.log10(torch.tensor(stiffness)).item(), dim, dtype=F64))

    def forward(self, t, y):
        return -self.rates * y + self.net(t, y)

    def value_and_jacobian_diagonal(self, t, y, *, create_graph=False):
        value, diagonal = self.net.value_and_jacobian_diagonal(t, y, create_graph=create_graph)
        return -self.rates * y + value, diagonal - self.rates


class _PlainField(nn.Module):
    def forward(self, t, y):
        return -y


@pytest.mark.parametrize("method", ["backward_euler", "implicit_midpoint", "gauss_legendre4"])
def test_jacobi_newton_steps_match_dense_newton_on_a_stiff_problem(method):
    field = _StiffHollowField(5, stiffness=1e4)
    y = torch.randn(2, 5, dtype=F64)
    t, h = torch.tensor(0.1, dtype=F64), 0.05  # h·max λ = 500
    jacobi = sdl.integrators.get(method, solver="jacobi_newton", tol=1e-13, max_iter=200)
    newton = sdl.integrators.get(method, solver="newton", tol=1e-13)
    assert isinstance(jacobi.solver, JacobiNewtonSolver)
    assert torch.allclose(jacobi.step(field, t, h, y), newton.step(field, t, h, y), rtol=0, atol=1e-11)
    with pytest.raises(ConvergenceError):
        sdl.integrators.get(method, solver="fixed_point").step(field, t, h, y)


class _DiagonalField(nn.Module, DimwiseDifferentiable):
    """f(t, y) = -λ ⊙ y with λ = (1, 10³, 10⁶): all stiffness on the diagonal."""

    def __init__(self):
        super().__init__()
        self.register_buffer("rates", torch.tensor([1.0, 1e3, 1e6], dtype=F64))

    def forward(self, t, y):
        return -self.rates * y

    def value_and_jacobian_diagonal(self, t, y, *, create_graph=False):
        return self(t, y), (-self.rates).expand_as(y)


def test_jacobi_newton_solves_a_diagonal_stiff_field_in_three_iterations():
    Diagonal = _DiagonalField
    y = torch.randn(2, 3, dtype=F64)
    h, t = 0.1, torch.tensor(0.0, dtype=F64)
    # one update solves the linear stage equation up to the rounding of a start 1e6 times too
    # large; a second removes that, a third confirms it (fixed-point iteration diverges here)
    stepper = ImplicitRungeKutta(TABLEAUS["backward_euler"], JacobiNewtonSolver(tol=1e-14, max_iter=3))
    assert torch.allclose(stepper.step(Diagonal(), t, h, y), y / (1 + h * Diagonal().rates), rtol=0, atol=1e-15)


def test_gradients_through_jacobi_newton_steps_match_dense_newton():
    field = _StiffHollowField(3, stiffness=1e3)
    y0 = torch.randn(2, 3, dtype=F64, requires_grad=True)
    t = torch.tensor(0.0, dtype=F64)
    grads = []
    for solver in ("jacobi_newton", "newton"):
        stepper = sdl.integrators.get("gauss_legendre4", solver=solver, tol=1e-14, max_iter=300)
        y = stepper.step(field, t, 0.05, stepper.step(field, t, 0.05, y0))
        grads.append(torch.autograd.grad(y.pow(2).sum(), [y0, *field.parameters()]))
    for g_jacobi, g_newton in zip(*grads, strict=True):
        assert torch.allclose(g_jacobi, g_newton, rtol=1e-8, atol=1e-10)


def test_jacobi_newton_needs_a_dimwise_differentiable_field():
    stepper = sdl.integrators.get("backward_euler", solver="jacobi_newton")
    with pytest.raises(TypeError, match="DimwiseDifferentiable"):
        stepper.step(_PlainField(), torch.tensor(0.0), 0.1, torch.randn(3))
    with pytest.raises(TypeError, match="stage equations"):
        JacobiNewtonSolver().solve(lambda k: k, torch.zeros(1, 3))
    with pytest.raises(TypeError, match="DimwiseDifferentiable"):
        y0 = torch.randn(3, requires_grad=True)
        sdl.odeint(
            _PlainField(), y0, torch.linspace(0, 0.2, 3), method="backward_euler", gradient="otd", solver="jacobi_newton"
        ).sum().backward()


@pytest.mark.parametrize("method", ["backward_euler", "gauss_legendre4"])
def test_jacobi_newton_adjoint_equals_autograd_through_newton_steps(method):
    """gradient="otd" with Jacobi–Newton solves the adjoint stage equations by the transposed
    block-Jacobi update; on a stiff field (h·max λ = 50, where fixed-point iteration fails) it
    equals backpropagation through dense-Newton steps."""
    field = _StiffHollowField(4, stiffness=1e3)
    y0 = torch.randn(3, 4, dtype=F64)
    t = torch.linspace(0, 0.25, 6, dtype=F64)
    grads = []
    for solver, gradient in (("jacobi_newton", "otd"), ("newton", "dto")):
        start = y0.clone().requires_grad_()
        ys = sdl.odeint(field, start, t, method=method, gradient=gradient, solver=solver, tol=1e-14, max_iter=300)
        grads.append(torch.autograd.grad(ys.pow(2).sum(), [start, *field.parameters()]))
    for g_jacobi, g_newton in zip(*grads, strict=True):
        torch.testing.assert_close(g_jacobi, g_newton, rtol=1e-10, atol=1e-12)
    with pytest.raises(ConvergenceError):
        start = y0.clone().requires_grad_()
        sdl.odeint(field, start, t, method=method, gradient="otd", solver="fixed_point").sum().backward()


def test_jacobi_newton_adjoint_solves_a_diagonal_stiff_field_in_three_iterations():
    """For f = -λ ⊙ y the adjoint of N Gauss–Legendre steps is exact, ∂(Σ y_N)/∂y_0 = R(-hλ)^N with
    R the method's stability function, and the transposed blocks are the exact Jacobian of the
    (linear) adjoint stage equations: three iterations suffice where h λ = 10⁵ (the untransposed
    blocks of this non-symmetric tableau would not converge)."""
    field, h, steps = _DiagonalField(), 0.1, 4
    y0 = torch.randn(2, 3, dtype=F64, requires_grad=True)
    t = torch.arange(steps + 1, dtype=F64) * h
    y_last = sdl.odeint(
        field, y0, t, method="gauss_legendre4", gradient="otd", output="last", solver="jacobi_newton", tol=1e-14, max_iter=3
    )
    (grad,) = torch.autograd.grad(y_last.sum(), y0)
    growth = torch.from_numpy(TABLEAUS["gauss_legendre4"].stability_function((-h * field.rates).numpy())).real
    torch.testing.assert_close(grad, (growth**steps).expand_as(grad), rtol=1e-12, atol=1e-14)


def test_jacobi_newton_through_odeint():
    """The capability survives odeint: a stiff HollowNet field integrated over several steps."""
    field = _StiffHollowField(4, stiffness=1e4)
    y0 = torch.randn(3, 4, dtype=F64)
    t = torch.linspace(0, 0.5, 6, dtype=F64)
    jacobi = sdl.odeint(field, y0, t, method="backward_euler", solver="jacobi_newton", tol=1e-13, max_iter=200)
    newton = sdl.odeint(field, y0, t, method="backward_euler", solver="newton", tol=1e-13)
    assert torch.allclose(jacobi, newton, rtol=0, atol=1e-11)


# ----- the network itself: its formula, defaults, initialisation and messages -----------------------


def _reference_forward(net, t, x, sigma):
    """f_i = τ([x_i, h_i]) from the docstring's formula, written with plain loops over i and j ≠ i."""
    d = x.shape[-1]
    rows = []
    for i in range(d):
        pre = sum(x[..., j, None] * net.input_weight[j] for j in range(d) if j != i) + net.dim_offset[i]
        if net.time_weight is not None:
            pre = pre + t * net.time_weight
        h = sigma(pre)
        for layer in net.conditioner_layers:
            h = sigma(h @ layer.weight.T + layer.bias)
        z = sigma(x[..., i, None] * net.self_weight + h @ net.hidden_to_transformer.weight.T + net.hidden_to_transformer.bias)
        for layer in net.transformer_layers:
            z = sigma(z @ layer.weight.T + layer.bias)
        rows.append((z @ net.transformer_out.weight.T + net.transformer_out.bias)[..., 0])
    return torch.stack(rows, dim=-1)


@pytest.mark.parametrize("activation, sigma", [("tanh", torch.tanh), ("silu", nn.functional.silu)])
def test_forward_is_the_documented_formula(activation, sigma):
    """A plain-loop transcription of h_i = σ(Σ_{j≠i} x_j w_j + e_i + t w_t) (then the conditioner's
    layers) and f_i = τ(x_i v + U h_i + b), at depths 3 and 2 with t entering."""
    torch.manual_seed(0)
    net = HollowNet(
        4, hidden=5, conditioner_depth=3, transformer_hidden=6, transformer_depth=2, time_dependent=True, activation=activation
    ).double()
    assert len(net.conditioner_layers) == 2 and len(net.transformer_layers) == 1
    x = torch.randn(3, 2, 4, dtype=F64)
    t = torch.tensor(0.7, dtype=F64)
    torch.testing.assert_close(net(t, x), _reference_forward(net, t, x, sigma), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(net(0.7, x), _reference_forward(net, t, x, sigma), rtol=1e-13, atol=1e-14)  # t in x's dtype


def test_defaults_parameter_shapes_and_initial_ranges():
    """Defaults k = m = 32, depths 2 and 1, no time, tanh; w_j and e_i ~ U(±d^-1/2), w_t and v ~ U(±1)."""
    torch.manual_seed(0)
    d = 16
    net = HollowNet(d)
    assert (net.dim, net.time_dependent, net.activation, net.time_weight) == (d, False, "tanh", None)
    assert net.input_weight.shape == net.dim_offset.shape == (d, 32)
    assert len(net.conditioner_layers) == 1 and len(net.transformer_layers) == 0
    assert net.self_weight.shape == (32,) and net.hidden_to_transformer.weight.shape == (32, 32)
    timed = HollowNet(d, time_dependent=True)
    assert timed.time_dependent is True and timed.time_weight.shape == (32,)
    for weight, bound in (
        (net.input_weight, d**-0.5),
        (net.dim_offset, d**-0.5),
        (timed.time_weight, 1.0),
        (net.self_weight, 1.0),
    ):
        assert weight.abs().max() <= bound  # inside the range, and spread over it (512 or 32 draws)
        assert weight.max() > 0.8 * bound and weight.min() < -0.8 * bound


@pytest.mark.parametrize("name", ["hidden", "conditioner_depth", "transformer_hidden", "transformer_depth"])
def test_sizes_must_be_integers_of_at_least_one(name):
    assert HollowNet(1, **{name: 1}).dim == 1  # the smallest valid sizes
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError) as error:
            HollowNet(2, **{name: bad})
        assert str(error.value) == f"{name} must be an integer ≥ 1; got {bad!r}"
    with pytest.raises(ValueError, match=r"^dim must be an integer ≥ 1; got 0$"):
        HollowNet(0)
    with pytest.raises(ValueError, match=r"^unknown activation 'relu'; valid choices: tanh, softplus, silu$"):
        HollowNet(2, activation="relu")
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=rf"^order must be an integer ≥ 1; got {bad!r}$"):
            dimwise_derivative(HollowNet(2), 0.0, torch.randn(3, 2), order=bad)


def test_derivatives_keep_their_graph_only_when_asked():
    """Defaults detach D_dim f (a stage solver needs values only); create_graph=True keeps it, so a loss
    of the divergence (a CNF's log-density) reaches the parameters."""
    net = _net(3)
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    assert not net.value_and_jacobian_diagonal(0.0, x)[1].requires_grad
    assert not dimwise_derivative(net, 0.0, x)[1][0].requires_grad
    assert not divergence(net, 0.0, x)[1].requires_grad
    for diagonal in (
        net.value_and_jacobian_diagonal(0.0, x, create_graph=True)[1],
        divergence(net, 0.0, x, create_graph=True)[1],
    ):
        (grad,) = torch.autograd.grad(diagonal.sum(), net.self_weight)
        assert grad.abs().max() > 0


def test_divergence_sums_over_the_last_axis_of_any_batch():
    net = _net(4)
    x = torch.randn(2, 3, 4, dtype=F64)
    value, div = divergence(net, 0.0, x)
    assert value.shape == (2, 3, 4) and div.shape == (2, 3)
    torch.testing.assert_close(div, dimwise_derivative(net, 0.0, x)[1][0].sum(-1), rtol=0, atol=0)
