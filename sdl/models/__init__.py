"""Vector fields and learned layers."""

from .activations import Activation, activation, activation_names
from .network import ODENet
from .vector_fields import GradientFlowField, HamiltonianField, ResNetField, parameter_smoothness
