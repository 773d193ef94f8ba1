"""MAT-file contents as plain Python objects, for v5 (scipy) and v7.3 (h5py) alike.

Structs become dicts, cell arrays and struct arrays object arrays in MATLAB's
shape, numeric arrays keep MATLAB's shape (v7.3 stores them transposed),
char arrays become str. The spec mapping in :mod:`neuroalrnn.io.matlab` works
on this form only, so one spec reads both file versions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neuroalrnn.io._sniff import FORMATS, sniff


def _variables(path):
    try:
        if sniff(path) == "mat5":
            import scipy.io

            return [name for name, _, _ in scipy.io.whosmat(path)]
        import h5py

        with h5py.File(path, "r") as f:
            return [k for k in f if not k.startswith("#")]
    except Exception:  # only used to enrich an error message
        return "(unreadable)"


def load_mat_variable(path: str | os.PathLike, variable: str):
    """Read one variable of a v5 or v7.3 MAT-file as plain Python/numpy objects.

    Structs become dicts, cell arrays and struct arrays become object arrays (in
    MATLAB's shape), numeric arrays keep MATLAB's shape, char arrays become str.

    Examples
    --------
    >>> import numpy as np, scipy.io, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mat")
    >>> scipy.io.savemat(path, {"x": np.arange(6).reshape(2, 3)})
    >>> load_mat_variable(path, "x").shape
    (2, 3)
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "mat5":
        return _load_v5(path, variable)
    if kind in ("mat73", "hdf5"):
        return _load_v73(path, variable)
    raise ValueError(f"{path}: expected a MATLAB MAT-file (v5 or v7.3), but the file is {FORMATS[kind]}")


def _load_v5(path, variable):
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, variable_names=[variable])
    except Exception as err:  # scipy raises many types for corrupt files
        raise ValueError(f"{path}: expected {FORMATS['mat5']}, but it cannot be read "
                         f"(truncated or corrupt?): {type(err).__name__}: {err}") from None
    if variable not in contents:
        names = [k for k in scipy.io.whosmat(path)]
        raise ValueError(f"{path}: no variable {variable!r}; the file holds {[n[0] for n in names]}")
    return _from_v5(contents[variable])


def _from_v5(value):
    if isinstance(value, np.ndarray):
        if value.dtype.names:  # struct (array)
            items = np.empty(value.shape, dtype=object)
            for idx in np.ndindex(value.shape):
                items[idx] = {name: _from_v5(value[idx][name]) for name in value.dtype.names}
            return items[0, 0] if items.size == 1 and items.ndim == 2 else items
        if value.dtype == object:  # cell
            out = np.empty(value.shape, dtype=object)
            for idx in np.ndindex(value.shape):
                out[idx] = _from_v5(value[idx])
            return out
        if value.dtype.kind == "U":
            return "".join(value.ravel().tolist()) if value.size <= 1 else [str(s) for s in value.ravel()]
        return value
    return value


def _load_v73(path, variable):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if variable not in f:
                raise ValueError(f"{path}: no variable {variable!r}; the file holds "
                                 f"{[k for k in f if not k.startswith('#')]}")
            return _from_h5(f[variable], f)
    except OSError as err:
        raise ValueError(f"{path}: expected {FORMATS['mat73']}, but HDF5 cannot read it: {err}") from None


def _mclass(obj):
    cls = obj.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _from_h5(obj, f):
    import h5py

    cls = _mclass(obj)
    if isinstance(obj, h5py.Group):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.attrs.get("MATLAB_fields", [])]
        names = ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.ravel(n)) for n in names] \
            if names and not isinstance(names[0], str) else names
        keys = [k for k in (names or list(obj.keys())) if k in obj]
        fields = {k: obj[k] for k in keys}
        array_like = [d for d in fields.values() if isinstance(d, h5py.Dataset)
                      and d.dtype == h5py.ref_dtype and _mclass(d) != "cell"]
        if array_like and len(array_like) == len(fields):  # struct array: each field holds refs per element
            shape = array_like[0].shape[::-1]
            out = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                out[idx] = {k: _from_h5(f[d[idx[::-1]]], f) for k, d in fields.items()}
            return out[0, 0] if out.size == 1 and out.ndim == 2 else out
        return {k: _from_h5(d, f) for k, d in fields.items()}
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = obj[()]
    if cls == "cell" or obj.dtype == h5py.ref_dtype:
        data = np.asarray(data).T
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _from_h5(f[data[idx]], f)
        return out
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel(order="F"))
    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
        raise TypeError(f"{obj.name}: complex MATLAB arrays are not supported as TrialDataset fields")
    data = np.asarray(data).T  # HDF5 holds MATLAB's column-major arrays transposed
    return data.astype(bool) if cls == "logical" else data
