"""Full and read-only disks: every writer fails with an OSError saying so, and leaves nothing half-written.

The disks are small tmpfs mounts (Linux, root with mount permission; skipped otherwise, e.g. in CI
without privileges). A read-only disk is a read-only remount: chmod 0555 does not stop root.
"""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from neuroalrnn.utils import atomic_write, atomic_writes


def _mount(folder, size="1m"):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs Linux and root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path):
    """A fresh 1 MiB tmpfs."""
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount(folder)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder, leave=0):
    """Fill the disk of ``folder`` up to ``leave`` bytes free."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - leave
                if free <= 0:
                    break
                f.write(b"\0" * min(free, 1 << 16))
                f.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def read_only(folder):
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def _text(tmp):
    tmp.write_text("x" * 200_000)


def _numpy(tmp):
    np.save(tmp, np.zeros(50_000))


def _torch(tmp):
    import torch

    torch.save({"w": torch.zeros(50_000)}, tmp)


def _safetensors(tmp):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(50_000)}, str(tmp))


def _netcdf(tmp):
    import xarray as xr

    xr.Dataset({"x": ("a", np.zeros(50_000))}).to_netcdf(tmp)


WRITERS = {"text": _text, "numpy": _numpy, "torch": _torch, "safetensors": _safetensors, "netcdf": _netcdf}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_disk_is_named_and_leaves_nothing(disk, writer):
    target = disk / "out.npy"  # np.save adds .npy to a name without it
    target.write_text("old")
    fill(disk, leave=16_384)
    with pytest.raises(OSError) as err:
        with atomic_write(target) as tmp:
            WRITERS[writer](tmp)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "out.npy"]  # no temporary file left


@pytest.mark.parametrize("writer", ["text", "netcdf"])
def test_read_only_disk_is_named(disk, writer):
    read_only(disk)
    with pytest.raises(OSError) as err:
        with atomic_write(disk / "out") as tmp:
            WRITERS[writer](tmp)
    assert err.value.errno == errno.EROFS
    assert list(disk.iterdir()) == []


def test_a_set_of_files_is_written_whole_or_not_at_all(disk):
    fill(disk, leave=120_000)
    with pytest.raises(OSError) as err:
        with atomic_writes(disk / "model.safetensors", disk / "fit.json") as (model, report):
            _safetensors(model)  # 200 kB: fills the disk
            report.write_text("{}")
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# the command line on full and read-only disks: one line naming --out, found before fitting when it can be

@pytest.fixture
def big_disk(tmp_path):
    """A fresh 4 MiB tmpfs: room for a small fit's outputs."""
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount(folder, size="4m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    from neuroalrnn.tasks import stimulus_selection

    path = tmp_path_factory.mktemp("disk_cli") / "task.nc"
    stimulus_selection(24, seed=0).to_netcdf(path)
    return path


TINY = ["--set", "n_units=4", "--set", "n_relu=1", "--set", "n_steps=3", "--set", "eval_every=3", "--quiet"]


def _error(argv, capsys):
    from neuroalrnn.cli import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _fits(monkeypatch, after=None):
    """Count estimator fits; ``after()`` runs once a fit has finished (e.g. to fill the disk)."""
    from neuroalrnn.estimators import ALRNNTaskEstimator

    real, count = ALRNNTaskEstimator.fit, []

    def fit(self, *args, **kwargs):
        count.append(1)
        out = real(self, *args, **kwargs)
        if after is not None:
            after()
        return out

    monkeypatch.setattr(ALRNNTaskEstimator, "fit", fit)
    return count


def test_cli_read_only_out_is_found_before_fitting(big_disk, task_file, capsys, monkeypatch):
    fits = _fits(monkeypatch)
    read_only(big_disk)
    line = _error(["fit", task_file, "--out", big_disk / "fit", *TINY], capsys)
    assert line == f"neuroalrnn fit: error: --out: cannot write in {big_disk}: read-only file system"
    line = _error(["compare", task_file, "--p", "0", "--out", big_disk / "s.nc", *TINY], capsys)
    assert line == f"neuroalrnn compare: error: --out: cannot write in {big_disk}: read-only file system"
    assert fits == []


def test_cli_full_disk_is_found_before_fitting(big_disk, task_file, capsys, monkeypatch):
    fits = _fits(monkeypatch)
    fill(big_disk, leave=100_000)
    line = _error(["fit", task_file, "--out", big_disk / "fit", *TINY], capsys)
    assert line.startswith(f"neuroalrnn fit: error: --out: no space left on the device of {big_disk} (")
    assert fits == [] and not (big_disk / "fit").exists()


def test_cli_disk_full_while_writing_a_fit_leaves_the_old_set(big_disk, task_file, capsys, monkeypatch):
    from neuroalrnn.cli import main

    out = big_disk / "fit"
    assert main([str(a) for a in ["fit", task_file, "--out", out, *TINY]]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fits(monkeypatch, after=lambda: fill(big_disk))
    line = _error(["fit", task_file, "--out", out, *TINY, "--set", "seed=1"], capsys)
    assert line == f"neuroalrnn fit: error: --out: cannot write {out}: no space left on the device"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous fit, whole


def test_cli_disk_full_while_writing_a_first_fit_leaves_nothing(big_disk, task_file, capsys, monkeypatch):
    out = big_disk / "fit"
    _fits(monkeypatch, after=lambda: fill(big_disk))
    line = _error(["fit", task_file, "--out", out, *TINY], capsys)
    assert line == f"neuroalrnn fit: error: --out: cannot write {out}: no space left on the device"
    assert list(out.iterdir()) == []  # no model.safetensors without its fit.json


def test_cli_disk_full_while_writing_scores_says_no_space(big_disk, task_file, capsys, monkeypatch):
    import neuroalrnn.compare

    real = neuroalrnn.compare.compare

    def compare_then_fill(*args, **kwargs):
        results = real(*args, **kwargs)
        fill(big_disk)
        return results

    monkeypatch.setattr(neuroalrnn.compare, "compare", compare_then_fill)
    line = _error(["compare", task_file, "--p", "0", "--cv", "2", "--out", big_disk / "s.nc", *TINY], capsys)
    # netCDF4 itself reports a full disk as "permission denied"
    assert line == f"neuroalrnn compare: error: --out: cannot write {big_disk / 's.nc'}: no space left on the device"
    assert sorted(p.name for p in big_disk.iterdir()) == ["filler"]


def test_cli_results_dir_filling_up_is_named(big_disk, task_file, tmp_path, capsys, monkeypatch):
    import neuroalrnn._sweep as sweep

    real = sweep._write

    def fill_then_write(store, task, result):
        fill(big_disk)
        real(store, task, result)

    monkeypatch.setattr(sweep, "_write", fill_then_write)
    store = big_disk / "store"
    line = _error(["compare", task_file, "--p", "0", "--cv", "2", "--results-dir", store, "--out", tmp_path / "s.nc",
                   *TINY], capsys)
    assert line.startswith(f"neuroalrnn compare: error: --results-dir: cannot write {store}")
    assert line.endswith(": no space left on the device")
    assert not (tmp_path / "s.nc").exists()
    assert not list(store.glob("*.json")) and not list(store.glob(".*"))  # no record, no temporary file
