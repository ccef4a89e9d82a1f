"""Lipschitz certificates of ODE-networks and the radii they certify: never below what can be measured."""

import math

import pytest
import torch
from problems import fit

from sdl.integrators import TABLEAUS, ExplicitRungeKutta
from sdl.models import (
    AntisymmetricField,
    GradientFlowField,
    HamiltonianField,
    ODENet,
    ResNetField,
    SwitchingField,
    leaky_relu,
)
from sdl.stability import (
    certified_accuracy,
    certified_radius,
    classification_margin,
    contractivity_radius,
    lipschitz_bound,
    pgd_l2,
    robust_accuracy,
    step_lipschitz_bound,
)

F64 = torch.float64

MODELS = {
    "resnet_rk4_linear_lift": lambda: ODENet(
        ResNetField(4, "tanh", num_layers=3, init_scale=2.0), in_dim=3, num_classes=3, lift="linear"
    ),
    "gradient_flow_euler_binary": lambda: ODENet(
        GradientFlowField(3, "relu", num_layers=4, init_scale=3.0), method="euler", in_dim=2
    ),
    "antisymmetric_ssprk3": lambda: ODENet(
        AntisymmetricField(4, "tanh", num_layers=3, gamma=0.1), method="ssprk3", in_dim=4, num_classes=4
    ),
    "nonexpansive_rk4_orthogonal": lambda: ODENet(
        GradientFlowField(4, "tanh", num_layers=4, width=6, init_scale=6.0),
        in_dim=3,
        num_classes=3,
        lift="orthogonal",
        head="orthogonal",
        constraint="nonexpansive",
    ),
    "nonexpansive_step_heun_spectral": lambda: ODENet(
        GradientFlowField(4, "relu", num_layers=3, init_scale=6.0),
        method="heun",
        in_dim=6,
        lift="spectral",
        constraint="nonexpansive_step",
    ),
    "switching_euler": lambda: ODENet(
        SwitchingField(3, leaky_relu(0.5), num_layers=4, init_scale=2.0),
        method="euler",
        in_dim=3,
        num_classes=3,
        constraint="switching",
    ),
    "gradient_flow_kutta3_unconstrained": lambda: ODENet(
        GradientFlowField(3, "softplus", num_layers=2, init_scale=2.0), method="kutta3", in_dim=3, num_classes=3
    ),
}


def _input_jacobian_norms(model, x):
    """‖∂logits/∂x‖₂ at each point (N,), by autograd, one point at a time."""
    norms = []
    for point in x:
        jac = torch.autograd.functional.jacobian(lambda p: model(p[None]).reshape(-1), point)
        norms.append(torch.linalg.matrix_norm(jac.reshape(-1, x.shape[-1]), 2))
    return torch.stack(norms)


@pytest.mark.parametrize("name", list(MODELS))
def test_bound_is_never_below_a_measured_ratio_or_jacobian_norm(name):
    """L ≥ ‖g(x₁) - g(x₂)‖/‖x₁ - x₂‖ over many random pairs (far apart and close), and L ≥ ‖∂g/∂x‖₂."""
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    bound = lipschitz_bound(model)
    d = model.in_dim
    x1 = 2 * torch.randn(3000, d, dtype=F64)
    x2 = torch.cat([2 * torch.randn(1500, d, dtype=F64), x1[1500:] + 1e-4 * torch.randn(1500, d, dtype=F64)])
    with torch.no_grad():
        ratios = (model(x1) - model(x2)).reshape(3000, -1).norm(dim=-1) / (x1 - x2).norm(dim=-1)
    jacobian_norms = _input_jacobian_norms(model, x1[:40])
    assert ratios.max() <= bound * (1 + 1e-12)
    assert jacobian_norms.max() <= bound * (1 + 1e-12)
    assert ratios.max() > 0.02 * bound  # not vacuous


def _gradient_layer(product, act="relu", method="rk4"):
    """A gradient-flow layer and the step h with h L_σ ‖A‖² = product."""
    field = GradientFlowField(3, act, width=4, init_scale=2.0).double()
    layer = field.layers()[0]
    return layer, product / (field.activation.lipschitz * torch.linalg.matrix_norm(field.weight.detach(), 2).item() ** 2)


def _step_ratios(tableau, h, layer, n=4000):
    z1, z2 = 3 * torch.randn(n, 3, dtype=F64), 3 * torch.randn(n, 3, dtype=F64)
    z2[n // 2 :] = z1[n // 2 :] + 1e-4 * torch.randn(n // 2, 3, dtype=F64)
    step = ExplicitRungeKutta(tableau).step
    t = torch.tensor(0.0, dtype=F64)
    with torch.no_grad():
        return (step(layer, t, h, z1) - step(layer, t, h, z2)).norm(dim=-1) / (z1 - z2).norm(dim=-1)


@pytest.mark.parametrize("method", ["euler", "heun", "ssprk3", "rk4", "kutta3"])
def test_step_bound_is_one_under_the_rule_and_grows_continuously_beyond_it(method):
    """At h L‖A‖² = 2r the step bound is 1 (the rule is checked, not assumed); at 1.3 × 2r it is
    above 1, at least the measured ratio, and at most the generic stage bound."""
    tableau = TABLEAUS[method]
    r = contractivity_radius(tableau)
    layer, h = _gradient_layer(2 * r)
    assert step_lipschitz_bound(tableau, h, layer) == pytest.approx(1.0, abs=1e-12)
    layer, h = _gradient_layer(1.3 * 2 * r)
    beyond = step_lipschitz_bound(tableau, h, layer)
    lipschitz = layer.lipschitz_bound().item()
    stages = [1.0]  # the generic stage recursion, by hand
    for i in range(1, tableau.stages):
        stages.append(1 + h * lipschitz * sum(abs(tableau.a[i][j]) * stages[j] for j in range(i)))
    generic = 1 + h * lipschitz * sum(abs(b) * s for b, s in zip(tableau.b, stages, strict=True))
    assert 1.0 < beyond < generic
    assert _step_ratios(tableau, h, layer).max() <= beyond * (1 + 1e-12)


def test_euler_bound_uses_strong_monotonicity():
    """Leaky ReLU and a tall A (ν < 0): an Euler step inside the rule is a contraction, bound < 1,
    and never below the measured ratio."""
    field = GradientFlowField(3, leaky_relu(0.5), width=5, init_scale=2.0).double()
    layer = field.layers()[0]
    h = 1.0 / (2 * layer.circle_radius().item())
    bound = step_lipschitz_bound(TABLEAUS["euler"], h, layer)
    nu, rho = layer.one_sided_lipschitz_bound().item(), layer.circle_radius().item()
    assert bound == pytest.approx(math.sqrt(1 + 2 * h * nu * (1 - h * rho)), rel=1e-14) and bound < 1
    assert _step_ratios(TABLEAUS["euler"], h, layer).max() <= bound * (1 + 1e-12)


def test_generic_bound_for_a_resnet_step():
    """Euler on a ResNet layer: Lip ≤ 1 + hL, and the measured ratio stays below it."""
    field = ResNetField(3, "tanh", init_scale=2.0).double()
    layer = field.layers()[0]
    bound = step_lipschitz_bound(TABLEAUS["euler"], 0.3, layer)
    assert bound == pytest.approx(1 + 0.3 * layer.lipschitz_bound().item(), rel=1e-14)
    assert _step_ratios(TABLEAUS["euler"], 0.3, layer).max() <= bound


def test_bound_reads_exact_norms_of_spectrally_normalised_layers():
    """A spectral_norm head trained a little has ‖W‖₂ > 1; the certificate multiplies by that exact
    value (here the only factor above 1: a pad lift and non-expansive steps)."""
    torch.manual_seed(0)
    model = ODENet(
        GradientFlowField(6, num_layers=2, init_scale=5.0), in_dim=6, num_classes=4, head="spectral", constraint="nonexpansive"
    )
    model = model.double()
    x, y = torch.randn(64, 6, dtype=F64), torch.randint(0, 4, (64,))
    fit(model, x, y, steps=30, lr=0.05)
    head_norm = torch.linalg.matrix_norm(model.head.weight.detach(), 2).item()
    assert head_norm > 1 + 1e-4
    assert lipschitz_bound(model) == pytest.approx(head_norm, rel=1e-12)


def test_a_float32_model_is_certified_through_its_float64_twin_without_side_effects():
    torch.manual_seed(0)
    model = ODENet(
        GradientFlowField(4, num_layers=3, init_scale=5.0), in_dim=4, constraint="nonexpansive", constraint_norm="power"
    )
    model.train()
    estimate = model.field.parametrizations.weight[0].norm.u.clone()
    bound = lipschitz_bound(model)
    assert model.training and torch.equal(model.field.parametrizations.weight[0].norm.u, estimate)
    assert bound == pytest.approx(lipschitz_bound(model.double()), rel=1e-6)


class _PlainField(torch.nn.Module):
    dim = 3

    def forward(self, t, z):
        return torch.tanh(z)


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda: ODENet(HamiltonianField(3, num_layers=2), method="verlet", in_dim=3), "pair states"),
        (lambda: ODENet(GradientFlowField(3, num_layers=2), method="gauss_legendre4", in_dim=3), "explicit Runge–Kutta"),
        (lambda: ODENet(_PlainField(), num_steps=2, in_dim=3), "not sdl.fields.LipschitzBounded"),
        (lambda: torch.nn.Linear(3, 2), "needs an sdl.models.ODENet"),
    ],
)
def test_lipschitz_bound_refuses_what_it_cannot_bound(model, message):
    with pytest.raises(TypeError, match=message):
        lipschitz_bound(model())


@pytest.mark.parametrize("num_classes", [2, 3])
def test_certified_radius_formula(num_classes):
    torch.manual_seed(0)
    model = ODENet(GradientFlowField(3, num_layers=2), in_dim=3, num_classes=num_classes).double().eval()
    x = torch.randn(20, 3, dtype=F64)
    bound = lipschitz_bound(model)
    radius = certified_radius(model, x)
    with torch.no_grad():
        logits = model(x)
    if num_classes == 2:
        expected = logits.abs() / bound
    else:
        top = logits.sort(-1, descending=True).values
        expected = (top[:, 0] - top[:, 1]) / (math.sqrt(2) * bound)
    torch.testing.assert_close(radius, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "name", ["nonexpansive_rk4_orthogonal", "switching_euler", "resnet_rk4_linear_lift", "gradient_flow_euler_binary"]
)
def test_no_attack_within_the_certified_radius_changes_a_prediction(name):
    """PGD at 0.999 × each point's certified radius (targeted, restarts) flips no prediction; at
    ε = 2 it flips some (the attack works on this model); and certified accuracy ≤ robust accuracy
    ≤ clean accuracy."""
    torch.manual_seed(1)
    model = MODELS[name]().double().eval()
    x = 2 * torch.randn(300, model.in_dim, dtype=F64)
    with torch.no_grad():
        predicted = model(x)
    labels = (predicted > 0).long() if predicted.ndim == 1 else predicted.argmax(-1)
    radius = certified_radius(model, x)
    attack = {"steps": 30, "restarts": 2, "targeted": True, "generator": torch.Generator().manual_seed(0)}
    within = pgd_l2(model, x, labels, 0.999 * radius, **attack)
    with torch.no_grad():
        assert (classification_margin(model(within), labels) > 0).all()
        beyond = pgd_l2(model, x, labels, 2.0, **attack)
        assert (classification_margin(model(beyond), labels) < 0).any()
    y = torch.randint(0, max(model.num_classes, 2), (300,))
    eps = radius.median().item()
    certified = certified_accuracy(model, x, y, eps)
    robust = robust_accuracy(model, x, y, eps, **attack)
    clean = robust_accuracy(model, x, y, 0.0)
    assert certified <= robust <= clean and certified > 0
