"""
03 - Fitting AL-RNNs to recordings by teacher forcing
=====================================================

Dynamical-systems reconstruction: instead of training a network on a task, we fit an AL-RNN directly
to recorded activity, with the task inputs driving it, so the fitted system can be run and dissected.
Teacher forcing keeps the training runs close to the data: every ``tau`` steps (sparse forcing) or at
every step with a weight alpha (generalized forcing) the model's observed part is pulled to the data.

1. the embedded sample recording (60 Poisson units read out from a known AL-RNN), where we can
   compare the fit with the ground-truth network itself;
2. real fMRI (Koppe et al. 2014, 20 ROIs, 5 task inputs) of one subject, when ``../shared/data`` is
   present.

Set ``NEUROALRNN_TUTORIAL_SMALL=1`` for a quick run with small sizes (the tests do).
"""

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import neuroalrnn
from neuroalrnn import ALRNN
from neuroalrnn.analysis.dsr import n_step_prediction_error, power_spectrum_error, state_space_divergence
from neuroalrnn.fit import fit_teacher_forcing
from neuroalrnn.preprocess import gaussian_smooth, zscore
from neuroalrnn.sample import load_ground_truth, load_sample

torch.set_num_threads(1)
SMALL = os.environ.get("NEUROALRNN_TUTORIAL_SMALL") == "1"
N_STEPS = 40 if SMALL else 3000
FMRI_STEPS = 40 if SMALL else 1000
print(f"{N_STEPS} training steps for the sample, {FMRI_STEPS} for the fMRI subject")

# %% [markdown]
# 1. The sample recording, in an observed space we can score
# ----------------------------------------------------------
#
# The counts are sparse (0.1 to 1 spike per 50 ms bin), so we smooth them with a Gaussian kernel of
# 100 ms inside each trial and z-score every unit with the **training** trials' statistics. The trials
# are split once: 60 % training, 20 % validation (the fit keeps the checkpoint with the best 20-step
# prediction error on them), 20 % test.

# %%
ds = load_sample()
smooth = gaussian_smooth(ds.assign(activity=ds["activity"].astype(float)), sigma=0.1)
order = np.random.default_rng(0).permutation(ds.sizes["trial"])
train_idx, val_idx, test_idx = np.sort(order[:144]), np.sort(order[144:192]), np.sort(order[192:])
is_train = np.isin(np.arange(ds.sizes["trial"]), train_idx)
data, stats = zscore(smooth, train=is_train)
train, val, test = (data.isel(trial=i) for i in (train_idx, val_idx, test_idx))
print(f"{train.sizes['trial']} training, {val.sizes['trial']} validation, {test.sizes['trial']} test trials; "
      f"{ds.sizes['unit']} units, inputs {ds['input'].values.tolist()}")

# %% [markdown]
# 2. Fit an AL-RNN by generalized teacher forcing
# -----------------------------------------------
#
# 60 units are more channels than latent units, so we use the linear observation model x = B z + b
# (the initial state and the teacher signal are the least-squares states). M = 16, P = 2 (the same size
# as the ground truth, which the fit does not know), alpha adapted from the Jacobian norms.

# %%
fitted = fit_teacher_forcing(ALRNN(16, 2, n_inputs=5, seed=0), train, val=val, forcing="generalized",
                             observation="linear", zscore=False, n_steps=N_STEPS, batch_size=16, lr=3e-3,
                             eval_every=max(N_STEPS // 10, 1), metrics=("n_step",), n_ahead=20,
                             select_metric="n_step", seed=0)
res = fitted.train_result_
print(f"trained {res.n_steps} steps in {res.elapsed:.1f} s, best step {res.best_step}, "
      f"final alpha {float(fitted.alpha):.3f}")
res.history.tail()

# %% [markdown]
# 3. How good is the fit? Compare with the ground-truth network
# -------------------------------------------------------------
#
# The fitted model predicts 20 steps ahead from every time point of the test trials, starting from the
# (smoothed, z-scored) data. The ground-truth network starts from its *true* latent state, runs with the
# same inputs and predicts the expected counts exp(offset + gain z) dt, smoothed and z-scored like the
# data. It is deterministic given the inputs, so its prediction is its expected-count trajectory: the
# best any model can do against the Poisson noise.

# %%
truth_model, readout = load_ground_truth()
log_rate = readout["offset"] + readout["latent"].astype(float) @ readout["gain"].T
expected = np.exp(np.minimum(log_rate, np.log(200.0))) * ds.attrs["dt"]   # rates capped at 200 Hz, as generated
expected = np.where(ds["mask"].values[..., None], expected, np.nan)
truth, _ = zscore(gaussian_smooth(ds.assign(activity=ds["activity"].copy(data=expected)), sigma=0.1), stats=stats)
x_test, x_truth = test["activity"].values, truth["activity"].values[test_idx]

n = 20
sq_truth, sq_mean = [], []
for i, L in enumerate(test["mask"].sum("time").values):
    for t in range(L - n):   # the same origins as n_step_prediction_error
        sq_truth.append(((x_truth[i, t + n] - x_test[i, t + n]) ** 2).mean())
        sq_mean.append((x_test[i, t + n] ** 2).mean())
err_fit = n_step_prediction_error(fitted, test, n=n)
err_truth = float(np.mean(sq_truth))
print(f"20-step prediction error on test trials: fitted {err_fit:.3f}, ground truth {err_truth:.3f} "
      f"(ratio {err_fit / err_truth:.2f}), training mean {np.mean(sq_mean):.3f}")

# %% [markdown]
# 4. Free-run the fitted model on held-out trials
# -----------------------------------------------
#
# From each test trial's first observation, driven only by the trial's inputs. The state-space
# divergence is computed on the 3 leading principal components of the training data (binning needs
# few dimensions), and the power-spectrum distance per unit; the ground truth is scored the same way.

# %%
s = np.nan_to_num(test["inputs"].values)
gen = np.concatenate([x_test[:, :1], fitted.free_run(x_test[:, 0], x_test.shape[1] - 1, s[:, 1:])], axis=1)
gen = np.where(test["mask"].values[..., None], gen, np.nan)
rows = train["activity"].values[train["mask"].values]
pcs = np.linalg.svd(rows - rows.mean(0), full_matrices=False)[2][:3].T
for name, traj in [("fitted", gen), ("ground truth", x_truth)]:
    print(f"{name:12s}: D_stsp (3 PCs) {state_space_divergence(x_test @ pcs, traj @ pcs):.3f}, "
          f"D_H (sigma 2) {power_spectrum_error(x_test, traj, sigma=2.0):.3f}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharex=True)
for k, ax in enumerate(axes):
    for i, color in zip(range(3), ["C0", "C1", "C2"]):
        ax.plot(test["time"], x_test[i] @ pcs[:, k], color=color, alpha=0.5)
        ax.plot(test["time"], gen[i] @ pcs[:, k], color=color, ls="--")
    ax.set_title(f"PC {k + 1}: data (solid) vs free run (dashed)", fontsize=9)
    ax.set_xlabel("time (s)")
fig.tight_layout()
plt.show()

# %% [markdown]
# 5. Real fMRI: one subject of Koppe et al. (2014)
# ------------------------------------------------
#
# Subject index 6 (the AL-RNN authors' example): 5 segments of 72 TRs, 20 ROIs, inputs triangle,
# square and the three rule instructions. We train on segments 1-4 (z-scored per ROI with their
# statistics; one of them is the validation segment that picks the checkpoint with the best 5-step
# error) and hold out segment 5. With 20 ROIs the identity observation model fits: the first 20 of
# M = 24 latent units are the ROIs, P = 2 ReLU units, sparse forcing every 5 TRs with noise of sd 0.1
# on the forcing signal. Skipped when the shared data folder is absent.

# %%
FMRI = Path("..").resolve().parent / "shared" / "data" / "koppe2014_fmri" / "NBKO_PLRNN_dataset.mat"
if not FMRI.exists():
    print(f"fMRI file not found at {FMRI}: skipping the real-data part")
else:
    from neuroalrnn.io.matlab import KOPPE2014_SPEC

    fmri = neuroalrnn.load(FMRI, spec=KOPPE2014_SPEC)
    subj = fmri.isel(trial=np.flatnonzero(fmri["subject"].values == 6)).drop_vars("phase")
    held_out = subj["segment"].values == 4
    subj_z, _ = zscore(subj, train=~held_out)
    f_train, f_test = subj_z.isel(trial=np.flatnonzero(~held_out)), subj_z.isel(trial=np.flatnonzero(held_out))
    f_fit = fit_teacher_forcing(ALRNN(24, 2, n_inputs=5, seed=0), f_train, val=0.25, forcing="sparse", tau=5,
                                observation="identity", zscore=False, noise_std=0.1, n_steps=FMRI_STEPS,
                                batch_size=4, lr=3e-3, eval_every=max(FMRI_STEPS // 20, 1), metrics=("n_step",),
                                n_ahead=5, select_metric="n_step", seed=0)
    y = f_test["activity"].values[0]
    err = n_step_prediction_error(f_fit, f_test, n=5)
    print(f"subject 6, held-out segment: 5-step prediction error {err:.3f} "
          f"(training mean {np.mean(y[5:] ** 2):.3f})")
    u = f_test["inputs"].values[0]
    run = f_fit.free_run(y[0], len(y) - 1, u[1:])
    fig, axes = plt.subplots(4, 1, figsize=(8, 6), sharex=True)
    for ax, roi in zip(axes[:3], [0, 5, 10]):
        ax.plot(y[:, roi], label="held-out BOLD")
        ax.plot(np.arange(1, len(y)), run[:, roi], "--", label="free run")
        ax.set_ylabel(f"ROI {roi}")
    axes[0].legend(fontsize=7)
    axes[3].imshow(u.T, aspect="auto", interpolation="nearest", cmap="Greys")
    axes[3].set_yticks(range(5), [str(v) for v in f_test["input"].values], fontsize=6)
    axes[3].set_xlabel("TR")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# The free run is driven only by the inputs after its first TR, so it follows the input-locked part
# of the BOLD signal, not the spontaneous fluctuations. ``benchmarks/acceptance_recordings.py`` runs this
# comparison (P = 0, 2 and M) over all subjects; see ``benchmarks/RESULTS_teacher_forcing.md``.
