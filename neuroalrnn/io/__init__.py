"""Readers that turn lab files into a TrialDataset, behind one ``load``.

``load(path, **options)`` looks at the file's first bytes (not its extension)
and hands it to the matching reader:

============ ======================================= ==========================
format       detected by                             reader
============ ======================================= ==========================
NWB          HDF5 with NWB root attributes           :func:`read_nwb`
MATLAB v5    ``MATLAB 5.0 MAT-file`` header          :func:`read_mat`
MATLAB v7.3  ``MATLAB 7.3`` header / HDF5 + #refs#   :func:`read_mat`
netCDF       ``CDF`` header / HDF5 with netCDF attrs :func:`read_netcdf`
NPZ          zip (``PK``) archive                    :func:`read_table`
CSV          UTF-8 or Latin-1 text (delimited, or     :func:`read_table`
             one column)
============ ======================================= ==========================

Every reader returns a validated dataset held fully in memory (no file handle
is left open) and never writes anything. A file that cannot be read ends in one
``ValueError``, ``TypeError``, ``FileNotFoundError`` or ``ImportError`` whose
message names the file (and the field or row), never in a library's traceback.
pynapple objects convert with :func:`from_pynapple` and :func:`to_pynapple`.
"""

from __future__ import annotations

import os

import xarray as xr

from neuroalrnn._cf import migrate_units
from neuroalrnn.io._sniff import FORMATS, as_path, naming, reading, sniff
from neuroalrnn.io.matlab import KOPPE2014_SPEC, MatSpec, read_mat
from neuroalrnn.io.neurogym import from_neurogym
from neuroalrnn.io.nwb import read_nwb
from neuroalrnn.io.pynapple import from_pynapple, to_pynapple
from neuroalrnn.io.tables import from_table, read_table
from neuroalrnn.schema import validate

__all__ = ["load", "sniff", "read_nwb", "read_mat", "MatSpec", "KOPPE2014_SPEC", "read_table",
           "from_table", "read_netcdf", "from_neurogym", "from_pynapple", "to_pynapple"]


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a TrialDataset written with ``ds.to_netcdf(path)``, fully into memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from neuroalrnn import from_arrays
    >>> ds = from_arrays(activity=np.ones((2, 3, 1)), trial_coords={"context": ["a", "b"]})
    >>> path = os.path.join(tempfile.mkdtemp(), "ds.nc")
    >>> ds.to_netcdf(path)
    >>> read_netcdf(path)["context"].values.tolist()
    ['a', 'b']
    """
    path = as_path(path)
    with reading(path, "netcdf"):
        try:
            with xr.open_dataset(path) as opened:
                ds = opened.load()
        except ImportError as err:  # a reader xarray listed could not be imported
            raise ImportError(f"{path}: reading netCDF needs the netCDF4 or h5netcdf package ({err})") from None
        except ValueError as err:
            if "dependencies may not be installed" in str(err):  # xarray found no installed reader
                raise ImportError(f"{path}: reading netCDF needs the netCDF4 or h5netcdf package "
                                  f"(pip install netCDF4)") from None
            raise
    for name, var in ds.variables.items():
        var.encoding = {}  # detach from the file: the dataset is independent of it
    ds.encoding = {}
    return _validated(migrate_units(ds), path)  # files of earlier versions: activity_units -> units


def _validated(ds, path):
    try:
        return validate(ds)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path}: not a valid TrialDataset: {err}") from None


_READERS = {"nwb": read_nwb, "mat5": read_mat, "mat73": read_mat, "netcdf": read_netcdf,
            "npz": read_table, "csv": read_table}


def load(path: str | os.PathLike, format: str | None = None, **options) -> xr.Dataset:
    """Load a lab file into a validated TrialDataset, dispatching on its true type.

    Parameters
    ----------
    path : str or path-like
        NWB, MATLAB (v5 or v7.3), netCDF, NPZ or CSV file. The format is found
        from the file's content, so a misleading extension does not matter.
    format : str, optional
        Insist on a format (``'nwb'``, ``'mat'``, ``'netcdf'``, ``'npz'``,
        ``'csv'``); a file of another type raises a ``ValueError``.
    **options
        Passed to the reader (see :func:`read_nwb`, :func:`read_mat`,
        :func:`read_table`; :func:`read_netcdf` takes none).

    Returns
    -------
    xarray.Dataset
        A TrialDataset, fully in memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "trials.npz")
    >>> np.savez(path, choice=np.array([1, -1, 1]), rt=np.array([0.3, 0.5, 0.4]))
    >>> load(path)["choice"].values.tolist()
    [1, -1, 1]
    """
    path = as_path(path)
    kind = sniff(path)
    if format is not None:
        wanted = {"mat": ("mat5", "mat73"), "mat5": ("mat5",), "mat73": ("mat73",), "nwb": ("nwb",),
                  "netcdf": ("netcdf",), "nc": ("netcdf",), "npz": ("npz",), "csv": ("csv",)}
        if format not in wanted:
            raise ValueError(f"format: expected one of {sorted(wanted)}, got {format!r}")
        if kind not in wanted[format]:
            raise ValueError(f"{path}: format={format!r} was asked for, but the file is {FORMATS[kind]}")
    if kind == "hdf5":
        raise ValueError(f"{path}: an HDF5 file that is neither NWB, MATLAB v7.3 nor netCDF; "
                         f"expected one of: {', '.join(FORMATS.values())}")
    reader = _READERS[kind]
    if kind == "netcdf" and options:
        raise TypeError(f"{path}: netCDF files take no reader options, got {sorted(options)}")
    if kind in ("npz", "csv"):
        options.setdefault("format", kind)
    with naming(path):  # bad input ends in one message that names the file
        return reader(path, **options)
