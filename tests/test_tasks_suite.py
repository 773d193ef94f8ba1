"""Tests of the image-sequence task and the per-task recommended configurations (neuroalrnn.tasks)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from neuroalrnn import schema
from neuroalrnn.tasks import digit_sequence


def test_digit_sequence_feeds_the_image_row_by_row():
    ds = digit_sequence(50, seed=0)
    schema.validate(ds)
    digits = load_digits()
    x = ds["inputs"].values
    assert x.shape == (50, 9, 8) and ds["output"].values.tolist() == [f"digit_{k}" for k in range(10)]
    img = digits.images[ds["image"].values] / 16.0
    np.testing.assert_array_equal(x[:, :8], img)  # step t is row t
    assert np.all(x[:, 8] == 0)  # the blank response step
    np.testing.assert_array_equal(ds["digit"], digits.target[ds["image"].values])
    np.testing.assert_array_equal(ds["correct_choice"], ds["digit"])
    y = ds["targets"].values
    assert np.all(y[:, :8] == 0) and np.all(y[:, 8].argmax(1) == ds["digit"].values) and np.all(y[:, 8].sum(1) == 1)
    np.testing.assert_array_equal(ds["loss_weight"].values, np.repeat([[0] * 8 + [1]], 50, 0))
    assert len(set(ds["image"].values.tolist())) == 50  # drawn without replacement
    col = digit_sequence(5, by="column", response=2, seed=0)
    np.testing.assert_array_equal(col["inputs"].values[:, :8], digits.images[col["image"].values].transpose(0, 2, 1) / 16)
    assert col.sizes["time"] == 10 and np.all(col["response_onset"].values == 8.0)


def test_digit_sequence_seed_all_images_and_errors():
    assert digit_sequence(20, seed=3).identical(digit_sequence(20, seed=3))
    full = digit_sequence(seed=1)
    assert full.sizes["trial"] == 1797 and sorted(full["image"].values.tolist()) == list(range(1797))
    with pytest.raises(ValueError, match="n_trials: at most 1797"):
        digit_sequence(2000)
    with pytest.raises(ValueError, match="by: expected 'row' or 'column'"):
        digit_sequence(5, by="diagonal")
    with pytest.raises(ValueError, match="response"):
        digit_sequence(5, response=0)
