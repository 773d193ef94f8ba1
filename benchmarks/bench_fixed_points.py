"""Speed of exhaustive fixed points and region codes, against plain baselines in the same process.

Goals (issue 5): all fixed points of an M = 64, P = 16 AL-RNN (65,536 regions) in under 2 s on the
2-core dev box; report P = 20 (1,048,576 regions); region codes of 1e6 states well under a second.

Baselines:
  dense      one dense M x M ``np.linalg.solve`` per region (batched, chunked): what the direct
             formula ``(I - diag(A) - W D)^-1 (h + C s)`` costs without the P x P reduction
  weighted   region codes as ``(bits * 2**arange(P)).sum(-1)`` (the obvious numpy line)

Usage: python benchmarks/bench_fixed_points.py [--repeats 3] [--skip-p20]
Prints median wall-clock and process CPU seconds (the box is shared: CPU time is the steadier one).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from neuroalrnn.analysis import fixed_points, model_params, region_jacobian
from neuroalrnn.analysis.regions import codes_to_bits, region_codes


def _time(fn, repeats):
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def _model(M, P, seed=0):
    rng = np.random.default_rng(seed)
    return {"A": rng.uniform(0.2, 0.9, M), "W": rng.normal(0, 1 / np.sqrt(M), (M, M)),
            "h": rng.normal(0, 1, M), "n_relu": P}


def _dense_baseline(params, chunk=8192):
    p = model_params(params)
    M, P = p["A"].size, p["n_relu"]
    n_real = 0
    for start in range(0, 2 ** P, chunk):
        codes = np.arange(start, min(start + chunk, 2 ** P))
        bits = codes_to_bits(codes, P)
        K = np.eye(M) - region_jacobian(bits, p)
        z = np.linalg.solve(K, np.broadcast_to(p["h"], (codes.size, M))[..., None])[..., 0]
        n_real += int(((z[:, M - P:] > 0) == bits).all(axis=1).sum())
    return n_real


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-p20", action="store_true")
    args = ap.parse_args(argv)

    print("fixed_points, exhaustive (median of repeats; seconds)")
    print(f"{'M':>4} {'P':>3} {'regions':>9} {'wall':>8} {'cpu':>8} {'n_real':>6} | {'dense wall':>10} {'ratio':>6}")
    sizes = [(64, 12), (64, 16)] + ([] if args.skip_p20 else [(64, 20)])
    for M, P in sizes:
        params = _model(M, P)
        fixed_points(params)  # warm caches / imports
        reps = 1 if P >= 20 else args.repeats
        wall, cpu, fp = _time(lambda: fixed_points(params), reps)
        if P <= 16:
            dwall, _, n_dense = _time(lambda: _dense_baseline(params), 1)
            assert n_dense == fp.attrs["n_real"], (n_dense, fp.attrs["n_real"])
            extra = f"{dwall:10.2f} {dwall / wall:6.1f}"
        else:
            extra = f"{'(skipped)':>10} {'':>6}"
        print(f"{M:4d} {P:3d} {2 ** P:9d} {wall:8.2f} {cpu:8.2f} {fp.attrs['n_real']:6d} | {extra}")

    print("\nfixed_points, SCYFI-style search above max_exhaustive_p (default budget; seconds)")
    for M, P in ((64, 16), (64, 32)):
        params = _model(M, P)
        wall, cpu, fp = _time(lambda: fixed_points(params, regions="search"), 1)
        line = f"M = {M}, P = {P}: search {wall:.2f} (cpu {cpu:.2f}), real points found {fp.attrs['n_real']}"
        if P <= 20:
            line += f" (exhaustive: {fixed_points(params).attrs['n_real']})"
        print(line)

    print("\nregion codes of 1e6 states, M = 64 (seconds)")
    z = np.random.default_rng(0).normal(size=(1_000_000, 64))
    for P in (16, 62):
        wall, cpu, codes = _time(lambda: region_codes(z, P), args.repeats)
        weights = 2 ** np.arange(P, dtype=np.int64)
        bwall, _, ref = _time(lambda: ((z[:, 64 - P:] > 0) * weights).sum(-1), args.repeats)
        assert np.array_equal(codes, ref)
        print(f"P = {P:2d}: region_codes {wall:.3f} (cpu {cpu:.3f}) | weighted-sum baseline {bwall:.3f}"
              f" | ratio {bwall / wall:.1f}")


if __name__ == "__main__":
    main()
