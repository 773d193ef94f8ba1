"""Find a file's true format from its first bytes, not from its extension."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from contextlib import contextmanager
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
    path = as_path(path)
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
    encoding = text_encoding(head)
    if encoding is not None:
        other = _other_text_format(head.decode(encoding, errors="ignore"))
        if other:
            raise ValueError(f"{path}: {other} text, which neuroalrnn does not read; expected one of: "
                             f"{', '.join(FORMATS.values())}")
        return "csv"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ValueError(f"{path}: UTF-16 encoded text; save the table as UTF-8 (or Latin-1) CSV")
    raise ValueError(f"{path}: unrecognised file content (first bytes {head[:8]!r}; a text table must be "
                     f"UTF-8 or Latin-1/Windows-1252 text); expected one of: {', '.join(FORMATS.values())}")


def as_path(path) -> Path:
    """``path`` as a Path to an existing regular file, or a clear error saying what it is instead."""
    if isinstance(path, bytes):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got bytes ({path[:20]!r}); "
                        "decode a path with os.fsdecode, or write file contents to a file first")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as err:  # permission denied on a parent, a name too long, ...
        raise FileNotFoundError(f"{path}: cannot be accessed ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path}: is a directory, not a file; give the path of a file inside it")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) \
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        raise ValueError(f"{path}: is {kind}, not a regular file; neuroalrnn reads files from disk")
    return path


@contextmanager
def reading(path, kind: str, part: str | None = None, keep: tuple = ()):
    """Turn what a library raises on a damaged file into one ``ValueError`` naming the file.

    Libraries raise almost any exception type on damaged bytes (OSError, KeyError,
    zlib.error, BadZipFile, RecursionError, MemoryError, scipy's MatReadError, ...),
    so wrap only the library's parsing, not this package's own checks: those already
    raise errors that name the field. An error whose message already names the file
    passes through unchanged, as does an ImportError (a missing optional package).
    ``part`` names the part being read (e.g. an NPZ key); exceptions of the types in
    ``keep`` pass through for the caller to handle.
    """
    try:
        yield
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - see the docstring
        if isinstance(err, keep):
            raise
        if isinstance(err, (ValueError, TypeError, FileNotFoundError)) and str(path) in str(err):
            raise
        what = FORMATS.get(kind, kind)
        if isinstance(err, MemoryError):
            raise ValueError(f"{path}: reading it as {what} asks for more memory than there is "
                             "(a corrupt size field?)") from None
        where = f"{part} of {what}" if part else what
        detail = " ".join(str(err).split())[:200]  # one line, whatever the library wrote
        raise ValueError(f"{path}: expected {where}, but it cannot be read (truncated or corrupt?): "
                         f"{type(err).__name__}: {detail}") from None


@contextmanager
def naming(path):
    """Put the file's name in front of a ValueError/TypeError that does not name it yet."""
    try:
        yield
    except (ValueError, TypeError) as err:
        if str(path) in str(err):
            raise
        kind = ValueError if isinstance(err, ValueError) else TypeError  # subclasses take other arguments
        raise kind(f"{path}: {err}") from None


def _check_hdf5(path, kind):
    import h5py

    with reading(path, kind):
        with h5py.File(path, "r"):
            pass


def _hdf5_kind(path):
    import h5py

    # only the attributes that tell the formats apart are touched: libhdf5 can crash or hang on a
    # damaged attribute value, so the others (and their values) are left alone
    with reading(path, "hdf5"):
        with h5py.File(path, "r") as f:
            nwb = "neurodata_type" in f.attrs and _text(f.attrs["neurodata_type"]) == "NWBFile"
            nwb = nwb or ("nwb_version" in f.attrs and "general" in f)
            netcdf = "_NCProperties" in f.attrs or "_nc3_strict" in f.attrs
            keys = set(f.keys())
            top = [obj for obj in (f.get(k) for k in keys) if obj is not None]  # a broken link gives None
            netcdf = netcdf or any(isinstance(obj, h5py.Dataset) and (
                "DIMENSION_LIST" in obj.attrs or ("CLASS" in obj.attrs and _text(obj.attrs["CLASS"])
                                                  == "DIMENSION_SCALE")) for obj in top)
            matlab = "#refs#" in keys or any("MATLAB_class" in obj.attrs for obj in top)
    return "nwb" if nwb else "netcdf" if netcdf else "mat73" if matlab else "hdf5"


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


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


def text_encoding(head: bytes) -> str | None:
    """``'utf-8'`` or ``'cp1252'`` when ``head`` reads as a table's text in that encoding, else None.

    Text means no control bytes, and commas/tabs or at least two lines (a
    one-column CSV). Text that is not UTF-8 is taken as Windows-1252 (a superset
    of Latin-1 for printable text, what spreadsheet programs export) when it is
    mostly ASCII; binary data rarely is.
    """
    text = _decode(head, "utf-8")
    encoding = "utf-8"
    if text is None:
        text, encoding = _decode(head, "cp1252"), "cp1252"
        if text is None or sum(c < "\x80" for c in text) < 0.9 * len(text):
            return None
    if any(c < " " and c not in "\t\n\r\f" for c in text):  # NUL and other control bytes: binary
        return None
    # a delimiter, or several lines: a one-column CSV (a header and one value per line) has no commas
    if "," in text or "\t" in text or "\n" in text.strip() or "\r" in text.strip():
        return encoding
    return None


def _decode(head, encoding):
    try:
        return head.decode(encoding)
    except UnicodeDecodeError:
        try:  # a 4 KiB read may cut a multi-byte character in half
            return head[:-4].decode(encoding)
        except UnicodeDecodeError:
            return None
