"""Non-expansive ODE-networks by construction: the step rules, and the orthogonal / spectral lifts and heads."""

import pytest
import torch
from problems import fit

from sdl.integrators import TABLEAUS, ExplicitRungeKutta
from sdl.models import CONSTRAINTS, GradientFlowField, ODENet, ResNetField, SwitchingField, leaky_relu
from sdl.models.constrained import SpectralNorm
from sdl.stability import contractivity_radius, step_lipschitz_bound

F64 = torch.float64
CONTRACTIVE = [n for n, t in TABLEAUS.items() if t.explicit and contractivity_radius(t) > 0]


def _flow_ratios(model, n=2000, spread=3.0):
    """‖z^K(x₁) - z^K(x₂)‖ / ‖x₁ - x₂‖ over random pairs, far apart and close (pad lift: z⁰ = x)."""
    x1 = spread * torch.randn(n, model.in_dim, dtype=F64)
    x2 = torch.cat(
        [
            spread * torch.randn(n // 2, model.in_dim, dtype=F64),
            x1[n // 2 :] + 1e-4 * torch.randn(n // 2, model.in_dim, dtype=F64),
        ]
    )
    with torch.no_grad():
        z1, z2 = model.trajectory(x1)[-1], model.trajectory(x2)[-1]
    return (z1 - z2).norm(dim=-1) / (x1 - x2).norm(dim=-1)


@pytest.mark.parametrize("method, growth", [("euler", lambda x: abs(1 - x)), ("heun", lambda x: abs(1 - x + x * x / 2))])
@pytest.mark.parametrize("act", ["relu", "identity"])
def test_the_step_rule_is_sharp_along_the_top_singular_vector(method, growth, act):
    """f = -Aᵀσ(Az + b) with σ = identity, or ReLU near a point z where every unit is active at every
    stage (A's rows sum to 0 and Az + b = 50·1, so f(z) = -Aᵀ50·1 = 0 and the stages stay at z): one
    step maps the top right singular vector v of A to R(-h L‖A‖²) v, so at h L‖A‖² = 2r = 2 the ratio
    is 1 to round-off and at 2.5 it is |R(-2.5)|: 1.5 for Euler, 1.625 for Heun."""
    assert contractivity_radius(TABLEAUS[method]) == pytest.approx(1.0, rel=1e-12)
    field = GradientFlowField(3, act, width=4).double()
    z = torch.randn(1, 3, dtype=F64)
    with torch.no_grad():
        field.weight[3] = -field.weight[:3].sum(0)
        field.bias.copy_(50.0 - (z @ field.weight.T).squeeze(0))
    weight = field.weight.detach()
    norm = torch.linalg.matrix_norm(weight, 2).item()
    direction = torch.linalg.svd(weight)[2][0]
    t = torch.tensor(0.0, dtype=F64)
    for product in (2.0, 2.5):
        h = product / norm**2
        step = ExplicitRungeKutta(TABLEAUS[method]).step
        ratio = ((step(field, t, h, z + 1e-3 * direction) - step(field, t, h, z)).norm() / 1e-3).item()
        assert ratio == pytest.approx(growth(product), rel=1e-9)
    assert growth(2.0) == pytest.approx(1.0) and growth(2.5) > 1.49


@pytest.mark.parametrize("method", CONTRACTIVE)
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("constraint", ["nonexpansive", "nonexpansive_step"])
def test_randomly_initialised_constrained_networks_are_non_expansive(method, act, constraint):
    """Large random weights (the rule is active on every layer): the flow map x ↦ z^K is 1-Lipschitz
    over many random pairs, to round-off."""
    torch.manual_seed(1)
    field = GradientFlowField(4, act, num_layers=4, width=6, init_scale=8.0)
    model = ODENet(field, method=method, in_dim=4, t_final=2.0, constraint=constraint).double()
    assert _flow_ratios(model).max() <= 1 + 1e-12


def test_the_same_network_without_the_rule_expands():
    """Not a vacuous check: the unconstrained twin of the networks above expands some pairs."""
    torch.manual_seed(1)
    model = ODENet(GradientFlowField(4, "relu", num_layers=4, width=6, init_scale=8.0), method="rk4", in_dim=4, t_final=2.0)
    assert _flow_ratios(model.double()).max() > 1.5


@pytest.mark.parametrize(
    "constraint, norm", [("nonexpansive", "exact"), ("nonexpansive", "power"), ("nonexpansive_step", "exact")]
)
def test_the_rule_holds_after_training_steps(constraint, norm):
    """After large optimiser steps, in eval mode (exact norms), h_k L_σ ‖A_k‖₂² ≤ 2r on every layer."""
    torch.manual_seed(0)
    model = ODENet(
        GradientFlowField(4, "tanh", num_layers=3),
        method="ssprk3",
        in_dim=4,
        num_classes=3,
        constraint=constraint,
        constraint_norm=norm,
    ).double()
    x, y = torch.randn(64, 4, dtype=F64), torch.randint(0, 3, (64,))
    fit(model, x, y, steps=10, lr=0.5)
    squared_norms = torch.linalg.matrix_norm(model.field.weight.detach(), 2).square()
    products = torch.tensor(model.step_sizes(), dtype=F64) * squared_norms
    assert products.max() <= 2 * model.radius * (1 + 1e-12)
    assert products.max() >= 2 * model.radius * (1 - 1e-9)  # and the rule was needed


def test_power_iteration_is_a_lower_bound_that_converges_and_eval_is_exact():
    weight = torch.randn(5, 7, 4, dtype=F64)
    exact = torch.linalg.matrix_norm(weight, 2)
    norm = SpectralNorm(weight, power=True).double()
    estimates = [norm(weight) for _ in range(300)]
    assert all((e <= exact * (1 + 1e-12)).all() for e in estimates)
    assert (estimates[-1] - exact).abs().max() <= 1e-8 * exact.max()
    with torch.no_grad():
        frozen = norm.u.clone()
        norm(weight)  # a call without gradient does not advance the iteration
    assert torch.equal(norm.u, frozen)
    assert torch.equal(norm.eval()(weight), exact)


@pytest.mark.parametrize("constraint", ["nonexpansive", "nonexpansive_step"])
def test_a_network_advances_its_power_iteration_in_training_passes_only(constraint):
    model = ODENet(GradientFlowField(3, num_layers=2), in_dim=3, constraint=constraint, constraint_norm="power").double()
    norm = model.step_norm if constraint == "nonexpansive_step" else model.field.parametrizations.weight[0].norm
    x = torch.randn(4, 3, dtype=F64)
    before = norm.u.clone()
    model(x).sum().backward()
    advanced = norm.u.clone()
    assert not torch.equal(advanced, before)
    model.eval()(x)
    with torch.no_grad():
        model.train()(x)
    assert torch.equal(norm.u, advanced)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"constraint": "nonexpansive"},
        {"constraint": "nonexpansive", "constraint_norm": "power"},
        {"constraint": "nonexpansive_step"},
        {"constraint": "switching", "method": "euler"},
    ],
    ids=str,
)
def test_constrained_gradients_agree_between_autograd_and_the_adjoint(kwargs):
    """The rule is part of the map: DTO and OTD give the same gradient (one forward pass each, from the
    same state, so a power iteration advances identically)."""
    gradients = []
    for gradient in ("dto", "otd"):
        torch.manual_seed(3)
        field = (
            SwitchingField(3, leaky_relu(0.5), num_layers=4, init_scale=3.0)
            if kwargs["constraint"] == "switching"
            else GradientFlowField(3, "relu", num_layers=4, init_scale=6.0)
        )
        options = {"method": "rk4", **kwargs}
        model = ODENet(field, in_dim=3, num_classes=3, gradient=gradient, **options).double()
        x, y = torch.randn(32, 3, dtype=F64), torch.randint(0, 3, (32,))
        torch.nn.functional.cross_entropy(model(x), y).backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    for autograd, adjoint in zip(*gradients):
        torch.testing.assert_close(adjoint, autograd, rtol=1e-10, atol=1e-12)


def test_switching_pairs_are_non_expansive_empirically_and_by_their_bound():
    """Leaky ReLU (m = 0.5), explicit Euler, contractive layers 2 × orthogonal (well conditioned, as
    the reference code keeps them by a penalty): each (expansive, contractive) pair is 1-Lipschitz over
    random pairs of points, and so is the product of its two step bounds; the expansive steps are
    not switched off and do expand."""
    torch.manual_seed(2)
    model = ODENet(
        SwitchingField(3, leaky_relu(0.5), num_layers=6, init_scale=3.0), method="euler", in_dim=3, constraint="switching"
    )
    model = model.double()
    with torch.no_grad():
        model.field.weight[1::2] = 2 * torch.linalg.qr(torch.randn(3, 3, 3, dtype=F64))[0]
    steps = model.step_sizes()
    assert min(steps[0::2]) > 1e-3 and max(steps) <= model.step_size
    x1, x2 = 3 * torch.randn(3000, 3, dtype=F64), 3 * torch.randn(3000, 3, dtype=F64)
    with torch.no_grad():
        z1, z2 = model.trajectory(x1), model.trajectory(x2)
    ratios = (z1 - z2).norm(dim=-1) / (z1 - z2)[0].norm(dim=-1)  # (K+1, N): distances relative to the start
    assert ratios[2::2].max() <= 1 + 1e-12  # after every pair
    per_step = (z1 - z2)[1:].norm(dim=-1) / (z1 - z2)[:-1].norm(dim=-1)
    assert per_step[0::2].max() > 1.0  # expansive steps expand
    tableau = model.integrator.tableau
    bounds = [step_lipschitz_bound(tableau, h, layer) for h, layer in zip(steps, model.layer_fields())]
    for expansive, contractive in zip(bounds[0::2], bounds[1::2]):
        assert expansive > 1 and expansive * contractive <= 1 + 1e-12
    assert per_step.max() <= max(bounds) * (1 + 1e-12)


@pytest.mark.parametrize(
    "lift, head, in_dim",
    [("orthogonal", "orthogonal", 2), ("orthogonal", "orthogonal", 7), ("pad", "orthogonal", 2), ("orthogonal", "linear", 7)],
)
def test_orthogonal_lifts_and_heads_keep_unit_norm_while_training(lift, head, in_dim):
    """‖W‖₂ = 1 (within 1e-6) after optimiser steps, for d_in < dim (orthonormal columns) and
    d_in > dim (orthonormal rows), two and several classes."""
    for num_classes in (2, 4):
        model = ODENet(GradientFlowField(5, num_layers=2), in_dim=in_dim, num_classes=num_classes, lift=lift, head=head)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        x, y = torch.randn(32, in_dim), torch.randint(0, num_classes, (32,))
        for _ in range(15):
            logits = model(x)
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())
                if num_classes == 2
                else torch.nn.functional.cross_entropy(logits, y)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for kind, layer in ((lift, model.lift_map), (head, model.head)):
            if kind == "orthogonal":
                assert abs(torch.linalg.matrix_norm(layer.weight.detach(), 2).item() - 1) <= 1e-6


def test_spectral_normalisation_divides_by_a_lower_bound_of_the_norm():
    """spectral_norm's weight is W / σ̂ with σ̂ from power iteration, σ̂ ≤ ‖W‖₂: its exact norm is never
    below 1 and, after training steps, can exceed it, which is why certificates use exact norms."""
    torch.manual_seed(0)
    model = ODENet(GradientFlowField(6, num_layers=2), in_dim=8, num_classes=4, lift="spectral", head="spectral")
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
    fit(model, x, y, steps=30, lr=0.05)
    norms = [torch.linalg.matrix_norm(layer.weight.detach(), 2).item() for layer in (model.lift_map, model.head)]
    assert min(norms) >= 1 - 1e-6
    assert max(norms) > 1 + 1e-4  # measured: 1.06 for the head


def test_step_sizes_and_time_grid():
    model = ODENet(GradientFlowField(3, num_layers=4, init_scale=9.0), in_dim=3, t_final=2.0, constraint="nonexpansive_step")
    plain = ODENet(GradientFlowField(3, num_layers=4), in_dim=3, t_final=2.0)
    assert plain.step_sizes() == (0.5,) * 4
    steps = model.step_sizes()
    assert len(steps) == 4 and max(steps) <= 0.5 and min(steps) < 0.5
    times = model.time_grid(torch.zeros(1))
    torch.testing.assert_close(times.diff(), torch.tensor(steps, dtype=times.dtype))
    assert model.trajectory(torch.randn(5, 3)).shape == (5, 5, 3)


def test_a_constrained_network_round_trips_through_its_state_dict():
    torch.manual_seed(0)
    build = lambda: ODENet(  # noqa: E731
        GradientFlowField(3, num_layers=3, init_scale=5.0),
        in_dim=3,
        constraint="nonexpansive",
        constraint_norm="power",
        head="spectral",
    ).double()
    model = build()
    model(torch.randn(8, 3, dtype=F64))  # advance the power iterations
    copy = build()
    copy.load_state_dict(model.state_dict())
    x = torch.randn(16, 3, dtype=F64)
    torch.testing.assert_close(copy.eval()(x), model.eval()(x), rtol=0, atol=1e-14)


def test_constraints_are_listed_with_a_description():
    assert set(CONSTRAINTS) == {"nonexpansive", "nonexpansive_step", "switching"}
    assert all(isinstance(text, str) and text for text in CONSTRAINTS.values())


@pytest.mark.parametrize(
    "field, kwargs, error, message",
    [
        (
            GradientFlowField(3, num_layers=2),
            {"constraint": "lipschitz"},
            ValueError,
            "unknown constraint 'lipschitz'; valid choices: nonexpansive",
        ),
        (
            GradientFlowField(3, num_layers=2),
            {"constraint": "nonexpansive", "method": "midpoint"},
            ValueError,
            "contractivity radius is 0",
        ),
        (
            GradientFlowField(3, num_layers=2),
            {"constraint": "nonexpansive", "method": "gauss_legendre4"},
            ValueError,
            "explicit Runge–Kutta",
        ),
        (ResNetField(3, num_layers=2), {"constraint": "nonexpansive"}, TypeError, "needs a GradientFlowField"),
        (
            GradientFlowField(3, num_layers=2),
            {"constraint": "nonexpansive", "constraint_norm": "svd"},
            ValueError,
            "unknown constraint_norm",
        ),
        (GradientFlowField(3, num_layers=2), {"constraint": "switching", "method": "euler"}, TypeError, "needs a SwitchingField"),
        (SwitchingField(3, "tanh", num_layers=2), {"constraint": "switching", "method": "euler"}, ValueError, "0 < m ≤ σ'"),
        (SwitchingField(3, num_layers=2), {"constraint": "switching", "method": "rk4"}, ValueError, "explicit Euler"),
        (
            GradientFlowField(3, num_layers=2),
            {"head": "unit"},
            ValueError,
            "unknown head 'unit'; valid choices: linear, orthogonal, spectral",
        ),
    ],
)
def test_constraints_that_cannot_hold_fail_at_construction(field, kwargs, error, message):
    with pytest.raises(error, match=message):
        ODENet(field, in_dim=3, **kwargs)
