"""Small real data sets that scikit-learn's wheel ships (no download), split and scaled reproducibly.

- ``digits``: 1797 handwritten digits, 8 × 8 pixels with values 0–16, scaled to [0, 1] (÷ 16);
  10 classes. The set of the robustness experiments: a perturbation's ℓ₂ norm is in pixel units.
- ``iris`` (150 × 4, 3 classes), ``wine`` (178 × 13, 3 classes), ``breast_cancer`` (569 × 30,
  2 classes): features standardised with the mean and standard deviation of the training split.

Each set is split into training and validation parts stratified by class (a quarter for
validation) with ``seed``; ``n`` keeps at most n training points (stratified too), or all of them.
Needs scikit-learn (``pip install 'sdl[datasets]'``), imported only when such a set is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["REAL_SETS", "real_arrays"]

VALIDATION_FRACTION = 0.25


@dataclass(frozen=True)
class _RealSet:
    loader: str  # the sklearn.datasets function
    features: int
    num_classes: int
    scale: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (train, validation) -> scaled


def _pixels(train: np.ndarray, validation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return train / 16.0, validation / 16.0


def _standardised(train: np.ndarray, validation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (validation - mean) / std


REAL_SETS: dict[str, _RealSet] = {
    "digits": _RealSet("load_digits", 64, 10, _pixels),
    "iris": _RealSet("load_iris", 4, 3, _standardised),
    "wine": _RealSet("load_wine", 13, 3, _standardised),
    "breast_cancer": _RealSet("load_breast_cancer", 30, 2, _standardised),
}


def real_arrays(name: str, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) of the set ``name`` as float64 / int64 NumPy arrays."""
    try:
        from sklearn import datasets
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"the data set {name!r} comes with scikit-learn: pip install 'sdl[datasets]'") from error
    spec = REAL_SETS[name]
    bunch = getattr(datasets, spec.loader)()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=VALIDATION_FRACTION, stratify=y, random_state=seed)
    if n is not None and n < len(x_train):
        x_train, _, y_train, _ = train_test_split(x_train, y_train, train_size=n, stratify=y_train, random_state=seed)
    x_train, x_val = spec.scale(x_train, x_val)
    return x_train, y_train, x_val, y_val
