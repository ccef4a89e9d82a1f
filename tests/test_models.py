"""Vector fields, activations and the ODE-network: the structure each one promises."""

import math
import re

import pytest
import torch

import sdl
from sdl.models import (
    AntisymmetricField,
    GradientFlowField,
    HamiltonianField,
    ODENet,
    ResNetField,
    SwitchingField,
    activation,
    activation_names,
    leaky_relu,
    parameter_smoothness,
)
from sdl.stability import jacobians

F64 = torch.float64


@pytest.mark.parametrize("name", activation_names())
def test_antiderivative_and_derivative_match_autograd(name):
    act = activation(name)
    x = torch.linspace(-40, 40, 4001, dtype=F64, requires_grad=True)
    (d_gamma,) = torch.autograd.grad(act.antiderivative(x).sum(), x)
    (d_sigma,) = torch.autograd.grad(act.sigma(x).sum(), x)
    torch.testing.assert_close(d_gamma, act.sigma(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(d_sigma, act.derivative(x), rtol=0, atol=1e-13)
    assert act.antiderivative(torch.zeros(1, dtype=F64)).item() == pytest.approx(0.0, abs=1e-15)


def test_softplus_antiderivative_matches_quadrature():
    from scipy.integrate import quad

    act = activation("softplus")
    for x in (-7.0, -0.3, 0.0, 0.9, 12.0):
        exact, _ = quad(lambda s: float(act.sigma(torch.tensor(s, dtype=F64))), 0.0, x, epsabs=1e-13, epsrel=1e-13)
        assert act.antiderivative(torch.tensor(x, dtype=F64)).item() == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("act", [*activation_names(), leaky_relu(0.5), leaky_relu(0.0)], ids=str)
def test_activation_slopes_lie_between_min_slope_and_lipschitz(act):
    """m ≤ σ' ≤ L_σ on a wide grid, both attained or approached (so neither constant is loose)."""
    act = activation(act)
    x = torch.linspace(-30, 30, 60001, dtype=F64)
    slope = act.derivative(x)
    assert slope.min() >= act.min_slope - 1e-15 and slope.max() <= act.lipschitz + 1e-15
    assert slope.min() <= act.min_slope + 1e-12 and slope.max() >= act.lipschitz - 1e-12


def test_leaky_relu_slope_must_keep_the_activation_monotone():
    assert activation("leaky_relu").min_slope == 0.01 and leaky_relu(0.5).name == "leaky_relu(0.5)"
    with pytest.raises(ValueError, match=r"negative_slope must lie in \[0, 1\]"):
        leaky_relu(1.5)


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="unknown activation 'gelu'; valid names: tanh, relu, identity, softplus"):
        activation("gelu")


def _points(n=64, d=3):
    return torch.randn(n, d, dtype=F64)


@pytest.mark.parametrize("cls", [ResNetField, GradientFlowField])
@pytest.mark.parametrize("act", ["tanh", "softplus", "identity"])
def test_analytic_jacobian_equals_autograd(cls, act):
    field = cls(3, act, num_layers=2).double()
    layer = field.layers()[1]
    z = _points()
    t = torch.tensor(0.0, dtype=F64)
    auto = torch.func.vmap(torch.func.jacrev(lambda x: layer(t, x)))(z)
    torch.testing.assert_close(layer.jacobian(t, z), auto, rtol=0, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "relu", "softplus", "identity"])
def test_gradient_flow_jacobian_is_symmetric_negative_semidefinite(act):
    field = GradientFlowField(3, act, width=5, init_scale=2.0).double()
    jac = field.layers()[0].jacobian(None, 2 * _points(1000))
    torch.testing.assert_close(jac, jac.transpose(-1, -2), rtol=0, atol=1e-15)
    assert torch.linalg.eigvalsh(jac).max() <= 1e-12


def test_gradient_flow_is_minus_gradient_of_its_potential():
    field = GradientFlowField(3, "tanh", width=4).double()
    z = _points().requires_grad_()
    (grad,) = torch.autograd.grad(field.potential(z).sum(), z)
    torch.testing.assert_close(field(None, z), -grad, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kinetic", ["quadratic", "coupled", "learned"])
@pytest.mark.parametrize("act", ["tanh", "softplus", "relu"])
def test_hamiltonian_field_is_the_canonical_field_of_its_hamiltonian(kinetic, act):
    field = HamiltonianField(3, act, kinetic=kinetic, kinetic_activation="softplus", width=4).double()
    q, p = _points().requires_grad_(), _points().requires_grad_()
    dh_dq, dh_dp = torch.autograd.grad(field.hamiltonian(q, p).sum(), (q, p))
    dq, dp = field(None, (q, p))
    torch.testing.assert_close(dq, dh_dp, rtol=0, atol=1e-14)
    torch.testing.assert_close(dp, -dh_dq, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kinetic", ["quadratic", "coupled", "learned"])
def test_exact_hamiltonian_flow_conserves_energy(kinetic):
    """Integrated accurately (RK4, h = 1e-3), H changes only by the O(h⁴) error."""
    field = HamiltonianField(2, "tanh", kinetic=kinetic, init_scale=2.0).double()
    q0, p0 = _points(32, 2), _points(32, 2)
    q, p = sdl.odeint(field, (q0, p0), torch.linspace(0, 1, 1001, dtype=F64), method="rk4")
    energy = field.hamiltonian(q, p)
    assert (energy - energy[0]).abs().max() < 1e-11
    assert (q[-1] - q0).abs().max() > 1e-2  # the flow moved


def _lipschitz_cases():
    fields = (ResNetField, GradientFlowField, AntisymmetricField)
    return [(cls, act, layers) for cls in fields for act in activation_names() for layers in (None, 3)]


@pytest.mark.parametrize("cls, act, layers", _lipschitz_cases())
def test_lipschitz_bound_is_an_upper_bound(cls, act, layers):
    """L ≥ ‖f(z₁) - f(z₂)‖/‖z₁ - z₂‖ over many random pairs (far apart and close), and ≥ ‖J(z)‖₂."""
    field = cls(3, act, num_layers=layers, init_scale=2.0).double()
    bound = field.lipschitz_bound()
    assert bound.shape == (() if layers is None else (layers,))
    t = torch.tensor(0.0, dtype=F64)
    for k, layer in enumerate(field.layers()):
        z1 = 3 * _points(4000)
        z2 = torch.cat([3 * _points(2000), z1[2000:] + 1e-3 * _points(2000)])
        ratios = (layer(t, z1) - layer(t, z2)).norm(dim=-1) / (z1 - z2).norm(dim=-1)
        jacobian_norms = torch.linalg.matrix_norm(layer.jacobian(t, z1), 2)
        layer_bound = bound if layers is None else bound[k]
        assert ratios.max() <= layer_bound * (1 + 1e-12)
        assert jacobian_norms.max() <= layer_bound * (1 + 1e-12)
        assert ratios.max() > 0.2 * layer_bound  # and not a vacuous bound


@pytest.mark.parametrize("cls", [ResNetField, GradientFlowField])
def test_lipschitz_bound_is_tight_for_the_identity_activation(cls):
    """σ(s) = s: f is affine, its Lipschitz constant is ‖J‖₂ (= ‖A‖₂, or ‖A‖₂² for the gradient
    flow), and the bound equals it; along the top right singular vector the ratio attains it."""
    field = cls(4, "identity", num_layers=2, init_scale=2.0).double()
    bound = field.lipschitz_bound()
    t = torch.tensor(0.0, dtype=F64)
    for k, layer in enumerate(field.layers()):
        jacobian_norm = torch.linalg.matrix_norm(layer.jacobian(t, _points(1, 4)), 2).squeeze()
        assert abs(jacobian_norm - bound[k]) <= 1e-12 * bound[k]
        direction = torch.linalg.svd(field.weight[k].detach())[2][0]
        z = _points(1, 4)
        ratio = (layer(t, z + direction) - layer(t, z)).norm() / direction.norm()
        assert abs(ratio - bound[k]) <= 1e-12 * bound[k]


def test_lipschitz_bound_is_differentiable_and_needs_a_known_activation_constant():
    field = ResNetField(3, num_layers=2)
    field.lipschitz_bound().sum().backward()
    assert field.weight.grad.abs().max() > 0
    custom = sdl.models.Activation("cube", lambda x: x**3, lambda x: 3 * x**2, lambda x: x**4 / 4, False)
    with pytest.raises(ValueError, match="the Lipschitz constant of activation 'cube' is not known"):
        GradientFlowField(3, custom).lipschitz_bound()


def test_layered_field_refuses_to_guess_its_layer():
    field = ResNetField(2, num_layers=3)
    with pytest.raises(TypeError, match=r"one parameter set per layer \(3\); integrate it .* grid of 4 points"):
        field(torch.tensor(0.0), torch.zeros(1, 2))


def test_smoothness_regulariser_against_hand_computation():
    field = ResNetField(2, num_layers=3).double()
    with torch.no_grad():
        field.weight.copy_(torch.tensor([[[0.0, 0], [0, 0]], [[1.0, 0], [0, 2]], [[1.0, 0], [0, 2]]]))
        field.bias.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]]))
    h = 0.5
    # h Σ ‖Δθ/h‖²: Δθ¹ = (A: 1, 2; b: 0) → 5, Δθ² = (A: 0; b: 3) → 9
    assert parameter_smoothness(field, h).item() == pytest.approx((5 + 9) / h, abs=1e-14)
    assert parameter_smoothness(field, h, form="difference").item() == pytest.approx((5 + 9) * h, abs=1e-14)
    assert parameter_smoothness(ResNetField(2), h).item() == 0.0
    with pytest.raises(ValueError, match="unknown smoothness form 'l1'; valid choices: derivative, difference"):
        parameter_smoothness(field, h, form="l1")


class _ScaledResNetField(ResNetField):
    """ResNetField times a scale shared by every layer (a parameter outside layer_parameters())."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale = torch.nn.Parameter(torch.tensor([1.0, -3.0]))

    def _evaluate(self, params, t, z):
        return self.scale * super()._evaluate(params, t, z)


def test_smoothness_regulariser_ignores_a_parameter_shared_by_all_layers():
    """A shared parameter is constant in t (roughness 0); it used to be differenced along its own
    first axis as if that were the layer axis (here adding (−3 − 1)² = 16)."""
    field = _ScaledResNetField(2, num_layers=3).double()
    with torch.no_grad():
        field.weight.copy_(torch.tensor([[[0.0, 0], [0, 0]], [[1.0, 0], [0, 2]], [[1.0, 0], [0, 2]]]))
        field.bias.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]]))
    assert parameter_smoothness(field, 0.5).item() == pytest.approx((5 + 9) / 0.5, abs=1e-14)


@pytest.mark.parametrize("h", [0, 0.0, -0.5, math.inf, math.nan, "0.5"])
def test_smoothness_regulariser_rejects_a_step_size_that_is_not_finite_and_positive(h):
    field = ResNetField(2, num_layers=3)
    with pytest.raises(ValueError, match=re.escape(f"h must be a finite positive number, got {h!r}")):
        parameter_smoothness(field, h)


@pytest.mark.parametrize("num_classes, shape", [(2, (10,)), (4, (10, 4))])
def test_network_output_shapes(num_classes, shape):
    net = ODENet(ResNetField(4, num_layers=5), num_classes=num_classes)
    x = torch.randn(10, 2)
    assert net(x).shape == shape
    assert net.trajectory(x).shape == (6, 10, 4)
    probs, logits = net.predict_proba(x), net(x)
    assert probs.shape == shape
    # η of the logits: the logistic function for 2 classes, softmax over the classes otherwise
    expected = 1 / (1 + torch.exp(-logits)) if num_classes == 2 else torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    torch.testing.assert_close(probs, expected, rtol=1e-6, atol=1e-7)


def test_hamiltonian_network_with_splitting_method():
    net = ODENet(HamiltonianField(3, num_layers=4), method="verlet", momentum="linear")
    q, p = net.trajectory(torch.randn(7, 2))
    assert q.shape == p.shape == (5, 7, 3)
    assert net(torch.randn(7, 2)).shape == (7,)


def test_forward_reads_only_the_last_state_and_adjoint_training_equals_autograd(monkeypatch):
    """forward asks its solve for z^K alone, so an adjoint with reverse recovery keeps O(1) states;
    logits equal those from the full trajectory, and the OTD gradient equals the DTO one."""
    import sdl.models.network as network

    requested = []
    real_integrate = network.integrate
    monkeypatch.setattr(network, "integrate", lambda solve, *a: requested.append(solve.output) or real_integrate(solve, *a))
    x, y = torch.randn(9, 2, dtype=F64), torch.randint(0, 2, (9,))
    grads = []
    for gradient in ("dto", sdl.Adjoint(recovery="reverse")):
        torch.manual_seed(0)
        net = ODENet(HamiltonianField(3, num_layers=4), method="leapfrog", momentum="linear", gradient=gradient).double()
        logits = net(x)
        assert requested[-1] == "last"
        torch.testing.assert_close(logits, net.classify(net.trajectory(x)[0][-1]), rtol=0, atol=1e-14)
        grads.append(
            torch.autograd.grad(torch.nn.functional.binary_cross_entropy_with_logits(logits, y.double()), list(net.parameters()))
        )
    for g_dto, g_otd in zip(*grads, strict=True):
        torch.testing.assert_close(g_otd, g_dto, rtol=1e-12, atol=1e-14)


def test_changing_layer_k_changes_only_states_after_it():
    torch.manual_seed(1)
    net = ODENet(ResNetField(3, num_layers=6), method="kutta3").double()
    x = torch.randn(20, 2, dtype=F64)
    before = net.trajectory(x)
    with torch.no_grad():
        net.field.weight[3] += 0.5
    after = net.trajectory(x)
    assert torch.equal(before[:4], after[:4])  # z^0..z^3 do not see θ^3
    assert ((before[4:] - after[4:]).abs().amax(dim=(1, 2)) > 0).all()


def test_swapping_the_integrator_is_one_word():
    field = ResNetField(2, num_layers=10).double()
    x = torch.randn(5, 2, dtype=F64)
    final = {m: ODENet(field, method=m).double().trajectory(x)[-1] for m in ("euler", "heun", "kutta3", "rk4")}
    # the same field, integrated ever more accurately: distances to RK4 shrink with the order
    gaps = [(final[m] - final["rk4"]).abs().max().item() for m in ("euler", "heun", "kutta3")]
    assert gaps[0] > gaps[1] > gaps[2] > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="verlet"), "needs a field on pairs such as HamiltonianField; got ResNetField"),
        (dict(lift="spline"), "unknown lift 'spline'; valid choices: pad, linear"),
        (dict(num_steps=4), "the field has 3 layers but num_steps=4"),
        (dict(num_classes=1), "num_classes must be at least 2"),
        (dict(t_final=0.0), "t_final must be positive"),
        (dict(method="rk9"), "unknown integrator 'rk9'; valid names"),
    ],
)
def test_network_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ODENet(ResNetField(2, num_layers=3), **kwargs)


def test_a_network_cast_to_float64_steps_with_float64_step_sizes():
    """The time grid is built in the input's dtype, not cast from a float32 one (h = 1/3 exactly)."""
    torch.manual_seed(0)
    net = ODENet(ResNetField(2, num_layers=3), t_final=1.0, method="euler").double()
    x = torch.randn(5, 2, dtype=F64)
    z = x.clone()
    for k in range(3):
        z = z + (1 / 3) * torch.tanh(z @ net.field.weight[k].T + net.field.bias[k])
    torch.testing.assert_close(net(x), net.classify(z), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_steps=0), ValueError, "num_steps must be a positive int, got 0"),
        (dict(gradient="bogus"), ValueError, "unknown gradient 'bogus'; valid choices: dto, otd, or an sdl.Adjoint"),
        (dict(momentum="linear"), ValueError, "momentum='linear' needs a field on .q, p. pairs"),
        (dict(method=sdl.integrators.get("rk4"), tol=1e-8), TypeError, "tol configure a method given by name"),
    ],
)
def test_network_arguments_fail_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        ODENet(ResNetField(2), **{"num_steps": 3, **kwargs})


def test_pad_lift_needs_enough_width():
    with pytest.raises(ValueError, match=r"lift='pad' needs the field's dim \(1\) ≥ in_dim \(2\)"):
        ODENet(ResNetField(1, num_layers=3))


@pytest.mark.parametrize("lift", ["pad", "linear"])
def test_input_with_the_wrong_number_of_features_is_rejected(lift):
    """Zero padding would otherwise truncate a 5-feature input to the width 4 without a word."""
    model = ODENet(ResNetField(4, num_layers=3), lift=lift)
    assert model(torch.randn(6, 2)).shape == (6,)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2\) \(in_dim=2\), got \(6, 5\)"):
        model(torch.randn(6, 5))


@pytest.mark.parametrize("gamma", [0.0, 1e-4, 0.3])
def test_antisymmetric_field_jacobian_eigenvalues_have_real_part_minus_gamma(gamma):
    """σ = identity: the Jacobian W - Wᵀ - γI is normal with eigenvalues -γ ± iω, so every real
    part is exactly -γ (float64, 1e-12), and the imaginary parts are not all zero."""
    field = AntisymmetricField(5, "identity", num_layers=3, gamma=gamma, init_scale=2.0).double()
    t = torch.tensor(0.0, dtype=F64)
    for layer in field.layers():
        eigenvalues = torch.linalg.eigvals(layer.jacobian(t, _points(4, 5)))
        assert (eigenvalues.real + gamma).abs().max() <= 1e-12
        assert eigenvalues.imag.abs().max() > 0.1


@pytest.mark.parametrize("act", ["tanh", "softplus", "identity"])
def test_antisymmetric_field_analytic_jacobian_equals_autograd(act):
    field = AntisymmetricField(4, act, num_layers=2, gamma=0.1, init_scale=2.0).double()
    t = torch.tensor(0.0, dtype=F64)
    for layer in field.layers():
        z = _points(6, 4)
        torch.testing.assert_close(layer.jacobian(t, z), jacobians(lambda y, layer=layer: layer(t, y), z), rtol=0, atol=1e-12)


def test_antisymmetric_field_rejects_a_negative_gamma():
    with pytest.raises(ValueError, match="gamma must be a finite number ≥ 0"):
        AntisymmetricField(3, gamma=-0.1)


def test_switching_field_alternates_expansive_and_contractive_layers():
    """Layer 2j is σ(Az + b), layer 2j+1 is -Aᵀσ(Az + b); Jacobians and bounds follow the kind."""
    field = SwitchingField(3, leaky_relu(0.3), num_layers=4, init_scale=2.0).double()
    t, z = torch.tensor(0.0, dtype=F64), _points(5, 3)
    act = field.activation
    for k, layer in enumerate(field.layers()):
        weight, bias = field.weight[k], field.bias[k]
        u = act.sigma(z @ weight.T + bias)
        expected = u if k % 2 == 0 else -u @ weight
        torch.testing.assert_close(layer(t, z), expected, rtol=0, atol=1e-14)
        torch.testing.assert_close(layer.jacobian(t, z), jacobians(lambda y, layer=layer: layer(t, y), z), rtol=0, atol=1e-12)
        norm = torch.linalg.matrix_norm(weight, 2)
        assert layer.lipschitz_bound().item() == pytest.approx((norm if k % 2 == 0 else norm**2).item(), rel=1e-14)
        assert (layer.circle_radius() is None) == (k % 2 == 0)


def test_switching_field_needs_an_even_number_of_layers():
    with pytest.raises(ValueError, match="num_layers must be an even int ≥ 2"):
        SwitchingField(3, num_layers=3)


def test_smoothness_leaves_out_the_layer_kinds_of_a_switching_field():
    field = SwitchingField(2, num_layers=4).double()
    expected = field.weight.diff(dim=0).square().sum() + field.bias.diff(dim=0).square().sum()
    assert parameter_smoothness(field, 0.5, "difference").item() == pytest.approx(0.5 * expected.item(), rel=1e-14)


@pytest.mark.parametrize("act, width", [("relu", 3), ("tanh", 5), (leaky_relu(0.4), 5), ("identity", 5)])
def test_gradient_flow_layers_satisfy_their_circle_condition(act, width):
    """⟨Δf, Δz⟩ ≤ -‖Δf‖²/(2ρ) and ⟨Δf, Δz⟩ ≤ ν‖Δz‖² over many random pairs, far apart and close;
    for σ = identity with a tall A both are equalities along singular vectors (tight)."""
    field = GradientFlowField(3, act, num_layers=2, width=width, init_scale=2.0).double()
    t = torch.tensor(0.0, dtype=F64)
    for layer in field.layers():
        rho, nu = layer.circle_radius().item(), layer.one_sided_lipschitz_bound().item()
        z1 = 3 * _points(4000)
        z2 = torch.cat([3 * _points(2000), z1[2000:] + 1e-3 * _points(2000)])
        dz, df = z1 - z2, layer(t, z1) - layer(t, z2)
        inner = (df * dz).sum(-1)
        assert (inner + df.square().sum(-1) / (2 * rho)).max() <= 1e-12 * dz.square().sum(-1).max()
        assert (inner - nu * dz.square().sum(-1)).max() <= 1e-12 * dz.square().sum(-1).max()
        if activation(act).min_slope and width >= 3:
            assert nu < 0  # strongly monotone: m > 0 and A of full column rank
    assert torch.equal(field.circle_radius(), torch.stack([layer.circle_radius() for layer in field.layers()]))
