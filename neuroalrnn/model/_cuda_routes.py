"""Measured CUDA speed of the two exact GPU routes of the recurrence ("rnn" and "triton").

``benchmarks/gpu_check.sh`` times both against cuDNN ``nn.RNN(relu)`` (``bench_recurrence.py``,
float32, forward + backward) and ``benchmarks/gpu_results.py`` rewrites ``DEVICE`` and ``MEASURED``
below from its output. ``faster_route`` answers from that table for ``backend="auto"``; while
nothing has been measured it answers None (keep the default order: "rnn", then "triton").
"""

from __future__ import annotations

import math

# --- written by benchmarks/gpu_results.py ---
DEVICE = None
MEASURED = {}
# --- end ---


def faster_route(batch: int, n_steps: int, n_units: int, measured: dict | None = None) -> str | None:
    """The faster exact route ("rnn" or "triton") at the measured shape nearest to (batch, n_steps, n_units).

    Nearest in log scale over (B, T, M), M weighted double (the kernels' cost per step grows with M^2).
    None when nothing was measured or the nearest shape lacks one of the routes.

    Examples
    --------
    >>> table = {(16, 200, 20, 2): {"rnn": 1.0, "triton": 0.5}, (256, 500, 128, 16): {"rnn": 3.0, "triton": 4.0}}
    >>> faster_route(32, 100, 24, table), faster_route(512, 500, 128, table), faster_route(8, 8, 8, {})
    ('triton', 'rnn', None)
    """
    table = MEASURED if measured is None else measured
    timed = {shape: t for shape, t in table.items() if "rnn" in t and "triton" in t}
    if not timed:
        return None

    def distance(shape):
        B, T, M = shape[:3]
        return (math.log(B / batch) ** 2 + math.log(T / n_steps) ** 2 + 4 * math.log(M / n_units) ** 2)

    times = timed[min(timed, key=distance)]
    return "triton" if times["triton"] < times["rnn"] else "rnn"
