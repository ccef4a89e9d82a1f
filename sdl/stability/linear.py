"""Linear stability of Runge–Kutta methods: |R(z)| on a grid of the complex plane.

On y' = λy one step of a Runge–Kutta method with tableau (A, b) is y_{n+1} = R(hλ) y_n with
R(z) = 1 + z bᵀ(I - zA)⁻¹ 1 (``ButcherTableau.stability_function``). The stability region
{z : |R(z)| ≤ 1} is where the step does not amplify the linear mode; explicit methods have
polynomial R (RK4: R(z) = 1 + z + z²/2 + z³/6 + z⁴/24) and bounded regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

from ..integrators import ButcherTableau

__all__ = ["StabilityRegion", "stability_disc_radius", "stability_region"]


@dataclass(frozen=True, eq=False)
class StabilityRegion:
    """|R(z)| sampled on a rectangular grid z = x + iy.

    Attributes:
        real: (nx,) grid values of Re z.
        imag: (ny,) grid values of Im z.
        modulus: (ny, nx) |R(real[j] + i imag[i])| at row i, column j (image layout, for
            ``contour(real, imag, modulus, levels=[1])``).
    """

    real: np.ndarray
    imag: np.ndarray
    modulus: np.ndarray

    @property
    def stable(self) -> np.ndarray:
        """(ny, nx) boolean mask of |R(z)| ≤ 1."""
        return self.modulus <= 1.0


def stability_region(
    tableau: ButcherTableau,
    re_range: tuple[float, float] = (-5.0, 1.0),
    im_range: tuple[float, float] = (-4.0, 4.0),
    resolution: int = 201,
) -> StabilityRegion:
    """|R(z)| of ``tableau`` on a ``resolution`` × ``resolution`` grid over re_range × im_range.

    Args:
        tableau: the method's ``ButcherTableau`` (e.g. ``sdl.integrators.TABLEAUS["rk4"]``).
        re_range: (min, max) of Re z, min < max.
        im_range: (min, max) of Im z, min < max.
        resolution: grid points per axis, an int ≥ 2.

    Returns:
        ``StabilityRegion`` with float64 arrays; where I - zA is singular (implicit methods at
        a pole of R) the modulus is inf.
    """
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"tableau must be a sdl.integrators.ButcherTableau, got {type(tableau).__name__}")
    for name, (low, high) in (("re_range", re_range), ("im_range", im_range)):
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"{name} must be a finite (min, max) with min < max, got {(low, high)!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int ≥ 2, got {resolution!r}")
    real = np.linspace(re_range[0], re_range[1], resolution)
    imag = np.linspace(im_range[0], im_range[1], resolution)
    z = real[None, :] + 1j * imag[:, None]
    with np.errstate(all="ignore"):
        try:
            modulus = np.abs(tableau.stability_function(z))
        except np.linalg.LinAlgError:
            modulus = _modulus_pointwise(tableau, z)
    return StabilityRegion(real, imag, modulus)


def _modulus_pointwise(tableau: ButcherTableau, z: np.ndarray) -> np.ndarray:
    """Fallback when the grid hits a pole of R exactly: evaluate point by point, inf at poles."""
    out = np.empty(z.shape)
    for index, value in np.ndenumerate(z):
        try:
            out[index] = abs(complex(tableau.stability_function(value)))
        except np.linalg.LinAlgError:
            out[index] = np.inf
    return out


_DISC_TOL = 0.0  # q ≥ 0 exactly: round-off then errs towards a smaller (safe) radius
_MAX_DISC_RADIUS = 2.0**20


def stability_disc_radius(tableau: ButcherTableau) -> float:
    """The radius r of the largest disc {z : |z + r| ≤ r} (tangent to the imaginary axis at 0)
    inside the stability region {|R(z)| ≤ 1} of an explicit method.

    The discs grow with r, so r is found by bisection (to about 1e-15 relative) on the test
    "|R| ≤ 1 on the circle z = r(w - 1), |w| = 1", which covers the disc because R is a polynomial
    (maximum principle). On the circle, |R|² is a trigonometric polynomial in θ = arg w; with
    x = cos θ it is a polynomial p(x) of degree s, and 1 - p(x) vanishes at x = 1 (z = 0, R = 1).
    So 1 - p(x) = (1 - x) q(x) and the test is q ≥ 0 on [-1, 1], checked exactly at the ends and
    at the real roots of q'. No grid, so no narrow peak of |R| is missed.

    Values: Euler and every 2-stage order-2 method: 1; 3-stage order 3: 1.2564; RK4: 1.3926 (the
    last two are half the real stability interval). A disc inside the region is necessary for
    hρ ≤ r to make steps of every field with the circle condition of radius ρ non-expansive (it is
    the linear case), not sufficient: see ``sdl.stability.contractivity_radius``.
    """
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"tableau must be a sdl.integrators.ButcherTableau, got {type(tableau).__name__}")
    if not tableau.explicit:
        raise ValueError("stability_disc_radius needs an explicit method (a polynomial R); implicit ones may be A-stable")
    a, b = np.array(tableau.a), np.array(tableau.b)
    coefficients = [1.0]  # R(z) = 1 + Σ_k bᵀA^{k-1}1 z^k, a polynomial of degree ≤ s (A is nilpotent)
    power = np.ones(tableau.stages)
    for _ in range(tableau.stages):
        coefficients.append(float(b @ power))
        power = a @ power
    stability = Polynomial(coefficients)

    def fits(r: float) -> bool:
        q = np.asarray(stability(Polynomial([-r, r])).coef, dtype=float)  # R(r(w - 1)) = Σ_j q_j w^j
        c = np.correlate(q, q, "full")[len(q) - 1 :]  # |R|² = c₀ + 2 Σ_m c_m cos mθ
        gap = Chebyshev(np.concatenate([[1.0 - c[0]], -2.0 * c[1:]])).convert(kind=Polynomial)  # 1 - |R|²
        quotient = gap // Polynomial([1.0, -1.0])  # (1 - |R|²) / (1 - x)
        points = [-1.0, 1.0] + [x.real for x in quotient.deriv().roots() if abs(x.imag) < 1e-12 and -1 <= x.real <= 1]
        return min(quotient(np.array(points))) >= -_DISC_TOL

    low, high = 0.0, 1.0
    while fits(high):
        low, high = high, 2.0 * high
        if high > _MAX_DISC_RADIUS:
            raise ValueError("the stability region contains discs of every radius up to 2^20; is the method explicit?")
    while high - low > 1e-15 * high:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low
