"""Data by name: toy classification sets, 2-D densities and trajectories of Hamiltonian systems."""

from .densities import density_names, sample_density
from .systems import RECIPES, SYSTEMS, System, Trajectories, get_system, make_trajectories, system_names
from .toy import Dataset, dataset_classes, dataset_features, dataset_names, make_dataset

__all__ = [
    "RECIPES",
    "SYSTEMS",
    "Dataset",
    "System",
    "Trajectories",
    "dataset_classes",
    "dataset_features",
    "dataset_names",
    "density_names",
    "get_system",
    "make_dataset",
    "make_trajectories",
    "sample_density",
    "system_names",
]
