"""Paired statistics between models scored on the same cross-validation folds and seeds.

Scores of two models on the same (fold, seed) pairs are paired samples, but the folds share
training trials, so their differences are correlated and a plain paired t-test is too
liberal. The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for
repeated cross-validation) inflates the variance of the mean difference from ``s^2 / J`` to
``(1/J + n_test/n_train) s^2`` over the J = folds x seeds differences, with J - 1 degrees of
freedom. The Wilcoxon signed-rank test (no correction for that dependence) and the paired
effect size (Cohen's d_z = mean / SD of the differences) come with it; Holm's method
corrects the p-values for the number of model pairs. ``summarize`` applies them to the results
of :func:`neuroalrnn.compare.compare` (mean, SEM and every test per model pair); ``table`` gives the
summary as a pandas table.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def corrected_ttest(differences, test_train_ratio: float, *, confidence: float = 0.95) -> dict:
    """Nadeau-Bengio corrected resampled t-test of paired score differences.

    Parameters
    ----------
    differences : array-like (J,)
        Score differences (model - other) on the same J (fold, seed) pairs; NaN are dropped.
    test_train_ratio : float
        n_test / n_train of the folds (1 for 2-fold CV, 0.25 for 5-fold); 0 gives the plain
        paired t-test, NaN (fold sizes unknown) no test.
    confidence : float
        Level of the confidence interval of the mean difference.

    Returns
    -------
    dict
        ``mean``, ``t``, ``df``, ``pvalue`` (two-sided), ``ci_low``, ``ci_high``, ``n``;
        NaN where fewer than two differences or none of them differ.

    Examples
    --------
    >>> r = corrected_ttest([0.10, 0.12, 0.08, 0.11, 0.09], 0.25)
    >>> round(r["t"], 2), round(r["pvalue"], 4)
    (9.43, 0.0007)
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float).ravel()
    d = d[np.isfinite(d)]
    if test_train_ratio < 0 or np.isinf(test_train_ratio):  # NaN: fold sizes unknown, no test
        raise ValueError(f"test_train_ratio: expected a non-negative number, got {test_train_ratio!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    n = len(d)
    out = {"mean": float(d.mean()) if n else np.nan, "t": np.nan, "df": float(n - 1) if n > 1 else np.nan,
           "pvalue": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": n}
    if n < 2 or np.isnan(test_train_ratio) or np.allclose(d, d[0], rtol=0, atol=1e-15):
        return out
    se = np.sqrt((1.0 / n + test_train_ratio) * d.var(ddof=1))
    t = d.mean() / se
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
    out.update(t=float(t), pvalue=float(2 * stats.t.sf(abs(t), n - 1)), ci_low=float(d.mean() - half),
               ci_high=float(d.mean() + half))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries are left out of the count and stay NaN).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p.ravel()))
    if not ok.size:
        return out
    order = ok[np.argsort(p.ravel()[ok], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p.ravel()[order])
    flat = out.ravel()
    flat[order] = np.minimum(adjusted, 1.0)
    return flat.reshape(p.shape)


def paired_comparisons(scores: xr.DataArray, *, test_train_ratio: float, confidence: float = 0.95) -> xr.Dataset:
    """Every pair of models compared on the samples they share (all dims but ``model``).

    Parameters
    ----------
    scores : xarray.DataArray
        Scores with a ``model`` dim; every other dim (e.g. fold, seed) indexes paired samples.
    test_train_ratio : float
        n_test / n_train of the folds (see :func:`corrected_ttest`).
    confidence : float

    Returns
    -------
    xarray.Dataset with dims (model, other)
        ``diff`` (mean of model - other over the shared samples), ``diff_ci_low``/
        ``diff_ci_high`` (corrected confidence interval), ``cohens_d`` (d_z), ``t_corrected``,
        ``df``, ``p_corrected``, ``p_wilcoxon``, their Holm-adjusted ``p_corrected_holm`` and
        ``p_wilcoxon_holm`` (over the unordered model pairs), ``n_pairs``; symmetric p-values,
        antisymmetric differences, NaN on the diagonal.

    Examples
    --------
    >>> import xarray as xr
    >>> s = xr.DataArray([[0.5, 0.6, 0.55, 0.5], [0.9, 0.8, 0.95, 0.85]], dims=("model", "fold"),
    ...                  coords={"model": ["P=0", "P=2"]})
    >>> out = paired_comparisons(s, test_train_ratio=0.25)
    >>> round(float(out["diff"].sel(model="P=2", other="P=0")), 3)
    0.338
    """
    from scipy import stats

    if not isinstance(scores, xr.DataArray) or "model" not in scores.dims:
        raise TypeError("scores: expected an xarray.DataArray with a 'model' dim")
    x = scores.transpose("model", ...).values.reshape(scores.sizes["model"], -1).astype(float)
    m = len(x)
    names = ("diff", "diff_ci_low", "diff_ci_high", "cohens_d", "t_corrected", "df", "p_corrected", "p_wilcoxon",
             "n_pairs")
    out = {k: np.full((m, m), np.nan) for k in names}
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            ok = np.isfinite(x[i]) & np.isfinite(x[j])
            d = x[i, ok] - x[j, ok]
            out["n_pairs"][i, j] = ok.sum()
            r = corrected_ttest(d, test_train_ratio, confidence=confidence)
            out["diff"][i, j], out["df"][i, j] = r["mean"], r["df"]
            out["diff_ci_low"][i, j], out["diff_ci_high"][i, j] = r["ci_low"], r["ci_high"]
            out["t_corrected"][i, j], out["p_corrected"][i, j] = r["t"], r["pvalue"]
            if np.isfinite(r["t"]):
                out["cohens_d"][i, j] = d.mean() / d.std(ddof=1)
                if i < j:
                    try:
                        out["p_wilcoxon"][i, j] = out["p_wilcoxon"][j, i] = stats.wilcoxon(d).pvalue
                    except ValueError:  # e.g. every difference zero
                        pass
    upper = np.triu_indices(m, 1)
    for name in ("p_corrected", "p_wilcoxon"):
        adjusted = np.full((m, m), np.nan)
        adjusted[upper] = holm(out[name][upper])
        out[f"{name}_holm"] = np.fmin(adjusted, adjusted.T)
    model_coords = {k: v for k, v in scores.coords.items() if v.dims == ("model",)}
    pair = ("model", "other")
    return xr.Dataset({k: (pair, v) for k, v in out.items()},
                      coords={**model_coords, "other": scores["model"].values},
                      attrs={"test": "Nadeau-Bengio corrected resampled t-test over (fold, seed) pairs; Wilcoxon "
                                     "signed-rank; Holm over the model pairs",
                             "test_train_ratio": float(test_train_ratio), "confidence": float(confidence)})


def summarize(results: xr.Dataset, variable: str = "score") -> xr.Dataset:
    """Mean, SEM and paired tests of held-out scores across (fold, seed) pairs.

    Each (fold, seed) pair is one sample; models are compared on the pairs where both
    have a finite score, by a paired t-test (``scipy.stats.ttest_rel``) and a Wilcoxon
    signed-rank test (NaN where it is undefined, e.g. all differences zero). As the folds
    share training trials, the corrected resampled t-test (Nadeau-Bengio, variance inflated
    by 1/J + n_test/n_train; :func:`neuroalrnn.stats.paired_comparisons`) is the one to read;
    it comes with the mean difference's confidence interval, Cohen's d_z and Holm-adjusted
    p-values over the model pairs.

    Parameters
    ----------
    results : xarray.Dataset
        ``compare``'s output.
    variable : str
        The score to summarize: ``"score"`` or a ``scoring=`` variable (e.g.
        ``"accuracy[incongruent]"``).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``sem``, ``n`` (model); ``diff`` (mean of model - other), ``t_statistic``,
        ``t_pvalue``, ``wilcoxon_pvalue`` (model, other; uncorrected), and from
        :func:`neuroalrnn.stats.paired_comparisons`: ``diff_ci_low``, ``diff_ci_high``,
        ``cohens_d``, ``t_corrected``, ``df``, ``p_corrected``, ``p_corrected_holm``,
        ``p_wilcoxon_holm``, ``n_pairs``; coords of ``model`` kept.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> res = xr.Dataset({"score": (("model", "fold", "seed"), [[[0.5], [0.6], [0.55]], [[0.9], [0.8], [0.95]]])},
    ...                  coords={"model": ["a", "b"]})
    >>> s = summarize(res)
    >>> round(float(s["mean"].sel(model="b")), 3), round(float(s["diff"].sel(model="b", other="a")), 3)
    (0.883, 0.333)
    """
    from scipy import stats

    if not isinstance(results, xr.Dataset) or "score" not in results:
        raise TypeError("results: expected the xarray.Dataset returned by compare (with a 'score' variable)")
    if variable not in results.data_vars:
        raise ValueError(f"variable: {variable!r} is not in the results; have {sorted(results.data_vars)}")
    score = results[variable]
    if set(score.dims) != {"model", "fold", "seed"}:
        raise ValueError(f"results[{variable!r}]: expected dims (model, fold, seed), got {score.dims}")
    x = score.transpose("model", "fold", "seed").values.reshape(score.sizes["model"], -1)
    n = np.isfinite(x).sum(1)
    mean = np.array([np.nanmean(row) if k else np.nan for row, k in zip(x, n)])
    sem = np.array([np.nanstd(row, ddof=1) / np.sqrt(k) if k > 1 else np.nan for row, k in zip(x, n)])
    m = len(x)
    diff, tstat, tp, wp = (np.full((m, m), np.nan) for _ in range(4))
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            ok = np.isfinite(x[i]) & np.isfinite(x[j])
            if ok.sum() < 2:
                continue
            d = x[i, ok] - x[j, ok]
            diff[i, j] = d.mean()
            if np.allclose(d, d[0]):  # no variance: tests undefined
                continue
            res = stats.ttest_rel(x[i, ok], x[j, ok])
            tstat[i, j], tp[i, j] = res.statistic, res.pvalue
            try:
                wp[i, j] = stats.wilcoxon(x[i, ok], x[j, ok]).pvalue
            except ValueError:
                pass
    model_coords = {k: v for k, v in score.coords.items() if v.dims == ("model",)}
    other_coords = {"other": score["model"].values}
    pair = ("model", "other")
    ratio = _test_train_ratio(results)
    corrected = paired_comparisons(score, test_train_ratio=ratio).drop_vars(["diff", "p_wilcoxon"])
    return xr.Dataset({"mean": ("model", mean), "sem": ("model", sem), "n": ("model", n),
                       "diff": (pair, diff), "t_statistic": (pair, tstat), "t_pvalue": (pair, tp),
                       "wilcoxon_pvalue": (pair, wp)},
                      coords={**model_coords, **other_coords},
                      attrs={"unit": "one sample per (fold, seed) pair; paired across models", "variable": variable,
                             **score.attrs, **corrected.attrs}).merge(corrected, compat="no_conflicts", join="exact",
                                                                      combine_attrs="drop_conflicts")


def _test_train_ratio(results: xr.Dataset) -> float:
    """Mean n_test / mean n_train of the folds (n_train from the folds' n_test when results predate it).

    NaN when the results carry no fold sizes: the corrected tests are then NaN.
    """
    if "n_test" not in results.coords:
        return float("nan")
    n_test = results["n_test"].values.astype(float)
    n_train = results["n_train"].values.astype(float) if "n_train" in results.coords else n_test.sum() - n_test
    return float(n_test.mean() / n_train.mean())


def table(summary: xr.Dataset) -> "pandas.DataFrame":  # noqa: F821
    """The summary as a pandas table (one row per model: n_relu, mean, sem, n).

    Examples
    --------
    >>> import xarray as xr
    >>> s = xr.Dataset({"mean": ("model", [0.5]), "sem": ("model", [0.1]), "n": ("model", [3])},
    ...                coords={"model": ["a"]})
    >>> table(s).columns.tolist()
    ['mean', 'sem', 'n']
    """
    cols = [c for c in ("n_relu", "family") if c in summary.coords] + ["mean", "sem", "n"]
    df = summary[["mean", "sem", "n"]].to_dataframe()
    for c in cols[:-3]:
        df[c] = summary[c].values
    return df[cols]
