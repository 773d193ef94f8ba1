"""Fits per minute of ``compare`` (ensembles) against the same fits run one by one, measured side by side.

CPU (default): for each case, the same fits (every P x fold x seed) are run twice in this process,
interleaved: one by one with ``fit_task`` / ``fit_teacher_forcing`` (one torch thread: the thread
policy's choice for these sizes) and by ``compare`` with its default settings (in-process, ensembles,
scores included). Each case runs idle and while a second process keeps one core busy (a busy loop
pinned to core 0, started here). The ratio is time(compare) / time(one by one): below 1 compare is
faster; its inverse is the gain in fits per minute. Cases:

* ``demo``: the demo's comparison: stimulus_selection(1500), M = 16, P in {0, 2, 16}, 5 folds,
  600 steps (and 300 steps);
* ``m64``: the same with M = 64, P in {0, 8, 64};
* ``tf``: teacher forcing at the DSR size: M = 20, P = 2, tau = 16, batches of 16 x 200 (Lorenz-63
  windows from ../shared/data, else a synthetic recording), 5 folds x 3 seeds.

GPU (``--device cuda``): 256 task models of M = 32 trained as one ensemble against sequential
single-model fits on the same GPU (``--gpu-sequential`` of them, the time scaled to 256).

``--baseline one-thread`` replaces the one-by-one fits with ``compare`` on one thread
(``neuroalrnn.set_num_threads(1)``): what running large ensembles side by side in threads gains.

Usage: python benchmarks/bench_ensemble.py [--cases demo,m64,tf] [--steps 600,300] [--busy both|idle|busy]
       python benchmarks/bench_ensemble.py --baseline one-thread --cases m64,tf --steps 300 --repeats 3
       python benchmarks/bench_ensemble.py --device cuda [--gpu-steps 200] [--gpu-sequential 8]
       python benchmarks/bench_ensemble.py --dry-run   (the GPU comparison on CPU, tiny: tests the script)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alrnn_reference" / "lorenz63_test.npy"


def _busy(stop):
    os.sched_setaffinity(0, {0})
    while not stop.is_set():
        pass


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def task_case(n_units, p_values, n_steps, folds=5, n_trials=1500):
    """(one-by-one fn, compare fn, number of fits) for a task comparison."""
    from neuroalrnn import ALRNN
    from neuroalrnn.compare import compare, make_folds
    from neuroalrnn.fit.task import fit_task
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(n_trials, seed=2)
    settings = dict(n_steps=n_steps, eval_every=50, lr=1e-2)
    models = {f"P={p}": dict(n_units=n_units, n_relu=p, **settings) for p in p_values}

    def one_by_one():
        for train, _ in make_folds(n_trials, folds):
            for p in p_values:
                fit_task(ALRNN(n_units, p, 5, 1, seed=0), ds.isel(trial=train), seed=0, progress=False, **settings)

    return one_by_one, lambda: compare(ds, models, cv=folds, seeds=(0,)), folds * len(p_values)


def recording(n_trials=100, length=200):
    """Lorenz-63 windows (z-scored later by the fit), or a synthetic 3-channel recording."""
    from neuroalrnn.schema import from_arrays

    if DATA.exists():
        x = np.load(DATA, allow_pickle=False).astype(np.float32)[500:500 + n_trials * length]
    else:
        t = np.arange(n_trials * length) * 0.05
        x = np.stack([np.sin(t), np.cos(1.3 * t), np.sin(0.7 * t) * np.cos(t)], 1).astype(np.float32)
    return from_arrays(activity=x.reshape(n_trials, length, 3), dt=0.01)


def tf_case(n_steps, folds=5, seeds=(0, 1, 2)):
    from neuroalrnn import ALRNN
    from neuroalrnn.compare import compare, make_folds
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing

    rec = recording()
    spec = dict(n_units=20, n_relu=2, tau=16, batch_size=16, n_steps=n_steps, eval_every=100, n_ahead=20)

    def one_by_one():
        for train, _ in make_folds(rec.sizes["trial"], folds):
            for seed in seeds:
                fit_teacher_forcing(ALRNN(20, 2, seed=seed), rec.isel(trial=train), tau=16, batch_size=16,
                                    n_steps=n_steps, eval_every=100, metrics=("n_step",), n_ahead=20, seed=seed)

    run = lambda: compare(rec, {"P=2": dict(spec, family="teacher_forcing")}, cv=folds, seeds=seeds)  # noqa: E731
    return one_by_one, run, folds * len(seeds)


def one_thread(fn):
    """``fn`` run with neuroalrnn's thread count fixed at one: ``compare`` then runs its ensembles in turn."""
    from neuroalrnn import set_num_threads

    def run():
        set_num_threads(1)
        try:
            fn()
        finally:
            set_num_threads(None)

    return run


def measure(name, case, repeats, baseline="one-by-one"):
    one_by_one, together, n_fits = case
    if baseline == "one-thread":  # compare's thread choice against compare on one thread
        one_by_one = one_thread(together)
    rows = []
    for _ in range(repeats):  # interleaved, so both see the same machine state
        rows.append((_timed(one_by_one), _timed(together)))
    (w1, c1), (w2, c2) = min(r[0] for r in rows), min(r[1] for r in rows)
    label = "one by one" if baseline == "one-by-one" else "one thread"
    print(f"  {name:<22} {n_fits:>4} fits  {label} {w1:7.1f} s (cpu {c1:6.1f})  compare {w2:6.1f} s "
          f"(cpu {c2:6.1f})  ratio {w2 / w1:5.2f} (cpu {c2 / c1:4.2f})  fits/min {60 * n_fits / w1:6.1f} -> "
          f"{60 * n_fits / w2:6.1f}", flush=True)
    return w2 / w1


def cpu(args):
    cases = {"demo": lambda s: task_case(16, (0, 2, 16), s), "m64": lambda s: task_case(64, (0, 8, 64), s),
             "tf": lambda s: tf_case(max(s // 2, 100))}
    # warm-up: numba kernels, imports
    for fn in task_case(16, (0, 2), 20, folds=2, n_trials=200)[:2] + tf_case(20, folds=2, seeds=(0,))[:2]:
        fn()
    for label in args.busy:
        stop = mp.Event()
        busy = mp.Process(target=_busy, args=(stop,)) if label == "busy" else None
        if busy:
            busy.start()
        try:
            print(f"\n{label}: load average {os.getloadavg()[0]:.2f} ({len(os.sched_getaffinity(0))} cores)")
            for name in args.cases:
                for steps in (args.steps if name != "tf" else args.steps[:1]):
                    measure(f"{name} {steps if name != 'tf' else max(steps // 2, 100)} steps", cases[name](steps),
                            args.repeats, args.baseline)
        finally:
            if busy:
                stop.set()
                busy.join()


def gpu(args, device="cuda"):
    from neuroalrnn import ALRNN
    from neuroalrnn.fit.ensemble_task import fit_task_ensemble
    from neuroalrnn.fit.task import fit_task
    from neuroalrnn.model import ALRNNEnsemble
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(1500, seed=2)
    K, M, steps = args.gpu_models, 32, args.gpu_steps
    p_values = [(0, 4, 8, 16, 32)[k % 5] for k in range(K)]
    settings = dict(n_steps=steps, eval_every=50, lr=1e-2)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fit_task(ALRNN(M, 4, 5, 1, seed=0, device=device), ds, progress=False, **dict(settings, n_steps=5))
    fit_task_ensemble(ALRNNEnsemble(M, p_values[:4], 5, 1, seeds=range(4), device=device), ds,
                      seeds=list(range(4)), **dict(settings, n_steps=5))
    sync()

    def sequential():
        for k in range(args.gpu_sequential):
            fit_task(ALRNN(M, p_values[k], 5, 1, seed=k, device=device), ds, seed=k, progress=False, **settings)
        sync()

    def ensemble():
        fit_task_ensemble(ALRNNEnsemble(M, p_values, 5, 1, seeds=range(K), device=device), ds, seeds=list(range(K)),
                          **settings)
        sync()

    (ws, _), (we, _) = _timed(sequential), _timed(ensemble)
    seq_rate, ens_rate = 60 * args.gpu_sequential / ws, 60 * K / we
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    print(f"{name}: {K} models of M = {M}, {steps} steps, batch 64 x 37")
    print(f"  sequential: {args.gpu_sequential} fits in {ws:.1f} s = {seq_rate:.1f} fits/min")
    print(f"  ensemble:   {K} fits in {we:.1f} s = {ens_rate:.1f} fits/min")
    print(f"  gain: {ens_rate / seq_rate:.1f}x the fits per minute (goal >= 50x)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cases", default="demo,m64,tf")
    parser.add_argument("--steps", default="600,300")
    parser.add_argument("--busy", default="both", choices=("both", "idle", "busy"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", default="one-by-one", choices=("one-by-one", "one-thread"),
                        help="one-thread: compare on one thread (neuroalrnn.set_num_threads(1)) as the baseline")
    parser.add_argument("--gpu-models", type=int, default=256)
    parser.add_argument("--gpu-steps", type=int, default=200)
    parser.add_argument("--gpu-sequential", type=int, default=8)
    parser.add_argument("--dry-run", action="store_true", help="the GPU comparison on CPU, tiny (tests the script)")
    args = parser.parse_args(argv)
    args.cases = args.cases.split(",")
    args.steps = [int(s) for s in args.steps.split(",")]
    args.busy = ["idle", "busy"] if args.busy == "both" else [args.busy]
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    if args.dry_run:
        args.gpu_models, args.gpu_steps, args.gpu_sequential = 8, 5, 2
        gpu(args, "cpu")
    else:
        (gpu if args.device == "cuda" else cpu)(args)


if __name__ == "__main__":
    main()
