import math
import warnings

import numpy as np
import pytest
import torch

from sdl.fields import Separable
from sdl.integrators import TABLEAUS, ButcherTableau, get, names
from sdl.stability import (
    energy_error,
    gradient_flow_lipschitz_bounds,
    jacobians,
    log_norm2,
    max_real_eigenvalue,
    one_sided_lipschitz,
    per_layer_stability,
    stability_disc_radius,
    stability_region,
    symplecticity_defect,
)

f64 = torch.float64


def _linear_field(matrix):
    return lambda z: z @ matrix.T


def _gradient_flow(weight, bias):
    return lambda z: -torch.tanh(z @ weight.T + bias) @ weight


def _gradient_flow_jacobian(weight, bias):
    def jac(z):
        slope = 1 - torch.tanh(z @ weight.T + bias) ** 2  # (N, m)
        return -torch.einsum("ma,nm,mb->nab", weight, slope, weight)

    return jac


def _resnet_field(weight, bias):
    return lambda z: torch.tanh(z @ weight.T + bias)


def test_jacobians_of_linear_field_are_the_matrix():
    matrix = torch.randn(4, 4, dtype=f64)
    z = torch.randn(7, 4, dtype=f64)
    jac = jacobians(_linear_field(matrix), z)
    assert jac.shape == (7, 4, 4)
    torch.testing.assert_close(jac, matrix.expand(7, 4, 4), rtol=0, atol=1e-15)


def test_jacobians_match_analytic_gradient_flow_jacobian():
    weight, bias = torch.randn(5, 3, dtype=f64), torch.randn(5, dtype=f64)
    z = torch.randn(50, 3, dtype=f64)
    torch.testing.assert_close(
        jacobians(_gradient_flow(weight, bias), z), _gradient_flow_jacobian(weight, bias)(z), rtol=0, atol=1e-14
    )


def test_linear_field_lipschitz_and_eigenvalues_are_exact():
    matrix = torch.randn(5, 5, dtype=f64)
    z = torch.randn(100, 5, dtype=f64)
    field = _linear_field(matrix)
    expected_nu = np.linalg.eigvalsh(0.5 * (matrix + matrix.T).numpy()).max()
    expected_eig = np.linalg.eigvals(matrix.numpy()).real.max()
    estimate = one_sided_lipschitz(field, z)
    assert abs(estimate.value - expected_nu) < 1e-13
    assert estimate.values.shape == (100,) and estimate.point.shape == (5,)
    assert abs(max_real_eigenvalue(field, z).value - expected_eig) < 1e-13
    # The Rayleigh-quotient definition of ν agrees on random pairs (it is attained for a linear field).
    z1, z2 = torch.randn(1000, 5, dtype=f64), torch.randn(1000, 5, dtype=f64)
    quotient = ((field(z2) - field(z1)) * (z2 - z1)).sum(1) / ((z2 - z1) ** 2).sum(1)
    assert quotient.max() <= expected_nu + 1e-12


def test_log_norm2_is_max_eigenvalue_of_symmetric_part_batched():
    jac = torch.randn(3, 6, 4, 4, dtype=f64)
    expected = torch.linalg.eigvalsh(jac + jac.mT).amax(-1) / 2
    torch.testing.assert_close(log_norm2(jac), expected, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="square"):
        log_norm2(torch.zeros(3, 2, 4))


@pytest.mark.parametrize("m, d", [(4, 4), (6, 3), (2, 3)])
def test_gradient_flow_lipschitz_within_analytic_bounds(m, d):
    weight, bias = torch.randn(m, d, dtype=f64), torch.randn(m, dtype=f64)
    z = 3 * torch.randn(10_000, d, dtype=f64)
    field = _gradient_flow(weight, bias)
    estimate = one_sided_lipschitz(field, z)
    lower, upper = gradient_flow_lipschitz_bounds(weight)
    sigma_min = np.linalg.svd(weight.numpy(), compute_uv=False).min() if m >= d else 0.0
    assert float(lower) == pytest.approx(-(sigma_min**2), rel=1e-12, abs=1e-15)
    assert float(upper) == 0.0
    assert estimate.value <= 1e-12
    assert estimate.values.min() >= float(lower) - 1e-12
    refined = one_sided_lipschitz(field, z, refine_steps=10)
    assert estimate.value <= refined.value <= 1e-12
    # Symmetric Jacobian: max Re λ and μ₂ coincide at every point.
    eig = max_real_eigenvalue(field, z, jac=_gradient_flow_jacobian(weight, bias))
    torch.testing.assert_close(eig.values, estimate.values, rtol=0, atol=1e-12)


def test_linear_activation_attains_lower_bound():
    weight = torch.randn(4, 4, dtype=f64)

    def field(z):
        return -(z @ weight.T) @ weight  # σ(s) = s

    estimate = one_sided_lipschitz(field, torch.randn(20, 4, dtype=f64))
    assert abs(estimate.value - float(gradient_flow_lipschitz_bounds(weight).lower)) < 1e-12


def test_gradient_flow_bounds_batched_over_layers():
    weights = torch.randn(5, 3, 3, dtype=f64)
    lower, upper = gradient_flow_lipschitz_bounds(weights)
    assert lower.shape == (5,) and upper.shape == (5,)
    for k in range(5):
        assert float(lower[k]) == pytest.approx(-float(torch.linalg.svdvals(weights[k])[-1] ** 2), rel=1e-12)


def test_eigenvalue_real_part_never_exceeds_log_norm():
    weight, bias = 2 * torch.randn(4, 4, dtype=f64), torch.randn(4, dtype=f64)
    field = _resnet_field(weight, bias)  # non-normal Jacobian D A
    z = torch.randn(2000, 4, dtype=f64)
    eig = max_real_eigenvalue(field, z)
    nu = one_sided_lipschitz(field, z)
    assert torch.all(eig.values <= nu.values + 1e-12)
    assert (nu.values - eig.values).max() > 1e-3  # a genuinely non-normal example


def test_refinement_never_decreases_and_approaches_box_supremum():
    weight, bias = torch.tensor([[1.5, -2.0], [0.7, 1.0]], dtype=f64), torch.tensor([0.3, -0.2], dtype=f64)
    field = _resnet_field(weight, bias)
    z = torch.rand(6, 2, dtype=f64) * 2 - 1
    z[0], z[1] = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])  # the box is [-1, 1]²
    coarse = one_sided_lipschitz(field, z)
    previous = coarse
    for steps in (5, 20, 60):
        refined = one_sided_lipschitz(field, z, refine_steps=steps)
        assert torch.all(refined.values >= coarse.values)
        assert refined.value >= previous.value
        assert torch.all(refined.points.abs() <= 1.0)
        previous = refined
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 401, dtype=f64)] * 2, indexing="ij"), -1)
    box_sup = log_norm2(jacobians(field, grid.reshape(-1, 2))).max().item()
    assert coarse.value < box_sup - 1e-2  # the coarse sample misses the maximum
    assert box_sup - 1e-3 <= previous.value <= box_sup + 1e-3
    torch.testing.assert_close(previous.point, previous.points[previous.values.argmax()])


def test_refine_points_limits_the_refined_subset():
    field = _resnet_field(torch.randn(3, 3, dtype=f64), torch.randn(3, dtype=f64))
    z = torch.randn(200, 3, dtype=f64)
    coarse = one_sided_lipschitz(field, z)
    some = one_sided_lipschitz(field, z, refine_steps=10, refine_points=5)
    every = one_sided_lipschitz(field, z, refine_steps=10, refine_points=None)
    moved = (some.points != z).any(1)
    assert 0 < int(moved.sum()) <= 5
    assert set(moved.nonzero().flatten().tolist()) <= set(coarse.values.topk(5).indices.tolist())
    assert torch.all(some.values >= coarse.values) and torch.all(every.values >= coarse.values)
    assert every.value >= some.value - 1e-12  # the same ascent paths from the same best starts, and more
    with pytest.raises(ValueError, match="refine_points"):
        one_sided_lipschitz(field, z, refine_steps=1, refine_points=0)


def test_per_layer_stability_matches_single_layer_calls():
    layers = [(torch.randn(3, 3, dtype=f64), torch.randn(3, dtype=f64)) for _ in range(4)]
    fields = [_resnet_field(w, b) for w, b in layers]
    states = torch.randn(4, 30, 3, dtype=f64)
    result = per_layer_stability(fields, states)
    assert result.max_real_eigenvalue.shape == (4,) and result.one_sided_lipschitz.shape == (4,)
    for k in range(4):
        assert result.max_real_eigenvalue[k].item() == pytest.approx(max_real_eigenvalue(fields[k], states[k]).value)
        assert result.one_sided_lipschitz[k].item() == pytest.approx(one_sided_lipschitz(fields[k], states[k]).value)
    eigen, lipschitz = per_layer_stability(
        [_gradient_flow(w, b) for w, b in layers], states, [_gradient_flow_jacobian(w, b) for w, b in layers]
    )
    torch.testing.assert_close(eigen, lipschitz, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"states\[:-1\]"):
        per_layer_stability(fields, torch.randn(5, 30, 3, dtype=f64))


def test_bad_points_and_jacobian_shapes_rejected():
    field = _linear_field(torch.eye(2, dtype=f64))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        one_sided_lipschitz(field, torch.zeros(2, dtype=f64))
    with pytest.raises(ValueError, match="must have shape"):
        one_sided_lipschitz(field, torch.zeros(3, 2, dtype=f64), jac=lambda z: torch.zeros(3, 2))
    with pytest.raises(ValueError, match="refine_steps"):
        one_sided_lipschitz(field, torch.zeros(3, 2, dtype=f64), refine_steps=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_results_follow_dtype(dtype):
    field = _resnet_field(torch.randn(2, 2, dtype=dtype), torch.randn(2, dtype=dtype))
    estimate = one_sided_lipschitz(field, torch.randn(10, 2, dtype=dtype), refine_steps=3)
    assert estimate.values.dtype == dtype and estimate.points.dtype == dtype


def test_rk4_stability_function_is_taylor_polynomial():
    region = stability_region(TABLEAUS["rk4"], (-3.0, 0.5), (-3.0, 3.0), resolution=41)
    z = region.real[None, :] + 1j * region.imag[:, None]
    taylor = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    np.testing.assert_allclose(region.modulus, np.abs(taylor), rtol=1e-13, atol=1e-13)
    # RK4's real stability interval ends near -2.785.
    on_axis = region.modulus[20]  # imag = 0 row
    assert region.imag[20] == 0.0
    inside = (region.real > -2.78) & (region.real <= 0)
    assert on_axis[inside].max() <= 1.0 + 1e-12 and on_axis[region.real < -2.79].min() > 1.0


def test_euler_region_is_unit_disc_area():
    region = stability_region(TABLEAUS["euler"], (-2.5, 0.5), (-1.5, 1.5), resolution=201)
    cell = (region.real[1] - region.real[0]) * (region.imag[1] - region.imag[0])
    assert region.stable.sum() * cell == pytest.approx(math.pi, rel=2e-2)


def test_implicit_method_regions():
    region = stability_region(TABLEAUS["implicit_midpoint"], (-4, 4), (-4, 4), resolution=80)
    left = region.real < 0
    assert np.all(region.stable[:, left]) and not np.any(region.stable[:, region.real > 1e-9])  # |R| = 1 on iR
    with pytest.raises(TypeError):
        stability_region("rk4")
    with pytest.raises(ValueError, match="re_range"):
        stability_region(TABLEAUS["rk4"], re_range=(1.0, -1.0))


def _real_boundary(coefficients):
    """The negative real x* where the stability polynomial first leaves [-1, 1]: half of it is the
    disc radius when the disc touches the boundary on the real axis (3 and 4 stages)."""
    roots = [np.roots((coefficients - np.eye(len(coefficients))[0] * target)[::-1]) for target in (1.0, -1.0)]
    return min(-x.real for x in np.concatenate(roots) if abs(x.imag) < 1e-9 and x.real < -1e-9)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("euler", 1.0),  # R = 1 + z: the region is the disc itself
        ("heun", 1.0),  # R = (1 + (1 + z)²)/2, |R| ≤ 1 on |1 + z| ≤ 1, and R(-2 - ε) > 1
        ("midpoint", 1.0),  # same R for every 2-stage order-2 method
        ("ralston", 1.0),
        ("kutta3", _real_boundary(np.array([1, 1, 1 / 2, 1 / 6])) / 2),  # R(-x*) = -1, x* = 2.5127
        ("ssprk3", _real_boundary(np.array([1, 1, 1 / 2, 1 / 6])) / 2),
        ("rk4", _real_boundary(np.array([1, 1, 1 / 2, 1 / 6, 1 / 24])) / 2),  # R(-x*) = 1, x* = 2.7853
        ("rk4_38", _real_boundary(np.array([1, 1, 1 / 2, 1 / 6, 1 / 24])) / 2),
    ],
)
def test_stability_disc_radius_values_and_dense_scan(name, expected):
    """r from the polynomial test against closed forms, and against a dense scan of |R| over the disc."""
    r = stability_disc_radius(TABLEAUS[name])
    assert r == pytest.approx(expected, rel=1e-13)
    _assert_largest_disc(TABLEAUS[name], r)


def _assert_largest_disc(tableau, r):
    """|R| ≤ 1 on 400 × 2000 points of the disc {|z + r'| ≤ r'}, r' = r(1 - 1e-9), and > 1 somewhere on
    the circle of radius r(1 + 1e-6), by more than round-off."""
    theta = np.linspace(0, 2 * np.pi, 2000)
    radii = np.linspace(0, 1, 400)[:, None]
    inside = r * (1 - 1e-9) * (radii * np.exp(1j * theta) - 1)  # every circle of the family up to r
    assert np.abs(tableau.stability_function(inside)).max() <= 1 + 1e-12
    fine = np.linspace(0, 2 * np.pi, 200001)
    outside = r * (1 + 1e-6) * (np.exp(1j * fine) - 1)
    assert np.abs(tableau.stability_function(outside)).max() > 1 + 1e-12  # the contact may be of high order


def test_the_disc_of_euler_and_heun_is_exactly_the_unit_disc():
    """|R| = 1 on the whole circle |z + 1| = 1 for Euler (R = 1 + z): the test q ≥ 0 holds with
    equality there, and the radius is 1 exactly, not the largest float below it."""
    assert stability_disc_radius(TABLEAUS["euler"]) == 1.0
    assert stability_disc_radius(TABLEAUS["heun"]) == 1.0


def _explicit(a, b, order=1):
    return ButcherTableau(a=a, b=b, c=tuple(sum(row) for row in a), order=order)


@pytest.mark.parametrize(
    "tableau, bounds",
    [
        # four Euler steps of h/4: R = (1 + z/4)⁴, the region is the disc of radius 4 itself
        (_explicit(((0, 0, 0, 0), (0.25, 0, 0, 0), (0.25, 0.25, 0, 0), (0.25, 0.25, 0.25, 0)), (0.25,) * 4), (4.0, 4.0)),
        # R = 1 + z + 3z²/4: a disc smaller than Euler's
        (_explicit(((0, 0), (1.5, 0)), (0.5, 0.5)), (0.0, 0.99)),
        # R = 1 + z + 3z²/4 + z³/4: the largest circle touches |R| = 1 off the real axis, where q has an
        # interior minimum (a test at x = ±1 alone gives 1.317 instead of 1.2230)
        (_explicit(((0, 0, 0), (1 / 3, 0, 0), (0, 0.75, 0)), (0, 0, 1)), (1.2, 1.25)),
        # R = 1 + z + z²/10 + z³/500: q < 0 at x = 2, outside [-1, 1] (testing there gives 1.229, not 1.25)
        (_explicit(((0, 0, 0), (0.02, 0, 0), (0, 0.1, 0)), (0, 0, 1)), (1.24, 1.26)),
    ],
    ids=["four_euler_quarter_steps", "small_disc", "touches_off_the_axis", "negative_outside_the_interval"],
)
def test_stability_disc_radius_of_methods_unlike_the_registered_ones(tableau, bounds):
    """Radii above 2 (the doubling phase runs more than once) and below 1 (bisection from [0, 1]), and discs
    whose circle meets |R| = 1 off the real axis: r within ``bounds`` (low == high: that value to 1e-13)
    and the largest disc by the dense scan."""
    r = stability_disc_radius(tableau)
    low, high = bounds
    assert r == pytest.approx(low, rel=1e-13) if low == high else low < r < high
    _assert_largest_disc(tableau, r)


@pytest.mark.parametrize(
    "name, closed_form",
    [
        ("euler", lambda z: 1 + z),
        ("backward_euler", lambda z: 1 / (1 - z)),
        ("implicit_midpoint", lambda z: (1 + z / 2) / (1 - z / 2)),
        ("gauss_legendre4", lambda z: (1 + z / 2 + z**2 / 12) / (1 - z / 2 + z**2 / 12)),  # the (2, 2) Padé approximant
    ],
)
def test_stability_region_samples_the_closed_form_stability_function(name, closed_form):
    """|R| on the grid against the closed forms (not against the library's own stability_function)."""
    region = stability_region(TABLEAUS[name], (-3.0, 0.5), (-1.0, 2.5), resolution=15)
    np.testing.assert_array_equal(region.real, np.linspace(-3.0, 0.5, 15))
    np.testing.assert_array_equal(region.imag, np.linspace(-1.0, 2.5, 15))
    z = region.real[None, :] + 1j * region.imag[:, None]
    np.testing.assert_allclose(region.modulus, np.abs(closed_form(z)), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(region.stable, region.modulus <= 1.0)


def test_stability_region_of_a_huge_grid_is_inf_without_warnings():
    """Overflow of R on a grid far out is |R| = inf, silently (numpy's floating-point warnings are off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        region = stability_region(TABLEAUS["rk4"], (-1e100, 1e100), (-1e100, 1e100), resolution=3)
    assert np.isinf(region.modulus[0, 0]) and region.modulus[1, 1] == 1.0


def test_stability_region_defaults():
    region = stability_region(TABLEAUS["rk4"])
    assert region.modulus.shape == (201, 201)
    assert (region.real[0], region.real[-1], region.imag[0], region.imag[-1]) == (-5.0, 1.0, -4.0, 4.0)


def test_a_grid_point_on_a_pole_of_r_has_modulus_inf():
    """Backward Euler's R = 1/(1 - z) has its pole at z = 1, a point of this 3 × 3 grid: the batched
    solve fails there, and every point is evaluated alone (inf at the pole, |R| elsewhere)."""
    region = stability_region(TABLEAUS["backward_euler"], (0.0, 2.0), (-1.0, 1.0), resolution=3)
    z = region.real[None, :] + 1j * region.imag[:, None]
    expected = np.abs(1 / np.where(z == 1, 1.0, 1 - z))
    expected[1, 1] = np.inf  # z = 1
    np.testing.assert_allclose(region.modulus, expected, rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"re_range": (1.0, -1.0)}, "re_range must be a finite (min, max) with min < max, got (1.0, -1.0)"),
        ({"re_range": (1.0, 1.0)}, "re_range must be a finite (min, max) with min < max, got (1.0, 1.0)"),
        ({"im_range": (0.0, math.inf)}, "im_range must be a finite (min, max) with min < max, got (0.0, inf)"),
        ({"resolution": 1}, "resolution must be an int ≥ 2, got 1"),
        ({"resolution": 5.0}, "resolution must be an int ≥ 2, got 5.0"),
        ({"resolution": True}, "resolution must be an int ≥ 2, got True"),
    ],
)
def test_stability_region_refuses_bad_grids(kwargs, message):
    with pytest.raises(ValueError) as error:
        stability_region(TABLEAUS["rk4"], **kwargs)
    assert str(error.value) == message


def test_stability_region_and_disc_radius_name_what_they_got():
    assert stability_region(TABLEAUS["rk4"], resolution=2).modulus.shape == (2, 2)
    for function in (stability_region, stability_disc_radius):
        with pytest.raises(TypeError, match=r"^tableau must be a sdl.integrators.ButcherTableau, got str$"):
            function("rk4")


def test_stability_disc_radius_needs_an_explicit_tableau():
    with pytest.raises(
        ValueError, match=r"^stability_disc_radius needs an explicit method \(a polynomial R\); implicit ones may be A-stable$"
    ):
        stability_disc_radius(TABLEAUS["implicit_midpoint"])
    with pytest.raises(TypeError, match="ButcherTableau"):
        stability_disc_radius("rk4")


def _pendulum_verlet(h):
    def step(q, p):
        p_half = p - 0.5 * h * torch.sin(q)
        q_new = q + h * p_half
        return q_new, p_half - 0.5 * h * torch.sin(q_new)

    return step


def _pendulum_rk4(h):
    def rhs(y):
        q, p = y.chunk(2, dim=-1)
        return torch.cat([p, -torch.sin(q)], dim=-1)

    def step(q, p):
        y = torch.cat([q, p], dim=-1)
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * h * k1)
        k3 = rhs(y + 0.5 * h * k2)
        k4 = rhs(y + h * k3)
        return (y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)).chunk(2, dim=-1)

    return step


def test_symplecticity_defect_verlet_vs_rk4():
    q = torch.linspace(-2.5, 2.5, 16, dtype=f64)[:, None]
    p = torch.linspace(1.5, -1.5, 16, dtype=f64)[:, None]
    assert symplecticity_defect(_pendulum_verlet(0.3), q, p) <= 1e-12
    assert symplecticity_defect(_pendulum_rk4(0.3), q, p) > 1e-6
    assert symplecticity_defect(_pendulum_verlet(0.3), q[0], p[0]) <= 1e-12  # a single point (n,)


class _CoupledPendulums(Separable):
    """H = |p|²/2 + Σ_i (-cos q_i + (q_i - q_{i-1})²/4), periodic in i."""

    def velocity(self, t, p):
        return p

    def force(self, t, q):
        return -torch.sin(q) - 0.5 * (2 * q - q.roll(1, dims=-1) - q.roll(-1, dims=-1))  # -∇U


@pytest.mark.parametrize("name", names())
def test_symplecticity_defect_of_every_registered_integrator(name):
    integrator = get(name, solver="newton")
    field, t, h = _CoupledPendulums(), torch.tensor(0.0, dtype=f64), 0.3
    q, p = torch.randn(8, 3, dtype=f64), torch.randn(8, 3, dtype=f64)
    if integrator.partitioned:

        def step(q, p):
            return integrator.step(field, t, h, (q, p))

    else:

        def flat_field(t, y):
            return torch.cat(field(t, y.chunk(2, -1)), -1)

        def step(q, p):
            return integrator.step(flat_field, t, h, torch.cat([q, p], -1)).chunk(2, -1)

    defect = symplecticity_defect(step, q, p)
    if integrator.symplectic:
        assert defect <= 1e-12
    else:
        assert defect > 1e-6


def test_energy_error_verlet_bounded_rk4_drifts():
    def energy(q, p):
        return 0.5 * p.squeeze(-1) ** 2 - torch.cos(q.squeeze(-1))

    def trajectory(step, steps):
        q, p = torch.tensor([[2.0]], dtype=f64), torch.tensor([[0.0]], dtype=f64)
        qs, ps = [q], [p]
        for _ in range(steps):
            q, p = step(q, p)
            qs.append(q)
            ps.append(p)
        return torch.stack(qs), torch.stack(ps)

    verlet = energy_error(energy, *trajectory(_pendulum_verlet(0.25), 4000))
    rk4 = energy_error(energy, *trajectory(_pendulum_rk4(0.25), 4000))
    assert verlet.shape == (4001, 1) and verlet[0].item() == 0.0
    # Verlet: bounded, O(h²) oscillation; RK4: smaller at first but growing linearly.
    assert verlet[2000:].max() <= 1.5 * verlet[:2000].max()
    assert rk4[3000:].mean() > 1.8 * rk4[1000:2000].mean()
    with pytest.raises(ValueError, match="one energy per time step"):
        energy_error(lambda q, p: (q**2).sum(), torch.zeros(5, 2), torch.zeros(5, 2))


@pytest.mark.parametrize("slope", [lambda s: (s > 0).to(s.dtype), torch.ones_like], ids=["relu", "identity"])
def test_refinement_of_piecewise_linear_fields_keeps_the_coarse_values(slope):
    """μ₂(J(z)) is locally constant here: the ascent has no gradient to follow and must not fail,
    also with learnable weights, whose graph reaches the Jacobian but not z."""
    weight = torch.randn(3, 3, dtype=f64, requires_grad=True)
    bias = torch.randn(3, dtype=f64)

    def field(z):
        return z @ weight.T + bias  # only the analytic Jacobian below is used

    def jac(z):
        return slope(z @ weight.T + bias)[:, :, None] * weight

    z = torch.randn(30, 3, dtype=f64)
    coarse = one_sided_lipschitz(field, z, jac=jac)
    refined = one_sided_lipschitz(field, z, jac=jac, refine_steps=3)
    assert torch.all(refined.values >= coarse.values)
    constant = one_sided_lipschitz(lambda x: x @ weight.detach().T, z, refine_steps=3)  # J built without grad
    assert torch.all(constant.values == constant.values[0])


# --- tests that kill surviving mutants of scripts/mutation.py (TESTING.md) ---------------------------------


def _linear_pair_map(a, c, b):
    """Φ(q, p) = (A q, C q + B p): q' does not depend on p (a zero block of DΦ)."""
    return lambda q, p: (q @ a.T, q @ c.T + p @ b.T)


def test_symplecticity_defect_of_a_linear_map_is_its_exact_defect():
    gen = torch.Generator().manual_seed(3)
    a, c, b = (torch.randn(2, 2, generator=gen, dtype=f64) for _ in range(3))
    q, p = torch.randn(3, 2, generator=gen, dtype=f64), torch.randn(3, 2, generator=gen, dtype=f64)
    m = np.block([[a.numpy(), np.zeros((2, 2))], [c.numpy(), b.numpy()]])
    omega = np.block([[np.zeros((2, 2)), np.eye(2)], [-np.eye(2), np.zeros((2, 2))]])
    exact = np.abs(m.T @ omega @ m - omega).max()
    assert np.abs(m @ omega @ m.T - omega).max() != pytest.approx(exact, rel=1e-3)  # the transposed Jacobian differs
    assert symplecticity_defect(_linear_pair_map(a, c, b), q, p) == pytest.approx(exact, rel=1e-12)
    # (q, p) -> (A q, C q) does not depend on p at all: the p-columns of DΦ are zero, not missing
    singular = np.block([[a.numpy(), np.zeros((2, 2))], [c.numpy(), np.zeros((2, 2))]])
    exact = np.abs(singular.T @ omega @ singular - omega).max()
    assert symplecticity_defect(lambda q, p: (q @ a.T, q @ c.T), q, p) == pytest.approx(exact, rel=1e-12)
    # a symplectic shear (q, p) -> (q, p + S q) with S symmetric: defect 0 up to round-off
    s = c + c.T
    assert symplecticity_defect(_linear_pair_map(torch.eye(2, dtype=f64), s, torch.eye(2, dtype=f64)), q, p) <= 1e-14


def test_symplecticity_defect_rejects_bad_input_naming_it():
    q = torch.zeros(3, 2, dtype=f64)
    same = lambda q, p: (q, p)  # noqa: E731
    with pytest.raises(
        ValueError, match=r"^q and p must be tensors of the same shape \(n,\) or \(N, n\); got list and torch\.Size\(\[3, 2\]\)$"
    ):
        symplecticity_defect(same, [0.0], q)
    with pytest.raises(ValueError, match=r"; got torch\.Size\(\[3, 2\]\) and list$"):
        symplecticity_defect(same, q, [0.0])
    with pytest.raises(ValueError, match=r"; got torch\.Size\(\[3, 2\]\) and torch\.Size\(\[3, 3\]\)$"):
        symplecticity_defect(same, q, torch.zeros(3, 3, dtype=f64))
    square = torch.zeros(2, 2, dtype=f64)  # a tensor of length 2 is still not a pair
    with pytest.raises(TypeError, match=r"^step_map must return a pair \(q', p'\), got Tensor$"):
        symplecticity_defect(lambda q, p: q, square, square)
    with pytest.raises(ValueError, match=r"^step_map changed the shape: \(3, 2\) -> \(3, 1\), \(3, 2\)$"):
        symplecticity_defect(lambda q, p: (q[:, :1], p), q, q)


def test_energy_error_of_scalar_trajectories_and_bad_input():
    qs, ps = torch.tensor([1.0, 0.0, -2.0], dtype=f64), torch.tensor([0.0, 1.0, 0.5], dtype=f64)
    energy = lambda q, p: 0.5 * (q**2 + p**2)  # noqa: E731
    torch.testing.assert_close(energy_error(energy, qs, ps), torch.tensor([0.0, 0.0, 1.625], dtype=f64), rtol=0, atol=1e-15)
    two = torch.zeros(5, 2, dtype=f64)
    with pytest.raises(
        ValueError, match=r"^qs and ps must be time-first trajectories of equal length, got \(5, 2\) and \(4, 2\)$"
    ):
        energy_error(energy, two, torch.zeros(4, 2, dtype=f64))
    with pytest.raises(ValueError, match=r"\(leading dimension 5\), got float$"):
        energy_error(lambda q, p: 1.0, two, two)
    with pytest.raises(ValueError, match=r"\(leading dimension 5\), got \(\)$"):
        energy_error(lambda q, p: energy(q, p).sum(), two, two)


def test_log_norm2_of_one_matrix_and_bad_shapes():
    assert float(log_norm2(torch.tensor([[0.0, 2.0], [0.0, 0.0]], dtype=f64))) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match=r"got shape \(3,\)$"):
        log_norm2(torch.zeros(3))


def _never_called(z):
    raise AssertionError("the field was called although its Jacobian was given")


def test_analytic_jacobians_are_used_instead_of_the_field():
    weight, bias = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=f64), torch.tensor([0.1, -0.2], dtype=f64)
    f, jac = _gradient_flow(weight, bias), _gradient_flow_jacobian(weight, bias)
    z = torch.tensor([[0.3, -0.4], [1.0, 0.2], [-0.5, 0.5]], dtype=f64)
    expected_eig = max_real_eigenvalue(f, z).value
    assert max_real_eigenvalue(_never_called, z, jac).value == pytest.approx(expected_eig, rel=1e-12)
    expected_nu = one_sided_lipschitz(f, z, refine_steps=3).value
    assert one_sided_lipschitz(_never_called, z, jac, refine_steps=3).value == pytest.approx(expected_nu, rel=1e-10)
    layers = per_layer_stability([_never_called, _never_called], [z, z[:2]], [jac, jac], refine_steps=3)
    torch.testing.assert_close(layers.one_sided_lipschitz[0], torch.tensor(expected_nu, dtype=f64), rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match=r"^got 2 layer fields but 1 layer Jacobians$"):
        per_layer_stability([f, f], [z, z], [jac])


def test_per_layer_stability_refines_like_one_sided_lipschitz():
    weight, bias = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=f64), torch.tensor([0.1, -0.2], dtype=f64)
    f = _gradient_flow(weight, bias)
    z = torch.tensor([[0.3, -0.4], [1.0, 0.2], [-0.5, 0.5]], dtype=f64)
    plain = per_layer_stability([f], [z]).one_sided_lipschitz
    refined = per_layer_stability([f], [z], refine_steps=4).one_sided_lipschitz
    assert float(refined[0]) == pytest.approx(one_sided_lipschitz(f, z, refine_steps=4).value, rel=1e-12)
    assert float(refined[0]) > float(plain[0]) + 1e-6  # refinement found a larger μ₂ in the box


def _scaled_identity_jacobian(score):
    """jac(z) = score(z) I, so μ₂(J(z)) = score(z) and the ascent climbs score."""
    return lambda z: score(z)[:, None, None] * torch.eye(z.shape[1], dtype=z.dtype)


def test_refinement_first_step_is_one_percent_of_the_box_along_the_normalised_gradient():
    # μ₂ = |z|²/2, gradient z: one step moves each point by s = 0.01·(largest side) along z/|z|, clamped to the box
    jac = _scaled_identity_jacobian(lambda z: 0.5 * (z**2).sum(1))
    z = torch.tensor([[0.2, 0.1], [0.5, 0.3], [0.3, 0.4], [0.45, 0.2]], dtype=f64)  # box [0.2, 0.5] x [0.1, 0.4]
    side = 0.3
    lower, upper = z.amin(0), z.amax(0)
    moved = torch.clamp(z + 0.01 * side * z / z.norm(dim=1, keepdim=True), lower, upper)
    result = one_sided_lipschitz(_never_called, z, jac, refine_steps=1)
    torch.testing.assert_close(result.points, moved, rtol=0, atol=1e-15)
    torch.testing.assert_close(result.values, 0.5 * (moved**2).sum(1), rtol=0, atol=1e-15)


def test_refinement_stays_in_the_box_of_the_given_points_and_reaches_its_corner():
    # μ₂ = z₁ - z₂ is largest at the corner (max z₁, min z₂) of the points' bounding box [0, 1] x [10, 11]
    jac = _scaled_identity_jacobian(lambda z: z[:, 0] - z[:, 1])
    z = torch.tensor([[0.0, 10.5], [1.0, 11.0], [0.5, 10.0], [0.2, 10.7]], dtype=f64)
    result = one_sided_lipschitz(_never_called, z, jac, refine_steps=30)
    assert result.value == pytest.approx(-9.0, abs=1e-12)
    assert bool((result.points >= z.amin(0)).all()) and bool((result.points <= z.amax(0)).all())


def test_refine_points_picks_the_best_points_64_by_default():
    centre = torch.tensor([0.52, 0.2], dtype=f64)
    jac = _scaled_identity_jacobian(lambda z: -((z - centre) ** 2).sum(1))  # μ₂ climbs towards the centre
    z = torch.linspace(0.1, 1.0, 65, dtype=f64)[:, None] * torch.tensor([[1.0, 0.5]], dtype=f64)
    worst, best = 64, int((z - centre).norm(dim=1).argmin())  # the 65th point is the farthest from the centre
    result = one_sided_lipschitz(_never_called, z, jac, refine_steps=1)
    assert torch.equal(result.points[worst], z[worst])  # not among the 64 refined
    assert not torch.equal(result.points[worst - 1], z[worst - 1])
    one = one_sided_lipschitz(_never_called, z, jac, refine_steps=1, refine_points=1)
    changed = (one.points != z).any(1).nonzero().flatten().tolist()
    assert changed == [best]


def test_points_and_refine_options_are_checked_naming_the_value():
    f = _linear_field(torch.eye(2, dtype=f64))
    assert one_sided_lipschitz(f, torch.zeros(1, 2, dtype=f64)).value == pytest.approx(1.0, abs=1e-15)  # one point
    with pytest.raises(ValueError, match=r"^points must contain at least one point, got N = 0$"):
        one_sided_lipschitz(f, torch.zeros(0, 2, dtype=f64))
    with pytest.raises(ValueError, match=r"^points must be a floating tensor of shape \(N, d\), got \(3,\)$"):
        one_sided_lipschitz(f, torch.zeros(3, dtype=f64))
    with pytest.raises(ValueError, match=r"^points must be a floating tensor of shape \(N, d\), got list$"):
        jacobians(f, [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^refine_steps must be an int ≥ 0, got 1\.5$"):
        one_sided_lipschitz(f, torch.zeros(2, 2, dtype=f64), refine_steps=1.5)
    with pytest.raises(ValueError, match=r"^refine_points must be an int ≥ 1 or None, got 2\.5$"):
        one_sided_lipschitz(f, torch.zeros(2, 2, dtype=f64), refine_steps=1, refine_points=2.5)
    with pytest.raises(ValueError, match=r"^weight must be a matrix A of shape \(\.\.\., m, d\), got shape \(3,\)$"):
        gradient_flow_lipschitz_bounds(torch.zeros(3))


def test_the_disc_radius_ignores_critical_points_of_q_beyond_the_circle():
    """R = 1 + z + 0.301 z² + 0.023 z³ (a 3-stage tableau built for it): near its disc radius r ≈ 2.5126,
    q(x) is negative at a critical point in (1, 2], outside x = cos θ ∈ [-1, 1], where it says nothing
    about |R| on the circle. Counting that point gave r = 2.5124 (found by a random search over cubics);
    the dense scan of |R| confirms the larger r."""
    gamma2, gamma3 = 0.301, 0.023  # R = 1 + bᵀ1 z + bᵀA1 z² + bᵀA²1 z³ with A1 = (0, 1, 1), A²1 = (0, 0, 1)
    tableau = ButcherTableau(a=((0, 0, 0), (1, 0, 0), (0, 1, 0)), b=(1 - gamma2, gamma2 - gamma3, gamma3), c=(0, 1, 1), order=1)
    z = np.array([0.3 - 0.2j])
    assert tableau.stability_function(z) == pytest.approx(1 + z + gamma2 * z**2 + gamma3 * z**3, rel=1e-14)
    r = stability_disc_radius(tableau)
    assert r == pytest.approx(2.5125628, rel=1e-7)
    _assert_largest_disc(tableau, r)


def test_the_ascent_moves_only_to_a_strictly_better_point():
    """A trial of exactly the same μ₂ is no move (the ascent is monotone and cannot cycle between equal
    points): from x = 0 the first step lands on the mirror image of 0 about the maximum of -(x - c)²."""
    from sdl.stability.spectra import _FIRST_STEP_FRACTION, _ascend

    lower, upper = torch.tensor([[-100.0]], dtype=torch.float64), torch.tensor([[100.0]], dtype=torch.float64)
    step = _FIRST_STEP_FRACTION * 200.0
    centre = step / 2  # x = step is as good as x = 0, exactly

    def score(x):
        return -((x[:, 0] - centre) ** 2)

    start = torch.zeros(1, 1, dtype=torch.float64)
    points, values = _ascend(score, start, score(start), 1, lower, upper)
    assert points.item() == 0.0 and values.item() == -(centre**2)
    points, values = _ascend(score, start, score(start), 2, lower, upper)  # half the step: better, so taken
    assert points.item() == step / 2 and values.item() == 0.0
