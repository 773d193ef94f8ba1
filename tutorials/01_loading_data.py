"""
01 - Loading lab data into a TrialDataset
=========================================

Every part of ``neuroalrnn`` reads one data model: the **TrialDataset**, an ``xarray.Dataset`` with
``activity`` (trial, time, unit), optional ``inputs``/``targets``, a ``mask`` of valid steps and per-trial
variables as coords. This notebook writes three small lab files (an NWB session, a MATLAB struct and
a behavioural table), loads each with ``neuroalrnn.load``, preprocesses the spikes and plots a PSTH.

``neuroalrnn.load`` looks at a file's first bytes, not at its extension, and hands it to the
matching reader (NWB, MATLAB v5/v7.3, netCDF, NPZ, CSV).
"""

# %%
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.io

import neuroalrnn
from neuroalrnn import preprocess
from neuroalrnn.io import MatSpec

workdir = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)

# %% [markdown]
# 1. An NWB session (written with pynwb)
# --------------------------------------
#
# 40 trials of a context-dependent task: after stimulus onset, half of the 6 units fire more in the
# ``motion`` context, the other half in ``color``. Spikes are Poisson; the file has a ``trials`` table with a
# ``stim_on_time`` column and the conditions, a ``units`` table and a running-speed TimeSeries.

# %%
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

n_trials, n_units = 40, 6
starts = np.arange(n_trials) * 2.0
stim_on = starts + 0.5
context = np.array(["motion", "color"])[rng.integers(0, 2, n_trials)]

def rate(t, unit):
    # baseline 5 Hz; 40 Hz from 0.1 to 0.6 s after stimulus onset in the unit's preferred context
    r = np.full_like(t, 5.0)
    k = np.searchsorted(stim_on, t, side="right") - 1
    rel = t - stim_on[np.clip(k, 0, None)]
    preferred = context[np.clip(k, 0, None)] == ("motion" if unit < 3 else "color")
    r[(k >= 0) & (rel > 0.1) & (rel < 0.6) & preferred] = 40.0
    return r

duration, fine = starts[-1] + 2.0, 1e-3
grid = np.arange(0, duration, fine)
spikes = [grid[rng.random(grid.size) < rate(grid, u) * fine] for u in range(n_units)]

nwb = NWBFile(session_description="tutorial session", identifier="tutorial-01",
              session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
nwb.add_trial_column("stim_on_time", "stimulus onset (s)")
nwb.add_trial_column("context", "cued context")
for a, s, c in zip(starts, stim_on, context):
    nwb.add_trial(start_time=a, stop_time=a + 1.6, stim_on_time=s, context=c)
device = nwb.create_device("probe")
group = nwb.create_electrode_group("shank0", description="shank", location="PFC", device=device)
for u, times in enumerate(spikes):
    nwb.add_unit(spike_times=times, electrode_group=group)
nwb.add_acquisition(TimeSeries(name="running_speed", data=rng.gamma(2.0, 0.05, int(duration * 50)),
                               unit="m/s", rate=50.0, starting_time=0.0))
nwb_path = workdir / "session.nwb"
with NWBHDF5IO(str(nwb_path), "w") as io:
    io.write(nwb)

# %%
session = neuroalrnn.load(nwb_path, align_event="stim_on_time", window=(-0.4, 1.0), bin_size=0.02)
session

# %% [markdown]
# Spike counts are binned around ``stim_on_time``; bins after a trial's ``stop_time`` are NaN and outside
# ``mask``. The trials-table columns are trial coords, the unit table (electrode group, location) gives
# coords on ``unit``, and the running speed is averaged onto the same bins as ``behavior``.

# %% [markdown]
# 2. A MATLAB file
# ----------------
#
# A lab's struct array ``S`` with one element per trial: ``rates`` (units x time) and a context code. A
# ``MatSpec`` says where each part lives; the same spec reads v5 and v7.3 (HDF5) files. A preset for a
# real dataset is ``neuroalrnn.io.KOPPE2014_SPEC`` (26 subjects x 5 fMRI segments).

# %%
S = np.zeros((1, 8), dtype=[("rates", object), ("ctx", object)])
for i in range(8):
    S[0, i] = (rng.poisson(5.0, size=(4, 30 + 2 * i)).astype(float), float(i % 2))
scipy.io.savemat(workdir / "lab.mat", {"S": S})

spec = MatSpec(variable="S", activity="rates", orientation="feature_time", element_dim="trial_number",
               trial_vars=("ctx",), dt=0.05, activity_units="spikes/bin")
lab = neuroalrnn.load(workdir / "lab.mat", spec=spec)
print(dict(lab.sizes), "valid steps per trial:", lab["mask"].sum("time").values)

# %% [markdown]
# 3. A behavioural table
# ----------------------
#
# Per-trial tables (pandas DataFrame, CSV, NPZ of equal-length arrays) become a behaviour-only
# TrialDataset: one coord per column. NPZ files are read without pickle; a column of the wrong length
# is refused with an error that names it.

# %%
table = pd.DataFrame({"context": context, "choice": rng.choice([-1, 1], n_trials),
                      "rt": rng.gamma(4.0, 0.08, n_trials).round(3),
                      "session_date": "2024-01-01"})
table.to_csv(workdir / "behaviour.csv", index=False)
behaviour = neuroalrnn.load(workdir / "behaviour.csv")
behaviour

# %% [markdown]
# 4. Preprocess and plot a PSTH
# -----------------------------
#
# Smooth the counts with a 40 ms Gaussian (within each trial's mask), convert to spikes/s, z-score with
# statistics from the first 30 trials only and apply the same ``stats`` to the 10 held-out trials, then
# average the rates per context.

# %%
rates = preprocess.gaussian_smooth(session, sigma=0.04)
rates["activity"] = rates["activity"] / rates.attrs["dt"]  # arithmetic drops the variable's attrs: set them anew
rates["activity"].attrs.update(units="Hz", long_name="smoothed firing rate")
train = np.arange(n_trials) < 30
z_train, stats = preprocess.zscore(rates, train=train)
z_test, _ = preprocess.zscore(preprocess.select_trials(rates, ~train), stats=stats)  # held-out trials
print("training-trial means per unit:", stats["mean"].values.round(1))
psth = preprocess.condition_average(rates, "context").set_index(condition="context")

fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, unit in zip(axes, [0, 4]):
    for c, colour in zip(["motion", "color"], ["tab:blue", "tab:orange"]):
        ax.plot(psth["time"], psth["activity"].sel(unit=unit, condition=c), color=colour, label=c)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(title=f"unit {unit}", xlabel="time from stimulus onset (s)")
axes[0].set_ylabel("rate (spikes/s)")
axes[0].legend(frameon=False)
fig.tight_layout()

# %%
# the PSTH recovers the planted rates: ~40 Hz in the preferred context, ~5 Hz otherwise
window = psth["activity"].sel(time=slice(0.2, 0.5)).mean("time")
print(window.sel(unit=[0, 4]).to_pandas().round(1))
assert window.sel(unit=0, condition="motion") > 25 > window.sel(unit=0, condition="color")

# %% [markdown]
# 5. Save and reload
# ------------------
#
# A TrialDataset is netCDF-storable; ``neuroalrnn.load`` reads it back identically, trial metadata and
# the boolean mask included.

# %%
import xarray as xr

session.to_netcdf(workdir / "session.nc")
xr.testing.assert_identical(neuroalrnn.load(workdir / "session.nc"), session)
print("round trip identical")
