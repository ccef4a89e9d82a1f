"""Linear stability of Runge–Kutta methods: |R(z)| on a grid of the complex plane.

On y' = λy one step of a Runge–Kutta method with tableau (A, b) is y_{n+1} = R(hλ) y_n with
R(z) = 1 + z bᵀ(I - zA)⁻¹ 1 (``ButcherTableau.stability_function``). The stability region
{z : |R(z)| ≤ 1} is where the step does not amplify the linear mode; explicit methods have
polynomial R (RK4: R(z) = 1 + z + z²/2 + z³/6 + z⁴/24) and bounded regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..integrators import ButcherTableau

__all__ = ["StabilityRegion", "stability_region"]


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
