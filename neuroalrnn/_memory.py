"""Keep freed memory in the process for reuse, so that fits do not page-fault on every step (glibc).

A fit frees and reallocates the same large arrays every step (states, adjoints, time-major copies:
MBs each). glibc's malloc serves blocks above its mmap threshold (128 KB, raised only to the largest
block freed so far) with fresh mmaps and returns freed heap above 128 KB to the system, so the next
step touches new pages: one page fault per 4 KB. On the 2-core dev box (a VM, where a fault costs
2-3 us) that was 2,100 faults and about 5 ms of system time in each 15-17 ms forward + backward of
``alrnn_scan`` at (B, T, M) = (64, 200, 64), and ~1,000 faults (11 % of the time) per step of a
teacher-forcing ensemble; with freed memory kept, no faults and 10-12 ms (2026-11-29,
``benchmarks/bench_recurrence.py``).

So the first fit or numba scan of a process sets glibc's mmap threshold to 32 MB (its maximum) and
its trim threshold to 128 MB: blocks up to 32 MB come from the heap, and up to 128 MB of freed heap
stay in the process instead of going back to the system. The setting lasts for the process (glibc
cannot go back to its adaptive default). It is left alone where the user chose malloc settings
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``GLIBC_TUNABLES`` in
the environment the process started with, which is what glibc reads; setting one of them, e.g.
``MALLOC_TRIM_THRESHOLD_=131072``, keeps glibc's behaviour) and where the C library is not glibc
(macOS, Windows, musl). The Dask worker processes the package starts get the same settings through
their environment (``worker_environ``): Dask's own default for them, ``MALLOC_TRIM_THRESHOLD_=65536``,
would otherwise page in fresh memory at every step of their fits (and Dask also writes it into the
environment of the process that starts the workers, which is why the start-up environment counts).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # <malloc.h>
MMAP_THRESHOLD = 32 << 20   # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 << 20
_OURS = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
_state: list[bool] = []   # the outcome, once decided


def _startup_environ() -> dict[str, str]:
    """The environment this process started with (Linux: /proc/self/environ), else the current one."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def user_malloc_settings(environ=None) -> dict[str, str]:
    """The malloc settings the user chose in ``environ`` (default: this process's start-up
    environment); the package's own values, which its worker processes start with, do not count."""
    environ = _startup_environ() if environ is None else environ
    return {name: environ[name] for name in _USER_SETTINGS
            if environ.get(name) and environ[name] != _OURS.get(name)}


def worker_environ() -> dict[str, str]:
    """Environment variables for the worker processes the package starts: the settings above, unless
    the user chose their own (then none: the workers inherit the user's, beside Dask's own defaults)."""
    return {} if user_malloc_settings() else dict(_OURS)


def _glibc():
    """The process's glibc, or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Apply the malloc settings above once per process; True where they are in effect.

    Examples
    --------
    >>> keep_freed_memory() in (True, False)
    True
    """
    if not _state:
        libc = None if user_malloc_settings() else _glibc()
        _state.append(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                      and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    return _state[0]
