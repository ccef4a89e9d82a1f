"""Data by name: toy classification sets, 2-D densities, trajectories of Hamiltonian systems, and
potential energies with a reference MCMC sampler (Boltzmann generators)."""

from .densities import density_names, sample_density
from .energies import Energy, MCMCResult, energy_names, get_energy, sample_mcmc, state_free_energy_quadrature
from .systems import RECIPES, SYSTEMS, System, Trajectories, get_system, make_trajectories, system_names
from .toy import Dataset, dataset_classes, dataset_features, dataset_names, make_dataset

__all__ = [
    "RECIPES",
    "SYSTEMS",
    "Dataset",
    "Energy",
    "MCMCResult",
    "System",
    "Trajectories",
    "dataset_classes",
    "dataset_features",
    "dataset_names",
    "density_names",
    "energy_names",
    "get_energy",
    "get_system",
    "make_dataset",
    "make_trajectories",
    "sample_density",
    "sample_mcmc",
    "state_free_energy_quadrature",
    "system_names",
]
