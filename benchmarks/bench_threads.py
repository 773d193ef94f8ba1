"""Where more torch intra-op threads start to pay for AL-RNN training steps (the thread policy's crossover).

For each size (batch, T, M) it times training steps (forward, backward, Adam) of an ALRNN on random data
with 1 thread and with all usable threads, interleaved in one run, idle and while a second process keeps
one core busy (as on a shared lab server). It prints the ratio t(all threads) / t(1 thread): below 1 more
threads pay. ``neuroalrnn._threads.CROSSOVER`` (work = batch * T * M^2 per step) is picked from this table.

Usage: python benchmarks/bench_threads.py [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import torch

from neuroalrnn import ALRNN

SIZES = [(64, 37, 16), (64, 100, 64), (128, 200, 64), (64, 200, 128), (256, 200, 128), (256, 200, 256)]


def _busy(stop):
    os.sched_setaffinity(0, {0})
    while not stop.is_set():
        pass


def _steps(model, x, y, n):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(n):
        _, out = model(x)
        loss = ((out - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / n


def measure(n_steps, repeats, all_threads):
    rows = []
    for B, T, M in SIZES:
        model = ALRNN(M, max(1, M // 8), n_inputs=5, n_outputs=1, seed=0)
        x, y = torch.randn(B, T, 5), torch.randn(B, T, 1)
        best = {}
        for n in [1, all_threads] * repeats:  # interleaved: both see the same machine state
            torch.set_num_threads(n)
            _steps(model, x, y, 2)
            t = _steps(model, x, y, n_steps)
            best[n] = min(best.get(n, float("inf")), t)
        rows.append((B, T, M, B * T * M * M, best[1], best[all_threads]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    all_threads = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, {all_threads} usable cores, load average {os.getloadavg()[0]:.2f}")
    for label in ("idle", "one core busy"):
        stop = mp.Event()
        busy = mp.Process(target=_busy, args=(stop,)) if label != "idle" else None
        if busy:
            busy.start()
        try:
            rows = measure(args.steps, args.repeats, all_threads)
        finally:
            if busy:
                stop.set()
                busy.join()
        print(f"\n{label}: ms per training step")
        print(f"{'batch':>6} {'T':>5} {'M':>5} {'work':>12} {'1 thread':>10} {f'{all_threads} threads':>10} {'ratio':>7}")
        for B, T, M, work, t1, tn in rows:
            print(f"{B:>6} {T:>5} {M:>5} {work:>12.3g} {t1 * 1e3:>10.2f} {tn * 1e3:>10.2f} {tn / t1:>7.2f}")


if __name__ == "__main__":
    main()
