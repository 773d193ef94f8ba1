"""Find a file's true format from its first bytes, not from its extension."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)  # HDF5 may sit after a user block (MATLAB v7.3 uses 512)

# what each format name means, for error messages
FORMATS = {
    "nwb": "an NWB (HDF5) file",
    "mat5": "a MATLAB v5 MAT-file",
    "mat73": "a MATLAB v7.3 MAT-file (HDF5)",
    "netcdf": "a netCDF file (as written by xarray's Dataset.to_netcdf)",
    "npz": "an NPZ archive of arrays",
    "csv": "a CSV table",
    "hdf5": "an HDF5 file",
}


def sniff(path: str | os.PathLike) -> str:
    """Return the format of ``path`` from its content.

    One of ``'nwb'``, ``'mat5'``, ``'mat73'``, ``'netcdf'``, ``'npz'``, ``'csv'``
    or ``'hdf5'`` (an HDF5 file that is none of the others). Empty, truncated or
    unrecognised files raise a ``ValueError`` naming the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "data.mat")   # misleading extension
    >>> np.savez(path[:-4], x=np.arange(3)); os.replace(path[:-4] + ".npz", path)
    >>> sniff(path)
    'npz'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: the file is empty; expected one of: {', '.join(FORMATS.values())}")
    with open(path, "rb") as f:
        head = f.read(4096 + 8)
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "mat5"
    if head.startswith(b"MATLAB 7.3 MAT-file"):
        _check_hdf5(path, "mat73")
        return "mat73"
    if head[:3] == b"CDF" and len(head) > 3 and head[3] in (1, 2, 5):
        return "netcdf"
    if any(head[o:o + 8] == HDF5_SIGNATURE for o in _HDF5_OFFSETS):
        return _hdf5_kind(path)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: looks like a zip/NPZ archive but it is truncated or corrupt")
        return "npz"
    if _looks_like_text(head):
        other = _other_text_format(head.decode("utf-8", errors="ignore"))
        if other:
            raise ValueError(f"{path}: {other} text, which neuroalrnn does not read; expected one of: "
                             f"{', '.join(FORMATS.values())}")
        return "csv"
    raise ValueError(f"{path}: unrecognised file content (first bytes {head[:8]!r}); expected one of: "
                     f"{', '.join(FORMATS.values())}")


def _check_hdf5(path, kind):
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as err:
        raise ValueError(f"{path}: expected {FORMATS[kind]}, but HDF5 cannot open it "
                         f"(truncated or corrupt?): {err}") from None


def _hdf5_kind(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            keys = set(f.keys())
    except OSError as err:
        raise ValueError(f"{path}: has an HDF5 signature but HDF5 cannot open it "
                         f"(truncated or corrupt?): {err}") from None
    if attrs.get("neurodata_type") == "NWBFile" or ("nwb_version" in attrs and "general" in keys):
        return "nwb"
    if "_NCProperties" in attrs or any(k in attrs for k in ("_nc3_strict",)) or _has_netcdf_dims(path):
        return "netcdf"
    if "#refs#" in keys or _has_matlab_class(path):
        return "mat73"
    return "hdf5"


def _has_netcdf_dims(path):
    import h5py

    with h5py.File(path, "r") as f:
        return any("DIMENSION_LIST" in obj.attrs or obj.attrs.get("CLASS") == b"DIMENSION_SCALE"
                   for obj in f.values() if isinstance(obj, h5py.Dataset))


def _has_matlab_class(path):
    import h5py

    with h5py.File(path, "r") as f:
        return any("MATLAB_class" in obj.attrs for obj in f.values())


_YAML_LINE = re.compile(r"^\s*(-\s|[\w .-]+:(\s|$))")


def _other_text_format(text: str) -> str | None:
    """'JSON', 'XML/HTML' or 'YAML' when the text is one of those rather than a table, else None."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        return "JSON"
    if stripped[:1] == "<":
        return "XML/HTML"
    lines = [ln for ln in stripped.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and (lines[0].strip() == "---" or all(_YAML_LINE.match(ln) and "," not in ln and "\t" not in ln
                                                    for ln in lines[:-1] or lines)):
        return "YAML"
    return None


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 text without control bytes, with commas/tabs or at least two lines (a one-column CSV)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a 4 KiB read may cut a multi-byte character in half
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    if any(c < " " and c not in "\t\n\r\f" for c in text):  # NUL and other control bytes: binary
        return False
    # a delimiter, or several lines: a one-column CSV (a header and one value per line) has no commas
    return "," in text or "\t" in text or "\n" in text.strip() or "\r" in text.strip()
