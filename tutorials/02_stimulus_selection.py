"""
02 - Context-dependent stimulus selection with AL-RNNs
======================================================

The task of Mante et al. (2013): two noisy stimulus streams (``motion`` and ``color``) are shown at once,
a context cue says which one counts, and at the go cue the network reports the sign of the cued
stream. We generate the task, compare AL-RNNs with P = 0, 1, 2, 4 and P = M ReLU units against the
ideal observer on held-out trials, and draw psychometric curves per context.

Set ``NEUROALRNN_TUTORIAL_SMALL=1`` for a quick run with small sizes (the tests do).
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from neuroalrnn import ALRNN
from neuroalrnn.fit import fit_task, task_accuracy
from neuroalrnn.tasks import ideal_observer, stimulus_selection

SMALL = os.environ.get("NEUROALRNN_TUTORIAL_SMALL") == "1"
M = 16 if SMALL else 32
N_TRAIN, N_TEST = (300, 300) if SMALL else (4000, 4000)
N_STEPS = 30 if SMALL else 1000
BATCH = 64 if SMALL else 128
print(f"M = {M}, {N_TRAIN} training trials, {N_TEST} held-out trials, {N_STEPS} Adam steps")

# %% [markdown]
# 1. The task
# -----------
#
# Inputs: ``fixation`` (its offset is the go cue), the one-hot context cue (``ctx_motion``, ``ctx_color``)
# and the two streams, each its signed coherence plus Gaussian noise of sd 1 per step. The target
# ``choice`` is +1/-1 during the response epoch; ``loss_weight`` marks that epoch as the only one scored.
# The trial coords hold the context, both coherences, the correct choice and whether the two streams
# agree (``congruent``).

# %%
train = stimulus_selection(N_TRAIN, seed=0)
test = stimulus_selection(N_TEST, seed=1)
trial = train.isel(trial=0)
fig, axes = plt.subplots(2, 1, figsize=(7, 4), sharex=True)
for name in ["fixation", "ctx_motion", "ctx_color"]:
    axes[0].plot(trial["time"], trial["inputs"].sel(input=name), label=name)
for name in ["motion", "color"]:
    axes[0].plot(trial["time"], trial["inputs"].sel(input=name), label=name, alpha=0.6)
axes[0].legend(fontsize=7, ncol=5)
axes[1].plot(trial["time"], trial["targets"].sel(output="choice"), label="target")
axes[1].plot(trial["time"], trial["loss_weight"], "--", label="loss weight")
axes[1].set_xlabel("time (s)"), axes[1].legend(fontsize=7)
axes[0].set_title(f"context {trial['context'].item()}, coh motion {trial['coh_motion'].item():+.2f}, "
                  f"coh color {trial['coh_color'].item():+.2f}")
plt.show()

# %% [markdown]
# 2. The ideal observer
# ---------------------
#
# It sums the cued stream over the stimulus epoch and takes the sign. With noise this ceiling is well
# below 100 %; incongruent trials (the streams disagree) are where context matters.

# %%
io = ideal_observer(test)
print(f"ideal observer: overall {float(io['overall']):.3f}, incongruent {float(io['incongruent_accuracy']):.3f}")
io["accuracy"].to_pandas()

# %% [markdown]
# 3. Train AL-RNNs with different numbers of ReLU units
# -----------------------------------------------------
#
# ``fit_task`` holds out 20 % of the training trials for validation and keeps the parameters with the
# best validation accuracy. P = 0 is a linear RNN: it cannot gate a stream by context, so it stays at
# chance on incongruent trials.

# %%
results, models = [], {}
for P in [0, 1, 2, 4, M]:
    model = ALRNN(M, P, n_inputs=5, n_outputs=1, seed=0)
    res = fit_task(model, train, n_steps=N_STEPS, lr=0.01, lr_decay=0.998, batch_size=BATCH,
                   eval_every=max(N_STEPS // 5, 1), select_metric="val_accuracy", progress=False)
    acc = task_accuracy(model, test)
    models[P] = (model, acc)
    results.append({"P": P, "overall": float(acc["overall"]),
                    "congruent": float(acc["congruent_accuracy"]),
                    "incongruent": float(acc["incongruent_accuracy"]), "train_s": res.elapsed})
table = pd.DataFrame(results).set_index("P")
print("held-out accuracy per P")
table

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
xs = np.arange(len(table))
ax.plot(xs, table["overall"], "o-", label="overall")
ax.plot(xs, table["incongruent"], "s-", label="incongruent")
ax.axhline(float(io["overall"]), color="k", ls="--", label="ideal observer")
ax.axhline(0.5, color="gray", ls=":")
ax.set_xticks(xs, [str(p) for p in table.index]), ax.set_xlabel("P (ReLU units)")
ax.set_ylabel("held-out accuracy"), ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# 4. Psychometric curves per context
# ----------------------------------
#
# The fraction of +1 choices against each stream's signed coherence, split by context. A network that
# selects the cued stream has a steep curve for the cued stream and a flat one for the other; the
# linear network (P = 0) responds to both streams in both contexts.

# %%
from neuroalrnn.analysis import psychometric

try:
    from neuroalrnn.plot import plot_psychometric
except ImportError:  # plotting helpers not available: draw the curves by hand
    plot_psychometric = None

fig, axes = plt.subplots(2, 2, figsize=(8, 6), sharey=True)
for row, P in enumerate([2, 0]):
    acc = models[P][1]
    for col, stream in enumerate(["coh_motion", "coh_color"]):
        curves = psychometric(acc, stream, "choice", by="context", positive=1.0, exclude=())
        ax = axes[row, col]
        if plot_psychometric is not None:
            plot_psychometric(curves, ax=ax)
        else:
            for g in curves["context"].values:
                ax.errorbar(curves[stream], curves["p"].sel(context=g), curves["sem"].sel(context=g),
                            fmt="o-", label=str(g))
        ax.set_title(f"P = {P}: choice vs {stream}")
        ax.legend(title="context", fontsize=7)
fig.tight_layout()
plt.show()
