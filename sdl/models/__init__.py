"""Learned things: vector fields, ODE-networks, HollowNets and CNFs, invertible layers and flows,
SympNets (exactly symplectic one-step maps)."""

from . import flows
from .activations import Activation, activation, activation_names, leaky_relu
from .cnf import CNF, BruteForceDivergence, DivergenceEstimator, ExactDivergence, HutchinsonDivergence
from .hollow import HollowNet, dimwise_derivative, divergence
from .hnn import HNN, MLPField, SeparableHNN
from .constrained import CONSTRAINTS
from .network import ODENet
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
    "CONSTRAINTS",
    "Activation",
    "ActivationShear",
    "AntisymmetricField",
    "BruteForceDivergence",
    "CNF",
    "DivergenceEstimator",
    "ExactDivergence",
    "GSympNet",
    "GradientFlowField",
    "GradientShear",
    "HNN",
    "HamiltonianField",
    "HollowNet",
    "HutchinsonDivergence",
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
    "SeparableHNN",
    "SwitchingField",
    "SymplecticMap",
    "activation",
    "activation_names",
    "dimwise_derivative",
    "divergence",
    "flows",
    "leaky_relu",
    "logdet_band_penalty",
    "parameter_smoothness",
]
