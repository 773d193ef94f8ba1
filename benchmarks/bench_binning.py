"""Benchmark: bin 10 million spikes (500 units, 2,000 trials) into a (trial, time, unit) grid.

Goal (issue 2): under 1 s and peak memory under 2x the output array.
Prints wall time (best of ``--repeats`` warm runs, after one warm-up that loads
the compiled numba kernel), the peak memory allocated during one call
(tracemalloc, which sees numpy's allocations) and the ru_maxrss growth, both
relative to the output array, and the speed ratio to a plain numpy.histogram
loop (one call per trial and unit). The loop is run on a subset of trials and
extrapolated linearly to all trials (it says so in the output).

Usage: python benchmarks/bench_binning.py [--spikes 10000000] [--units 500] [--trials 2000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from neuroalrnn.preprocess import bin_spike_times


def make_spikes(n_spikes, n_units, n_trials, period, seed=0):
    rng = np.random.default_rng(seed)
    per_unit = np.full(n_units, n_spikes // n_units)
    per_unit[: n_spikes - per_unit.sum()] += 1
    duration = n_trials * period
    return [np.sort(rng.uniform(0.0, duration, n)) for n in per_unit]


def histogram_loop(spikes, align, rel_edges):
    out = np.zeros((len(align), rel_edges.size - 1, len(spikes)))
    for i, a in enumerate(align):
        edges = a + rel_edges
        for u, s in enumerate(spikes):
            out[i, :, u] = np.histogram(s, bins=edges)[0]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spikes", type=int, default=10_000_000)
    p.add_argument("--units", type=int, default=500)
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--bin-size", type=float, default=0.02)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-trials", type=int, default=20, help="trials in the histogram-loop subset")
    args = p.parse_args(argv)

    period, window = 1.2, (-0.5, 0.7)  # trial windows tile the recording, so every spike is binned
    spikes = make_spikes(args.spikes, args.units, args.trials, period)
    align = 0.5 + period * np.arange(args.trials)
    n_bins = int(np.floor((window[1] - window[0]) / args.bin_size + 1e-9))
    out_bytes = args.trials * n_bins * args.units * 8
    print(f"{args.spikes:,} spikes, {args.units} units, {args.trials} trials, {n_bins} bins of "
          f"{args.bin_size * 1e3:g} ms -> output {out_bytes / 2**20:.0f} MiB float64")

    t = time.perf_counter()
    counts, starts = bin_spike_times(spikes, align, window, args.bin_size)
    print(f"first call (loads/compiles the numba kernel): {time.perf_counter() - t:.3f} s")
    binned = np.nansum(counts)
    del counts

    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        counts, _ = bin_spike_times(spikes, align, window, args.bin_size)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        del counts
    best = min(times)
    print(f"bin_spike_times: wall best {best:.3f} s, median {np.median(times):.3f} s; CPU time best "
          f"{min(cpu):.3f} s (less sensitive to a busy machine) over {args.repeats} runs "
          f"({binned:,.0f} spikes binned)  goal < 1 s: {'PASS' if best < 1 else 'FAIL'}")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    counts, _ = bin_spike_times(spikes, align, window, args.bin_size)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak traced memory of one call: {peak / 2**20:.0f} MiB = {peak / out_bytes:.2f}x the output array "
          f"(goal < 2x: {'PASS' if peak < 2 * out_bytes else 'FAIL'}); ru_maxrss growth "
          f"{(rss1 - rss0) / 2**20:.0f} MiB (a lower bound: earlier runs already raised the high-water mark)")

    sub = min(args.loop_trials, args.trials)
    rel_edges = window[0] + args.bin_size * np.arange(n_bins + 1)
    t = time.perf_counter()
    ref = histogram_loop(spikes, align[:sub], rel_edges)
    loop = (time.perf_counter() - t) * args.trials / sub
    same = np.array_equal(ref, counts[:sub])
    print(f"numpy.histogram loop ({args.units} units x {sub} trials, extrapolated linearly to "
          f"{args.trials} trials): {loop:.1f} s -> bin_spike_times is {loop / best:.0f}x faster; "
          f"identical counts on the subset: {same}")


if __name__ == "__main__":
    main()
