"""Vector fields and learned layers."""
from .hollow import HollowNet, dimwise_derivative, divergence
