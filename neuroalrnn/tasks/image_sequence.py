"""Sequential images: scikit-learn's bundled 8 x 8 digits fed to the network one row at a time.

Each trial is one image of ``sklearn.datasets.load_digits`` (1,797 handwritten digits, no
download). Its rows (or columns) arrive in sequence, 8 pixel intensities scaled to [0, 1]
per step; after the last row come ``response`` blank steps in which the target is the
one-hot digit. The network must integrate the whole image before it answers, the
"sequential MNIST" benchmark at a size that trains on a laptop.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neuroalrnn.tasks.memory import _build, _int
from neuroalrnn.utils import check_random_state

N_CLASSES = 10


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images / 16.0, data.target


def digit_sequence(n_trials: int | None = None, *, by: str = "row", response: int = 1, dt: float = 1.0,
                   seed=None) -> xr.Dataset:
    """Classify a handwritten digit shown one row (or column) of pixels per step.

    Parameters
    ----------
    n_trials : int, optional
        Number of trials, each a different image drawn without replacement (at most
        1,797); None takes every image. The order is shuffled by ``seed``.
    by : {"row", "column"}
        Feed the 8 x 8 image row by row (top first) or column by column (left first).
    response : int
        Blank steps after the image in which the answer is scored.
    dt : float
        Step label in seconds (the task has no physical time).
    seed : None, int or numpy Generator

    Returns
    -------
    xarray.Dataset
        A TrialDataset: ``inputs`` (trial, time, 8 pixels ``pixel_0`` ..), ``targets``
        (one-hot, outputs ``digit_0`` .. ``digit_9``), ``loss_weight`` (1 on the response
        steps) and trial coords ``digit``, ``correct_choice`` (= digit, the index of the
        output a correct argmax picks), ``response_onset`` (s) and ``image`` (the index in
        ``load_digits``; use it as ``groups`` to keep an image out of training).

    Examples
    --------
    >>> ds = digit_sequence(5, seed=0)
    >>> ds["inputs"].shape, ds["targets"].shape
    ((5, 9, 8), (5, 9, 10))
    >>> bool((ds["targets"].isel(time=-1).argmax("output") == ds["digit"]).all())
    True
    """
    images, labels = _digits()
    n_total = len(labels)
    n_trials = n_total if n_trials is None else _int("n_trials", n_trials)
    if n_trials > n_total:
        raise ValueError(f"n_trials: at most {n_total} (the images of load_digits), got {n_trials}")
    if by not in ("row", "column"):
        raise ValueError(f"by: expected 'row' or 'column', got {by!r}")
    response = _int("response", response)
    rng = check_random_state(seed)
    pick = rng.permutation(n_total)[:n_trials]
    pixels = images[pick] if by == "row" else images[pick].transpose(0, 2, 1)
    n_rows, width = pixels.shape[1:]
    T = n_rows + response
    inputs = np.zeros((n_trials, T, width))
    inputs[:, :n_rows] = pixels
    targets = np.zeros((n_trials, T, N_CLASSES))
    targets[np.arange(n_trials), n_rows:, labels[pick]] = 1.0
    weights = np.zeros((n_trials, T))
    weights[:, n_rows:] = 1.0
    digit = labels[pick].astype(int)
    return _build(inputs, targets, list(weights), dt=dt, input_names=[f"pixel_{k}" for k in range(width)],
                  output_names=[f"digit_{k}" for k in range(N_CLASSES)], task="digits",
                  coords={"digit": digit, "correct_choice": digit, "response_onset": np.full(n_trials, n_rows * dt),
                          "image": pick.astype(int)},
                  attrs={"by": by})
