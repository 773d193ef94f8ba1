"""
05 - Cross-validated model comparison: how many ReLU units does the task need?
==============================================================================

An AL-RNN has M latent units of which only the last P are ReLU units. How small can P be? We answer
it the way one answers any model-selection question: fit every candidate on training trials, score it
on held-out trials, repeat over folds and seeds, and compare the models on the same folds.

* ``neuroalrnn.estimators`` wraps training as scikit-learn estimators, so ``cross_validate``,
  ``GridSearchCV`` and ``GroupKFold`` work as for any estimator;
* ``neuroalrnn.compare.compare`` runs a whole sweep (models x folds x seeds), in this process or on a
  Dask cluster, writes each finished fit to a results folder (a rerun skips them), and returns an
  ``xarray.Dataset`` of held-out scores with dims (model, fold, seed);
* ``summarize`` gives mean, SEM and paired tests; ``plot_score_vs_p`` draws accuracy against P.

Set ``NEUROALRNN_TUTORIAL_SMALL=1`` for a quick run with small sizes (the tests do); the numbers are
then too noisy to mean anything.
"""

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.model_selection import GroupKFold, cross_validate

from neuroalrnn.compare import compare, summarize, table
from neuroalrnn.estimators import ALRNNTaskEstimator, Trials
from neuroalrnn.plot import plot_score_vs_p
from neuroalrnn.tasks import ideal_observer, stimulus_selection

torch.set_num_threads(1)  # one thread per fit: a sweep gets its parallelism from running fits side by side
SMALL = os.environ.get("NEUROALRNN_TUTORIAL_SMALL") == "1"
M = 8 if SMALL else 16
N_TRIALS = 90 if SMALL else 2000
N_STEPS = 10 if SMALL else 800
SEEDS = [0] if SMALL else [0, 1]
N_SESSIONS = 3 if SMALL else 5
print(f"M = {M}, {N_TRIALS} trials in {N_SESSIONS} sessions, {N_STEPS} Adam steps, seeds {SEEDS}")

# %% [markdown]
# 1. Data with sessions
# ---------------------
#
# Recorded trials come in sessions, and trials of one session share more than trials of different
# sessions (electrode drift, the animal's state). Holding out whole sessions (``GroupKFold``) tests
# generalisation to a new session instead of to a new trial of a seen one. The task generator has no
# sessions, so we label consecutive blocks of trials as sessions.

# %%
ds = stimulus_selection(N_TRIALS, seed=0)
ds = ds.assign_coords(session=("trial", np.arange(N_TRIALS) * N_SESSIONS // N_TRIALS))
print("trials per session:", np.bincount(ds["session"].values).tolist())
print(f"ideal observer accuracy on these trials: {float(ideal_observer(ds)['overall']):.3f}")

# %% [markdown]
# 2. An estimator in scikit-learn's model selection
# -------------------------------------------------
#
# ``ALRNNTaskEstimator`` keeps every hyper-parameter given to it (``get_params``), trains in ``fit`` and
# scores held-out choice accuracy at the response epoch in ``score``. scikit-learn's splitters index the
# data by integer arrays; an ``xarray.Dataset`` does not support that, so wrap it in ``Trials``, whose
# ``trials[indices]`` selects trials and ``trials.groups("session")`` gives the group labels.

# %%
X = Trials(ds)
est = ALRNNTaskEstimator(n_units=M, n_relu=2, n_steps=N_STEPS, eval_every=max(5, N_STEPS // 8),
                         batch_size=128, select_metric="val_accuracy", seed=0)
cv = cross_validate(est, X, cv=GroupKFold(N_SESSIONS), groups=X.groups("session"), return_estimator=True)
print("held-out accuracy per session:", np.round(cv["test_score"], 3).tolist())
print("the fitted torch model of fold 0:", cv["estimator"][0].model_)

# %% [markdown]
# 3. A P sweep, locally
# ---------------------
#
# ``compare`` takes the candidates as a dict: an estimator, a family name (``"alrnn"``, ``"gru"``,
# ``"teacher_forcing"``) or a dict of parameters. Here: P = 0 (a linear RNN), P = 2, P = M (a PLRNN)
# and a GRU baseline of the same size, trained the same way. Each finished fit is written to
# ``results_dir`` as a small JSON file.

# %%
common = dict(n_units=M, n_steps=N_STEPS, eval_every=max(5, N_STEPS // 8), batch_size=128,
              select_metric="val_accuracy")
models = {"P=0": dict(common, n_relu=0), "P=2": dict(common, n_relu=2), f"P=M={M}": dict(common, n_relu=M),
          "GRU": dict(common, family="gru")}
results_dir = tempfile.mkdtemp(prefix="neuroalrnn-sweep-")
local = compare(ds, models, cv=N_SESSIONS, groups="session", seeds=SEEDS, results_dir=results_dir)
local

# %%
summary = summarize(local)
print("held-out accuracy per model (mean +- SEM over (fold, seed) pairs):")
print(table(summary).round(3))
print(f"P=2 - P=0: {float(summary['diff'].sel(model='P=2', other='P=0')):+.3f}, "
      f"paired t-test p = {float(summary['t_pvalue'].sel(model='P=2', other='P=0')):.2g}")
ax = plot_score_vs_p(summary, label="held-out accuracy")
ax.axhline(float(ideal_observer(ds)["overall"]), color="k", lw=0.8, label="ideal observer")
ax.legend(fontsize=8);

# %% [markdown]
# The sweep resumes: rerunning with the same ``results_dir`` reads the finished fits instead of
# redoing them. Delete one file and only that fit is recomputed.

# %%
files = sorted(os.listdir(results_dir))
print(len(files), "result files, e.g.", files[0])
os.remove(os.path.join(results_dir, files[0]))
again = compare(ds, models, cv=N_SESSIONS, groups="session", seeds=SEEDS, results_dir=results_dir)
print("rerun identical:", bool((again["score"] == local["score"]).all()))

# %% [markdown]
# 4. The same sweep on a Dask cluster
# -----------------------------------
#
# ``n_jobs=2`` starts a ``LocalCluster`` of two worker processes by itself. To use a cluster you already
# have, pass its ``Client`` or its scheduler address (``scheduler="tcp://host:8786"``; an address that does
# not answer fails within ~5 s). One fit is one Dask task; if a worker dies, the scheduler reruns its
# fit elsewhere. ``device="auto"`` lets workers with a GPU train on it. With the same seeds the results
# are identical to the local run.

# %%
from distributed import Client, LocalCluster

with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster, \
        Client(cluster) as client:
    on_dask = compare(ds, models, cv=N_SESSIONS, groups="session", seeds=SEEDS, scheduler=client)
print("Dask results identical to the local run:", bool((on_dask["score"] == local["score"]).all()))

# %% [markdown]
# Summary
# -------
#
# * Wrap a TrialDataset in ``Trials`` to use scikit-learn's model selection with the estimators.
# * ``compare`` returns held-out scores as (model, fold, seed); ``summarize`` pairs models on the same folds.
# * The same call runs in this process, on a local cluster (``n_jobs``) or on any Dask scheduler, and a
#   ``results_dir`` makes a long sweep resumable.
#
# With the full sizes (unset ``NEUROALRNN_TUTORIAL_SMALL``), expect the minimal-nonlinearity result: the
# linear RNN (P = 0) cannot gate the relevant stream by context and stays clearly below the others,
# while P = 2 does as well as P = M.
