"""Toy data sets, by name."""
