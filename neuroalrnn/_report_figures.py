"""The demo report's figures, composed from ``neuroalrnn.plot`` (which only draws).

Figures are made with ``matplotlib.figure.Figure``, not pyplot, so the demo neither needs nor
changes a display backend (it runs the same in a terminal, a notebook or CI).
"""

from __future__ import annotations

import numpy as np


def _subplots(nrows=1, ncols=1, *, figsize, layout="constrained", **kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)

CAPTIONS = {
    "task_accuracy": "Held-out accuracy of the stimulus-selection task against the number of ReLU units P "
                     "(categories, M = 16 units), overall and on incongruent trials, where only the cued stream "
                     "gives the right answer; the ideal observer and chance for reference.",
    "mechanism": "The P = 2 network's mechanism on its own task axes (targeted dimensionality reduction: choice, "
                 "motion and colour coherence, regressed on the network's held-out states). Rows: the two contexts; "
                 "lines: stimulus-epoch averages per signed coherence of the motion (left) or colour (right) stream "
                 "(dot at stimulus onset); black: that context's real fixed points, filled when stable, hollow when "
                 "unstable. Selection shows as the cued stream spreading the states along the choice axis.",
    "regions": "Linear subregion of the P = 2 network at each time step of 40 held-out trials (the two contexts "
               "stacked); the key names the ReLU units that are positive in each region.",
    "psychometric": "Recorded choices: fraction of +1 choices (± binomial SEM) against each stream's signed "
                    "coherence, per context, with fitted logistic curves (bias, slope, lapses).",
    "tdr": "Recorded population (smoothed, 10 principal components), condition averages per context and signed "
           "motion coherence on the recording's own TDR choice and motion axes.",
    "teacher_forcing": "Teacher-forced AL-RNN on a held-out trial: three recorded units (the most variable) and the "
                       "model's free run from the trial's first observation, driven by the task inputs only; the "
                       "shaded span is the n-step horizon the prediction error scores.",
    "compare": "Cross-validated held-out accuracy against P (categories): every fold (grey, the same trials for "
               "each model) and the mean ± SEM over folds (blue), with the ideal observer and chance.",
}


def _task_accuracy(summary):
    fig, ax = _subplots(figsize=(5, 3.6))
    acc, t = summary["task"]["accuracy"], summary["task"]
    pos = np.arange(len(acc))
    for key, style in (("overall", "o-"), ("incongruent", "s--"), ("congruent", "^:")):
        ax.plot(pos, [v[key] for v in acc.values()], style, label=f"{key} trials" if key != "overall" else "all trials")
    ax.axhline(t["ideal_observer"]["overall"], color="k", lw=0.9, label="ideal observer (all trials)")
    ax.axhline(t["chance"], color="0.5", lw=0.9, ls=":", label="chance")
    ax.set(xticks=pos, xlabel="P (ReLU units of M = 16)", ylabel="held-out accuracy", ylim=(0.4, 1.0))
    ax.set_xticklabels([k.split("=")[1] for k in acc])
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _mechanism(dynamics):
    from neuroalrnn import plot

    contexts = np.unique(dynamics["trajectories"]["coh_motion"]["context"].values)
    fig, axes = _subplots(len(contexts), 2, figsize=(11, 4 * len(contexts)), squeeze=False, layout="constrained")
    for col, (stim, stream) in enumerate((("coh_motion", "motion"), ("coh_color", "colour"))):
        traj = dynamics["trajectories"][stim].rename({stim: f"signed {stream} coherence"})
        plot.plot_tdr_trajectories(traj, "choice", stream, by="context", color=f"signed {stream} coherence",
                                   fixed_points=dynamics["fixed_points"], axes_of_states=dynamics["tdr_axes"],
                                   axes=list(axes[:, col]))
        for row, ctx in enumerate(contexts):
            axes[row, col].set_title(f"{ctx} context, by {stream} coherence")
    fig.suptitle("P = 2 network during the stimulus, on its TDR axes, with each context's fixed points")
    return fig


def _regions(dynamics):
    from neuroalrnn import plot

    codes = dynamics["codes"].isel(trial=slice(0, 40))
    order = np.argsort(codes["context"].values, kind="stable")
    codes = codes.isel(trial=order)
    fig, ax = _subplots(figsize=(8, 3.2))
    plot.plot_region_raster(codes, n_relu=2, ax=ax)
    ctx = codes["context"].values
    for i in np.flatnonzero(ctx[1:] != ctx[:-1]):
        ax.axhline(i + 0.5, color="k", lw=1.5)
    for name in np.unique(ctx):
        first = np.flatnonzero(ctx == name)[0]
        ax.text(0.005, first - 0.3, f"{name} context", transform=ax.get_yaxis_transform(), ha="left", va="top",
                fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
    ax.set_ylabel("held-out trial")
    ax.set_title("linear subregion per time step (P = 2 network)")
    return fig


def _psychometric(geometry):
    from neuroalrnn import plot

    fig, axes = _subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    for ax, (stim, curves) in zip(axes, geometry["curves"].items()):
        plot.plot_psychometric(curves, geometry["fits"][stim], ax=ax)
        stream = "motion" if stim == "coh_motion" else "colour"
        ax.set(title=f"recorded choices against {stream} coherence", xlabel=f"signed {stream} coherence")
    return fig


def _tdr(geometry):
    from neuroalrnn import plot

    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 4), layout="constrained")
    traj = geometry["trajectories"].rename({"coh_motion": "signed motion coherence"})
    plot.plot_tdr_trajectories(traj, "choice", "motion", by="context", color="signed motion coherence", fig=fig)
    fig.suptitle("recorded population: condition averages on its TDR axes")
    return fig


def _teacher_forcing(tf, recording, summary):
    test = tf["test"]
    trial = 0
    x = test["activity"].isel(trial=trial).values
    n_valid = int(test["mask"].isel(trial=trial).sum())
    s = np.nan_to_num(test["inputs"].isel(trial=trial).values[1:n_valid])
    free = tf["model"].free_run(x[0], n_valid - 1, inputs=s)
    time = test["time"].values[:n_valid]
    units = np.argsort(-np.nanvar(test["activity"].values, axis=(0, 1)), kind="stable")[:3]
    horizon = time[0] + tf["n_ahead"] * float(recording.attrs["dt"])
    fig, axes = _subplots(1, 3, figsize=(10.5, 3.2), sharex=True, layout="constrained")
    label = test["unit"].values
    area = test["area"].values if "area" in test.coords else None
    for ax, k in zip(axes, units):
        ax.axvspan(time[0], horizon, color="0.92", label=f"{tf['n_ahead']}-step horizon")
        ax.plot(time, x[:n_valid, k], "k", label="held-out data")
        ax.plot(time[1:], free[:, k], "C1", label="model, free run")
        where = f" ({area[k]})" if area is not None else ""
        ax.set(title=f"unit {label[k]}{where}", xlabel=f"time from {recording.attrs.get('align_event', 'alignment')} (s)")
    units_text = summary["data"]["activity_units"]
    axes[0].set_ylabel(f"smoothed {units_text} per {summary['data']['dt'] * 1e3:g} ms bin")
    axes[0].legend(fontsize=7)
    return fig


def _compare(comparison, summary):
    from neuroalrnn import plot

    fig, ax = _subplots(figsize=(5, 3.6))
    plot.plot_score_vs_p(comparison["summary"], results=comparison["results"], ax=ax,
                         label="cross-validated held-out accuracy")
    ax.axhline(comparison["ideal"], color="k", lw=0.9, label="ideal observer")
    ax.axhline(comparison["chance"], color="0.5", lw=0.9, ls=":", label="chance")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def figures(results: dict, summary: dict) -> dict:
    """Every figure of the report: name -> matplotlib Figure."""
    return {"task_accuracy": _task_accuracy(summary),
            "mechanism": _mechanism(results["dynamics"]),
            "regions": _regions(results["dynamics"]),
            "teacher_forcing": _teacher_forcing(results["teacher_forcing"], results["recording"], summary),
            "psychometric": _psychometric(results["geometry"]),
            "tdr": _tdr(results["geometry"]),
            "compare": _compare(results["compare"], summary)}
