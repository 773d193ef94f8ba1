"""Shared helpers: atomic writes and seeding."""

import numpy as np
import pytest

from neuroalrnn.utils import atomic_write, check_random_state, torch_generator


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.npy"
    np.save(target, np.arange(3))
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as tmp:
            np.save(tmp, np.arange(10))
            raise RuntimeError("boom")
    assert np.load(target).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no temporary file left
    with atomic_write(target) as tmp:
        np.save(tmp, np.arange(4))
    assert np.load(target).tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_check_random_state():
    gen = np.random.default_rng(3)
    assert check_random_state(gen) is gen
    assert check_random_state(np.int64(5)).integers(1000) == np.random.default_rng(5).integers(1000)
    for bad in (True, 1.5, "0"):
        with pytest.raises(TypeError, match="seed: expected None, an int or a numpy Generator"):
            check_random_state(bad)


def test_torch_generator_is_reproducible():
    import torch

    a = torch.rand(3, generator=torch_generator(7))
    assert torch.equal(a, torch.rand(3, generator=torch_generator(7)))
    assert not torch.equal(a, torch.rand(3, generator=torch_generator(8)))
    b = torch.rand(3, generator=torch_generator(np.random.default_rng(1)))
    assert torch.equal(b, torch.rand(3, generator=torch_generator(np.random.default_rng(1))))


def test_check_number_types_bounds_and_messages():
    from neuroalrnn.utils import check_number

    assert check_number("x", np.float32(0.5), 0, 1) == 0.5
    assert check_number("x", np.array(3), 0) == 3.0  # a 0-d array is a number
    assert check_number("x", None, optional=True) is None
    assert check_number("x", 0, 0) == 0.0  # closed lower bound
    for bad in ("1", None, True, [1.0], np.array([1.0])):
        with pytest.raises(TypeError, match="x: expected a number"):
            check_number("x", bad)
    for bad, kwargs in ((0, dict(low=0, open_low=True)), (1.5, dict(low=0, high=1)), (float("nan"), {}),
                        (float("inf"), {}), (-1, dict(low=0))):
        with pytest.raises(ValueError, match="x: expected a finite number"):
            check_number("x", bad, **kwargs)
    with pytest.raises(TypeError, match="dt: expected seconds, got str"):
        check_number("dt", "a", expected="seconds")


def _killed_writer(target, hold=False):
    """A process that dies by SIGKILL (or waits to be killed) inside ``atomic_write(target)``."""
    import subprocess
    import sys

    code = ("import os, signal, sys, time\nfrom neuroalrnn.utils import atomic_write\n"
            f"with atomic_write({str(target)!r}) as tmp:\n"
            "    tmp.write_text('half')\n"
            "    print('writing', flush=True)\n"
            f"    time.sleep(60) if {hold} else os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    import signal

    from neuroalrnn.utils import remove_stale_temps

    target = tmp_path / "ckpt.pt"
    _killed_writer(target).wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".ckpt.pt.") and left[0].endswith(".tmp.pt")
    live = _killed_writer(tmp_path / "other.pt", hold=True)  # a live writer's file is kept
    try:
        with atomic_write(target) as tmp:
            tmp.write_text("whole")
        assert target.read_text() == "whole"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")) == []
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".other.pt.")]
        assert remove_stale_temps(tmp_path) == []
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    removed = remove_stale_temps(tmp_path)
    assert [p.name.split(".")[1] for p in removed] == ["other"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_stale_temporary_files_of_other_machines_and_versions_wait_a_day(tmp_path):
    import os
    import time

    from neuroalrnn.utils import STALE_AFTER, remove_stale_temps

    names = [".a.json.nrtmp-otherhost-1-abcd_123.tmp.json", ".a.json.k2j4_x9q.tmp.json"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / ".bashrc").write_text("mine")  # not a temporary file of ours
    assert remove_stale_temps(tmp_path) == []
    old = time.time() - STALE_AFTER - 60
    for name in names + [".bashrc"]:
        os.utime(tmp_path / name, (old, old))
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(names)
    assert [p.name for p in tmp_path.iterdir()] == [".bashrc"]


def test_atomic_writes_moves_all_files_or_none(tmp_path):
    from neuroalrnn.utils import atomic_writes

    (tmp_path / "model.bin").write_text("old model")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writes(tmp_path / "model.bin", tmp_path / "fit.json") as (model, report):
            model.write_text("new model")
            raise RuntimeError("boom")  # before the second file was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    assert (tmp_path / "model.bin").read_text() == "old model"
    with atomic_writes(tmp_path / "model.bin", tmp_path / "fit.json") as (model, report):
        model.write_text("new model")
        report.write_text("{}")
    assert (tmp_path / "model.bin").read_text() == "new model" and (tmp_path / "fit.json").read_text() == "{}"


def test_this_process_s_own_write_in_progress_is_kept(tmp_path, monkeypatch):
    from neuroalrnn.utils import remove_stale_temps

    monkeypatch.chdir(tmp_path)
    with atomic_write("x.txt") as tmp:  # a relative path, cleaned through the absolute one
        tmp.write_text("mine")
        assert remove_stale_temps(tmp_path) == [] and tmp.exists()
    assert (tmp_path / "x.txt").read_text() == "mine"
