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
