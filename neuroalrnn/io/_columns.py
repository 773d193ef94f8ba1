"""Rules that turn the arrays of a lab's trial export into per-trial columns, attributes and sessions.

Labs export a session's trials as one file of arrays of several shapes. With
``n`` the number of trials:

=============================== ==============================================
array                           becomes
=============================== ==============================================
0-d (a subject name, a date)    a dataset attribute
(n,)                            a trial column
(n, k), k <= MAX_SPLIT          k trial columns ``name_0`` ... (``name`` if k = 1)
(m,) integers summing to n      a ``session`` trial coord (trial counts per session)
anything else                   refused, naming the array and its shape
=============================== ==============================================

``columns=[...]`` keeps only the named arrays and ``exclude=[...]`` drops
arrays, so that a file with extra content can still be read.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MAX_SPLIT = 64  # an (n, k) array with more columns is more likely a signal than k trial variables
RESERVED_ATTRS = ("dt", "align_event", "source", "source_format", "bin_size")


def select(columns: dict, keep=None, exclude=()) -> dict:
    """The columns named in ``keep`` (all by default), without those in ``exclude``."""
    for option, names in (("columns", keep), ("exclude", exclude)):
        if names is None:
            continue
        if isinstance(names, str):
            raise TypeError(f"{option}: expected a list of column names, got the string {names!r}")
        unknown = [name for name in names if name not in columns]
        if unknown:
            raise ValueError(f"{option}: no column {unknown[0]!r}; the columns are {sorted(columns)}")
    names = list(columns) if keep is None else list(keep)
    return {name: columns[name] for name in names if name not in set(exclude or ())}


def split_scalars(columns: dict) -> tuple[dict, dict]:
    """(columns that are arrays, attributes from the 0-d ones)."""
    arrays, attrs = {}, {}
    for key, value in columns.items():
        if np.ndim(value) > 0:
            arrays[key] = value
            continue
        item = value.item() if isinstance(value, np.generic | np.ndarray) else value
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        if isinstance(item, (bool, np.bool_)):
            item = int(item)  # netCDF attributes hold no bools
        if not isinstance(item, (str, int, float)) or isinstance(item, complex):
            raise TypeError(f"column {key!r}: a single {type(item).__name__} value; a scalar becomes a dataset "
                            "attribute and must be a string or a real number (or exclude it)")
        if key in RESERVED_ATTRS:
            raise ValueError(f"column {key!r}: a single value whose name is one of the dataset's own attributes "
                             f"{RESERVED_ATTRS}; leave it out with exclude=[{key!r}]")
        attrs[key] = item
    return arrays, attrs


def n_trials(columns: dict, hint: int | None = None) -> tuple[int, str]:
    """Number of trials: ``hint`` (from the signals), else the most common length (ties: the first key)."""
    if hint is not None:
        return hint, "the signals"
    lengths = {key: len(value) for key, value in columns.items()}
    if not lengths:
        raise ValueError("table: no columns; expected one column per trial variable")
    counts = Counter(lengths.values())
    n = max(counts, key=lambda length: (counts[length], -list(lengths.values()).index(length)))
    return n, next(key for key, length in lengths.items() if length == n)


def trial_columns(columns: dict, n: int, ref: str) -> dict:
    """Apply the rules of this module: per-trial columns (session lengths included) by name."""
    out, sessions = {}, []
    for key, value in columns.items():
        value = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if value.dtype == object:
            value = _object_column(key, value)
        if np.iscomplexobj(value):
            raise TypeError(f"column {key!r}: complex values; store the real and imaginary parts as two "
                            "columns (or exclude it)")
        if value.ndim == 1 and len(value) == n:
            out[key] = value
        elif value.ndim == 2 and len(value) == n and value.shape[1] <= MAX_SPLIT:
            k = value.shape[1]
            names = [key] if k == 1 else [f"{key}_{j}" for j in range(k)]
            for j, name in enumerate(names):
                if name in columns or name in out:
                    raise ValueError(f"column {key!r}: its {k} columns would be named {names}, but "
                                     f"{name!r} exists; rename one of them (or exclude one)")
                out[name] = value[:, j]
        elif _is_session_lengths(value, n):
            sessions.append(key)
        elif value.ndim == 1:
            raise ValueError(f"column {key!r}: has {len(value)} values, expected {n} (the length of {ref!r}); "
                             f"every column needs one value per trial (or leave it out with exclude=[{key!r}])")
        else:
            raise ValueError(f"column {key!r}: shape {value.shape} fits no rule for {n} trials: one value per "
                             f"trial ({n},), per-trial arrays ({n}, k <= {MAX_SPLIT}), trial counts per session "
                             f"summing to {n}, or a single value. Name a (trial, time, feature) array as "
                             f"activity=/inputs=/targets=, or leave it out with exclude=[{key!r}] "
                             "(columns=[...] keeps only the named ones)")
    if len(sessions) > 1:
        raise ValueError(f"columns {sessions}: each could be the trial counts per session (integers summing "
                         f"to {n}); keep one with exclude=[...]")
    if sessions:
        lengths = np.asarray(columns[sessions[0]]).astype(np.int64)
        name = "session" if "session" not in out else f"{sessions[0]}_index"
        out[name] = np.repeat(np.arange(lengths.size), lengths)
    return out


def _is_session_lengths(value, n):
    """A 1-D vector of non-negative whole numbers, shorter than the table, summing to its length."""
    if value.ndim != 1 or not 0 < value.size < n or value.dtype.kind not in "iuf":
        return False
    if not np.all(np.isfinite(value)) or np.any(value < 0) or np.any(value != np.round(value)):
        return False
    return int(value.sum()) == n


def _object_column(key, value):
    items = value.ravel()
    is_str = np.array([isinstance(v, str) for v in items], dtype=bool)
    is_missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in items], dtype=bool)
    if (is_str | is_missing).all():
        return np.array(["" if m else v for v, m in zip(items, is_missing)], dtype=str).reshape(value.shape)
    if all(isinstance(v, (bool, np.bool_)) for v in items):
        return value.astype(bool)
    raise TypeError(f"column {key!r}: holds Python objects ({type(items[~(is_str | is_missing)][0]).__name__}); "
                    "expected numbers, strings or bools (name it as `activity`/`spikes` if it holds arrays)")
