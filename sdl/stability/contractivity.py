"""Non-expansive Runge–Kutta steps: the radius of circle contractivity of a tableau.

A field satisfies the circle condition of radius ρ (``sdl.fields.CircleCondition``) when
⟨Δf, Δz⟩ ≤ -‖Δf‖²/(2ρ) for all pairs; a gradient flow f = -Aᵀσ(Az + b) with 0 ≤ σ' ≤ L_σ has it
with ρ = L_σ‖A‖₂²/2. For one step y₁ = y₀ + h Σ b_i k_i, Y_i = y₀ + h Σ a_ij k_j applied to two
initial values, with u_i = h Δk_i, expanding ‖Δy₁‖² gives the identity (Burrage & Butcher's
algebraic stability, extended to discs by Dahlquist & Jeltsch 1979)

    ‖Δy₁‖² = ‖Δy₀‖² + 2 Σ_i b_i ⟨u_i, ΔY_i⟩ - Σ_ij m_ij ⟨u_i, u_j⟩,   M = BA + AᵀB - bbᵀ, B = diag(b).

With b ≥ 0 and ⟨u_i, ΔY_i⟩ ≤ -‖u_i‖²/(2hρ):  ‖Δy₁‖² ≤ ‖Δy₀‖² - Σ_ij (M + B/(hρ))_ij ⟨u_i, u_j⟩,
and the sum is ≥ 0 whenever M + B/(hρ) is positive semidefinite (it is the trace of that matrix
times the Gram matrix of the u_i). So the step is non-expansive in ‖·‖₂ for every such field when

    hρ ≤ r = sup{ r ≥ 0 : b ≥ 0 and M + B/r ⪰ 0 },   i.e.   h L_σ ‖A‖₂² ≤ 2r for a gradient flow.

r depends on the whole tableau, not only on its stability function R: SSPRK3 and Kutta's third
order share R but have r = 1 and r = 1/2. The disc {|z + r| ≤ r} inside the linear stability
region (``sdl.stability.stability_disc_radius``) is necessary for such a statement but not
sufficient: ReLU gradient flows expand under SSPRK3 at hL_σ‖A‖² = 2.3 < 2·1.256.
"""

from __future__ import annotations

import math

import numpy as np

from ..integrators import ButcherTableau

__all__ = ["contractivity_radius"]

_TOL = 1e-14  # tableau entries are floats: what counts as zero in M, and as a vanishing bound on 1/r


def contractivity_radius(tableau: ButcherTableau) -> float:
    """r = sup{r ≥ 0 : b ≥ 0 and M + B/r ⪰ 0} (module docstring): one step of size h is
    non-expansive in ‖·‖₂ for every field with the circle condition of radius ρ ≤ r/h.

    Computed as 1/s* with s* = λ_max(-B^{-½} M B^{-½}), the least s ≥ 0 with M + sB ⪰ 0, over the
    stages with b_i > 0; a stage with b_i = 0 needs row i of M to vanish (else r = 0, since then
    (M + sB)_ii = m_ii = 2 b_i a_ii - b_i² = 0 with a nonzero off-diagonal entry), and any b_i < 0
    gives r = 0. inf for algebraically stable methods (M ⪰ 0: implicit midpoint, Gauss–Legendre).

    Values: Euler, Heun, SSPRK3, RK4: 1; Ralston: 0.791; Kutta's third order: 1/2; the 3/8 rule:
    0.464; explicit midpoint: 0 (b₁ = 0 while m₁₂ = b₂a₂₁ ≠ 0).
    """
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"tableau must be a sdl.integrators.ButcherTableau, got {type(tableau).__name__}")
    b = np.array(tableau.b)
    if (b < 0).any():
        return 0.0
    m = tableau.algebraic_stability_matrix
    unweighted = b == 0.0
    if np.abs(m[unweighted]).max(initial=0.0) > _TOL:
        return 0.0
    weighted = ~unweighted
    scale = 1.0 / np.sqrt(b[weighted])
    s = np.linalg.eigvalsh(-(scale[:, None] * m[np.ix_(weighted, weighted)] * scale[None, :]))[-1]
    return math.inf if s <= _TOL else 1.0 / float(s)
