"""Data by name: toy classification sets and 2-D densities."""

from .densities import density_names, sample_density
from .toy import Dataset, dataset_classes, dataset_features, dataset_names, make_dataset

__all__ = ["Dataset", "dataset_classes", "dataset_features", "dataset_names", "density_names", "make_dataset", "sample_density"]
