"""MAT-file contents as plain Python objects, for v5 (scipy) and v7.3 (h5py) alike.

Structs become dicts, cell arrays and struct arrays object arrays in MATLAB's
shape, numeric arrays keep MATLAB's shape (v7.3 stores them transposed),
char arrays become str. The spec mapping in :mod:`neuroalrnn.io.matlab` works
on this form only, so one spec reads both file versions.
"""

from __future__ import annotations

import os

import numpy as np

from neuroalrnn.io._sniff import FORMATS, as_path, reading, sniff

MAX_DEPTH = 64  # structs/cells nested deeper than this are a reference cycle or a damaged file


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
    path = as_path(path)
    kind = sniff(path)
    if kind == "mat5":
        return _load_v5(path, variable)
    if kind in ("mat73", "hdf5"):
        return _load_v73(path, variable)
    raise ValueError(f"{path}: expected a MATLAB MAT-file (v5 or v7.3), but the file is {FORMATS[kind]}")


def _load_v5(path, variable):
    import scipy.io

    with reading(path, "mat5"):  # scipy raises many types for corrupt files
        contents = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, variable_names=[variable])
    if variable not in contents:
        raise ValueError(f"{path}: no variable {variable!r}; the file holds {_variables(path)}")
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

    with reading(path, "mat73"):
        with h5py.File(path, "r") as f:
            if variable not in f:
                raise ValueError(f"{path}: no variable {variable!r}; the file holds "
                                 f"{[k for k in f if not k.startswith('#')]}")
            return _from_h5(_get(f, variable, path), f, path, ())


def _get(group, key, path, holder=None):
    """``group[key]``, or an error that names a broken link or a missing object."""
    import h5py

    try:
        return group[key]
    except (KeyError, ValueError, OSError) as err:
        link = group.get(key, getlink=True) if isinstance(key, str) else None
        if isinstance(link, h5py.SoftLink):
            raise ValueError(f"{path}: {group.name.rstrip('/')}/{key}: a broken link (to {link.path!r}, "
                             "which does not exist)") from None
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(f"{path}: {group.name.rstrip('/')}/{key}: a link to another file "
                             f"({link.filename!r}, {link.path!r}) that cannot be opened") from None
        where = f"{group.name.rstrip('/')}/{key}" if isinstance(key, str) else f"a reference in {holder}"
        raise ValueError(f"{path}: {where}: refers to an object that is missing or damaged "
                         f"({type(err).__name__}: {err})") from None


def _mclass(obj):
    cls = obj.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _from_h5(obj, f, path, seen):
    import h5py

    key = obj.name or hash(obj.id)  # an object without a name (no link to it) is known by its id
    if key in seen:
        raise ValueError(f"{path}: {seen[0]}: a cell or struct that contains itself (a reference cycle "
                         f"through {obj.name or 'an unnamed object'})")
    if len(seen) > MAX_DEPTH:
        raise ValueError(f"{path}: {seen[0]}: cells or structs nested more than {MAX_DEPTH} levels deep")
    seen = seen + (key,)
    cls = _mclass(obj)
    if isinstance(obj, h5py.Group):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.attrs.get("MATLAB_fields", [])]
        names = ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.ravel(n)) for n in names] \
            if names and not isinstance(names[0], str) else names
        keys = [k for k in (names or list(obj.keys())) if k in obj]
        fields = {k: _get(obj, k, path) for k in keys}
        array_like = [d for d in fields.values() if isinstance(d, h5py.Dataset)
                      and d.dtype == h5py.ref_dtype and _mclass(d) != "cell"]
        if array_like and len(array_like) == len(fields):  # struct array: each field holds refs per element
            shape = array_like[0].shape[::-1]
            out = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                out[idx] = {k: _from_h5(_get(f, d[idx[::-1]], path, d.name), f, path, seen)
                            for k, d in fields.items()}
            return out[0, 0] if out.size == 1 and out.ndim == 2 else out
        return {k: _from_h5(d, f, path, seen) for k, d in fields.items()}
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = obj[()]
    if cls == "cell" or obj.dtype == h5py.ref_dtype:
        data = np.asarray(data).T
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _from_h5(_get(f, data[idx], path, obj.name), f, path, seen)
        return out
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel(order="F"))
    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
        data = data["real"] + 1j * data["imag"]  # as scipy gives v5 complex arrays; refused where used
    data = np.asarray(data).T  # HDF5 holds MATLAB's column-major arrays transposed
    return data.astype(bool) if cls == "logical" else data
