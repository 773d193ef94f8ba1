"""Acceptance run for issue 6: cross-validated held-out accuracy against P on stimulus selection.

AL-RNNs with M units and P = 0 (linear), 2 and M (PLRNN) ReLU units, trained on the
context-dependent stimulus-selection task, scored by held-out choice accuracy with
GroupKFold over synthetic "sessions" (blocks of trials), several seeds per fold; prints the
table of mean +- SEM (one sample per (fold, seed) pair), paired tests between the models on
the same folds, the ideal observer's accuracy on the same trials, and the times.

The minimal-nonlinearity result expected: P = 0 clearly worse, small P as good as P = M.

Usage: python benchmarks/acceptance_compare.py [--quick] [--n-jobs 2] [--results-dir DIR] [--dask-check 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from neuroalrnn.compare import compare, summarize, table
from neuroalrnn.tasks import ideal_observer, stimulus_selection


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the script)")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--trials", type=int, default=1200)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--results-dir", default=None, help="resumable per-fit results")
    parser.add_argument("--dask-check", type=int, default=0, metavar="N",
                        help="rerun the sweep on a LocalCluster of N workers and compare (0: skip)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.steps, args.seeds = 300, 40, 1
    # one thread per fit: on a busy 2-core box, two torch threads per process thrash
    torch.set_num_threads(1)
    M = args.units
    ds = stimulus_selection(args.trials, seed=0)
    n_sessions = max(args.folds, 3)
    ds = ds.assign_coords(session=("trial", np.arange(args.trials) * n_sessions // args.trials))
    io = ideal_observer(ds)
    common = dict(n_units=M, n_steps=args.steps, lr=0.01, lr_decay=0.998, batch_size=128, eval_every=50,
                  select_metric="val_accuracy")
    models = {"P=0": dict(common, n_relu=0), "P=2": dict(common, n_relu=2), f"P=M={M}": dict(common, n_relu=M)}
    print(f"stimulus selection: {args.trials} trials in {n_sessions} sessions, GroupKFold({args.folds}) by "
          f"session, seeds {list(range(args.seeds))}, M = {M}, {args.steps} Adam steps (batch 128), "
          f"n_jobs = {args.n_jobs}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    start = time.perf_counter()
    res = compare(ds, models, cv=args.folds, groups="session", seeds=list(range(args.seeds)),
                  n_jobs=args.n_jobs, results_dir=args.results_dir, progress=False)
    wall = time.perf_counter() - start
    summary = summarize(res)
    print(f"\nheld-out choice accuracy (mean +- SEM over {int(summary['n'][0])} (fold, seed) pairs):")
    df = table(summary)
    df["fit_time_s"] = res["fit_time"].mean(("fold", "seed")).values
    print(df.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"ideal observer on the same trials: {float(io['overall']):.3f}")
    names = list(models)
    for a, b in [(names[1], names[0]), (names[1], names[2]), (names[2], names[0])]:
        print(f"{a} - {b}: diff {float(summary['diff'].sel(model=a, other=b)):+.3f}, paired t p = "
              f"{float(summary['t_pvalue'].sel(model=a, other=b)):.2g}, Wilcoxon p = "
              f"{float(summary['wilcoxon_pvalue'].sel(model=a, other=b)):.2g}")
    print("\nper fold and seed:")
    print(res["score"].to_dataframe()["score"].unstack("model").to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nwall time {wall:.1f} s (sum of fit times {float(res['fit_time'].sum()):.1f} s)")
    if args.dask_check:
        start = time.perf_counter()
        again = compare(ds, models, cv=args.folds, groups="session", seeds=list(range(args.seeds)),
                        n_jobs=args.dask_check)
        print(f"LocalCluster of {args.dask_check} workers: wall time {time.perf_counter() - start:.1f} s "
              f"(worker start-up included), scores identical to the run above: "
              f"{bool((again['score'] == res['score']).all())}")


if __name__ == "__main__":
    main()
