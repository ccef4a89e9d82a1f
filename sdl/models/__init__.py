"""Learned things: vector fields, ODE-networks, HollowNets and CNFs, invertible layers and flows,
SympNets (exactly symplectic one-step maps); θ(t) between layers and non-autonomous Hamiltonians."""

from . import flows
from .activations import Activation, activation, activation_names, leaky_relu
from .cnf import CNF, BruteForceDivergence, DivergenceEstimator, ExactDivergence, HutchinsonDivergence
from .constrained import CONSTRAINTS
from .hnn import HNN, MLPField, SeparableHNN
from .hollow import HollowNet, dimwise_derivative, divergence
from .interpolation import INTERPOLATIONS, interpolate_layers, prolong_layers
from .network import ODENet
from .nonautonomous import (
    ExtendedField,
    InterpolatedHamiltonian,
    SeparableExtendedField,
    TimeDependentHamiltonian,
    extended_phase_space,
)
from .p4inv import MergeReport, MergeRule, P4InvLinear, P4InvScheduler, P4Layer, logdet_band_penalty
from .p4orth import P4OrthLinear
from .sympnet import (
    ActivationShear,
    GradientShear,
    GSympNet,
    LASympNet,
    LinearShear,
    LinearSymplectic,
    MLPMap,
    SymplecticMap,
)
from .vector_fields import (
    AntisymmetricField,
    GradientFlowField,
    HamiltonianField,
    ResNetField,
    SwitchingField,
    parameter_smoothness,
)

__all__ = [
    "CNF",
    "CONSTRAINTS",
    "HNN",
    "INTERPOLATIONS",
    "Activation",
    "ActivationShear",
    "AntisymmetricField",
    "BruteForceDivergence",
    "DivergenceEstimator",
    "ExactDivergence",
    "ExtendedField",
    "GSympNet",
    "GradientFlowField",
    "GradientShear",
    "HamiltonianField",
    "HollowNet",
    "HutchinsonDivergence",
    "InterpolatedHamiltonian",
    "LASympNet",
    "LinearShear",
    "LinearSymplectic",
    "MLPField",
    "MLPMap",
    "MergeReport",
    "MergeRule",
    "ODENet",
    "P4InvLinear",
    "P4InvScheduler",
    "P4Layer",
    "P4OrthLinear",
    "ResNetField",
    "SeparableExtendedField",
    "SeparableHNN",
    "SwitchingField",
    "SymplecticMap",
    "TimeDependentHamiltonian",
    "activation",
    "activation_names",
    "dimwise_derivative",
    "divergence",
    "extended_phase_space",
    "flows",
    "interpolate_layers",
    "leaky_relu",
    "logdet_band_penalty",
    "parameter_smoothness",
    "prolong_layers",
]
