"""CSV and NPZ files as a mapping of column name -> array, with the checks a lab export needs.

Nothing here guesses silently: a number column with one damaged cell, a repeated
column name, a zip archive that is not an NPZ and an encrypted archive are
refused with an error that names the file, the column and the row; a CSV that is
not UTF-8 is read as Windows-1252 (Latin-1) with a warning that says so.
"""

from __future__ import annotations

import warnings
import zipfile

import numpy as np

from neuroalrnn.io._sniff import FORMATS, reading


def read_csv(path, *, encoding: str | None = None, dtype=None, na_values=None):
    """Read a CSV file into a pandas DataFrame; see :func:`neuroalrnn.io.read_table`."""
    import pandas as pd

    options = {"dtype": dtype, "na_values": na_values}
    if encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ValueError(f"encoding: {encoding!r} is not a text encoding Python knows") from None
    try:
        try:
            frame, header = _parse(path, encoding or "utf-8", options)
        except UnicodeDecodeError as err:
            if encoding is not None:
                raise ValueError(f"{path}: not {encoding} text ({err.reason} at byte {err.start}); "
                                 "pass the file's encoding=...") from None
            try:
                frame, header = _parse(path, "cp1252", options)
            except UnicodeDecodeError:
                raise ValueError(f"{path}: neither UTF-8 nor Windows-1252/Latin-1 text ({err.reason} at byte "
                                 f"{err.start}); pass the file's encoding=... (e.g. 'utf-16')") from None
            warnings.warn(f"{path}: not UTF-8 text; read it as Windows-1252 (Latin-1), as spreadsheet "
                          "programs write it. Pass encoding=... if names or labels look wrong.", UserWarning,
                          stacklevel=4)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: expected {FORMATS['csv']}, but it cannot be parsed: "
                         f"{' '.join(str(err).split())}") from None
    _check_header(path, header)
    _check_number_columns(path, frame, dtype)
    return frame


def _parse(path, encoding, options):
    import pandas as pd

    # read_csv handles these: it knows the encoding it tried
    with reading(path, "csv", keep=(UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)):
        # the raw first row: pandas renames repeated names ('rt', 'rt.1'), which must not pass silently
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, encoding=encoding,
                             keep_default_na=False).iloc[0].tolist()
        return pd.read_csv(path, encoding=encoding, **options), header


def _check_header(path, header):
    seen = {}
    for position, name in enumerate(header):
        seen.setdefault(name, []).append(position + 1)
    repeated = {name: cols for name, cols in seen.items() if len(cols) > 1}
    if repeated:
        name, cols = next(iter(repeated.items()))
        raise ValueError(f"{path}: column name {name!r} appears {len(cols)} times (columns {cols}); "
                         "every column needs its own name")


def _check_number_columns(path, frame, dtype):
    """A text column whose values are mostly numbers has a damaged cell: name it instead of reading text."""
    import pandas as pd

    text_wanted = set(dtype) if isinstance(dtype, dict) else set(frame.columns) if dtype is not None else set()
    text_columns = [c for c, kind in frame.dtypes.items()  # dtypes first: one lookup per column is slow
                    if c not in text_wanted and (kind == object or pd.api.types.is_string_dtype(kind))]
    for column in text_columns:
        series = frame[column]
        numbers = pd.to_numeric(series, errors="coerce")
        present = series.notna().to_numpy()
        bad = present & numbers.isna().to_numpy()
        n_numbers = int(numbers.notna().sum())
        if bad.any() and n_numbers > bad.sum():
            row = int(np.argmax(bad))
            raise ValueError(f"{path}: column {column!r}, row {row + 1} (line {row + 2} of the file): "
                             f"{series.iloc[row]!r} is not a number, but {n_numbers} of the column's values "
                             f"are; fix the cell, or read the column as text with dtype={{{column!r}: str}} "
                             "(or mark missing values with na_values=[...])")


def read_npz(path) -> dict:
    """Read every array of an NPZ archive (``allow_pickle=False``) into a dict."""
    with reading(path, "npz"):
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    for info in members:
        if info.flag_bits & 0x1:
            raise ValueError(f"{path}: the zip archive is encrypted (member {info.filename!r}); NPZ files "
                             "written by numpy never are: decrypt it first")
        if not info.filename.endswith(".npy"):
            raise ValueError(f"{path}: a zip archive, but not an NPZ: member {info.filename!r} is not a .npy "
                             "array (np.savez writes one .npy file per array)")
    columns = {}
    with reading(path, "npz"):
        archive = np.load(path, allow_pickle=False)
    with archive:
        for key in archive.files:
            with reading(path, "npz", part=f"key {key!r}"):
                columns[key] = _member(archive, key, path)
    if not columns:
        raise ValueError(f"{path}: the NPZ archive holds no arrays; expected one array per trial column")
    return columns


def _member(archive, key, path):
    try:
        return archive[key]
    except ValueError as err:
        if "pickle" in str(err):
            raise ValueError(f"{path}: key {key!r} holds pickled Python objects; refused "
                             "(pickles can run code; save plain numeric/string arrays)") from None
        raise
