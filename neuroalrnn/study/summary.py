"""The study's numbers: scores per task and P, paired tests against P = 0, mechanism fractions."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from neuroalrnn.study.mechanisms import SHOWN

_SAMPLES = ("fold", "seed")


def _sem(x: xr.DataArray) -> xr.DataArray:
    n = np.isfinite(x).sum(_SAMPLES)
    return (x.std(_SAMPLES, ddof=1) / np.sqrt(n)).where(n > 1)


def summarize_study(results: xr.Dataset, *, reference: str = "P=0") -> xr.Dataset:
    """Mean and SEM of every score, the criterion's paired tests, and the fraction of fits per mechanism.

    Parameters
    ----------
    results : xarray.Dataset
        :func:`neuroalrnn.study.run_study` output (dims task, model, fold, seed).
    reference : str
        The model the paired tests compare against (the linear network).

    Returns
    -------
    xarray.Dataset with dims (task, model)
        For the criterion score of each task: ``criterion_mean``, ``criterion_sem``, and against
        ``reference`` over the (fold, seed) pairs: ``diff``, ``diff_ci_low``/``diff_ci_high``,
        ``cohens_d``, ``p_corrected`` and ``p_corrected_holm`` (Nadeau-Bengio corrected t-test,
        Holm over the model pairs of the task), ``p_wilcoxon``; ``solved`` (fraction of fits),
        ``n_fits``; every score as ``<name>`` (mean) and ``<name>.sem``; every mechanism of
        ``SHOWN`` present as ``fraction:<name>`` (fraction of fits showing it) and
        ``fraction_solved:<name>`` (among the solved fits). Coords ``criterion`` (task) name
        the criterion scores; attrs ``shown`` (JSON: thresholds and their meaning).

    Examples
    --------
    >>> from neuroalrnn.study import run_study
    >>> s = summarize_study(run_study(["addition"], p_values=[0, 2], seeds=[0, 1], quick=True))
    >>> s["criterion_mean"].dims, s["criterion"].values.tolist()
    (('task', 'model'), ['mse'])
    """
    from neuroalrnn.compare import summarize

    if not isinstance(results, xr.Dataset) or not {"task", "model", "fold", "seed"} <= set(results.dims):
        raise TypeError("results: expected run_study's Dataset (dims task, model, fold, seed)")
    if reference not in results["model"].values:
        raise ValueError(f"reference: {reference!r} is not a model of the results; have "
                         f"{results['model'].values.tolist()}")
    criteria = json.loads(results.attrs["criterion"])
    tasks = results["task"].values.tolist()
    names = ("criterion_mean", "criterion_sem", "diff", "diff_ci_low", "diff_ci_high", "cohens_d", "p_corrected",
             "p_corrected_holm", "p_wilcoxon")
    out = {k: np.full((len(tasks), results.sizes["model"]), np.nan) for k in names}
    source = {"p_wilcoxon": "wilcoxon_pvalue", "criterion_mean": "mean", "criterion_sem": "sem"}
    for i, task in enumerate(tasks):
        part = results.sel(task=task, drop=True)
        s = summarize(part, variable=criteria[task]["scorer"])
        for k in names:
            v = s[source.get(k, k)]
            out[k][i] = v.sel(other=reference).values if "other" in v.dims else v.values
    dims = ("task", "model")
    summary = xr.Dataset({k: (dims, v) for k, v in out.items()},
                         coords={"task": tasks, "model": results["model"].values,
                                 "n_relu": ("model", results["n_relu"].values),
                                 "criterion": ("task", [criteria[t]["scorer"] for t in tasks])})
    summary["solved"] = results["solved"].mean(_SAMPLES)
    summary["n_fits"] = np.isfinite(results["score"]).sum(_SAMPLES)
    mechanism_vars = {name.split(".")[0] for name in SHOWN}
    for name, var in results.data_vars.items():
        if name in ("solved", "wall_time") or "model" not in var.dims:
            continue
        if name.split(".")[0] not in mechanism_vars:
            summary[name], summary[f"{name}.sem"] = var.mean(_SAMPLES), _sem(var)
    solved = results["solved"] == 1
    for name, (threshold, _) in SHOWN.items():
        if name not in results:
            continue
        value = results[name]
        shown = (value >= threshold).where(np.isfinite(value))
        summary[f"fraction:{name}"] = shown.mean(_SAMPLES)
        summary[f"fraction_solved:{name}"] = shown.where(solved).mean(_SAMPLES)
    summary["wall_time"] = results["wall_time"]
    summary.attrs = {"reference": reference, "shown": json.dumps(SHOWN), "criterion": results.attrs["criterion"],
                     "tests": "Nadeau-Bengio corrected resampled t-test over (fold, seed) pairs against the "
                              "reference, Holm over the task's model pairs; Wilcoxon signed-rank (uncorrected)"}
    return summary
