"""MATLAB v5 / v7.3 reader with a declarative spec."""

import h5py
import numpy as np
import pytest
import scipy.io

import neuroalrnn
from neuroalrnn.io.matlab import KOPPE2014_SPEC, MatSpec, load_mat_variable, read_mat


def test_koppe2014_acceptance(shared_data):
    path = shared_data / "koppe2014_fmri" / "NBKO_PLRNN_dataset.mat"
    ds = neuroalrnn.load(path, spec=KOPPE2014_SPEC)
    assert ds.attrs["source"] == "NBKO_PLRNN_dataset.mat"
    assert dict(ds.sizes) == {"trial": 130, "time": 72, "unit": 20, "input": 5, "phase_index": 5}
    assert ds.attrs["dt"] == 1.0 and ds.attrs["time_unit"] == "TR"
    assert ds["input"].values.tolist() == ["1=triangle", "2=square", "3=Instru CRT", "4=Instru CDRT",
                                           "5=Instru CMT"]
    assert ds["subject"].values.tolist() == np.repeat(np.arange(26), 5).tolist()
    assert ds["segment"].values.tolist() == np.tile(np.arange(5), 26).tolist()
    assert bool(ds["mask"].all())
    raw = scipy.io.loadmat(path)["Data"]
    for t in range(130):
        s, k = divmod(t, 5)
        subject = raw[0, s][0, 0]
        np.testing.assert_array_equal(ds["activity"].values[t], subject["X"][0, k].T)
        np.testing.assert_array_equal(ds["inputs"].values[t], subject["Inp"][0, k].T)
        np.testing.assert_array_equal(ds["phase"].values[t], subject["C_"][0, k].T)
    # per-segment phase label counts from the data README: 24/9/13/13/13
    assert ds["phase"].isel(trial=0).sum("time").values.tolist() == [24, 9, 13, 13, 13]
    assert neuroalrnn.load(path, spec=KOPPE2014_SPEC, dt=2.0).attrs["dt"] == 2.0


def _lab_struct(rng):
    """A 1x3 struct array: per-trial rates (time x unit), a context per trial."""
    S = np.zeros((1, 3), dtype=[("rates", object), ("stim", object), ("ctx", object), ("rt", object)])
    lengths = [6, 4, 5]
    rates = [rng.normal(size=(n, 2)) for n in lengths]
    for i, n in enumerate(lengths):
        S[0, i] = (rates[i], np.ones((n, 1)) * i, np.array(["motion", "color", "motion"][i]), float(i) / 10)
    return S, rates


def test_v5_struct_array_time_feature_ragged(tmp_path, rng):
    S, rates = _lab_struct(rng)
    scipy.io.savemat(tmp_path / "lab.mat", {"S": S})
    ds = neuroalrnn.load(tmp_path / "lab.mat", variable="S", activity="rates", inputs="stim",
                         orientation="time_feature", element_dim="trial_number",
                         trial_vars=["ctx", "rt"], dt=0.05, unit_names=["n1", "n2"])
    assert ds["mask"].sum("time").values.tolist() == [6, 4, 5]
    assert ds["ctx"].values.tolist() == ["motion", "color", "motion"]
    assert ds["rt"].values.tolist() == [0.0, 0.1, 0.2]
    assert ds["unit"].values.tolist() == ["n1", "n2"]
    for i, r in enumerate(rates):
        np.testing.assert_array_equal(ds["activity"].values[i, : len(r)], r)
        assert np.isnan(ds["activity"].values[i, len(r):]).all()
    assert ds.attrs["dt"] == 0.05


def test_per_segment_trial_vars_and_element_scalars(tmp_path):
    S = np.zeros((1, 2), dtype=[("X", object), ("age", object), ("cond", object)])
    for i in range(2):
        cells = np.empty((1, 3), dtype=object)
        cond = np.empty((1, 3), dtype=object)
        for k in range(3):
            cells[0, k] = np.full((4, 7), 10 * i + k, dtype=float)
            cond[0, k] = float(k % 2)
        S[0, i] = (cells, float(30 + i), cond)
    scipy.io.savemat(tmp_path / "seg.mat", {"Data": S})
    spec = MatSpec(variable="Data", activity="X", element_dim="subject", segment_dim="run",
                   trial_vars=("age", "cond"))
    ds = read_mat(tmp_path / "seg.mat", spec)
    assert ds["age"].values.tolist() == [30, 30, 30, 31, 31, 31]
    assert ds["cond"].values.tolist() == [0, 1, 0, 0, 1, 0]
    assert ds["run"].values.tolist() == [0, 1, 2, 0, 1, 2]
    assert ds["activity"].values[4, 0, 0] == 11


def _ref(f, name, data, cls):
    d = f.create_dataset(f"#refs#/{name}", data=data)
    d.attrs["MATLAB_class"] = np.bytes_(cls)
    return d.ref


def _char(f, name, text):
    return _ref(f, name, np.array([[ord(c)] for c in text], dtype=np.uint16), "char")


def test_v73_struct_array_with_cells(tmp_path, rng):
    """MATLAB v7.3 layout: HDF5 after a 512-byte user block, column-major, cells as references."""
    path = tmp_path / "lab73.mat"
    X = [[rng.normal(size=(3, 8)) for _ in range(2)] for _ in range(2)]  # subject x segment, 3 feat x 8 time
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("Data")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        xrefs = np.empty((2, 1), dtype=h5py.ref_dtype)
        names = np.empty((2, 1), dtype=h5py.ref_dtype)
        for s in range(2):
            cell = np.empty((2, 1), dtype=h5py.ref_dtype)  # MATLAB 1x2 cell, stored transposed
            for k in range(2):
                cell[k, 0] = _ref(f, f"x{s}{k}", X[s][k].T, "double")  # MATLAB 3x8 stored as 8x3
            cd = f.create_dataset(f"#refs#/cell{s}", data=cell, dtype=h5py.ref_dtype)
            cd.attrs["MATLAB_class"] = np.bytes_("cell")
            xrefs[s, 0] = cd.ref
            ncell = np.empty((3, 1), dtype=h5py.ref_dtype)
            for j, text in enumerate(["left", "right", "fix"]):
                ncell[j, 0] = _char(f, f"n{s}{j}", text)
            nd = f.create_dataset(f"#refs#/names{s}", data=ncell, dtype=h5py.ref_dtype)
            nd.attrs["MATLAB_class"] = np.bytes_("cell")
            names[s, 0] = nd.ref
        group.create_dataset("X", data=xrefs, dtype=h5py.ref_dtype)
        group.create_dataset("names", data=names, dtype=h5py.ref_dtype)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    assert neuroalrnn.io.sniff(path) == "mat73"
    plain = load_mat_variable(path, "Data")
    assert plain.shape == (1, 2) and plain[0, 1]["X"].shape == (1, 2)
    ds = neuroalrnn.load(path, variable="Data", inputs="X", input_names="names",
                         element_dim="subject", segment_dim="segment")
    assert ds["input"].values.tolist() == ["left", "right", "fix"]
    assert ds["subject"].values.tolist() == [0, 0, 1, 1]
    for s in range(2):
        for k in range(2):
            np.testing.assert_array_equal(ds["inputs"].values[2 * s + k], X[s][k].T)


def test_v73_and_v5_give_the_same_dataset(tmp_path, rng):
    a = rng.normal(size=(4, 9))
    scipy.io.savemat(tmp_path / "v5.mat", {"S": {"X": a}})
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        g = f.create_group("S")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        g.create_dataset("X", data=a.T).attrs["MATLAB_class"] = np.bytes_("double")
    one = neuroalrnn.load(tmp_path / "v5.mat", variable="S", activity="X")
    two = neuroalrnn.load(tmp_path / "v73.mat", variable="S", activity="X")
    np.testing.assert_array_equal(one["activity"].values, two["activity"].values)
    np.testing.assert_array_equal(one["activity"].values[0], a.T)


def test_bad_specs(tmp_path, rng):
    S, _ = _lab_struct(rng)
    scipy.io.savemat(tmp_path / "lab.mat", {"S": S})
    with pytest.raises(ValueError, match=r"no variable 'Data'; the file holds \['S'\]"):
        neuroalrnn.load(tmp_path / "lab.mat", variable="Data", activity="rates")
    with pytest.raises(ValueError, match=r"S\[0\]: missing field 'X'"):
        neuroalrnn.load(tmp_path / "lab.mat", variable="S", activity="X")
    with pytest.raises(ValueError, match="orientation: expected"):
        neuroalrnn.load(tmp_path / "lab.mat", variable="S", activity="rates", orientation="rows")
    # no signal named: a table of trials, whose per-trial matrix must be named or left out
    with pytest.raises(ValueError, match=r"lab\.mat: field 'rates': holds a \(6, 2\) array per trial.*"
                                         r"exclude=\['rates'\]"):
        neuroalrnn.load(tmp_path / "lab.mat", variable="S")
    table = neuroalrnn.load(tmp_path / "lab.mat", variable="S", exclude=["rates", "stim"])
    assert table["ctx"].values.tolist() == ["motion", "color", "motion"] and not table.data_vars
    with pytest.raises(ValueError, match="ctx: element 0 segment 0: expected a 2-D numeric array"):
        neuroalrnn.load(tmp_path / "lab.mat", variable="S", activity="ctx")
    with pytest.raises(TypeError, match=r"lab\.mat: a MATLAB file needs a MatSpec .* the file holds \['S'\]"):
        read_mat(tmp_path / "lab.mat")
    with pytest.raises(TypeError, match="needs a MatSpec"):
        neuroalrnn.load(tmp_path / "lab.mat")


def test_nan_in_matlab_activity_is_refused(tmp_path):
    X = np.ones((2, 5))
    X[1, 3] = np.nan
    scipy.io.savemat(tmp_path / "nan.mat", {"S": {"X": X}})
    with pytest.raises(ValueError, match="activity: NaN or inf inside the mask"):
        neuroalrnn.load(tmp_path / "nan.mat", variable="S", activity="X")


def test_reading_does_not_touch_the_file(tmp_path, rng):
    S, _ = _lab_struct(rng)
    scipy.io.savemat(tmp_path / "lab.mat", {"S": S})
    before = (tmp_path / "lab.mat").read_bytes()
    neuroalrnn.load(tmp_path / "lab.mat", variable="S", activity="rates", orientation="time_feature", dt=0.1)
    assert (tmp_path / "lab.mat").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.mat"]


def test_koppe_spec_on_a_small_synthetic_file_without_inpcodes(tmp_path, rng):
    # same layout as the real file (cell of 1x1 structs, cells of segments), no `Inpcodes`
    Data = np.empty((1, 2), dtype=object)
    for s in range(2):
        S = np.zeros((1, 1), dtype=[("X", object), ("Inp", object), ("C_", object)])
        cells = [np.empty((1, 3), dtype=object) for _ in range(3)]
        for k in range(3):
            cells[0][0, k] = rng.normal(size=(4, 6))
            cells[1][0, k] = (rng.random((5, 6)) > 0.5).astype(float)
            cells[2][0, k] = np.eye(5)[:, rng.integers(0, 5, 6)]
        S[0, 0] = tuple(cells)
        Data[0, s] = S
    scipy.io.savemat(tmp_path / "mini.mat", {"Data": Data})
    ds = neuroalrnn.load(tmp_path / "mini.mat", spec=KOPPE2014_SPEC)
    assert dict(ds.sizes) == {"trial": 6, "time": 6, "unit": 4, "input": 5, "phase_index": 5}
    assert ds["input"].values.tolist() == [0, 1, 2, 3, 4]
    raw = scipy.io.loadmat(tmp_path / "mini.mat")["Data"]
    np.testing.assert_array_equal(ds["inputs"].values[4], raw[0, 1][0, 0]["Inp"][0, 1].T)


def _v73(path, build):
    """A MATLAB v7.3 file: HDF5 after a 512-byte user block holding the MATLAB header."""
    with h5py.File(path, "w", userblock_size=512) as f:
        build(f)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    return path


def _struct(f, name):
    group = f.create_group(name)
    group.attrs["MATLAB_class"] = np.bytes_("struct")
    return group


def test_complex_arrays_are_refused_as_complex(tmp_path):
    """The message used to be 'expected a 2-D numeric array, got (2, 4)' for a 2-D array."""
    scipy.io.savemat(tmp_path / "c5.mat", {"S": {"X": np.ones((2, 4)) * (1 + 1j)}})
    with pytest.raises(TypeError, match=r"X: element 0 segment 0: complex values; a TrialDataset signal is real"):
        neuroalrnn.load(tmp_path / "c5.mat", variable="S", activity="X")
    S = np.zeros((1, 2), dtype=[("X", object), ("c", object)])
    S[0, 0] = (np.ones((2, 3)), 1 + 2j)
    S[0, 1] = (np.ones((2, 3)), 2.0)
    scipy.io.savemat(tmp_path / "f5.mat", {"S": S})  # a complex per-trial field became a complex coord
    with pytest.raises(TypeError, match=r"c: element 0: a complex value"):
        neuroalrnn.load(tmp_path / "f5.mat", variable="S", activity="X", trial_vars=["c"])

    def build(f):
        data = np.zeros((4, 2), dtype=[("real", "f8"), ("imag", "f8")])
        data["real"] = 1.0
        _struct(f, "S").create_dataset("X", data=data).attrs["MATLAB_class"] = np.bytes_("double")
        _struct(f, "T").create_dataset("ok", data=np.ones((4, 2))).attrs["MATLAB_class"] = np.bytes_("double")
    path = _v73(tmp_path / "c73.mat", build)
    with pytest.raises(TypeError, match=r"X: element 0 segment 0: complex values"):
        neuroalrnn.load(path, variable="S", activity="X")
    assert load_mat_variable(path, "S")["X"].dtype.kind == "c"  # read faithfully, refused where used


def test_v73_reference_cycles_missing_objects_and_broken_links(tmp_path):
    def self_referencing(f):
        cell = f.create_dataset("#refs#/c", shape=(1, 1), dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
        cell[0, 0] = cell.ref  # a cell that holds itself (RecursionError before)
        x = _struct(f, "S").create_dataset("X", shape=(1, 1), dtype=h5py.ref_dtype)
        x.attrs["MATLAB_class"] = np.bytes_("cell")
        x[0, 0] = cell.ref
    path = _v73(tmp_path / "self.mat", self_referencing)
    with pytest.raises(ValueError, match=r"self\.mat: /S: a cell or struct that contains itself"):
        neuroalrnn.load(path, variable="S", activity="X")

    def deleted(f):
        target = f.create_dataset("#refs#/t", data=np.ones((3, 2)))
        x = _struct(f, "S").create_dataset("X", shape=(1, 1), dtype=h5py.ref_dtype)
        x.attrs["MATLAB_class"] = np.bytes_("cell")
        x[0, 0] = target.ref
        del f["#refs#/t"]  # the reference now points at nothing (KeyError before)
    path = _v73(tmp_path / "del.mat", deleted)
    with pytest.raises(ValueError, match=r"del\.mat: a reference in /S/X: refers to an object that is missing"):
        neuroalrnn.load(path, variable="S", activity="X")

    def broken(f):
        _struct(f, "S")["X"] = h5py.SoftLink("/nowhere")
        f["Y"] = h5py.ExternalLink("elsewhere.h5", "/x")
    path = _v73(tmp_path / "link.mat", broken)
    with pytest.raises(ValueError, match=r"link\.mat: /S/X: a broken link \(to '/nowhere'"):
        neuroalrnn.load(path, variable="S", activity="X")
    with pytest.raises(ValueError, match=r"link\.mat: /Y: a link to another file \('elsewhere\.h5'"):
        neuroalrnn.load(path, variable="Y", activity="X")


def test_structs_of_trials_are_tables(tmp_path):
    """Labs keep behaviour as a struct of per-trial vectors or a struct array of trials."""
    trials = {"choice": np.array([[1, -1, 1, 1]]), "rt": np.array([[0.3], [0.5], [0.4], [0.6]]),
              "side": np.array(["left", "right", "left", "left"], dtype=object), "subject": "rat7",
              "stim": np.arange(8.0).reshape(4, 2)}
    scipy.io.savemat(tmp_path / "t.mat", {"trials": trials})
    ds = neuroalrnn.load(tmp_path / "t.mat", variable="trials")
    assert ds.sizes["trial"] == 4 and ds.attrs["subject"] == "rat7" and ds.attrs["source_format"] == "MATLAB"
    assert ds["choice"].values.tolist() == [1, -1, 1, 1] and ds["rt"].values.tolist() == [0.3, 0.5, 0.4, 0.6]
    assert ds["side"].values.tolist() == ["left", "right", "left", "left"]
    assert ds["stim_1"].values.tolist() == [1, 3, 5, 7]
    # a 1 x n struct array, one element per trial, an empty value ([]) for a missing one
    S = np.zeros((1, 3), dtype=[("choice", object), ("rt", object), ("ctx", object)])
    for i, (c, rt, ctx) in enumerate([(1, 0.3, "motion"), (-1, np.zeros((0, 0)), "color"), (1, 0.4, "motion")]):
        S[0, i] = (c, rt, ctx)
    scipy.io.savemat(tmp_path / "sa.mat", {"T": S})
    ds = neuroalrnn.load(tmp_path / "sa.mat", variable="T")
    np.testing.assert_array_equal(ds["rt"].values, [0.3, np.nan, 0.4])
    assert ds["ctx"].values.tolist() == ["motion", "color", "motion"]
    assert neuroalrnn.load(tmp_path / "sa.mat", variable="T", columns=["ctx"])["ctx"].size == 3

    def v73(f):
        group = _struct(f, "trials")
        group.create_dataset("choice", data=np.array([[1.0, -1.0, 1.0]])).attrs["MATLAB_class"] = np.bytes_("double")
        group.create_dataset("rt", data=np.array([[0.3], [0.5], [0.4]]).T).attrs["MATLAB_class"] = np.bytes_("double")
    ds = neuroalrnn.load(_v73(tmp_path / "t73.mat", v73), variable="trials")
    assert ds["choice"].values.tolist() == [1, -1, 1] and ds["rt"].values.tolist() == [0.3, 0.5, 0.4]


@pytest.mark.parametrize("header, message", [
    (0, r"expected a MATLAB v7\.3 MAT-file \(HDF5\), but it cannot be read \(truncated or corrupt\?\): RuntimeError"),
    (1, r"/S: refers to an object that is missing or damaged \(KeyError"),
    (2, r"/S/X: refers to an object that is missing or damaged \(KeyError"),
])
def test_v73_damaged_object_headers(tmp_path, header, message):
    """h5py's RuntimeError/KeyError ('bad object header version number') used to escape as they were."""
    path = tmp_path / "bad.mat"
    with h5py.File(path, "w", userblock_size=512, libver="latest") as f:  # 'OHDR'-signed object headers
        _struct(f, "S").create_dataset("X", data=np.ones((4, 2))).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: test")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 4) if data[i:i + 4] == b"OHDR"]  # root group, S, X
    assert len(starts) == 3
    data[starts[header] + 4] = 0xFF  # the version byte that follows the signature
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.mat: " + message):
        neuroalrnn.load(path, variable="S", activity="X")
