"""The contractivity radius of a tableau: its value, its defining inequality, and what it promises."""

import math

import numpy as np
import pytest
import torch

from sdl.integrators import TABLEAUS, ExplicitRungeKutta
from sdl.stability import contractivity_radius, stability_disc_radius

F64 = torch.float64
EXPLICIT = [name for name, tableau in TABLEAUS.items() if tableau.explicit]

# Closed forms, from M + sB ⪰ 0 by hand for the 1- and 2-stage methods: Euler: -1 + s ≥ 0;
# Heun: M + sB = [[s/2 - 1/4, 1/4], [1/4, s/2 - 1/4]], λ_min = s/2 - 1/2; Ralston: the determinant
# (s/4 - 1/16)(3s/4 - 9/16) - (5/16)² = (3s² - 3s - 1)/16, so s = (3 + √21)/6; midpoint: b₁ = 0 while
# m₁₂ = b₂a₂₁ = 1/2. The 3- and 4-stage values are checked against the definition below.
RADII = {
    "euler": 1.0,
    "heun": 1.0,
    "ralston": (math.sqrt(21) - 3) / 2,
    "midpoint": 0.0,
    "kutta3": 0.5,
    "ssprk3": 1.0,
    "rk4": 1.0,
    "rk4_38": 2 * math.sqrt(3) - 3,
    "backward_euler": math.inf,
    "implicit_midpoint": math.inf,
    "gauss_legendre4": math.inf,
}


def test_every_registered_method_has_a_known_radius():
    assert set(RADII) == set(TABLEAUS)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_contractivity_radius_values(name):
    assert contractivity_radius(TABLEAUS[name]) == pytest.approx(RADII[name], rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("name", [n for n in EXPLICIT if RADII[n] > 0])
def test_radius_is_where_the_algebraic_matrix_stops_being_semidefinite(name):
    """M + B/r ⪰ 0 with a zero eigenvalue at r, and an eigenvalue below 0 just beyond it."""
    tableau = TABLEAUS[name]
    a, b = np.array(tableau.a), np.array(tableau.b)
    m = b[:, None] * a + (b[:, None] * a).T - np.outer(b, b)
    r = contractivity_radius(tableau)
    at = np.linalg.eigvalsh(m + np.diag(b) / r)
    beyond = np.linalg.eigvalsh(m + np.diag(b) / (r * (1 + 1e-6)))
    assert at.min() >= -1e-13 and abs(at).min() <= 1e-13
    assert beyond.min() < -1e-9


def _per_stage_linear_field(matrices):
    """A field whose i-th evaluation returns -M_i y: the difference of two gradient-flow trajectories
    within one step is of this form, M_i = AᵀD_iA with D_i the divided differences of σ at stage i."""
    calls = iter(matrices)
    return lambda t, y: -y @ next(calls)


@pytest.mark.parametrize("name", [n for n in EXPLICIT if RADII[n] > 0])
def test_steps_at_the_radius_never_expand_stagewise_gradient_differences(name):
    """For h L‖A‖² = 2r and any per-stage D_i ∈ [0, 1] (random, and the 0/1 extremes), one step of
    the registered stepper maps differences by a matrix J with ‖J‖₂ ≤ 1 (to round-off). An
    empirical check of the proof in ``sdl.stability.contractivity``, by a different route."""
    tableau = TABLEAUS[name]
    integrator = ExplicitRungeKutta(tableau)
    generator = torch.Generator().manual_seed(0)
    r, worst = contractivity_radius(tableau), 0.0
    for trial in range(400):
        weight = torch.randn(5, 3, dtype=F64, generator=generator)
        weight = weight / torch.linalg.matrix_norm(weight, 2)  # ‖A‖ = 1, so h = 2r
        slopes = torch.rand(tableau.stages, 5, dtype=F64, generator=generator)
        if trial % 2:
            slopes = slopes.round()
        matrices = [weight.T @ torch.diag(d) @ weight for d in slopes]
        jac = integrator.step(_per_stage_linear_field(matrices), torch.tensor(0.0, dtype=F64), 2 * r, torch.eye(3, dtype=F64))
        worst = max(worst, torch.linalg.matrix_norm(jac, 2).item())
    assert worst <= 1 + 1e-12
    assert worst > 0.99  # not vacuous: some pattern keeps a direction (σ' = 0 on it, or the linear mode)


def test_the_linear_stability_disc_is_not_enough_for_relu_gradient_flows():
    """SSPRK3 has the stability disc of radius 1.256 but r = 1: a ReLU gradient flow with
    h‖A‖² = 2.3 (inside the disc, 2.3 < 2.51) expands a pair of close points by 11%, while at
    h‖A‖² = 2r = 2 the same layer does not (a counterexample found by random search)."""
    tableau = TABLEAUS["ssprk3"]
    weight = torch.tensor([[-0.704, -0.709], [0.497, -0.467]], dtype=F64)
    bias = torch.tensor([0.404, 0.133], dtype=F64)
    z = torch.tensor([[1.611, -1.044]], dtype=F64)
    field = lambda t, y: -torch.relu(y @ weight.T + bias) @ weight  # noqa: E731
    squared_norm = torch.linalg.matrix_norm(weight, 2).item() ** 2
    t = torch.tensor(0.0, dtype=F64)
    assert 2.3 < 2 * stability_disc_radius(tableau)

    def step(y, h):
        return ExplicitRungeKutta(tableau).step(field, t, h, y)

    jacobian = torch.autograd.functional.jacobian(lambda y: step(y, 2.3 / squared_norm), z).reshape(2, 2)
    direction = torch.linalg.svd(jacobian)[2][0]
    for h, expanding in ((2.3 / squared_norm, True), (2.0 / squared_norm, False)):
        ratio = ((step(z + 1e-7 * direction, h) - step(z, h)).norm() / 1e-7).item()
        assert (ratio > 1.1) if expanding else (ratio <= 1 + 1e-6)


@pytest.mark.parametrize("name", EXPLICIT)
def test_contractivity_radius_never_exceeds_the_stability_disc(name):
    """The linear problems with the circle condition are among the fields the radius covers."""
    assert contractivity_radius(TABLEAUS[name]) <= stability_disc_radius(TABLEAUS[name]) * (1 + 1e-12)


def test_contractivity_radius_needs_a_tableau():
    with pytest.raises(TypeError, match="ButcherTableau"):
        contractivity_radius("rk4")
