"""Dynamical-systems-reconstruction metrics: D_stsp, D_H and n-step prediction error.

The definitions follow the reference code of the DSR literature (Koppe et al. 2019,
Brenner et al. 2022, Hess et al. 2023, Brenner et al. NeurIPS 2024; DurstewitzLab
``metrics.py`` / ``klx.py`` / ``pse.py``):

* ``state_space_divergence``: Kullback-Leibler divergence KL(p_data || p_model) between
  the state-space occupation densities of the data and of a free-running model. For fewer
  than 11 dimensions the densities are ``n_bins``-per-axis histograms over the data's
  bounding box with Laplace smoothing; from 11 dimensions on, each trajectory is a Gaussian
  mixture (one isotropic component per time point) and the KL is a Monte-Carlo estimate
  whose log-densities are computed in log space (no floor), so it keeps measuring in many dims.
* ``power_spectrum_error`` (D_H): per dimension, the z-scored signal's power spectrum
  ``|rfft|^2``, smoothed with a Gaussian kernel (``sigma``) and normalised to a
  distribution; the Hellinger distance between data and model spectra, averaged over dims.
* ``n_step_prediction_error``: from every valid time point of (held-out) trials, set the
  model's state from the data, run it ``n`` steps and compare with the data ``n`` steps on.

All inputs are numpy arrays, torch tensors or xarray objects; (time, dim) or
(trial, time, dim) with NaN padding after a trial's end (NaN rows are dropped).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ._kl import _bin_index, _kl_binning, _kl_gmm

__all__ = ["state_space_divergence", "state_space_divergences", "power_spectrum_error", "hellinger_distance",
           "n_step_prediction_error"]

GMM_MIN_DIMS = 11


def _as_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "values") and not isinstance(x, np.ndarray):
        x = x.values
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a (time, dim) or (trial, time, dim) array, got shape {x.shape}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"{name}: empty array of shape {x.shape}")
    return x


def _rows(x: np.ndarray) -> np.ndarray:
    """Stack trials and drop rows that are not all finite (padding, diverged states)."""
    flat = x.reshape(-1, x.shape[-1])
    finite = np.ones(len(flat), dtype=bool)
    for column in flat.T:  # per axis: a row reduction over a few dims is slow
        finite &= np.isfinite(column)
    return flat[finite]


def state_space_divergence(x_data, x_model, n_bins: int = 30, smoothing: float = 1e-5, *,
                           method: str = "auto", scaling: float = 1.0, max_used: int = 10000,
                           mc_n: int = 1000, seed=None) -> float:
    """State-space divergence D_stsp = KL(p_data || p_model).

    Parameters
    ----------
    x_data, x_model : array (time, dim) or (trial, time, dim)
        Observed trajectory and the model's free-running trajectory in the same space.
        Non-finite rows (NaN padding) of the data are dropped; non-finite model rows
        count as lying outside the data's range.
    n_bins : int
        Bins per axis (binning method); the bins span the data's per-axis min..max.
    smoothing : float
        Laplace smoothing pseudo-count added to every bin (binning method).
    method : {"auto", "binning", "gmm"}
        ``"auto"`` bins for fewer than 11 dims and uses the Gaussian-mixture Monte-Carlo
        estimate otherwise (see Notes).
    scaling : float
        Variance of each mixture component (gmm method).
    max_used : int
        Number of time points used as mixture components (gmm method).
    mc_n : int
        Number of Monte-Carlo samples (gmm method).
    seed : None, int or numpy Generator
        Random state of the Monte-Carlo samples.

    Returns
    -------
    float
        The divergence (0 for identical occupation); NaN when no model point falls in the
        data's range (as in the reference code).

    Notes
    -----
    Gaussian-mixture method: the first ``max_used`` finite data points and as many model
    points are the centres of two mixtures of isotropic Gaussians of variance ``scaling``
    (equal weights). ``mc_n`` samples z are drawn from the data mixture (a random data
    point plus Gaussian noise) and D_stsp is the mean of log p_data(z) - log p_model(z).
    The log-densities are computed in log space (logsumexp), so they stay exact in many
    dims, where the densities themselves fall far below float range (unit-variance
    components in 60 dims give densities near exp(-30) at the data and far smaller at a
    shifted model). As in the reference code, a sample counts only where both densities
    are positive, here where both log-densities are finite; in log space that drops only
    samples whose model density is exactly 0 (model points that overflow), and NaN is
    returned when no sample remains. No floor is added inside the logs.

    Binning method: as in the reference implementation, a point's bin index along an axis is
    ``floor(n_bins * (x - min) / (max - min))`` and only indices in ``1 .. n_bins - 1``
    are counted along every axis (the reference's ``coordinates > 0`` test), so the
    data's maximum and the lowest bin fall outside the histogram.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(5000, 2))
    >>> state_space_divergence(x, x) == 0.0
    True
    >>> state_space_divergence(x, rng.normal(size=(5000, 2))) < state_space_divergence(x, x + 2)
    True
    """
    return float(_divergences(x_data, [x_model], n_bins, smoothing, method, scaling, max_used, mc_n, seed,
                              "x_model")[0])


def state_space_divergences(x_data, x_models, n_bins: int = 30, smoothing: float = 1e-5, *,
                            method: str = "auto", scaling: float = 1.0, max_used: int = 10000,
                            mc_n: int = 1000, seed=None) -> np.ndarray:
    """D_stsp of several model runs against the same data, the data binned once.

    The same values as ``[state_space_divergence(x_data, m, ...) for m in x_models]`` (e.g. free
    runs from several initial conditions); with binning, the data's histogram is computed once
    (two thirds of the time of one call for 20,000 data and 10,000 model points).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(5000, 2))
    >>> runs = [rng.normal(size=(5000, 2)), x + 2]
    >>> bool(np.all(state_space_divergences(x, runs) == [state_space_divergence(x, r) for r in runs]))
    True
    """
    return _divergences(x_data, x_models, n_bins, smoothing, method, scaling, max_used, mc_n, seed, "x_models")


def _divergences(x_data, x_models, n_bins, smoothing, method, scaling, max_used, mc_n, seed, name):
    xd = _as_array(x_data, "x_data")
    models = [_as_array(x, name) for x in x_models]
    for xm in models:
        if xd.shape[-1] != xm.shape[-1]:
            raise ValueError(f"{name}: has {xm.shape[-1]} dims, x_data has {xd.shape[-1]}")
    if method not in ("auto", "binning", "gmm"):
        raise ValueError(f"method: expected 'auto', 'binning' or 'gmm', got {method!r}")
    rows_d = _rows(xd)
    if len(rows_d) < 2:
        raise ValueError("x_data: fewer than 2 finite time points")
    if method == "gmm" or (method == "auto" and xd.shape[-1] >= GMM_MIN_DIMS):
        return np.array([_kl_gmm(rows_d, _rows(xm), scaling, max_used, mc_n, seed) for xm in models])
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2):
        raise ValueError(f"n_bins: expected an integer >= 2, got {n_bins!r}")
    if not (np.isfinite(smoothing) and smoothing > 0):
        raise ValueError(f"smoothing: expected a positive number, got {smoothing!r}")
    lo, hi = rows_d.min(0), rows_d.max(0)
    if np.any(hi <= lo):
        raise ValueError(f"x_data: dims {np.flatnonzero(hi <= lo).tolist()} are constant; cannot bin them")
    idx_d = _bin_index(rows_d, lo, hi, int(n_bins))
    return np.array([_kl_binning(idx_d, _bin_index(xm.reshape(-1, xm.shape[-1]), lo, hi, int(n_bins)),
                                 float(n_bins) ** xd.shape[-1], float(smoothing)) for xm in models])


def hellinger_distance(p, q) -> float:
    """Hellinger distance sqrt(1 - sum sqrt(p q)) between two discrete distributions.

    Examples
    --------
    >>> hellinger_distance([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(hellinger_distance([1.0, 0.0], [0.0, 1.0]), 6)
    1.0
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"q: shape {q.shape} differs from p's {p.shape}")
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))


def _spectrum(x, sigma):
    x = (x - x.mean()) / x.std()
    ps = np.abs(np.fft.rfft(x)) ** 2 * 2 / len(x)
    ps = gaussian_filter1d(ps, sigma)
    return ps / ps.sum()


def _trials(x):
    """List of (time_i, dim) arrays of the finite leading part of each trial."""
    if x.ndim == 2:
        x = x[None]
    out = []
    for trial in x:
        ok = np.isfinite(trial).all(axis=1)
        n = int(np.argmin(ok)) if not ok.all() else len(ok)
        if n:
            out.append(trial[:n])
    return out


def power_spectrum_error(x_data, x_model, sigma: float = 20.0) -> float:
    """Power-spectrum Hellinger distance D_H between data and model trajectories.

    Each dimension is z-scored, its power spectrum ``|rfft|^2`` is smoothed with a
    Gaussian kernel of width ``sigma`` (frequency bins) and normalised to sum to 1; the
    Hellinger distance between the data's and the model's spectra is averaged over
    dimensions. With several trials, per-trial spectra (all cut to the shortest trial of
    either input) are averaged before the distance; with one trajectory each, both are
    cut to the shorter one.

    Parameters
    ----------
    x_data, x_model : array (time, dim) or (trial, time, dim)
    sigma : float
        Standard deviation of the Gaussian smoothing kernel, in frequency bins.

    Returns
    -------
    float
        D_H in [0, 1]; 0 for identical spectra. NaN if the model trajectory is not finite
        (or constant). Data trials that are constant in a dim (a silent unit) are left out
        of that dim's spectrum.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(4000)
    >>> x = np.stack([np.sin(0.05 * t), np.cos(0.11 * t)], axis=1)
    >>> power_spectrum_error(x, x) < 1e-6
    True
    >>> power_spectrum_error(x, x[:, ::-1]) > 0.5
    True
    """
    xd, xm = _as_array(x_data, "x_data"), _as_array(x_model, "x_model")
    if xd.shape[-1] != xm.shape[-1]:
        raise ValueError(f"x_model: has {xm.shape[-1]} dims, x_data has {xd.shape[-1]}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma: expected a non-negative number, got {sigma!r}")
    td, tm = _trials(xd), _trials(xm)
    if not td:
        raise ValueError("x_data: no finite time points")
    if not tm or (xm.ndim == 2 and not np.isfinite(xm).all()):
        return float("nan")  # the model's free run diverged
    n = min(len(t) for t in td + tm)
    if n < 4:
        raise ValueError(f"x_data/x_model: trials of {n} steps are too short for a spectrum")
    dists = []
    for dim in range(xd.shape[-1]):
        with np.errstate(invalid="ignore", divide="ignore"):
            spectra_d = [_spectrum(t[:n, dim], sigma) for t in td]
            spectra_m = [_spectrum(t[:n, dim], sigma) for t in tm]
        # a data trial that is constant in this dim has no spectrum: leave it out (a silent unit)
        spectra_d = [p for p in spectra_d if np.all(np.isfinite(p))]
        if not spectra_d:
            continue
        ps_d, ps_m = np.mean(spectra_d, axis=0), np.mean(spectra_m, axis=0)
        if not np.all(np.isfinite(ps_m)):
            return float("nan")
        dists.append(hellinger_distance(ps_d, ps_m))
    if not dists:
        raise ValueError("x_data: every dimension is constant within every trial; no spectrum to compare")
    return float(np.mean(dists))


def n_step_prediction_error(predictor, x, n: int = 20, inputs=None, *, per_step: bool = False,
                            batch_size: int = 4096):
    """Mean squared n-step-ahead prediction error from every time point of the trials.

    For every trial and every time t with t + n inside the trial, the predictor sets its
    state from the observation x_t and runs ``n`` steps (driven by the inputs
    s_{t+1} .. s_{t+n}); the squared error of its k-step prediction against x_{t+k} is
    averaged over all such origins and all channels.

    Parameters
    ----------
    predictor : callable or object with ``predict_ahead``
        ``predictor(x0, n, inputs)`` (or ``predictor.predict_ahead(x0, n, inputs)``) takes
        x0 (batch, N) and inputs (batch, n, K) or None, and returns predictions
        (batch, n, N) for the next ``n`` steps (numpy or torch).
    x : TrialDataset, or array (time, N) / (trial, time, N) NaN-padded after trial ends
        Held-out observations; a TrialDataset gives ``activity`` and ``inputs``.
    n : int
        Prediction horizon.
    inputs : array (time, K) / (trial, time, K), optional
        Inputs aligned with ``x`` (ignored for a TrialDataset, which carries its own).
    per_step : bool
        Return the errors of all horizons 1..n instead of only the n-th.
    batch_size : int
        Number of origins per predictor call.

    Returns
    -------
    float, or ndarray (n,) when ``per_step``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.cumsum(np.ones((50, 1)), axis=0)           # x_t = t
    >>> def perfect(x0, n, inputs):                       # x_{t+k} = x_t + k
    ...     return x0[:, None, :] + np.arange(1, n + 1)[None, :, None]
    >>> n_step_prediction_error(perfect, x, n=5)
    0.0
    """
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if hasattr(x, "data_vars"):
        from ..schema import to_arrays

        arrays = to_arrays(x)
        if "activity" not in arrays:
            raise ValueError("x: the TrialDataset has no 'activity' to predict")
        x, inputs = arrays["activity"], arrays.get("inputs")
    x = _as_array(x, "x")
    if x.ndim == 2:
        x = x[None]
    if inputs is not None:
        inputs = _as_array(inputs, "inputs")
        if inputs.ndim == 2:
            inputs = inputs[None]
        if inputs.shape[:2] != x.shape[:2]:
            raise ValueError(f"inputs: (trial, time) shape {inputs.shape[:2]} differs from x's {x.shape[:2]}")
    call = getattr(predictor, "predict_ahead", predictor)
    if not callable(call):
        raise TypeError("predictor: expected a callable or an object with a predict_ahead method")
    valid = np.isfinite(x).all(axis=2)
    lengths = np.where(valid.all(axis=1), valid.shape[1], np.argmin(valid, axis=1))
    origins = [(i, t) for i, L in enumerate(lengths) for t in range(max(0, L - n))]
    if not origins:
        raise ValueError(f"x: no trial is longer than n = {n} steps")
    origins = np.asarray(origins)
    sse, count = np.zeros(n), 0
    offsets = np.arange(1, n + 1)
    for start in range(0, len(origins), batch_size):
        o = origins[start:start + batch_size]
        x0 = x[o[:, 0], o[:, 1]]
        target = x[o[:, 0][:, None], o[:, 1][:, None] + offsets[None, :]]
        s = None if inputs is None else inputs[o[:, 0][:, None], o[:, 1][:, None] + offsets[None, :]]
        pred = call(x0, int(n), s)
        if hasattr(pred, "detach"):
            pred = pred.detach().cpu().numpy()
        pred = np.asarray(pred, dtype=np.float64)
        if pred.shape != target.shape:
            raise ValueError(f"predictor: returned shape {pred.shape}, expected {target.shape}")
        sse += ((pred - target) ** 2).mean(axis=2).sum(axis=0)
        count += len(o)
    errors = sse / count
    return errors if per_step else float(errors[-1])
