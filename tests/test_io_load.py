"""neuroalrnn.load: dispatch on file content, netCDF round trips, bad files."""

import os

import numpy as np
import pytest
import scipy.io
import xarray as xr

import neuroalrnn
from neuroalrnn import from_arrays
from neuroalrnn.io import sniff


@pytest.fixture
def ragged_ds():
    rng = np.random.default_rng(1)
    return from_arrays(activity=[rng.normal(size=(5, 3)), rng.normal(size=(3, 3))],
                       inputs=[np.ones((5, 2)), np.zeros((3, 2))], dt=0.02, align_event="stim_on",
                       t_start=-0.04, trial=np.array([7, 9]),
                       trial_coords={"context": ["motion", "color"], "correct": [True, False],
                                     "coherence": [0.1, np.nan], "session": [1, 2]},
                       unit={"unit": [11, 12, 13], "area": ["FEF", "FEF", "V4"]},
                       input_names=["fix", "cue"],
                       attrs={"source": "unit test", "activity_units": "spikes/s", "sessions": [1, 2]})


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf", "scipy"])
def test_netcdf_round_trip_is_identical(tmp_path, ragged_ds, engine):
    path = tmp_path / "ds.nc"
    ragged_ds.to_netcdf(path, engine=engine)
    back = neuroalrnn.load(path)
    xr.testing.assert_identical(back, ragged_ds)
    assert back["mask"].dtype == bool
    assert back["correct"].dtype == bool
    assert back["context"].values.tolist() == ["motion", "color"]
    os.remove(path)  # no handle left open (and the data stay readable after)
    assert float(back["activity"].sum()) == pytest.approx(float(ragged_ds["activity"].sum()))


def test_netcdf_behaviour_only_round_trip(tmp_path):
    ds = from_arrays(trial_coords={"choice": [1, -1, 1], "block": ["a", "b", "a"]}, attrs={"source": "x"})
    ds.to_netcdf(tmp_path / "b.nc")
    xr.testing.assert_identical(neuroalrnn.load(tmp_path / "b.nc"), ds)


def test_misleading_extension_is_read_by_true_type(tmp_path):
    # an NPZ called .mat, a MATLAB file called .nc, a netCDF called .npz
    np.savez(tmp_path / "x.npz", choice=np.array([1, 0, 1]))
    os.replace(tmp_path / "x.npz", tmp_path / "table.mat")
    assert sniff(tmp_path / "table.mat") == "npz"
    assert neuroalrnn.load(tmp_path / "table.mat")["choice"].values.tolist() == [1, 0, 1]
    scipy.io.savemat(tmp_path / "m.nc", {"S": {"X": np.ones((2, 4))}})
    assert sniff(tmp_path / "m.nc") == "mat5"
    ds = neuroalrnn.load(tmp_path / "m.nc", variable="S", activity="X")
    assert ds.sizes["unit"] == 2 and ds.sizes["time"] == 4
    from_arrays(trial_coords={"a": [1, 2]}).to_netcdf(tmp_path / "n.npz")
    assert neuroalrnn.load(tmp_path / "n.npz")["a"].values.tolist() == [1, 2]


def test_format_mismatch_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "x.npz", choice=np.array([1, 0]))
    with pytest.raises(ValueError, match=r"x\.npz.*format='nwb'.*NPZ"):
        neuroalrnn.load(tmp_path / "x.npz", format="nwb")
    with pytest.raises(ValueError, match="format: expected one of"):
        neuroalrnn.load(tmp_path / "x.npz", format="xlsx")


def test_empty_file(tmp_path):
    (tmp_path / "empty.nwb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.nwb: the file is empty; expected one of"):
        neuroalrnn.load(tmp_path / "empty.nwb")


def test_unrecognised_binary(tmp_path):
    (tmp_path / "junk.nc").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"junk\.nc: unrecognised file content"):
        neuroalrnn.load(tmp_path / "junk.nc")


@pytest.mark.parametrize("kind", ["netcdf", "npz", "mat5", "mat73"])
def test_truncated_files(tmp_path, ragged_ds, kind):
    path = tmp_path / f"full.{kind}"
    if kind == "netcdf":
        ragged_ds.to_netcdf(path)
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.arange(10000), b=np.arange(10000))
    elif kind == "mat5":
        scipy.io.savemat(path, {"S": {"X": np.arange(4000.0).reshape(40, 100)}})
    else:
        import h5py
        with h5py.File(path, "w", userblock_size=512) as f:
            d = f.create_dataset("X", data=np.arange(4000.0).reshape(100, 40))
            d.attrs["MATLAB_class"] = np.bytes_("double")
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: test")
    data = path.read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.\w+: .*(truncated or corrupt|cannot)"):
        neuroalrnn.load(cut, variable="S", activity="X") if kind.startswith("mat") else neuroalrnn.load(cut)


def test_corrupt_netcdf_content_is_named(tmp_path):
    # a valid netCDF that is not a TrialDataset: the error names the file and the field
    xr.Dataset({"x": ("foo", [1, 2])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ValueError, match=r"other\.nc: not a valid TrialDataset: .*trial"):
        neuroalrnn.load(tmp_path / "other.nc")


def test_plain_hdf5_is_refused(tmp_path):
    import h5py
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_group("stuff")
    with pytest.raises(ValueError, match="neither NWB, MATLAB v7.3 nor netCDF"):
        neuroalrnn.load(tmp_path / "plain.h5")


def test_netcdf_takes_no_options(tmp_path, ragged_ds):
    ragged_ds.to_netcdf(tmp_path / "d.nc")
    with pytest.raises(TypeError, match="no reader options"):
        neuroalrnn.load(tmp_path / "d.nc", bin_size=0.1)


def test_one_column_csv_is_a_csv(tmp_path):
    """A one-column table has no commas; it is still a CSV (the sniffer used to call it unrecognised)."""
    import pandas as pd

    pd.DataFrame({"rt": [0.3, np.nan, 0.5]}).to_csv(tmp_path / "rt.csv", index=False)
    (tmp_path / "choice.txt").write_text("choice\r\n1\r\n-1\r\n1\r\n")  # Windows line ends, other extension
    assert sniff(tmp_path / "rt.csv") == sniff(tmp_path / "choice.txt") == "csv"
    rt = neuroalrnn.load(tmp_path / "rt.csv")
    assert rt.sizes["trial"] == 3
    np.testing.assert_array_equal(rt["rt"].values, [0.3, np.nan, 0.5])
    assert neuroalrnn.load(tmp_path / "choice.txt", format="csv")["choice"].values.tolist() == [1, -1, 1]
    (tmp_path / "ctrl.csv").write_bytes(b"rt\n0.3\x01\x02\n")  # text-like but with control bytes
    with pytest.raises(ValueError, match=r"ctrl\.csv: unrecognised file content"):
        neuroalrnn.load(tmp_path / "ctrl.csv")


def test_netcdf_without_a_reader_says_what_to_install(tmp_path, ragged_ds, monkeypatch):
    """Without netCDF4 and h5netcdf, a good file must not be called corrupt."""
    import sys

    from xarray.backends.plugins import list_engines

    path = tmp_path / "ds.nc"
    ragged_ds.to_netcdf(path, engine="h5netcdf")
    monkeypatch.setitem(sys.modules, "netCDF4", None)
    monkeypatch.setitem(sys.modules, "h5netcdf", None)
    list_engines.cache_clear()
    try:
        with pytest.raises(ImportError, match="netCDF4 or h5netcdf"):
            neuroalrnn.load(path)
    finally:
        list_engines.cache_clear()


@pytest.mark.parametrize("text,kind", [('{"trials": [1, 2],\n "rt": [0.3, 0.4]}\n', "JSON"),
                                       ("[1, 2,\n 3]\n", "JSON"),
                                       ("<?xml version='1.0'?>\n<trials/>\n", "XML/HTML"),
                                       ("dt: 0.01\nsubject: m1\nsessions:\n  - a\n", "YAML"),
                                       ("---\nrt: 0.3\n", "YAML")])
def test_structured_text_is_not_taken_for_a_table(tmp_path, text, kind):
    """Since one-column CSVs are read, other text formats must be named, not parsed as a table."""
    path = tmp_path / "config.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"config\.csv: {kind} text, which neuroalrnn does not read"):
        neuroalrnn.load(path)


def test_one_column_values_that_look_like_times_stay_a_csv(tmp_path):
    (tmp_path / "t.csv").write_text("onset\n12:30\n13:00\n")
    assert sniff(tmp_path / "t.csv") == "csv"


def test_paths_that_are_not_regular_files(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(ValueError, match=r"data: is a directory, not a file"):  # was 'no such file'
        neuroalrnn.load(tmp_path / "data")
    os.mkfifo(tmp_path / "pipe")  # opening it would block until a writer comes
    with pytest.raises(ValueError, match=r"pipe: is a FIFO \(named pipe\), not a regular file"):
        neuroalrnn.load(tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match=r"nope\.nc: no such file"):
        neuroalrnn.load(tmp_path / "nope.nc")
    with pytest.raises(TypeError, match="path: expected a file path .*, got NoneType"):
        neuroalrnn.load(None)
    with pytest.raises(TypeError, match=r"path: expected a file path .*, got bytes \(b'CDF"):
        neuroalrnn.load(b"CDF\x01 file contents")
    with pytest.raises(TypeError, match="got NoneType"):
        neuroalrnn.io.read_table(None)


def test_zip_archives_that_are_not_npz(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as z:
        z.writestr("readme.txt", "hello")  # used to become a column of bytes: "a single value"
    with pytest.raises(ValueError, match=r"notes\.zip: a zip archive, but not an NPZ: member 'readme\.txt'"):
        neuroalrnn.load(tmp_path / "notes.zip")
    np.savez(tmp_path / "e.npz", a=np.arange(3))
    data = bytearray((tmp_path / "e.npz").read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the 'encrypted' flag bit
        start = data.find(signature)
        data[start + flag_at] |= 1
    (tmp_path / "e.npz").write_bytes(bytes(data))  # zipfile raised a RuntimeError asking for a password
    with pytest.raises(ValueError, match=r"e\.npz: the zip archive is encrypted \(member 'a\.npy'\)"):
        neuroalrnn.load(tmp_path / "e.npz")


def test_hdf5_files_with_broken_links(tmp_path):
    """A dangling link used to end in AttributeError ('NoneType' has no attribute 'attrs')."""
    import h5py

    with h5py.File(tmp_path / "links.h5", "w") as f:
        f["a"] = h5py.SoftLink("/nowhere")
        f["b"] = h5py.ExternalLink("elsewhere.h5", "/x")
    with pytest.raises(ValueError, match=r"links\.h5: an HDF5 file that is neither NWB, MATLAB v7\.3 nor netCDF"):
        neuroalrnn.load(tmp_path / "links.h5")
