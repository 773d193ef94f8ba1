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
the environment; setting one of them, e.g. ``MALLOC_TRIM_THRESHOLD_=131072``, keeps glibc's
behaviour) and where the C library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # <malloc.h>
MMAP_THRESHOLD = 32 << 20   # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 << 20
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
_state: list[bool] = []   # the outcome, once decided


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
        libc = None if any(os.environ.get(name) for name in _USER_SETTINGS) else _glibc()
        _state.append(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                      and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    return _state[0]
