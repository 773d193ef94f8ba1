"""Acceptance runs for teacher-forced fits to recordings: the sample's ground truth and real fMRI.

Part ``sample`` (ground truth). The embedded sample recording (240 trials of 33-41 bins of 50 ms,
60 Poisson units, rate = exp(offset + gain @ z) spikes/s, z the latent state of a known AL-RNN with
M = 16, P = 2 driven by the 5 task inputs) is split by trial with ``--seed``: 60 % training, 20 %
validation (checkpoint selection by the 20-step error), 20 % test (only scored at the end).
The comparison, on the test trials only:

* observed space: spike counts smoothed with ``gaussian_smooth`` (sigma ``--sigma`` s, within each
  trial) and z-scored per unit with the training trials' mean and std;
* target: that smoothed, z-scored data at t + n, n = 20, for EVERY origin t with t + n inside the
  trial (the origins of ``neuroalrnn.analysis.n_step_prediction_error``), averaged over units;
* fitted model: sets its state from the observation x_t (the smoothed z-scored data) and runs n
  steps driven by the inputs s_{t+1..t+n};
* ground-truth network: starts from its TRUE latent state z_t (the saved ``latent``), runs n steps
  with the same inputs, and predicts the expected counts exp(offset + gain z) * dt, smoothed with
  the same kernel and z-scored with the same training statistics as the data. The network is
  deterministic given the inputs, so its run from z_t reproduces the saved latent path
  (checked here, to float32 precision); its prediction for t + k is therefore the smoothed expected
  count trajectory of the trial at t + k (the kernel reaches back before t into the same true path).
  This is the Poisson noise floor for this target: no predictor of the counts can beat it on average.
* baselines: the training mean (0 in z-scored units) and persistence (x_{t+n} = x_t).

The fitted model's free runs (from each test trial's first observation, driven by its inputs, as
long as the trial) are scored with D_stsp and D_H against the test trials. With 60 units D_stsp uses
the Gaussian-mixture Monte-Carlo estimate (binning needs < 11 dims), and D_H compares spectra of
trials of 33 steps (17 frequency bins, smoothed with sigma = 20 bins), so it is coarse; the ground
truth's own expected-count trajectories are scored the same way for reference.

Part ``fmri`` (real data). ``../shared/data/koppe2014_fmri/NBKO_PLRNN_dataset.mat`` (26 subjects x 5
segments of 72 TRs, 20 ROIs, 5 binary inputs). Per subject and held-out segment: the other 4
segments are z-scored per ROI with their statistics; by default one of them (``--fmri-val 0.25``)
picks the checkpoint with the best 5-step error and 3 are trained on; the held-out segment is
scored once: the 5-step prediction error from every origin (z-scored units), for P = 0, 2 and M
with the same M, linear observation model and training. Reported as mean +- SEM over the
(subject, segment) folds, with the mean and persistence baselines (``--fmri-out`` saves each fold).

``--observation pca`` fits the identity observation model to the ``--n-pcs`` leading principal
components of the training trials and maps its predictions back to the 60 units (scored the same way).

Usage: python benchmarks/acceptance_recordings.py [--part sample|fmri|both] [--seed 0] [--n-steps 3000] ...
(defaults: the settings reported in benchmarks/RESULTS_teacher_forcing.md)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

FMRI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "koppe2014_fmri" / "NBKO_PLRNN_dataset.mat"


# ------------------------------------------------------------------------------------- sample
def split_trials(n_trials: int, seed: int = 0, fractions=(0.6, 0.2)):
    """Train / validation / test trial indices (sorted) from one seeded permutation."""
    order = np.random.default_rng(seed).permutation(n_trials)
    n_tr, n_va = int(round(fractions[0] * n_trials)), int(round(fractions[1] * n_trials))
    return np.sort(order[:n_tr]), np.sort(order[n_tr:n_tr + n_va]), np.sort(order[n_tr + n_va:])


def prepare_sample(sigma: float = 0.1, seed: int = 0):
    """Smoothed, z-scored sample recording split by trial, and the ground truth's prediction.

    Returns a dict with ``train``, ``val``, ``test`` (TrialDatasets in z-scored units), ``truth``
    (a TrialDataset like ``ds`` holding the ground truth's smoothed, z-scored expected counts),
    ``latent`` (trial, time, 16), ``model`` (the ground-truth ALRNN), ``readout`` and the indices.
    """
    from neuroalrnn.preprocess import gaussian_smooth, zscore
    from neuroalrnn.sample import load_ground_truth, load_sample

    ds = load_sample()
    model, readout = load_ground_truth()
    latent = readout["latent"].astype(np.float64)
    dt = float(ds.attrs["dt"])
    with np.errstate(invalid="ignore"):
        expected = np.exp(np.clip(readout["offset"] + latent @ readout["gain"].T, None, np.log(200.0))) * dt
    expected = np.where(ds["mask"].values[..., None], expected, np.nan)
    smooth = gaussian_smooth(ds.assign(activity=ds["activity"].astype(float)), sigma)
    truth = gaussian_smooth(ds.assign(activity=ds["activity"].copy(data=expected)), sigma)
    tr, va, te = split_trials(ds.sizes["trial"], seed)
    train = np.zeros(ds.sizes["trial"], bool)
    train[tr] = True
    data_z, stats = zscore(smooth, train=train)
    truth_z, _ = zscore(truth, stats=stats)
    return {"ds": data_z, "train": data_z.isel(trial=tr), "val": data_z.isel(trial=va),
            "test": data_z.isel(trial=te), "truth": truth_z, "latent": latent, "model": model,
            "readout": readout, "index": (tr, va, te)}


def origin_errors(pred_traj: np.ndarray, x: np.ndarray, n: int = 20) -> np.ndarray:
    """Per-horizon MSE (n,) of a predictor whose k-step prediction from origin t is pred_traj[t + k].

    Same origins as ``n_step_prediction_error``: every t with t + n inside the trial.
    """
    valid = np.isfinite(x).all(axis=2)
    lengths = np.where(valid.all(1), valid.shape[1], np.argmin(valid, axis=1))
    sse, count = np.zeros(n), 0
    for i, L in enumerate(lengths):
        for t in range(max(0, L - n)):
            d = pred_traj[i, t + 1:t + n + 1] - x[i, t + 1:t + n + 1]
            sse += (d ** 2).mean(1)
            count += 1
    return sse / count


def check_truth_rollout(model, latent, inputs, n: int = 20, trials=None) -> float:
    """Largest |run from the true latent z_t (n steps, inputs s_{t+1..t+n}) - saved latent path|."""
    trials = range(len(latent)) if trials is None else trials
    worst = 0.0
    for i in trials:
        L = int(np.isfinite(latent[i, :, 0]).sum())
        t = np.arange(L - n)
        s = torch.as_tensor(np.stack([inputs[i, k + 1:k + n + 1] for k in t]), dtype=torch.float32)
        with torch.no_grad():
            run = model.simulate(torch.as_tensor(latent[i, t], dtype=torch.float32), inputs=s).double().numpy()
        ref = np.stack([latent[i, k + 1:k + n + 1] for k in t])
        worst = max(worst, float(np.abs(run - ref).max() / (np.abs(ref).max() + 1e-12)))
    return worst


def leading_pcs(x: np.ndarray, k: int = 3) -> np.ndarray:
    """The k leading principal axes (unit, k) of the valid rows of x (trial, time, unit)."""
    rows = x[np.isfinite(x).all(-1)]
    _, _, vt = np.linalg.svd(rows - rows.mean(0), full_matrices=False)
    return vt[:k].T


def project(ds, V):
    """The TrialDataset with ``activity`` replaced by its coordinates on the axes V (unit, k)."""
    from neuroalrnn.schema import from_arrays

    x = ds["activity"].values @ V
    return from_arrays(activity=x, inputs=ds["inputs"].values, lengths=ds["mask"].values.sum(1), dt=ds.attrs["dt"])


class PCAPredictor:
    """A model fitted on PC coordinates, predicting in the units' space: x = V (model's PCs)."""

    def __init__(self, fitted, V):
        self.fitted, self.V = fitted, V
        self.train_result_ = fitted.train_result_

    def free_run(self, x0, n_steps, inputs=None):
        return self.fitted.free_run(np.asarray(x0) @ self.V, n_steps, inputs) @ self.V.T

    predict_ahead = free_run


def trial_free_runs(fitted, ds) -> np.ndarray:
    """Free run of each trial from its first observation, driven by its inputs, NaN after its end."""
    x = ds["activity"].values
    s = np.nan_to_num(ds["inputs"].values)
    gen = np.concatenate([x[:, :1], fitted.free_run(x[:, 0], x.shape[1] - 1, s[:, 1:])], axis=1)
    return np.where(ds["mask"].values[..., None], gen, np.nan)


def free_run_metrics(x, gen, pcs, seed=0) -> dict:
    """D_stsp (GMM, all units; binning on the 3 leading PCs) and D_H (sigma 20 and 2) of free runs."""
    from neuroalrnn.analysis.dsr import power_spectrum_error, state_space_divergence

    if not np.isfinite(gen[np.isfinite(x).all(-1)]).all():
        return dict.fromkeys(("d_stsp_gmm", "d_stsp_pc3", "d_h", "d_h_s2"), float("inf"))
    # a unit silent through a whole test trial has no spectrum there (D_H would be NaN): leave such units out
    n_min = int(np.isfinite(x).all(-1).sum(1).min())  # power_spectrum_error cuts all trials to the shortest
    live = ~np.any(np.std(x[:, :n_min], axis=1) < 1e-9, axis=0)
    return {"d_stsp_gmm": state_space_divergence(x, gen, seed=seed),
            "d_stsp_pc3": state_space_divergence(x @ pcs, gen @ pcs, method="binning"),
            "d_h": power_spectrum_error(x[..., live], gen[..., live]),
            "d_h_s2": power_spectrum_error(x[..., live], gen[..., live], sigma=2.0), "n_units_dh": int(live.sum())}


def fmt(m: dict) -> str:
    return (f"D_stsp GMM(60 units) {m['d_stsp_gmm']:.3f}, binned(3 PCs) {m['d_stsp_pc3']:.3f}; "
            f"D_H(sigma 20) {m['d_h']:.3f}, D_H(sigma 2) {m['d_h_s2']:.3f} ({m.get('n_units_dh', '-')} units)")


def run_sample(args):
    from neuroalrnn.analysis.dsr import n_step_prediction_error
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.model import ALRNN

    n = 20
    d = prepare_sample(args.sigma, args.seed)
    test, truth = d["test"], d["truth"].isel(trial=d["index"][2])
    x_test = test["activity"].values
    rel = check_truth_rollout(d["model"], d["latent"], np.nan_to_num(d["ds"]["inputs"].values), n,
                              trials=d["index"][2][:5])
    gt = origin_errors(truth["activity"].values, x_test, n)
    mean_err = origin_errors(np.zeros_like(x_test), x_test, n)[-1]
    persist = n_step_prediction_error(lambda x0, k, s: np.repeat(x0[:, None], k, 1), test, n=n)
    print(f"sample: {d['train'].sizes['trial']}/{d['val'].sizes['trial']}/{test.sizes['trial']} "
          f"train/val/test trials, smoothing sigma {args.sigma} s, 20-step origins on test trials")
    print(f"  ground-truth rollout from true z_t reproduces the saved latent path: max rel. diff {rel:.1e}")
    print(f"  20-step MSE: ground truth {gt[-1]:.4f} | training mean {mean_err:.4f} | persistence {persist:.4f}")

    pcs = leading_pcs(d["train"]["activity"].values, 3)
    d_truth = free_run_metrics(x_test, truth["activity"].values, pcs, args.seed)
    rows = []
    for M in args.M:
        for obs in args.observation:
            model = ALRNN(M, args.P, n_inputs=5, seed=args.seed)
            t0 = time.perf_counter()
            if obs == "pca":  # identity readout of the k leading PCs (training trials), mapped back to units
                V = leading_pcs(d["train"]["activity"].values, args.n_pcs)
                train_fit, val_fit = (project(d[k], V) for k in ("train", "val"))
            else:
                train_fit, val_fit = d["train"], d["val"]
            fitted = fit_teacher_forcing(model, train_fit, val=val_fit, forcing=args.forcing, tau=args.tau,
                                         observation="identity" if obs == "pca" else obs, noise_std=args.noise,
                                         zscore=False, n_steps=args.n_steps, batch_size=16, lr=args.lr,
                                         eval_every=args.eval_every, metrics=("n_step",), n_ahead=n,
                                         select_metric="n_step", seed=args.seed)
            elapsed = time.perf_counter() - t0
            if obs == "pca":
                fitted = PCAPredictor(fitted, V)
                obs = f"pca{args.n_pcs}"
            err = n_step_prediction_error(fitted, test, n=n)
            free = free_run_metrics(x_test, trial_free_runs(fitted, test), pcs, args.seed)
            rows.append((M, obs, err, err / gt[-1], free, elapsed, fitted.train_result_.best_step))
            print(f"  fitted M={M:3d} P={args.P} {obs:8s} {args.forcing} tau={args.tau} noise={args.noise}: "
                  f"20-step MSE {err:.4f} = {err / gt[-1]:.3f} x ground truth; free runs {fmt(free)}; "
                  f"fit {elapsed:.0f} s, best step {fitted.train_result_.best_step}", flush=True)
    print(f"  ground truth's expected counts, scored the same way: {fmt(d_truth)}")
    best = min(r[3] for r in rows)
    print("  (D_H with sigma = 20 bins flattens the 17-bin spectra of 33-step trials: it is reported as the issue")
    print("   asks but does not discriminate here; sigma-2 D_H does.)")
    print(f"goal (fitted <= 1.5 x ground truth): {'PASS' if best <= 1.5 else 'FAIL'} (best ratio {best:.3f})")
    return rows


# --------------------------------------------------------------------------------------- fMRI
def fmri_folds(ds, subjects, segments):
    """(subject, held-out segment, train TrialDataset, test TrialDataset) z-scored from training segments."""
    from neuroalrnn.preprocess import zscore

    for subj in subjects:
        sub = ds.isel(trial=np.flatnonzero(ds["subject"].values == subj)).drop_vars("phase", errors="ignore")
        for seg in segments:
            train = sub["segment"].values != seg
            z, _ = zscore(sub, train=train)
            yield subj, seg, z.isel(trial=np.flatnonzero(train)), z.isel(trial=np.flatnonzero(~train))


def run_fmri(args):
    import neuroalrnn
    from neuroalrnn.analysis.dsr import n_step_prediction_error
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.io.matlab import KOPPE2014_SPEC
    from neuroalrnn.model import ALRNN

    if not FMRI.exists():
        print(f"fmri: data file {FMRI} is absent; skipped")
        return None
    ds = neuroalrnn.load(FMRI, spec=KOPPE2014_SPEC)
    n = 5
    subjects = range(26) if args.subjects is None else args.subjects
    Ps = {"0": 0, "2": 2, "M": args.fmri_M}
    errs = {k: [] for k in [*Ps, "mean", "persistence"]}
    t0 = time.perf_counter()
    folds = []
    for subj, seg, train, test in fmri_folds(ds, subjects, args.segments):
        folds.append((subj, seg))
        x = test["activity"].values
        errs["mean"].append(float(((x[:, n:]) ** 2).mean()))
        errs["persistence"].append(n_step_prediction_error(lambda x0, k, s: np.repeat(x0[:, None], k, 1), test, n=n))
        for name, P in Ps.items():
            model = ALRNN(args.fmri_M, P, n_inputs=5, seed=args.seed)
            fitted = fit_teacher_forcing(model, train, val=args.fmri_val or None, forcing=args.fmri_forcing,
                                         tau=args.fmri_tau, observation="linear", noise_std=args.fmri_noise,
                                         zscore=False, n_steps=args.fmri_steps, batch_size=4, lr=args.fmri_lr,
                                         eval_every=max(args.fmri_steps // 20, 1), metrics=("n_step",), n_ahead=n,
                                         select_metric="n_step", seed=args.seed)
            errs[name].append(n_step_prediction_error(fitted, test, n=n))
        print(f"  subject {subj} segment {seg}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in errs.items()),
              flush=True)
    elapsed = time.perf_counter() - t0
    folds = np.asarray(folds).reshape(-1, 2)
    if args.fmri_out:
        import pandas as pd

        pd.DataFrame({"subject": folds[:, 0], "segment": folds[:, 1], **errs}).to_csv(args.fmri_out, index=False)
    k = len(errs["mean"])
    sel = (f"checkpoint selected by the 5-step error on a {args.fmri_val:.0%} validation split of the training "
           "segments" if args.fmri_val else "last checkpoint")
    print(f"fmri: 5-step MSE on held-out segments (z-scored units), M = {args.fmri_M}, linear observation, "
          f"{args.fmri_forcing} forcing tau={args.fmri_tau}, noise {args.fmri_noise}, lr {args.fmri_lr}, "
          f"{args.fmri_steps} steps, {sel}; {k} folds in {elapsed:.0f} s")
    for name, v in errs.items():
        v = np.asarray(v)
        label = f"P = {Ps[name]}" if name in Ps else name
        print(f"  {label:12s} {v.mean():.4f} +- {v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0:.4f} (SEM)")
    for a, b in (("2", "0"), ("M", "2")):
        diff = np.asarray(errs[a]) - np.asarray(errs[b])
        sem = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        print(f"  paired P={Ps[a]} - P={Ps[b]}: {diff.mean():+.4f} +- {sem:.4f}")
    return errs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("sample", "fmri", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigma", type=float, default=0.1, help="smoothing of the spike counts (s)")
    parser.add_argument("--M", type=int, nargs="+", default=[16])
    parser.add_argument("--P", type=int, default=2)
    parser.add_argument("--observation", nargs="+", default=["linear"], help="linear, identity or pca")
    parser.add_argument("--n-pcs", type=int, default=8, help="PCs for --observation pca (identity readout)")
    parser.add_argument("--forcing", default="generalized")
    parser.add_argument("--tau", type=int, default=None, help="forcing interval (default: 16 sparse, 1 generalized)")
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--n-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--subjects", type=int, nargs="+", default=None)
    parser.add_argument("--segments", type=int, nargs="+", default=[4])
    parser.add_argument("--fmri-M", type=int, default=20)
    parser.add_argument("--fmri-tau", type=int, default=5)
    parser.add_argument("--fmri-steps", type=int, default=1000)
    parser.add_argument("--fmri-forcing", default="sparse")
    parser.add_argument("--fmri-noise", type=float, default=0.1)
    parser.add_argument("--fmri-lr", type=float, default=3e-3)
    parser.add_argument("--fmri-val", type=float, default=0.25,
                        help="fraction of the training segments held out for checkpoint selection (0: none)")
    parser.add_argument("--fmri-out", type=Path, default=None, help="write the per-fold errors to this CSV")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("sample", "both"):
        run_sample(args)
    if args.part in ("fmri", "both"):
        run_fmri(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
