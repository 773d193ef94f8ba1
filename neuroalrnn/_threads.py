"""How many torch intra-op threads neuroalrnn's fits use.

AL-RNN fits are many tiny tensor ops (a batch of trials times a few dozen units). Torch's intra-op
threads busy-wait between such ops, so on a shared CPU the default thread count makes small fits
several times slower than one thread (7x on a loaded 2-core machine, ``benchmarks/RESULTS.md``).
Fits therefore run with one thread unless their work per step, ``batch * T * M^2``, is above
``CROSSOVER`` (measured by ``benchmarks/bench_threads.py``), or the user chose a thread count:

* ``neuroalrnn.set_num_threads(n)`` or the environment variable ``NEUROALRNN_NUM_THREADS``;
* ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the environment (torch reads them at start-up);
* a call to ``torch.set_num_threads`` after neuroalrnn first ran a fit in this process (a count that
  differs from the one found then).

The same count applies to the BLAS libraries numpy and scipy load (OpenBLAS threads spin-wait like
torch's). Both settings are restored when the fit ends, so the rest of a user's program is unaffected.

A sweep gets its parallelism from running fits side by side instead: ``compare`` runs its in-process
ensembles in ``sweep_threads(work)`` Python threads (the compiled kernels and torch's ops release the
GIL), each one intra-op thread, when the work per model and step is at least ``SWEEP_CROSSOVER``.
``check_cancelled`` lets such a fit stop at its next step when the sweep stops (an error elsewhere, or
Ctrl-C in the main thread).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import torch

from neuroalrnn._memory import keep_freed_memory
from neuroalrnn.utils import available_cores

# batch * T * M^2 per step. On two cores one thread was faster at every size measured, up to 3.4e9,
# idle and loaded (benchmarks/RESULTS.md); above it, where no measurement says otherwise, all threads.
CROSSOVER = 4e9
# Per model and step, the work from which compare's in-process ensembles run in threads: on two cores
# (one busy or not) M = 32 and 64 gained, M = 16 did not (benchmarks/RESULTS.md). MAX_SWEEP_THREADS
# is a cap, not a measurement (the dev box has two cores): about a fifth of an M = 64 step is Python,
# which holds the GIL, so many more threads would queue on it.
SWEEP_CROSSOVER = 1e6
MAX_SWEEP_THREADS = 4
_ENV = ("NEUROALRNN_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_chosen: int | None = None     # set_num_threads
_seen: int | None = None       # torch's thread count when neuroalrnn first looked at it


def set_num_threads(n: int | None) -> None:
    """Fix the number of torch threads neuroalrnn's fits use (``None``: back to the automatic choice).

    With a count chosen, ``compare`` also runs its in-process fits one at a time (``sweep_threads``).

    Examples
    --------
    >>> set_num_threads(2); fit_threads(10)
    2
    >>> set_num_threads(None)
    """
    global _chosen
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected None or a positive int, got {n!r}")
    _chosen = n


def _user_threads() -> int | None:
    """The thread count the user asked for, or None when they did not ask."""
    global _seen
    if _chosen is not None:
        return _chosen
    for name in _ENV:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}") from None
            if n < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
            return n
    current = torch.get_num_threads()
    if _seen is None:
        _seen = current
    return None if current == _seen else current


def fit_threads(work: float) -> int:
    """Intra-op threads for a fit doing ``work`` (``batch * T * M^2``) per step.

    Examples
    --------
    >>> fit_threads(64 * 37 * 16 ** 2)   # the demo's models: one thread
    1
    """
    user = _user_threads()
    if user is not None:
        return user
    return 1 if work < CROSSOVER else torch.get_num_threads()


def sweep_threads(work: float) -> int:
    """Threads to run a sweep's independent fits of ``work`` per model and step side by side in this process.

    One when the user chose a thread count (their fits use it), when such fits use more than one
    intra-op thread, or below ``SWEEP_CROSSOVER``; else the cores available, at most ``MAX_SWEEP_THREADS``.

    Examples
    --------
    >>> sweep_threads(64 * 37 * 16 ** 2)   # the demo's models: too small to gain
    1
    """
    if _user_threads() is not None or not SWEEP_CROSSOVER <= work < CROSSOVER:
        return 1
    return max(1, min(available_cores(), MAX_SWEEP_THREADS))


class SweepCancelled(Exception):
    """The sweep a fit ran in stopped (another of its tasks failed, or it was interrupted)."""


_sweep = threading.local()  # .stop: the threading.Event of the sweep this thread runs a task of


@contextlib.contextmanager
def cancellable(stop: threading.Event) -> Iterator[None]:
    """Let the fits run in this block by this thread stop when ``stop`` is set (``check_cancelled``)."""
    _sweep.stop = stop
    try:
        yield
    finally:
        _sweep.stop = None


def check_cancelled() -> None:
    """Raise ``SweepCancelled`` when the sweep this thread runs a task of has stopped; a fit calls it each step.

    Examples
    --------
    >>> stop = threading.Event()
    >>> with cancellable(stop):
    ...     check_cancelled()   # running: nothing happens
    ...     stop.set()
    ...     check_cancelled()
    Traceback (most recent call last):
    ...
    neuroalrnn._threads.SweepCancelled: the sweep stopped: another of its tasks failed, or it was interrupted
    """
    stop = getattr(_sweep, "stop", None)
    if stop is not None and stop.is_set():
        raise SweepCancelled("the sweep stopped: another of its tasks failed, or it was interrupted")


def load_numba_blas() -> None:
    """Load the BLAS that numba's ``np.dot`` calls (scipy's), so that thread limits set from now on
    reach it: numba loads it only when a compiled kernel first runs, inside the fit, and a limit set
    before that missed it (two OpenBLAS threads busy-waiting beside every large product:
    ``alrnn_scan`` at (64, 200, 64, 8) took twice its wall time in CPU time, 2026-11-29)."""
    import scipy.linalg.cython_blas  # noqa: F401


def _blas_limits(n: int):
    """Limit the loaded BLAS libraries to ``n`` threads within a block (no-op without threadpoolctl)."""
    load_numba_blas()
    try:
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


@contextlib.contextmanager
def threads_for(work: float) -> Iterator[int]:
    """Run the block with ``fit_threads(work)`` torch and BLAS threads; restore the previous counts after.

    Also keeps freed memory in the process for the fit's next steps (``neuroalrnn._memory``).

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with threads_for(1000) as n:
    ...     inside = torch.get_num_threads()
    >>> inside == n, torch.get_num_threads() == before
    (True, True)
    """
    keep_freed_memory()  # fits reallocate the same large arrays every step (neuroalrnn._memory)
    n = fit_threads(work)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        with _blas_limits(n):
            yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
