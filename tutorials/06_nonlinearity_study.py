"""
06 - The nonlinearity study: when does a recurrent network need ReLU units, and what do they do?
================================================================================================

The AL-RNN paper asks a question that no single task can answer: how much nonlinearity does a recurrent
network need, and what does it do with it? Its answer covers a suite of tasks (memory benchmarks, a
stimulus-selection task, an image-sequence task and a multi-task set) and names mechanisms: gating,
rule-based integration, memory held at fixed points or by transients, and subregions shared across
tasks. This tutorial runs that study end to end:

* ``neuroalrnn.tasks.recommended(task)``: each task's data, the training that solves it, the held-out
  scores worth reporting and the criterion that says "solved";
* ``neuroalrnn.study.run_study``: the suite x numbers of ReLU units P x seeds, cross-validated, every fit's
  mechanism measured on its held-out fold; one ``xarray.Dataset`` with a ``task`` dim (resumable, Dask-ready);
* ``summarize_study``: scores with SEM and corrected paired tests against P = 0, and the fraction of fits that
  show each mechanism, because a mechanism seen in one model is an anecdote.

Set ``NEUROALRNN_TUTORIAL_SMALL=1`` for a quick run with tiny data and training (the tests do); the numbers
are then meaningless. The full study (7 tasks x 5 P x 3 seeds) takes about half an hour on 2 cores; it keeps
every finished fit in ``~/.cache/neuroalrnn/study``, so a rerun is immediate.
"""

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from neuroalrnn.analysis.mechanisms import context_attractors, marker_gating, memory_attractors
from neuroalrnn.estimators import ALRNNTaskEstimator
from neuroalrnn.plot import plot_region_raster
from neuroalrnn.study import run_study, study_config, summarize_study
from neuroalrnn.study.plot import plot_mechanism_fractions, plot_study_scores
from neuroalrnn.tasks import SUITE, make_task, recommended

SMALL = os.environ.get("NEUROALRNN_TUTORIAL_SMALL") == "1"
TASKS = ["stimulus_selection", "addition", "flipflop", "multitask"] if SMALL else list(SUITE)
SEEDS = [0, 1] if SMALL else [0, 1, 2]
CACHE = None if SMALL else Path.home() / ".cache" / "neuroalrnn" / "study"
print(f"tasks {TASKS}, seeds {SEEDS}, {'quick mode' if SMALL else 'recommended settings'}")

# %% [markdown]
# 1. The suite and what "solved" means
# ------------------------------------
#
# Every task comes with its recommended settings. The initialisation matters: the addition problem does not
# train from the default ("reference") initialisation, whose leaky units forget the first marked value, but
# does from ``init="normal"`` (A = 0, W ~ N(0, 1/M)). The criterion of each task is stated with its chance
# level and why it is the right bar.

# %%
rows = []
for task in SUITE:
    cfg = recommended(task)
    c, p = cfg["criterion"], cfg["params"]
    rows.append({"task": task, "score": c["scorer"], "solved when": ("<= " if c["solved_below"] else ">= ")
                 + f"{c['threshold']:g}", "chance": c["chance"], "init": p["init"], "lr": p["lr"],
                 "steps": p["n_steps"]})
pd.DataFrame(rows).set_index("task")

# %% [markdown]
# 2. Run the study
# ----------------
#
# For each task, ``run_study`` compares AL-RNNs with P = 0 (linear), 1, 2, 4 and M ReLU units over folds x
# seeds with ``compare``, which trains the task's fits together as ensembles. Each fit is scored on its
# held-out fold with the task's scores (e.g. accuracy on incongruent trials) and its mechanism is extracted
# there too, so every number below is one per fitted model.

# %%
start = time.perf_counter()
results = run_study(TASKS, seeds=SEEDS, quick=SMALL, results_dir=CACHE)
print(f"study: {results.sizes['task']} tasks x {results.sizes['model']} P x {results.sizes['seed']} seeds x "
      f"{results.sizes['fold']} folds in {time.perf_counter() - start:.0f} s")
results

# %% [markdown]
# 3. Scores against P
# -------------------
#
# One panel per task: the criterion score (mean +- SEM over folds x seeds), the criterion (dashed), chance or
# the trivial baseline (dotted), and above each point the fraction of fits that solve the task. The table adds
# the difference to P = 0 with its corrected 95% interval and the p-value of the corrected resampled t-test
# (the folds share training trials, so the plain paired t-test would be too liberal), Holm-adjusted over the
# task's model pairs.

# %%
summary = summarize_study(results)
plot_study_scores(summary);

# %%
table = summary[["criterion_mean", "criterion_sem", "solved", "diff", "p_corrected_holm"]].to_dataframe()
print("held-out criterion score per task and P (mean, SEM over folds x seeds; p against P = 0):")
print(table.drop(columns=["family"], errors="ignore").round(4).to_string())

# %% [markdown]
# The diagnostic of the stimulus-selection task is the incongruent trials, where the two streams point to
# different answers: a linear network cannot ignore the irrelevant stream there.

# %%
sel = results.sel(task="stimulus_selection")
cond = pd.DataFrame({name: sel[name].mean(["fold", "seed"]).to_series() for name in
                     ["accuracy", "accuracy[congruent]", "accuracy[incongruent]", "ideal_gap"]})
print("stimulus selection, held-out accuracy per condition (mean over folds x seeds):")
print(cond.round(3).to_string())

# %% [markdown]
# 4. Mechanisms, counted over seeds
# ---------------------------------
#
# Each mechanism is a yes/no per fitted model, with its definition in the table: the fraction of fits that
# show it (and, in brackets in the report, among the fits that solve the task). Where the paper's story
# does not hold for some seeds, it shows here as a fraction below one, for instance a context without an
# attracting fixed point even in a network at the ideal observer.

# %%
plot_mechanism_fractions(summary);

# %%
shown = {k: v for k, v in summary.data_vars.items() if k.startswith("fraction:")}
frac = pd.DataFrame({k.split(":", 1)[1]: v.to_series() for k, v in shown.items()}).dropna(how="all", axis=1)
print("fraction of fits showing each mechanism:")
print(frac.dropna(how="all").round(2).to_string())

# %% [markdown]
# 5. One network up close
# -----------------------
#
# The fractions summarise what the analysis functions return for each model. Here they are for single
# networks with P = 2, trained with the recommended settings (shrunk in quick mode). On the addition
# problem a gate is a ReLU unit that switches on at the marker inputs; the raster shows which ReLU units are
# on along one trial, with the marker steps drawn as lines.

# %%
def fit_one(task, P, seed=0):
    cfg = study_config(task, quick=SMALL)
    data = dict(cfg["data"])
    ds = make_task(task, data.pop("n_trials"), seed=0, **data)
    half = ds.sizes["trial"] // 2
    est = ALRNNTaskEstimator(**{**cfg["params"], "n_relu": P, "seed": seed}).fit(ds.isel(trial=slice(None, half)))
    return est.model_, ds.isel(trial=slice(half, None))


model, test = fit_one("addition", 2)
gating = marker_gating(model, test)
print("ReLU unit selectivity P(on | marker) - P(on | other):", np.round(gating["selectivity"].values, 2).tolist(),
      f"-> gating shown: {bool(gating['gating'])}; region switches at markers: "
      f"{float(gating['switches_at_markers']):.2f}")
fig, ax = plt.subplots(figsize=(7, 1.8))
plot_region_raster(gating["region"].isel(trial=0), n_relu=model.n_relu, ax=ax)
for t in np.flatnonzero(test["inputs"].sel(input="marker").isel(trial=0).values > 0):
    ax.axvline(float(test["time"][t]), color="C3", lw=1)
ax.set_title("addition, P = 2: ReLU units along one held-out trial (red: markers)");

# %% [markdown]
# On the stimulus-selection task, the constant input of each context (fixation and the cue, no evidence)
# defines an autonomous map. Rule-based integration means each context has its attracting fixed point in its
# own subregion, with a slow mode that reads the cued stream's input direction more than the other's.

# %%
model, test = fit_one("stimulus_selection", 2)
attr = context_attractors(model, test)
print(attr[["n_attractors", "region", "slowest_abs", "align_relevant", "align_irrelevant", "diverging"]]
      .to_dataframe().round(3).to_string())
print(f"own subregions: {bool(attr['own_subregions'])}, selective slow modes: {bool(attr['selective_modes'])}, "
      f"a context without an attractor: {bool(attr['missing_attractor'])}")

# %% [markdown]
# On the flip-flop, each memory state (a pattern of the three bits) is held either at a stable fixed point of
# its own or by transients: we run each trial's final state on without pulses and see where it settles.

# %%
model, test = fit_one("flipflop", 4)
memory = memory_attractors(model, test)
print(f"{int(memory['n_memories'])} memory states; held at their own fixed point: "
      f"{float(memory['fixed_point_memory']):.2f}; attracting fixed points: {int(memory['n_attractors'])}; "
      f"stable cycles: {int(memory['n_stable_cycles'])}")

# %% [markdown]
# Summary
# -------
#
# * ``recommended(task)`` holds the settings that train each task and the criterion that says it is solved.
# * ``run_study`` returns one Dataset (task, model, fold, seed) of held-out scores and per-model mechanism
#   summaries; ``neuroalrnn study`` on the command line writes it and an HTML report.
# * ``summarize_study`` reports scores with corrected paired tests and each mechanism as the fraction of fits
#   that show it, so a story that holds for some seeds only is reported as such.
