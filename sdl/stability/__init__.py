"""Stability diagnostics: Jacobian spectra, one-sided Lipschitz constants, linear stability
regions of Runge–Kutta methods, symplecticity defects and energy errors; contractivity of
Runge–Kutta steps, Lipschitz certificates and certified radii of ODE-networks, ℓ₂ attacks."""

from .attacks import classification_margin, pgd_l2, robust_accuracy
from .certificates import certified_accuracy, certified_radius, lipschitz_bound, step_lipschitz_bound
from .contractivity import contractivity_radius
from .hamiltonian import energy_error, symplecticity_defect
from .linear import StabilityRegion, stability_disc_radius, stability_region
from .spectra import (
    LayerStability,
    LipschitzBounds,
    PointwiseMaximum,
    gradient_flow_lipschitz_bounds,
    jacobians,
    log_norm2,
    max_real_eigenvalue,
    one_sided_lipschitz,
    per_layer_stability,
)

__all__ = [
    "LayerStability",
    "LipschitzBounds",
    "PointwiseMaximum",
    "StabilityRegion",
    "certified_accuracy",
    "certified_radius",
    "classification_margin",
    "contractivity_radius",
    "energy_error",
    "gradient_flow_lipschitz_bounds",
    "jacobians",
    "lipschitz_bound",
    "log_norm2",
    "max_real_eigenvalue",
    "one_sided_lipschitz",
    "per_layer_stability",
    "pgd_l2",
    "robust_accuracy",
    "stability_disc_radius",
    "stability_region",
    "step_lipschitz_bound",
    "symplecticity_defect",
]
