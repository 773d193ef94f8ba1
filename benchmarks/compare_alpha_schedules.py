"""Adaptive generalized teacher forcing: the reference alpha schedule against the earlier "fast" one.

Schedules (``neuroalrnn.fit.teacher_forcing.ALPHA_SCHEDULES``):

* ``reference`` (the default; Hess et al. 2023's code): alpha starts at 1; every 5th batch, before
  that batch's step, alpha* = max(0, 1 - 1/G) from the Jacobians at the forcing signals; raised at
  once, else alpha <- 0.999 alpha + 0.001 alpha*;
* ``fast`` (this package's schedule before): alpha starts at 0; after every batch, alpha* from the
  Jacobians at the model's predicted states, applied from the next batch; decay 0.99.

Part ``lorenz``: the AL-RNN tutorial's Lorenz-63 trajectory as in ``acceptance_lorenz.py`` (the first
80,000 steps in windows of 400, random 200-step sub-windows; the remaining steps, in windows of 200,
select the checkpoint by D_stsp of a 10,000-step free run), M = 20, P = 2, identity observation,
generalized forcing. Reported per seed: D_stsp (30 bins) and D_H (sigma 20) of an 11,000-step free run
from the trajectory's first point (1,000 dropped) against the whole trajectory, and the 20-step
prediction error on the held-out windows (z-scored units).

Part ``fmri``: the Koppe et al. (2014) fMRI data as in ``acceptance_recordings.py --part fmri`` (per
subject, held-out segment ``--segment``, the other 4 segments z-scored with their statistics, one of
them selecting the checkpoint by the 5-step error), M = 20, P = 2, linear observation, generalized
forcing, batch 4. Reported per (subject, seed): the 5-step error on the held-out segment, D_stsp
(Gaussian-mixture estimate: 20 ROIs) and D_H (sigma 2: 72-TR segments give 37 frequency bins, which
sigma 20 flattens) of the free run from the segment's first TR driven by its inputs.

Usage: python benchmarks/compare_alpha_schedules.py [--part lorenz|fmri|both] [--seeds 0 1 2]
       [--lorenz-steps 3000] [--subjects 0 1 2 3 4 5 6 7] [--fmri-steps 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acceptance_lorenz import DATA, windows  # noqa: E402
from acceptance_recordings import FMRI, fmri_folds  # noqa: E402

SCHEDULES = ("reference", "fast")


def _mean_sem(v):
    v = v[np.isfinite(v)]
    sem = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return f"{v.mean():.3f} +- {sem:.3f} (n={len(v)})" if len(v) else "-"


def _summary(rows, keys):
    """Mean +- SEM per schedule and the paired difference fast - reference, per metric, over finite values.

    D_H is NaN where a free run settles on a constant (a fixed point: no spectrum), D_stsp/D_H inf
    where it diverges; such pairs are left out of the means and counted in n.
    """
    out = []
    for key in keys:
        vals = {s: np.array([r[key] for r in rows if r["schedule"] == s], dtype=float) for s in SCHEDULES}
        d = vals["fast"] - vals["reference"]
        worse = int((d[np.isfinite(d)] > 0).sum())
        out.append(f"| {key} | {_mean_sem(vals['reference'])} | {_mean_sem(vals['fast'])} | {_mean_sem(d)} | "
                   f"{worse}/{int(np.isfinite(d).sum())} |")
    return ["| metric | reference | fast | fast - reference (paired) | fast higher in |",
            "| --- | --- | --- | --- | --- |", *out]


def run_lorenz(args):
    from neuroalrnn.analysis.dsr import n_step_prediction_error, power_spectrum_error, state_space_divergence
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.model import ALRNN
    from neuroalrnn.schema import from_arrays

    x = np.load(DATA / "lorenz63_test.npy", allow_pickle=False).astype(np.float32)[500:]
    train = from_arrays(activity=windows(x[:80000], 400), dt=0.01)
    val = from_arrays(activity=windows(x[80000:], 200), dt=0.01)
    rows = []
    for seed in args.seeds:
        for schedule in SCHEDULES:
            t0 = time.perf_counter()
            fitted = fit_teacher_forcing(ALRNN(20, 2, seed=seed), train, val=val, forcing="generalized",
                                         alpha="adaptive", alpha_schedule=schedule, sequence_length=200,
                                         n_steps=args.lorenz_steps, batch_size=16, lr=3e-3,
                                         eval_every=args.lorenz_steps // 5, select_metric="d_stsp",
                                         metrics=("d_stsp",), free_run_steps=10000, transient=1000,
                                         clip_grad_norm=None, seed=seed)
            orbit = fitted.free_run(x[0], 11000)[1000:]
            finite = bool(np.isfinite(orbit).all())
            mean, std = fitted.mean.numpy().astype(float), fitted.std.numpy().astype(float)
            z_val = (val["activity"].values - mean) / std

            def predict(x0, n, inputs):
                return (fitted.predict_ahead(x0 * std + mean, n, inputs) - mean) / std

            row = {"schedule": schedule, "seed": seed, "alpha": float(fitted.alpha),
                   "D_stsp": state_space_divergence(x, orbit) if finite else float("inf"),
                   "D_H": power_spectrum_error(x[:10000], orbit) if finite else float("inf"),
                   "PE20": n_step_prediction_error(predict, z_val, n=20),
                   "best_step": fitted.train_result_.best_step, "seconds": time.perf_counter() - t0}
            rows.append(row)
            print("  lorenz " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in row.items()), flush=True)
    print(f"\nLorenz-63, M = 20, P = 2, identity observation, {args.lorenz_steps} steps, seeds {args.seeds}")
    print("\n".join(_summary(rows, ("D_stsp", "D_H", "PE20", "alpha"))))
    return rows


def run_fmri(args):
    import neuroalrnn
    from neuroalrnn.analysis.dsr import n_step_prediction_error, power_spectrum_error, state_space_divergence
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.io.matlab import KOPPE2014_SPEC
    from neuroalrnn.model import ALRNN

    if not FMRI.exists():
        print(f"fmri: data file {FMRI} is absent; skipped")
        return []
    ds = neuroalrnn.load(FMRI, spec=KOPPE2014_SPEC)
    rows = []
    for subj, seg, train, test in fmri_folds(ds, args.subjects, [args.segment]):
        x = test["activity"].values
        s = np.nan_to_num(test["inputs"].values)
        for seed in args.seeds:
            for schedule in SCHEDULES:
                t0 = time.perf_counter()
                fitted = fit_teacher_forcing(ALRNN(20, 2, n_inputs=5, seed=seed), train, val=0.25,
                                             forcing="generalized", alpha="adaptive", alpha_schedule=schedule,
                                             observation="linear", zscore=False, n_steps=args.fmri_steps,
                                             batch_size=4, lr=3e-3, eval_every=max(args.fmri_steps // 20, 1),
                                             metrics=("n_step",), n_ahead=5, select_metric="n_step", seed=seed)
                run = fitted.free_run(x[:, 0], x.shape[1] - 1, s[:, 1:])
                gen = np.concatenate([x[:, :1], run], axis=1)
                finite = bool(np.isfinite(gen).all())
                row = {"schedule": schedule, "subject": int(subj), "seed": seed, "alpha": float(fitted.alpha),
                       "PE5": n_step_prediction_error(fitted, test, n=5),
                       "D_stsp": state_space_divergence(x, gen, seed=seed) if finite else float("inf"),
                       "D_H": power_spectrum_error(x, gen, sigma=2) if finite else float("inf"),
                       "seconds": time.perf_counter() - t0}
                rows.append(row)
                print("  fmri " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in row.items()), flush=True)
    print(f"\nfMRI, held-out segment index {args.segment}, subjects {list(args.subjects)}, seeds {args.seeds}, "
          f"M = 20, P = 2, linear observation, {args.fmri_steps} steps")
    print("\n".join(_summary(rows, ("PE5", "D_stsp", "D_H", "alpha"))))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("lorenz", "fmri", "both"), default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lorenz-steps", type=int, default=3000)
    parser.add_argument("--subjects", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--segment", type=int, default=4)
    parser.add_argument("--fmri-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("lorenz", "both"):
        run_lorenz(args)
    if args.part in ("fmri", "both"):
        run_fmri(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
