"""Property-based fuzzing of ``neuroalrnn.load``: damaged or random files end in one clear error.

The contract: whatever the bytes, only ValueError, TypeError, FileNotFoundError
or ImportError leave ``load``, and the message names the file. Examples are
fixed (``derandomize=True``) so CI is reproducible, and few, so the whole file
runs in seconds.

Damaged files that C code parses (libhdf5: HDF5 netCDF, MATLAB v7.3, NWB,
anything with the HDF5 signature; scipy's MATLAB v5 reader) are loaded in a
forked child: libhdf5 2.0 crashes (SIGSEGV) or spins on some damaged attribute
headers and scipy 1.17's loadmat crashes on some damaged v5 files, which no
Python code can catch. Such native failures are collected and reported as a
warning; a Python exception outside the contract fails the test in both settings.
"""

import os
import signal
import warnings
from datetime import datetime, timedelta, timezone

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuroalrnn
from neuroalrnn.schema import from_arrays

ALLOWED = (ValueError, TypeError, FileNotFoundError, ImportError)
# NEUROALRNN_FUZZ_SCALE=50 runs 50 times as many examples (a longer local search; CI runs 1)
SCALE = max(1, int(os.environ.get("NEUROALRNN_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=40 * SCALE, deadline=timedelta(seconds=10), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NATIVE_FAILURES = []  # (what, outcome): crashes and hangs in C code, reported at the end


def check_contract(path, options):
    """Load ``path``; return 'ok' or 'refused', raise AssertionError for anything outside the contract."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the Latin-1 notice on random text
            neuroalrnn.load(path, **options)
    except ALLOWED as err:
        assert str(path) in str(err), f"{type(err).__name__} does not name the file: {err}"
        assert "\n" not in str(err).strip() or isinstance(err, ImportError), f"not one line: {err!r}"
        return "refused"
    return "ok"


def check_in_child(path, options, what, timeout=20):
    """``check_contract`` in a forked child, so that a crash or hang in C code cannot end the run."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork to isolate the C readers")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one line, never return into pytest
        os.close(read)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(timeout)  # the default action ends the process, even inside C code
        try:
            report = "pass " + check_contract(path, options)
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails the test
            report = f"fail {type(err).__name__}: {err}"
        os.write(write, report.encode()[:8000])
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 8192):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        outcome = signal.Signals(os.WTERMSIG(status)).name
        NATIVE_FAILURES.append((what, "hang (killed after %d s)" % timeout if outcome == "SIGALRM" else outcome))
        return
    report = b"".join(chunks).decode()
    assert report.startswith("pass"), f"{what}: {report}"


@pytest.fixture(scope="module", autouse=True)
def report_native_failures():
    yield
    if NATIVE_FAILURES:
        warnings.warn(f"C code (libhdf5, scipy.io) crashed or hung on {len(NATIVE_FAILURES)} damaged file(s), "
                      f"beyond what Python can catch: {NATIVE_FAILURES[:5]}", RuntimeWarning)


# ------------------------------------------------------------------ valid files of every format

def _nwb(path):
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="fuzz", identifier="fuzz",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    for start in (0.0, 1.0):
        nwb.add_trial(start_time=start, stop_time=start + 0.5)
    nwb.add_unit(spike_times=np.array([0.1, 0.2, 1.3]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _mat73(path):
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("S")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        group.create_dataset("X", data=np.arange(8.0).reshape(4, 2)).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: fuzz HDF5 schema 1.00 .")


def _dataset():
    return from_arrays(activity=np.arange(12.0).reshape(2, 3, 2), dt=0.1, units={"activity": "Hz"},
                       trial_coords={"context": ["a", "b"], "coh": [0.1, 0.2]})


MAT = {"variable": "S", "activity": "X"}
WRITERS = {  # name -> (writer, load options, needs libhdf5)
    "csv": (lambda p: p.write_text("choice,rt,context\n1,0.31,motion\n-1,0.52,color\n1,,motion\n"), {}, False),
    "npz": (lambda p: np.savez(open(p, "wb"), choice=np.array([1, -1, 1]), rt=np.array([0.3, 0.5, 0.4]),
                               activity=np.ones((3, 2, 1)), dt=np.array(0.1)), {}, False),
    "npz_zlib": (lambda p: np.savez_compressed(open(p, "wb"), choice=np.array([1, -1, 1]),
                                               name=np.array("rat1")), {}, False),
    "mat5": (lambda p: scipy.io.savemat(p, {"S": {"X": np.arange(8.0).reshape(2, 4), "ctx": "abc"}}), MAT, True),
    "nc3": (lambda p: _dataset().to_netcdf(p, engine="scipy"), {}, False),
    "nc4": (lambda p: _dataset().to_netcdf(p, engine="h5netcdf"), {}, True),
    "mat73": (_mat73, MAT, True),
    "nwb": (_nwb, {"bin_size": 0.1}, True),
}


class ValidFiles(dict):
    def __repr__(self):  # hypothesis prints the arguments of a failing example: not the files' bytes
        return f"<valid files: {', '.join(self)}>"


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    out = ValidFiles()
    for name, (write, options, native) in WRITERS.items():
        path = folder / f"valid_{name}.{'nwb' if name == 'nwb' else 'dat'}"  # pynwb warns on other extensions
        write(path)
        assert check_contract(path, options) == "ok", name  # the undamaged file loads
        out[name] = (path.read_bytes(), options, native)
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.dat"


def damage(data, edit):
    kind, detail = edit
    if kind == "cut":
        return data[: int(detail * len(data))]
    out = bytearray(data)
    for where, value in detail:
        out[int(where * len(out))] = value
    return bytes(out)


EDITS = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                        min_size=1, max_size=3)))


# ------------------------------------------------------------------ the properties

@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(scratch, data):
    scratch.write_bytes(data)
    check_contract(scratch, {})


MAGIC = {"mat5": b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(116) + b"\x00" * 8 + b"\x00\x01IM",
         "zip": b"PK\x03\x04", "netcdf3": b"CDF\x01", "netcdf64": b"CDF\x02"}


@FUZZ
@given(magic=st.sampled_from(sorted(MAGIC)), tail=st.binary(max_size=1024))
def test_magic_bytes_with_random_tails(scratch, magic, tail):
    scratch.write_bytes(MAGIC[magic] + tail)
    if magic == "mat5":  # scipy's C reader parses the tail
        check_in_child(scratch, MAT, f"MATLAB v5 header + {len(tail)} random bytes")
    else:
        check_contract(scratch, {})


@FUZZ
@given(text=st.text(st.sampled_from(list("abc019.,;-\t\n\r\" éÿ")), max_size=300),
       encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_csv_like_text(scratch, text, encoding):
    scratch.write_bytes(text.encode(encoding))
    check_contract(scratch, {})


@settings(FUZZ, max_examples=60 * SCALE)
@given(name=st.sampled_from(["csv", "npz", "npz_zlib", "nc3"]), edit=EDITS)
def test_damaged_files(valid_files, scratch, name, edit):
    data, options, _ = valid_files[name]
    scratch.write_bytes(damage(data, edit))
    check_contract(scratch, options)


@settings(FUZZ, max_examples=24 * SCALE)
@given(name=st.sampled_from(["nc4", "mat73", "mat5"]), edit=EDITS)
def test_damaged_files_read_by_native_code(valid_files, scratch, name, edit):
    data, options, _ = valid_files[name]
    scratch.write_bytes(damage(data, edit))
    check_in_child(scratch, options, f"{name} {edit}")


@settings(FUZZ, max_examples=8 * SCALE)
@given(edit=EDITS)
def test_damaged_nwb_files(valid_files, scratch, edit):
    data, options, _ = valid_files["nwb"]
    scratch.write_bytes(damage(data, edit))
    check_in_child(scratch, options, f"nwb {edit}")


@settings(FUZZ, max_examples=15 * SCALE)
@given(offset=st.sampled_from([0, 512]), tail=st.binary(max_size=1024))
def test_hdf5_signature_with_random_tails(scratch, offset, tail):
    scratch.write_bytes(b"\x00" * offset + b"\x89HDF\r\n\x1a\n" + tail)
    check_in_child(scratch, {}, f"HDF5 signature at {offset}")
