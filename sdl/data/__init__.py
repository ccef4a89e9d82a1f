"""Toy data sets, by name."""
from .toy import Dataset, dataset_names, make_dataset
