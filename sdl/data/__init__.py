"""Toy data sets, by name."""
from .densities import density_names, sample_density
