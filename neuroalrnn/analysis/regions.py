"""Linear subregions of an AL-RNN: symbolic codes of the ReLU units along trajectories.

In an AL-RNN with ``P`` ReLU units (the last ``P`` latent units) the state space splits into
``2**P`` linear subregions, one per sign pattern of those units. The region of a state is the
integer code ``sum_i (z[M-P+i] > 0) << i`` (bit ``i`` is ReLU unit ``i``, i.e. latent unit
``M-P+i``). Invalid states (NaN, or masked out) get the code ``-1``.

Everything here is a pure function of states / codes; xarray inputs keep their dims and coords
(trial variables included).
"""

from __future__ import annotations

from typing import Hashable

import numpy as np
import xarray as xr

INVALID = -1
_MAX_BITS = 62


def _check_n_relu(n_relu, n_units=None) -> int:
    if isinstance(n_relu, bool) or not isinstance(n_relu, (int, np.integer)):
        raise TypeError(f"n_relu: expected an int, got {type(n_relu).__name__}")
    n_relu = int(n_relu)
    if n_relu < 0 or n_relu > _MAX_BITS:
        raise ValueError(f"n_relu: expected 0 <= n_relu <= {_MAX_BITS} (codes are int64), got {n_relu}")
    if n_units is not None and n_relu > n_units:
        raise ValueError(f"n_relu: {n_relu} is larger than the number of latent units {n_units}")
    return n_relu


def _to_numpy(states) -> np.ndarray:
    if hasattr(states, "detach"):  # torch tensor
        states = states.detach().cpu().numpy()
    return np.asarray(states)


def bits_to_codes(bits) -> np.ndarray:
    """Pack boolean sign patterns ``(..., P)`` into int64 codes ``(...)`` (bit ``i`` = column ``i``).

    Examples
    --------
    >>> bits_to_codes([[True, False, True], [False, False, False]]).tolist()
    [5, 0]
    """
    bits = np.asarray(bits, dtype=bool)
    n_bits = bits.shape[-1]
    if n_bits > _MAX_BITS:
        raise ValueError(f"bits: at most {_MAX_BITS} bits fit an int64 code, got {n_bits}")
    lead = bits.shape[:-1]
    if n_bits == 0:
        return np.zeros(lead, dtype=np.int64)
    packed = np.packbits(bits.reshape(-1, n_bits), axis=-1, bitorder="little")
    padded = np.zeros((packed.shape[0], 8), dtype=np.uint8)
    padded[:, :packed.shape[1]] = packed
    return padded.view("<i8")[:, 0].astype(np.int64, copy=False).reshape(lead)


def codes_to_bits(codes, n_relu: int) -> np.ndarray:
    """Unpack int codes ``(...)`` into boolean sign patterns ``(..., n_relu)``.

    Examples
    --------
    >>> codes_to_bits([5, 2], 3).astype(int).tolist()
    [[1, 0, 1], [0, 1, 0]]
    """
    n_relu = _check_n_relu(n_relu)
    codes = np.asarray(codes, dtype=np.int64)
    return ((codes[..., None] >> np.arange(n_relu, dtype=np.int64)) & 1).astype(bool)


def region_codes(states, n_relu: int, mask=None):
    """Return the P-bit linear-subregion code of each latent state.

    Parameters
    ----------
    states : array-like, torch.Tensor or xarray.DataArray, shape (..., M)
        Latent states; a DataArray must have the dim ``latent``.
    n_relu : int
        Number of ReLU units P (the last P latent units), ``0 <= P <= 62``.
    mask : array-like or xarray.DataArray, optional
        Boolean, True where a state is valid (broadcast against ``states`` without its last dim).

    Returns
    -------
    codes : numpy.ndarray of int64, shape (...), or xarray.DataArray named ``region``
        ``sum_i (z[..., M-P+i] > 0) << i``; ``-1`` where a state is NaN or masked out.
        A DataArray input keeps all its other dims and coords.

    Examples
    --------
    >>> import numpy as np
    >>> region_codes(np.array([[0.3, -1.0, 2.0], [0.1, 1.0, -2.0]]), n_relu=2).tolist()
    [2, 1]
    """
    if isinstance(states, xr.DataArray):
        if "latent" not in states.dims:
            raise ValueError(f"states: a DataArray needs the dim 'latent', got dims {states.dims}")
        moved = states.transpose(..., "latent")
        m = mask
        if isinstance(mask, xr.DataArray):
            m = mask.broadcast_like(moved.isel(latent=0, drop=True)).transpose(*moved.dims[:-1]).values
        codes = region_codes(moved.values, n_relu, mask=m)
        out = xr.DataArray(codes, dims=moved.dims[:-1], name="region",
                           coords={k: v for k, v in moved.coords.items() if "latent" not in v.dims})
        out.attrs["n_relu"] = int(n_relu)
        return out
    z = _to_numpy(states)
    if z.ndim < 1:
        raise ValueError("states: expected an array with a last 'latent' axis, got a scalar")
    if not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
        raise TypeError(f"states: expected a real numeric array, got dtype {z.dtype}")
    n_relu = _check_n_relu(n_relu, z.shape[-1])
    relu = z[..., z.shape[-1] - n_relu:]
    codes = bits_to_codes(relu > 0)
    invalid = None
    if np.issubdtype(z.dtype, np.floating):
        with np.errstate(invalid="ignore", over="ignore"):
            invalid = np.isnan(z.sum(axis=-1))  # fast; rows that are NaN only through inf - inf are rechecked
        if invalid.any():
            invalid[invalid] = np.isnan(z[invalid]).any(axis=-1)
    if mask is not None:
        valid = np.broadcast_to(np.asarray(_to_numpy(mask), dtype=bool), codes.shape)
        invalid = ~valid if invalid is None else (invalid | ~valid)
    if invalid is not None and invalid.any():
        codes[invalid] = INVALID
    return codes


def _as_codes(codes, mask=None) -> xr.DataArray:
    """Codes as a DataArray with invalid entries set to -1 (time on the last axis)."""
    if isinstance(codes, xr.DataArray):
        da = codes
    else:
        arr = np.asarray(_to_numpy(codes))
        if arr.ndim == 1:
            da = xr.DataArray(arr, dims=("time",))
        elif arr.ndim == 2:
            da = xr.DataArray(arr, dims=("trial", "time"))
        else:
            raise ValueError(f"codes: expected (time,) or (trial, time) codes, got shape {arr.shape}")
    if not np.issubdtype(da.dtype, np.integer):
        raise TypeError(f"codes: expected integer region codes (see region_codes), got dtype {da.dtype}")
    da = da.astype(np.int64)
    if mask is not None:
        m = mask if isinstance(mask, xr.DataArray) else xr.DataArray(np.asarray(_to_numpy(mask), bool), dims=da.dims)
        if set(m.dims) - set(da.dims):
            raise ValueError(f"mask: dims {m.dims} are not among the codes' dims {da.dims}")
        da = da.where(m.astype(bool), INVALID).astype(np.int64)
    return da


def region_occupancy(codes, mask=None, *, per_trial: bool = False, normalize: bool = False) -> xr.DataArray:
    """Count how often each region is visited.

    Parameters
    ----------
    codes : array-like or xarray.DataArray
        Region codes (see :func:`region_codes`), ``-1`` for invalid steps.
    mask : array-like or xarray.DataArray, optional
        True where a step counts.
    per_trial : bool
        Count per trial (dims ``(trial, region)``, trial coords kept) instead of over everything.
    normalize : bool
        Return fractions of the valid steps instead of counts.

    Returns
    -------
    xarray.DataArray with dim ``region`` (the visited codes, ascending), named ``occupancy``.

    Examples
    --------
    >>> region_occupancy([0, 0, 3, -1]).values.tolist()
    [2, 1]
    """
    da = _as_codes(codes, mask)
    visited = np.unique(da.values)
    visited = visited[visited != INVALID]
    if per_trial:
        if "trial" not in da.dims:
            raise ValueError(f"codes: per_trial=True needs a 'trial' dim, got dims {da.dims}")
        other = [d for d in da.dims if d != "trial"]
        flat = da.transpose("trial", *other).values.reshape(da.sizes["trial"], -1)
        trial_idx = np.broadcast_to(np.arange(flat.shape[0])[:, None], flat.shape)
        ok = flat != INVALID
        counts = np.bincount(trial_idx[ok] * visited.size + np.searchsorted(visited, flat[ok]),
                             minlength=flat.shape[0] * visited.size).reshape(flat.shape[0], visited.size)
        trial_coords = {k: v for k, v in da.coords.items() if set(v.dims) <= {"trial"}}
        out = xr.DataArray(counts, dims=("trial", "region"), coords={**trial_coords, "region": visited})
    else:
        flat = da.values.ravel()
        counts = np.bincount(np.searchsorted(visited, flat[flat != INVALID]), minlength=visited.size)
        out = xr.DataArray(counts, dims=("region",), coords={"region": visited})
    if normalize:
        total = out.sum("region")
        out = out / total.where(total > 0)
    out.name = "occupancy"
    return out


def region_transitions(codes, mask=None, *, time_dim: Hashable = "time") -> xr.Dataset:
    """Transition counts and probabilities between consecutive regions along time within trials.

    Only pairs of consecutive steps that are both valid are counted; trials never chain into each
    other.

    Returns
    -------
    xarray.Dataset with dims ``(source, target)`` over the visited regions: ``counts`` (joint
    counts), ``joint`` (counts / total) and ``probability`` (row-normalised: P(target | source),
    NaN for a region never left by a valid step).

    Examples
    --------
    >>> ds = region_transitions([[0, 0, 1, 1, 0]])
    >>> ds["counts"].values.tolist()
    [[1, 1], [1, 1]]
    """
    da = _as_codes(codes, mask)
    if time_dim not in da.dims:
        raise ValueError(f"codes: expected a {time_dim!r} dim, got dims {da.dims}")
    arr = da.transpose(..., time_dim).values
    arr = arr.reshape(-1, arr.shape[-1])
    visited = np.unique(arr)
    visited = visited[visited != INVALID]
    src, dst = arr[:, :-1].ravel(), arr[:, 1:].ravel()
    ok = (src != INVALID) & (dst != INVALID)
    n = visited.size
    idx = np.searchsorted(visited, src[ok]) * n + np.searchsorted(visited, dst[ok])
    counts = np.bincount(idx, minlength=n * n).reshape(n, n)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(rows > 0, counts / np.maximum(rows, 1), np.nan)
        joint = counts / counts.sum() if counts.sum() else np.full_like(counts, np.nan, dtype=float)
    coords = {"source": visited, "target": visited}
    return xr.Dataset({"counts": (("source", "target"), counts), "joint": (("source", "target"), joint),
                       "probability": (("source", "target"), prob)}, coords=coords)


def unit_flips(codes, n_relu: int, mask=None, *, time_dim: Hashable = "time",
               per_trial: bool = False) -> xr.DataArray:
    """Count sign flips of each ReLU unit between consecutive valid steps.

    Returns
    -------
    xarray.DataArray ``flips`` with dim ``relu_unit`` (the bit index ``0..P-1``, i.e. latent unit
    ``M-P+i``), or ``(trial, relu_unit)`` with trial coords kept when ``per_trial``.

    Examples
    --------
    >>> unit_flips([[0, 1, 3, 2]], n_relu=2).values.tolist()
    [2, 1]
    """
    n_relu = _check_n_relu(n_relu)
    da = _as_codes(codes, mask)
    if time_dim not in da.dims:
        raise ValueError(f"codes: expected a {time_dim!r} dim, got dims {da.dims}")
    if per_trial and "trial" not in da.dims:
        raise ValueError(f"codes: per_trial=True needs a 'trial' dim, got dims {da.dims}")
    lead = ["trial"] if per_trial else []
    rest = [d for d in da.dims if d not in lead and d != time_dim]
    arr = da.transpose(*lead, *rest, time_dim).values
    a, b = arr[..., :-1], arr[..., 1:]
    ok = (a != INVALID) & (b != INVALID)
    flips = codes_to_bits(np.where(ok, a ^ b, 0), n_relu)  # (..., time-1, P)
    axes = tuple(range(len(lead), flips.ndim - 1))
    counts = flips.sum(axis=axes)
    if per_trial:
        trial_coords = {k: v for k, v in da.coords.items() if set(v.dims) <= {"trial"}}
        out = xr.DataArray(counts, dims=("trial", "relu_unit"), coords={**trial_coords, "relu_unit": np.arange(n_relu)})
    else:
        out = xr.DataArray(counts, dims=("relu_unit",), coords={"relu_unit": np.arange(n_relu)})
    out.name = "flips"
    return out


def regions_by_group(codes, by, mask=None, *, normalize: bool = False) -> xr.DataArray:
    """Region occupancy per trial condition or task epoch.

    Parameters
    ----------
    codes : xarray.DataArray or array-like
        Region codes, e.g. ``(trial, time)``.
    by : str or array-like
        Name of a coord of ``codes`` (per trial, e.g. ``"context"``, or per step, e.g. an
        ``"epoch"`` coord on ``(trial, time)``), or labels broadcastable to the codes.
    normalize : bool
        Fractions of each group's valid steps instead of counts.

    Returns
    -------
    xarray.DataArray ``(group, region)`` of counts, the group dim named after ``by``.

    Examples
    --------
    >>> import xarray as xr
    >>> codes = xr.DataArray([[0, 0], [1, 3]], dims=("trial", "time"), coords={"context": ("trial", ["a", "b"])})
    >>> regions_by_group(codes, "context").values.tolist()
    [[2, 0, 0], [0, 1, 1]]
    """
    da = _as_codes(codes, mask)
    if isinstance(by, str):
        if by not in da.coords:
            raise ValueError(f"by: {by!r} is not a coord of the codes (coords: {list(da.coords)})")
        labels, name = da.coords[by], by
    else:
        labels, name = by, "group"
        if not isinstance(labels, xr.DataArray):
            arr = np.asarray(labels)
            labels = xr.DataArray(arr, dims=da.dims[:arr.ndim])
    labels = labels.broadcast_like(da).transpose(*da.dims).values.ravel()
    flat = da.values.ravel()
    ok = flat != INVALID
    groups, g_idx = np.unique(labels[ok], return_inverse=True)
    visited, r_idx = np.unique(flat[ok], return_inverse=True)
    counts = np.bincount(g_idx * visited.size + r_idx, minlength=groups.size * visited.size)
    out = xr.DataArray(counts.reshape(groups.size, visited.size), dims=(name, "region"),
                       coords={name: groups, "region": visited}, name="occupancy")
    if normalize:
        total = out.sum("region")
        out = out / total.where(total > 0)
    return out
