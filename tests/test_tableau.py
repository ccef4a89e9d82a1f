import numpy as np
import pytest

from sdl.integrators import TABLEAUS, ButcherTableau, order_condition_residuals, rooted_trees


def test_rooted_tree_counts_match_oeis_a000081():
    assert [len(rooted_trees(p)) for p in range(1, 8)] == [1, 1, 2, 4, 9, 20, 48]


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
    with pytest.raises(ValueError, match="weights b sum to 0.9"):
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
