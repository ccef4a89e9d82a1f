"""Learned things: vector fields, ODE-networks, invertible layers and flows."""

from . import flows
from .activations import Activation, activation, activation_names
from .network import ODENet
from .p4inv import MergeReport, MergeRule, P4InvLinear, P4InvScheduler, logdet_band_penalty
from .vector_fields import GradientFlowField, HamiltonianField, ResNetField, parameter_smoothness

__all__ = [
    "Activation",
    "GradientFlowField",
    "HamiltonianField",
    "MergeReport",
    "MergeRule",
    "ODENet",
    "P4InvLinear",
    "P4InvScheduler",
    "ResNetField",
    "activation",
    "activation_names",
    "flows",
    "logdet_band_penalty",
    "parameter_smoothness",
]
