"""
04 - Reading the fitted dynamics: subregions, fixed points, slow modes and geometry
===================================================================================

An AL-RNN is piecewise linear: the signs of its P ReLU units split the state space into 2^P linear
subregions, and in each one the map is affine, so its fixed points and their Jacobians can be solved
exactly. Here we train a P = 2 network on context-dependent stimulus selection (tutorial 02) and
*compute* its mechanism:

1. which linear subregions the trajectories use, per context;
2. the fixed points under each context's constant input, their stability and slowest mode;
3. how that slow mode lines up with the stimulus input directions and the choice axis;
4. the geometry: targeted dimensionality reduction (TDR) trajectories, and a cross-validated comparison
   of network states with the embedded recording (CKA / Procrustes against a shuffled-trial baseline);
5. psychometric curves per context, for the model and for the recorded animal.

Set ``NEUROALRNN_TUTORIAL_SMALL=1`` for a quick run with small sizes (the tests do). Nothing here is
downloaded: the recording is the sample embedded in the package.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import xarray as xr

from neuroalrnn import ALRNN
from neuroalrnn.analysis import (cosine_table, cv_similarity, fit_psychometric, fixed_points, map_directions,
                                 psychometric, region_codes, regions_by_group, ridge_map, shuffled_baseline, tdr_axes,
                                 tdr_trajectories)
from neuroalrnn.fit import fit_task, task_accuracy
from neuroalrnn.plot import plot_psychometric, plot_region_raster, plot_tdr_trajectories
from neuroalrnn.preprocess import gaussian_smooth
from neuroalrnn.sample import load_ground_truth, load_sample
from neuroalrnn.tasks import ideal_observer, stimulus_selection

torch.set_num_threads(1)
SMALL = os.environ.get("NEUROALRNN_TUTORIAL_SMALL") == "1"
M, P = (16, 2) if SMALL else (32, 2)
N_TRAIN, N_TEST = (600, 400) if SMALL else (4000, 2000)
N_STEPS = 150 if SMALL else 1000
N_SHUFFLES = 3 if SMALL else 10
print(f"M = {M}, P = {P}, {N_TRAIN} training trials, {N_TEST} held-out trials, {N_STEPS} Adam steps")

# %% [markdown]
# 1. Train a P = 2 network on stimulus selection
# ----------------------------------------------
#
# Same task as tutorial 02: two noisy streams (``motion``, ``color``), a context cue says which counts, and the
# network reports the sign of the cued stream after the delay. We keep the parameters with the best
# validation accuracy and compare with the ideal observer on held-out trials.

# %%
train = stimulus_selection(N_TRAIN, seed=0)
test = stimulus_selection(N_TEST, seed=1)
model = ALRNN(M, P, n_inputs=5, n_outputs=1, seed=0)
res = fit_task(model, train, n_steps=N_STEPS, batch_size=64, lr=1e-2, lr_decay=0.998,
               eval_every=max(N_STEPS // 5, 1), select_metric="val_accuracy", seed=0, progress=False)
acc = task_accuracy(model, test)
io = ideal_observer(test)
print(f"held-out accuracy {float(acc['overall']):.3f} (incongruent {float(acc['incongruent_accuracy']):.3f}); "
      f"ideal observer {float(io['overall']):.3f} (incongruent {float(io['incongruent_accuracy']):.3f}); "
      f"training {res.elapsed:.1f} s")

# %% [markdown]
# 2. Linear subregions along the trajectories
# -------------------------------------------
#
# We run the network on the held-out trials and read the P-bit code of the ReLU units at every step
# (``region_codes``: bit i is set when ReLU unit i is positive). ``regions_by_group`` counts where the states
# sit during the stimulus epoch, per context.

# %%
def model_states(model, ds, choice=None):
    """Latent states (trial, time, latent) with the dataset's trial coords; NaN outside the mask."""
    x = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        z, _ = model(x)
    coords = {k: v.variable for k, v in ds.coords.items() if v.dims == ("trial",) and k not in ("choice", "correct")}
    coords["time"] = ds["time"].values
    out = xr.DataArray(np.where(ds["mask"].values[..., None], z.numpy().astype(float), np.nan),
                       dims=("trial", "time", "latent"), coords=coords)
    return out if choice is None else out.assign_coords(choice=("trial", np.asarray(choice)))


def stimulus_epoch(ds):
    t = ds["time"].values[None, :]
    on = (t >= ds["stim_onset"].values[:, None] - 1e-9) & (t < ds["stim_offset"].values[:, None] - 1e-9)
    return xr.DataArray(on & ds["mask"].values, dims=("trial", "time"))


states = model_states(model, test, acc["choice"].values)
codes = region_codes(states, P)
stim_codes = codes.where(stimulus_epoch(test), -1).astype(int)
occupancy = regions_by_group(stim_codes, "context", normalize=True)
print("fraction of stimulus-epoch steps in each region, per context")
occupancy.to_pandas().round(2)

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.3]})
for ax, ctx in zip(axes[:2], ["motion", "color"]):
    i = int(np.flatnonzero(test["context"].values == ctx)[0])
    plot_region_raster(codes.isel(trial=i), n_relu=P, ax=ax)
    ax.set_title(f"one {ctx}-context trial: ReLU unit signs")
order = np.argsort(test["context"].values[:80], kind="stable")
plot_region_raster(codes.isel(trial=order[:80]), n_relu=P, ax=axes[2])
axes[2].set_title("region codes, 80 trials sorted by context")
fig.tight_layout()
plt.show()

# %% [markdown]
# 3. Fixed points and slow modes under each context's input
# ---------------------------------------------------------
#
# During the stimulus epoch the constant part of the input is ``fixation = 1`` plus that context's cue (the
# streams average to zero). For this input we solve every one of the 2^P regions exactly
# (``fixed_points``): a region's solution is *real* when it lies in its own region, *virtual* otherwise. The
# Jacobian in a region is ``diag(A) + W D``; the slowest mode is the eigenvalue with ``|lambda|`` nearest 1
# (``slowest_abs``), with ``timescale = -1/log|lambda|`` steps.

# %%
names = list(test["input"].values)


def context_input(ctx):
    s = np.zeros(len(names))
    s[names.index("fixation")] = 1.0
    s[names.index(f"ctx_{ctx}")] = 1.0
    return s


fps = {ctx: fixed_points(model, context_input(ctx)) for ctx in ["motion", "color"]}
table = pd.concat({ctx: fp[["region", "real", "kind", "slowest_abs", "timescale"]].to_dataframe()
                   .set_index("region") for ctx, fp in fps.items()}, names=["context"])
table.round(4)

# %%
found = {}
for ctx, fp in fps.items():
    real = fp.sel(point=fp["real"].values)
    found[ctx] = real
    print(f"{ctx:6s} context: {real.sizes['point']} real fixed point(s) in region(s) {real['region'].values.tolist()}, "
          f"kind {real['kind'].values.tolist()}, slowest |lambda| {np.round(real['slowest_abs'].values, 4).tolist()} "
          f"(timescale {np.round(real['timescale'].values, 1).tolist()} steps of {test.attrs['dt']} s)")
stable_regions = {ctx: set(r["region"].values[r["stable"].values].tolist()) for ctx, r in found.items()}
if all(stable_regions.values()):
    print("the two contexts' stable fixed points sit in different regions:",
          stable_regions["motion"].isdisjoint(stable_regions["color"]))
else:
    print("no stable real fixed point under the input of:", [c for c, r in stable_regions.items() if not r])
if SMALL:  # robust structure checks (the exact regions and values depend on the training run)
    for fp in fps.values():
        assert fp.sizes["point"] == 2 ** P and sorted(fp["region"].values.tolist()) == list(range(2 ** P))
        assert np.isfinite(fp["slowest_abs"].values).all()
    assert codes.shape == states.shape[:2] and int(codes.max()) < 2 ** P

# %% [markdown]
# What does the slow mode integrate?
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
#
# The left eigenvector ``w`` of the slowest mode says which direction of input the mode accumulates: an
# input ``u`` moves the mode's coordinate by ``w . u``. We compare it (``|cosine|``) with the two stimulus input
# directions (the columns of C for ``motion`` and ``color``), with the readout row B, and with the TDR choice
# axis of the network's own states; the right eigenvector (where the state moves along the mode) is
# compared with the TDR choice axis too. Two random directions in M dimensions have ``|cos|`` around
# sqrt(2 / (pi M)).

# %%
axes_model = tdr_axes(states, ["choice", "coh_motion", "coh_color", "context"])
p = model.params_numpy()
directions = xr.DataArray(
    np.stack([p["C"][:, names.index("motion")], p["C"][:, names.index("color")], p["B"][0],
              axes_model.sel(axis="choice").values]),
    dims=("direction", "latent"), coords={"direction": ["C motion", "C color", "readout B", "TDR choice"]})
rows = []
for ctx, real in found.items():
    for i in range(real.sizes["point"]):
        pt = real.isel(point=i)
        left = cosine_table(pt["slow_left"].values[None], directions, b_dim="direction").values[0]
        right = cosine_table(pt["slow_right"].values[None], directions, b_dim="direction").values[0]
        rows.append({"context": ctx, "region": int(pt["region"]), "kind": str(pt["kind"].values),
                     "|lambda|": float(pt["slowest_abs"]),
                     **{f"left vs {d}": c for d, c in zip(directions["direction"].values, left)},
                     "right vs TDR choice": right[3]})
alignment = pd.DataFrame(rows)
print(f"random-direction level: {np.sqrt(2 / (np.pi * M)):.2f}")
alignment.round(3)

# %% [markdown]
# The fixed points in state space
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
#
# Single trials are too noisy to show the mechanism, so we average the stimulus epoch (when the context's
# input holds) over trials of the same context and signed coherence, and project the averages and each
# context's real fixed points on the network's TDR axes: ``choice`` against ``coh_motion`` (left) and
# ``choice`` against ``coh_color`` (right), one row per context. Filled markers are stable fixed points,
# hollow ones unstable; a point far outside the trajectories is marked by an arrowhead at the frame's edge
# with its coordinates.

# %%
stim_states = states.where(stimulus_epoch(test))  # the stimulus epoch, when each context's input is on
fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
for col, stim in enumerate(["coh_motion", "coh_color"]):
    traj = tdr_trajectories(stim_states, axes_model, by=["context", stim])
    plot_tdr_trajectories(traj, "choice", stim, by="context", color=stim, fixed_points=fps,
                          axes_of_states=axes_model, axes=list(axes[:, col]))
plt.show()

# %% [markdown]
# 4. TDR trajectories per context
# -------------------------------
#
# Condition averages (context x one stream's signed coherence) projected on the network's TDR axes. A
# network that selects the cued stream spreads its trajectories along the choice axis by motion coherence
# in the motion context, but not in the colour context (and the reverse for colour): compare the panels.

# %%
traj = tdr_trajectories(states, axes_model, by=["context", "coh_motion"])
plot_tdr_trajectories(traj, "choice", "coh_motion", by="context", color="coh_motion")
plt.show()
traj = tdr_trajectories(states, axes_model, by=["context", "coh_color"])
plot_tdr_trajectories(traj, "choice", "coh_color", by="context", color="coh_color")
plt.show()

# %% [markdown]
# 5. Geometry against the embedded recording
# ------------------------------------------
#
# The sample recording (``load_sample()``) holds spike counts of 60 units from 240 trials of the same task,
# generated from a known ground-truth AL-RNN (``load_ground_truth()``, M = 16, P = 2). First the same
# mechanism analysis on the ground-truth network, then the cross-validated comparison of network states
# with the smoothed recorded activity: folds split *trials*; the linear maps of CCA / Procrustes are fitted
# on training trials and scored on held-out ones; CKA is debiased. The baseline pairs each model trial
# with a different recorded trial (shuffled trials).

# %%
rec = load_sample()
truth, observation = load_ground_truth()
smooth = gaussian_smooth(rec, 0.1)
for ctx in ["motion", "color"]:
    fp = fixed_points(truth, context_input(ctx))
    real = fp.sel(point=fp["real"].values)
    C = truth.params_numpy()["C"]
    cos = cosine_table(real["slow_left"].values, C[:, [names.index("motion"), names.index("color")]].T).values
    print(f"ground truth, {ctx:6s} context: real fixed point(s) in region(s) {real['region'].values.tolist()}, "
          f"slowest |lambda| {np.round(real['slowest_abs'].values, 4).tolist()}, slow left mode |cos| with "
          f"C motion / C color: {np.round(cos, 2).tolist()}")

truth_states = xr.DataArray(observation["latent"], dims=("trial", "time", "latent"),
                            coords={"trial": rec["trial"].values, "time": rec["time"].values})
trained_states = model_states(model, rec)  # the trained network driven by the recording's own inputs
rows, scores = [], {}
for name, z in [("ground-truth network", truth_states), ("trained task model", trained_states)]:
    sim = cv_similarity(z, smooth, n_splits=5, n_components=5, seed=0)
    base = shuffled_baseline(z, smooth, n_shuffles=N_SHUFFLES, n_splits=5, n_components=5, seed=0)
    scores[name] = (sim, base)
    rows.append({"states": name, "CKA": float(sim["cka"].mean()), "CKA shuffled": float(base["cka"].mean()),
                 "CKA shuffled max": float(base["cka"].max()),
                 "Procrustes (rad)": float(sim["procrustes"].mean()),
                 "Procrustes shuffled": float(base["procrustes"].mean()),
                 "CCA 1": float(sim["cca"].isel(cc=0).mean()), "CCA 1 shuffled": float(base["cca"].isel(cc=0).mean())})
geometry = pd.DataFrame(rows).set_index("states")
print("cross-validated similarity with the recorded units (5 folds over trials, PCA to 5 dims)")
print(geometry.round(3).to_string())
sim, base = scores["ground-truth network"]
if SMALL:  # the ground-truth states must beat every shuffled pairing
    assert float(sim["cka"].mean()) > float(base["cka"].max())
    assert float(sim["procrustes"].mean()) < float(base["procrustes"].min())

# %% [markdown]
# TDR of the recording itself: axes from the smoothed units (denoised with 10 principal components),
# condition-averaged trajectories per context.

# %%
axes_rec = tdr_axes(smooth, ["choice", "coh_motion", "coh_color", "context"], n_pcs=10)
traj_rec = tdr_trajectories(smooth, axes_rec, by=["context", "coh_motion"])
fig = plot_tdr_trajectories(traj_rec, "choice", "coh_motion", by="context", color="coh_motion")
fig.suptitle("recorded units")
plt.show()

# %% [markdown]
# Slow modes against the recorded population's axes
# ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
#
# A ridge map ``L`` (unit, latent) from network states to the recorded units (``ridge_map``) carries model
# directions into the recorded space: the slow mode's right eigenvector (where the state moves) as ``L v``,
# the input columns of C likewise. We compare them with the recording's TDR axes. Two random directions
# among 60 units have ``|cos|`` around 0.10.

# %%
rows, input_rows = [], []
for label, net, z in [("ground truth", truth, truth_states), ("trained model", model, trained_states)]:
    L = ridge_map(z, smooth)
    Cn = net.params_numpy()["C"][:, [names.index("motion"), names.index("color")]].T
    cin = cosine_table(map_directions(Cn, L, side="right"), axes_rec.values).values
    for k, stream in enumerate(["C motion", "C color"]):
        input_rows.append({"network": label, "input": stream,
                           **{f"vs rec. {a}": c for a, c in zip(axes_rec["axis"].values, cin[k])}})
    for ctx in ["motion", "color"]:
        fp = fixed_points(net, context_input(ctx))
        real = fp.sel(point=fp["real"].values)
        for i in range(real.sizes["point"]):
            pt = real.isel(point=i)
            cos = cosine_table(map_directions(pt["slow_right"].values[None], L, side="right"), axes_rec.values).values[0]
            rows.append({"network": label, "context": ctx, "region": int(pt["region"]), "kind": str(pt["kind"].values),
                         **{f"slow right vs rec. {a}": c for a, c in zip(axes_rec["axis"].values, cos)}})
print("slow modes (right eigenvectors, mapped into the recorded space) against the recording's TDR axes")
print(pd.DataFrame(rows).round(2).to_string(index=False))
print("\ninput directions (columns of C, mapped) against the recording's TDR axes")
print(pd.DataFrame(input_rows).round(2).to_string(index=False))

# %% [markdown]
# 6. Psychometric curves per context
# ----------------------------------
#
# The fraction of +1 choices against each stream's signed coherence. A network (or animal) that selects
# the cued stream has a steep curve for that stream and a flat one for the other. Model: its choices on the
# held-out trials; recording: the animal's ``choice`` coord.

# %%
fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharey=True)
for row, (label, ds) in enumerate([("trained model", acc), ("recording", rec)]):
    for col, stim in enumerate(["coh_motion", "coh_color"]):
        curves = psychometric(ds, stim, "choice", by="context")
        fit = fit_psychometric(ds, stim, "choice", by="context", seed=0)
        plot_psychometric(curves, fit, ax=axes[row, col])
        axes[row, col].set_title(f"{label}: choice vs {stim}")
        span = curves["p"].isel({stim: -1}) - curves["p"].isel({stim: 0})
        print(f"{label:13s} P(choice=+1) at the strongest positive minus negative {stim}:",
              {str(c): round(float(span.sel(context=c)), 2) for c in curves["context"].values})
fig.tight_layout()
plt.show()

# %% [markdown]
# Summary
# -------
#
# Everything above was computed from the trained parameters, so it changes with the training run: with the
# small settings (a briefly trained network) a context may have no real fixed point, a slow mode well below
# ``|lambda|`` = 1, or an extra saddle; ``benchmarks/RESULTS_dynamics.md`` reports the same analysis over three
# seeds of fully trained networks. What was computed here: the regions each context's trajectories use,
# the real fixed points per context with their slowest ``|lambda|``, and how the slow left mode aligns with the
# relevant stimulus input. ``benchmarks/acceptance_dynamics.py`` repeats the analysis over three training
# seeds and ``benchmarks/RESULTS_dynamics.md`` reports the numbers.
