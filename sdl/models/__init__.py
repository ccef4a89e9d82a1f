"""Vector fields and learned layers."""
from .p4inv import MergeReport, MergeRule, P4InvLinear, P4InvScheduler, logdet_band_penalty  # noqa: F401
