"""Figures of the study; they only draw what :func:`neuroalrnn.study.summary.summarize_study` returned."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from neuroalrnn.plot import _axes

__all__ = ["plot_task_score", "plot_study_scores", "plot_mechanism_fractions"]


def _p_labels(summary):
    return [f"{int(p)}" for p in summary["n_relu"].values]


def plot_task_score(summary: xr.Dataset, task: str, *, ax=None):
    """One task's criterion score (mean +- SEM over folds x seeds) against P, with the threshold and chance.

    P is a categorical axis (0, 1, 2, 4, 32 are evenly spaced); the solved fraction of the fits
    is written above each point.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from neuroalrnn.study import run_study
    >>> from neuroalrnn.study.summary import summarize_study
    >>> s = summarize_study(run_study(["addition"], p_values=[0, 2], seeds=[0, 1], quick=True))
    >>> plot_task_score(s, "addition").get_xlabel()
    'number of ReLU units P'
    """
    ax = _axes(ax)
    row = summary.sel(task=task)
    crit = json.loads(summary.attrs["criterion"])[task]
    x = np.arange(summary.sizes["model"])
    mean, sem = row["criterion_mean"].values, np.nan_to_num(row["criterion_sem"].values)
    ax.errorbar(x, mean, yerr=sem, fmt="o-", color="C0", capsize=3)
    ax.margins(y=0.15)  # room above the top points for their "solved" labels, below the title
    for xi, yi, solved in zip(x, mean, row["solved"].values):
        if np.isfinite(yi) and np.isfinite(solved):
            ax.annotate(f"{solved:.0%}", (xi, yi), textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize="x-small", color="C0")
    ax.axhline(crit["threshold"], color="C2", ls="--", lw=1, label="criterion")
    if crit.get("chance") is not None:
        ax.axhline(crit["chance"], color="0.5", ls=":", lw=1, label="chance / baseline")
    ax.set_xticks(x, _p_labels(summary))
    ax.set_xlabel("number of ReLU units P"), ax.set_ylabel(str(row["criterion"].values))
    ax.set_title(task.replace("_", " "), fontsize="medium")
    return ax


def plot_study_scores(summary: xr.Dataset, *, fig=None):
    """Every task's criterion score against P, one panel per task (see :func:`plot_task_score`).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from neuroalrnn.study import run_study
    >>> from neuroalrnn.study.summary import summarize_study
    >>> s = summarize_study(run_study(["addition", "digits"], p_values=[0, 2], seeds=[0, 1], quick=True))
    >>> len(plot_study_scores(s).axes)
    2
    """
    import matplotlib.pyplot as plt

    tasks = summary["task"].values.tolist()
    cols = min(4, len(tasks))
    rows = int(np.ceil(len(tasks) / cols))
    fig = fig or plt.figure(figsize=(3.2 * cols, 2.8 * rows))
    for i, task in enumerate(tasks):
        plot_task_score(summary, task, ax=fig.add_subplot(rows, cols, i + 1))
    fig.tight_layout()
    return fig


def plot_mechanism_fractions(summary: xr.Dataset, *, fig=None, solved_only: bool = False):
    """Fraction of fits (folds x seeds) that show each mechanism, against P, one panel per task.

    ``solved_only`` counts among the fits that reach the task's criterion only.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from neuroalrnn.study import run_study
    >>> from neuroalrnn.study.summary import summarize_study
    >>> s = summarize_study(run_study(["addition"], p_values=[0, 2], seeds=[0], quick=True))
    >>> len(plot_mechanism_fractions(s).axes)
    1
    """
    import matplotlib.pyplot as plt

    prefix = "fraction_solved:" if solved_only else "fraction:"
    panels = []
    for task in summary["task"].values.tolist():
        names = [v for v in summary.data_vars if v.startswith(prefix)
                 and np.isfinite(summary[v].sel(task=task).values).any()]
        if names:
            panels.append((task, names))
    fig = fig or plt.figure(figsize=(4.2 * max(len(panels), 1), 3.2))
    x = np.arange(summary.sizes["model"])
    for i, (task, names) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k, name in enumerate(names):
            key = name[len(prefix):]
            ax.plot(x, summary[name].sel(task=task).values, "o-", color=f"C{k}", label=key.split(".", 1)[1])
        ax.set_xticks(x, _p_labels(summary)), ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("number of ReLU units P"), ax.set_ylabel("fraction of fits")
        ax.set_title(task.replace("_", " "), fontsize="medium")
        ax.legend(fontsize="x-small", title=None)
    if not panels:
        fig.add_subplot().text(0.5, 0.5, "no mechanism measured", ha="center")
    fig.tight_layout()
    return fig
