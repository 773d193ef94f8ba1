"""Keeping freed memory (neuroalrnn._memory): what the malloc settings do, when they are left alone."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from neuroalrnn import _memory

GLIBC = _memory._glibc() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the malloc settings apply to glibc only")


def _run(code: str, **env) -> str:
    """Run ``code`` in a fresh interpreter (malloc settings last for a process); its stdout."""
    clean = {k: v for k, v in os.environ.items() if k not in _memory._USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**clean, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


FAULTS = """
    import resource
    import numpy as np
    from neuroalrnn._memory import keep_freed_memory

    def step():  # a fit's step: a few arrays of MBs allocated, used and freed together
        arrays = [np.ones(1 << 20, np.float32) for _ in range(4)]  # 4 MB each, 4,096 pages in all
        del arrays

    def faults_per_round():
        step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            step()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20

    default = faults_per_round()
    applied = keep_freed_memory()
    print(default, applied, faults_per_round())
"""


@needs_glibc
def test_freed_memory_is_reused_without_page_faults():
    default, applied, kept = _run(FAULTS).split()
    if float(default) < 100:
        pytest.skip(f"this glibc reuses the blocks by default ({default} faults a round): nothing to show")
    assert applied == "True"
    assert float(kept) < 40, f"{kept} page faults per round of 4,096 pages with freed memory kept (default: {default})"


@needs_glibc
@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "131072"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")])
def test_a_users_malloc_settings_are_left_alone(name, value):
    default, applied, kept = _run(FAULTS, **{name: value}).split()
    assert applied == "False"


def test_decided_once_and_applied_by_the_numba_scan():
    from neuroalrnn.model.recurrence import alrnn_scan

    alrnn_scan(torch.zeros(2, 3), torch.ones(2, 4, 3), torch.full((3,), 0.5), torch.zeros(3, 3), 1, backend="numba")
    assert _memory._state == [GLIBC and not _memory.user_malloc_settings()]
    assert _memory.keep_freed_memory() is _memory._state[0]


def test_the_start_up_environment_counts_and_the_packages_own_values_are_not_the_users(monkeypatch):
    # Dask writes MALLOC_TRIM_THRESHOLD_ into this process's environment when it starts workers: glibc
    # read the environment at start-up, so that is the one that says what the user chose
    os.environ["NEUROALRNN_TEST_LATE_VARIABLE"] = "1"
    try:
        assert "NEUROALRNN_TEST_LATE_VARIABLE" not in _memory._startup_environ() or not os.path.exists("/proc/self/environ")
    finally:
        del os.environ["NEUROALRNN_TEST_LATE_VARIABLE"]
    assert _memory.user_malloc_settings({}) == {}
    assert _memory.user_malloc_settings(dict(_memory._OURS)) == {}  # the workers the package starts
    chosen = {"MALLOC_TRIM_THRESHOLD_": "65536", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    assert _memory.user_malloc_settings(chosen) == chosen
    # the workers the package starts get its settings, unless the user chose their own at start-up
    monkeypatch.setattr(_memory, "_startup_environ", lambda: {"PATH": "/bin"})
    assert _memory.worker_environ() == _memory._OURS
    monkeypatch.setattr(_memory, "_startup_environ", lambda: dict(_memory._OURS))
    assert _memory.worker_environ() == _memory._OURS
    monkeypatch.setattr(_memory, "_startup_environ", lambda: {"MALLOC_TOP_PAD_": "0"})
    assert _memory.worker_environ() == {}
