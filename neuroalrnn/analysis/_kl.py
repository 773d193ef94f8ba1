"""Estimators of KL(p_data || p_model) behind ``neuroalrnn.analysis.dsr.state_space_divergence``.

Binning (the reference's histogram over ``n_bins`` per axis) and the Gaussian-mixture Monte-Carlo
estimate for many dims; ``dsr`` checks the inputs and documents the methods.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ..utils import check_random_state

_DENSE_CELLS = 2 ** 22  # histograms with at most this many cells are counted densely (32 MB of counts)


def _bin_index(x, lo, hi, n_bins):
    with np.errstate(invalid="ignore", divide="ignore"):
        coords = np.floor(n_bins * (x - lo) / (hi - lo)).T
    inlier = np.ones(coords.shape[1], dtype=bool)
    for c in coords:  # per axis (row reductions over a few dims are slow); NaN and inf fail the tests
        inlier &= (c > 0) & (c < n_bins)
    coords = coords[:, inlier].astype(np.int64)
    index = coords[0]
    for c in coords[1:]:  # np.ravel_multi_index's C order
        index = index * n_bins + c
    return index


def _kl_binning(idx_d, idx_m, n_cells, alpha):
    """KL of the smoothed histograms of the data's and the model's bin indices over ``n_cells`` cells."""
    if idx_d.size == 0 or idx_m.size == 0:
        return float("nan")
    if n_cells <= _DENSE_CELLS:  # count into every cell: no sort
        h_d = np.bincount(idx_d, minlength=int(n_cells)).astype(float)
        h_m = np.bincount(idx_m, minlength=int(n_cells)).astype(float)
        occupied = (h_d > 0) | (h_m > 0)
        h_d, h_m = h_d[occupied], h_m[occupied]
    else:  # only the occupied cells, found by sorting the indices
        cells, inv = np.unique(np.concatenate([idx_d, idx_m]), return_inverse=True)
        h_d = np.bincount(inv[: idx_d.size], minlength=cells.size).astype(float)
        h_m = np.bincount(inv[idx_d.size:], minlength=cells.size).astype(float)
    z_d, z_m = idx_d.size + alpha * n_cells, idx_m.size + alpha * n_cells
    p, q = (h_d + alpha) / z_d, (h_m + alpha) / z_m
    kl = np.sum(p * np.log(p / q))
    # cells empty in both histograms all hold the same smoothed masses
    n_empty = n_cells - h_d.size
    kl += n_empty * (alpha / z_d) * np.log(z_m / z_d)
    return float(kl)


def _mixture_log_density(z, mu, var):
    """log of mean_k exp(-|z - mu_k|^2 / (2 var)) / var^(d/2) for each row of z, in log space.

    The reference's normalisation (no (2 pi)^(d/2): it cancels in the divergence); logsumexp
    keeps densities far below float range (many dims) exact instead of rounding them to 0.
    """
    out = np.empty(len(z))
    mu_sq = np.sum(mu * mu, axis=1)
    for start in range(0, len(z), 256):
        zz = z[start:start + 256]
        d2 = np.sum(zz * zz, axis=1)[:, None] - 2.0 * zz @ mu.T + mu_sq[None, :]
        d2 = np.where(np.isnan(d2), np.inf, np.maximum(d2, 0.0))  # inf - inf: an overflowing component is far
        out[start:start + 256] = logsumexp(-0.5 * d2 / var, axis=1)
    return out - np.log(len(mu)) - 0.5 * mu.shape[1] * np.log(var)


def _kl_gmm(xd, xm, scaling, max_used, mc_n, seed):
    if not (np.isfinite(scaling) and scaling > 0):
        raise ValueError(f"scaling: expected a positive number, got {scaling!r}")
    if len(xm) == 0:
        return float("nan")
    rng = check_random_state(seed)
    n = min(len(xd), int(max_used))
    centre = xd[:n].mean(axis=0)  # the densities are shift-invariant; centring keeps |z - mu|^2 accurate
    mu_d, mu_m = xd[:n] - centre, xm[:n] - centre
    t = rng.integers(0, n, size=int(mc_n))
    z = mu_d[t] + np.sqrt(scaling) * rng.standard_normal((int(mc_n), xd.shape[1]))
    with np.errstate(over="ignore", invalid="ignore"):
        log_q = _mixture_log_density(z, mu_m, scaling)
        log_p = _mixture_log_density(z, mu_d, scaling)
    keep = np.isfinite(log_p) & np.isfinite(log_q)  # the reference's 'both densities positive'
    if not keep.any():
        return float("nan")
    return float(np.mean(log_p[keep] - log_q[keep]))
