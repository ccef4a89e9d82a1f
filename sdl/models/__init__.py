"""Learned things: vector fields, ODE-networks, HollowNets and CNFs, invertible layers and flows."""

from . import flows
from .activations import Activation, activation, activation_names, leaky_relu
from .cnf import CNF, BruteForceDivergence, DivergenceEstimator, ExactDivergence, HutchinsonDivergence
from .hollow import HollowNet, dimwise_derivative, divergence
from .hnn import HNN, MLPField, SeparableHNN
from .constrained import CONSTRAINTS
from .network import ODENet
from .p4inv import MergeReport, MergeRule, P4InvLinear, P4InvScheduler, logdet_band_penalty
from .vector_fields import (
    AntisymmetricField,
    GradientFlowField,
    HamiltonianField,
    ResNetField,
    SwitchingField,
    parameter_smoothness,
)

__all__ = [
    "CONSTRAINTS",
    "Activation",
    "AntisymmetricField",
    "BruteForceDivergence",
    "CNF",
    "DivergenceEstimator",
    "ExactDivergence",
    "GradientFlowField",
    "HNN",
    "HamiltonianField",
    "HollowNet",
    "HutchinsonDivergence",
    "MLPField",
    "MergeReport",
    "MergeRule",
    "ODENet",
    "P4InvLinear",
    "P4InvScheduler",
    "ResNetField",
    "SeparableHNN",
    "SwitchingField",
    "activation",
    "activation_names",
    "dimwise_derivative",
    "divergence",
    "flows",
    "leaky_relu",
    "logdet_band_penalty",
    "parameter_smoothness",
]
