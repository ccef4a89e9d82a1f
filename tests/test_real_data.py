"""The real data sets: scikit-learn's bundled files, split by class and scaled as documented."""

import pytest
import torch

from sdl.data import dataset_features, dataset_names, make_dataset


def test_digits_are_pixels_in_the_unit_interval_split_by_class():
    data = make_dataset("digits", seed=0, dtype=torch.float64)
    assert data.x_train.shape == (1347, 64) and data.x_val.shape == (450, 64) and data.num_classes == 10
    assert data.x_train.min() == 0 and data.x_train.max() == 1 and (data.x_train * 16).frac().abs().max() == 0
    train, val = data.y_train.bincount(), data.y_val.bincount()
    assert train.min() >= 131 and val.min() >= 43 and (train - 3 * val).abs().max() <= 4  # the 3:1 split per class
    assert dataset_features("digits") == 64 and "digits" in dataset_names()


def test_a_seed_fixes_the_split_and_n_keeps_a_stratified_subset():
    a, b, c = (make_dataset("digits", seed=s) for s in (1, 1, 2))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)
    small = make_dataset("digits", n=200, seed=1)
    assert small.x_train.shape == (200, 64) and small.y_train.bincount().min() >= 19
    assert torch.equal(small.x_val, a.x_val)  # the validation split does not depend on n


def test_tabular_sets_are_standardised_on_the_training_split():
    data = make_dataset("wine", seed=0, dtype=torch.float64)
    assert data.x_train.shape == (133, 13) and data.num_classes == 3
    torch.testing.assert_close(data.x_train.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(data.x_train.std(0, unbiased=False), torch.ones(13, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"noise": 0.1}, "noise must be None for the real data set 'digits'"),
        ({"n": 5}, "n must be at least the number of classes of digits (10), got 5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_dataset("digits", **kwargs)
