from fractions import Fraction

import numpy as np
import pytest

from sdl.integrators import TABLEAUS, ButcherTableau, order_condition_residuals, rooted_trees


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_declared_order_conditions_hold(name):
    residuals = order_condition_residuals(TABLEAUS[name])
    assert max(abs(r) for r in residuals.values()) < 1e-14


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_declared_order_is_not_understated(name):
    """Some condition of order p + 1 fails, so the declared order is the true order."""
    tableau = TABLEAUS[name]
    residuals = order_condition_residuals(tableau, tableau.order + 1)
    assert max(abs(r) for r in residuals.values()) > 1e-3


def test_row_sums_must_equal_nodes():
    with pytest.raises(ValueError, match=r"row 1 of A sums to 0.5, but c\[1\] = 1.0"):
        ButcherTableau(a=((0, 0), (0.5, 0)), b=(0.5, 0.5), c=(0, 1), order=2)


def test_weights_must_sum_to_one():
    with pytest.raises(ValueError, match=r"weights b sum to 0.9"):
        ButcherTableau(a=((0,),), b=(0.9,), c=(0,), order=1)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="A of shape"):
        ButcherTableau(a=((0, 0),), b=(0.5, 0.5), c=(0, 1), order=1)


def test_tableau_is_immutable():
    with pytest.raises(AttributeError):
        TABLEAUS["rk4"].order = 5


def test_symplectic_property_matches_cooper_condition():
    symplectic = {name for name, t in TABLEAUS.items() if t.symplectic}
    assert symplectic == {"implicit_midpoint", "gauss_legendre4"}


def test_rk4_stability_function_is_taylor_polynomial_of_exp():
    z = np.array([-2.5 + 1j, -0.3, 0.7j, 1.1 - 0.2j])
    taylor = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    assert np.allclose(TABLEAUS["rk4"].stability_function(z), taylor, rtol=1e-14, atol=1e-14)


def test_implicit_midpoint_stability_function_is_pade():
    z = np.array([-10.0, -0.5 + 2j, 3j])
    assert np.allclose(TABLEAUS["implicit_midpoint"].stability_function(z), (1 + z / 2) / (1 - z / 2), rtol=1e-14)


def _cooper_pair(x, b1="1/2", perturbation=0):
    """Two stages with b = (b1, 1 - b1) satisfying Cooper's condition for any a12 = x (for b1 = 1/2 also
    symmetric); ``perturbation`` moves a11 (and a12 back, keeping the row sum) off the condition."""
    x, b1, e = Fraction(x), Fraction(b1), Fraction(perturbation)
    b2 = 1 - b1
    a21 = (b1 * b2 - b1 * x) / b2
    a = ((b1 / 2 + e, x - e), (a21, b2 / 2))
    return ButcherTableau(a=a, b=(b1, b2), c=(sum(a[0]), sum(a[1])), order=1)


def test_registered_gauss_legendre_tableaus_are_symplectic_and_symmetric_but_not_when_perturbed_by_1e_10():
    for name in ("implicit_midpoint", "gauss_legendre4"):
        tableau = TABLEAUS[name]
        assert tableau.symplectic and tableau.symmetric
        a = [list(row) for row in tableau.a]
        a[0][0] += 1e-10
        if len(a) > 1:
            a[0][1] -= 1e-10  # the row sum stays c[0]
        perturbed = ButcherTableau(a=tuple(map(tuple, a)), b=tableau.b, c=(a[0][0] + sum(a[0][1:]), *tableau.c[1:]), order=1)
        assert not perturbed.symplectic and not perturbed.symmetric


def test_symplecticity_tolerance_scales_with_large_coefficients():
    """a12 = 10⁶ + 1/3 rounds by ~1e-10: far above an absolute 1e-14, within a few ulp of the terms."""
    tableau = _cooper_pair(Fraction(10**6) + Fraction(1, 3))
    assert tableau.symplectic and tableau.symmetric
    assert not _cooper_pair(Fraction(10**6) + Fraction(1, 3), perturbation="1/10000").symplectic  # 1e-10 relative


def test_symplecticity_tolerance_scales_with_tiny_weights():
    """With b1 = 1e-12 the condition b1 (2 a11 - b1) = 0 has terms of size 1e-24: a relative defect of 1e-6
    in a11 is a residual of 1e-30, which an absolute 1e-14 would accept."""
    tiny = Fraction(1, 10**12)
    assert _cooper_pair((1 - tiny) / 2, b1=tiny).symplectic
    assert not _cooper_pair((1 - tiny) / 2, b1=tiny, perturbation=tiny / 2 * Fraction(1, 10**6)).symplectic


# ``TABLEAUS`` are built when sdl is imported; the tests below build tableaus inside the test, so that a change to
# the construction (``__post_init__``) shows in the tests.
def test_entries_given_as_fractions_or_strings_are_stored_as_floats():
    tableau = ButcherTableau(
        a=((0, 0, 0), ("1/3", 0, 0), (Fraction(-1, 3), 1, 0)),
        b=("1/8", "3/8", Fraction(1, 2)),
        c=(0, "1/3", Fraction(2, 3)),
        order=1,
    )
    assert tableau.a == ((0.0, 0.0, 0.0), (1 / 3, 0.0, 0.0), (-1 / 3, 1.0, 0.0))
    assert tableau.b == (0.125, 0.375, 0.5) and tableau.c == (0.0, 1 / 3, 2 / 3)
    assert all(type(x) is float for x in (*tableau.b, *tableau.c, *(x for row in tableau.a for x in row)))


def test_the_weight_check_allows_rounding_and_no_more():
    """Σ b_i = 1 is checked to 8 ulp of its terms (Σ|b_i| + 1 = 2 here): 2 ulp off passes, 20 ulp off does not."""
    eps = np.finfo(float).eps
    assert ButcherTableau(a=((0,),), b=(1 + 2 * eps,), c=(0,), order=1).b == (1 + 2 * eps,)
    with pytest.raises(ValueError, match=r"weights b sum to 1.0000000000000044, not 1"):
        ButcherTableau(a=((0,),), b=(1 + 20 * eps,), c=(0,), order=1)


def test_an_empty_tableau_is_rejected_for_its_shape():
    with pytest.raises(ValueError, match=r"A of shape \(s, s\), b and c of length s; got A with rows \[\], len\(b\) = 0"):
        ButcherTableau(a=(), b=(), c=(), order=1)


@pytest.mark.parametrize("order", [0, -2, 2.5, True, "4"])
def test_the_order_must_be_a_positive_int(order):
    with pytest.raises(ValueError, match=rf"order must be a positive int, got {order!r}"):
        ButcherTableau(a=((0,),), b=(1,), c=(0,), order=order)


def test_rooted_trees_are_generated_afresh_with_their_sizes():
    """The generator itself, not a cache filled by another test: 1, 1, 2, 4, 9, 20, 48, 115, 286 distinct
    canonical trees (A000081), each with p nodes."""
    rooted_trees.cache_clear()
    for p, count in enumerate([1, 1, 2, 4, 9, 20, 48, 115, 286], start=1):
        trees = rooted_trees(p)
        assert len(set(trees)) == len(trees) == count
        assert all(_nodes(tree) == p and tree == _canonical(tree) for tree in trees)


def _nodes(tree):
    return 1 + sum(_nodes(child) for child in tree)


def _canonical(tree):
    return tuple(sorted(_canonical(child) for child in tree))


def test_stability_function_is_complex_with_the_shape_of_z():
    rk4 = TABLEAUS["rk4"]
    value = rk4.stability_function(-1.0)
    assert value.shape == () and value.dtype == np.complex128 and abs(value - 0.375) < 1e-15  # 1 - 1 + 1/2 - 1/6 + 1/24
    z = np.array([[-2.0, -0.5, 0.0], [0.25, 1.0, -3.0]])
    values = rk4.stability_function(z)
    assert values.shape == (2, 3) and values.dtype == np.complex128
    np.testing.assert_allclose(values.real, 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24, rtol=1e-14, atol=0)
