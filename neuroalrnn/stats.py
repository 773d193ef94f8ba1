"""Paired statistics between models scored on the same cross-validation folds and seeds.

Scores of two models on the same (fold, seed) pairs are paired samples, but the folds share
training trials, so their differences are correlated and a plain paired t-test is too
liberal. The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for
repeated cross-validation) inflates the variance of the mean difference from ``s^2 / J`` to
``(1/J + n_test/n_train) s^2`` over the J = folds x seeds differences, with J - 1 degrees of
freedom. The Wilcoxon signed-rank test (no correction for that dependence) and the paired
effect size (Cohen's d_z = mean / SD of the differences) come with it; Holm's method
corrects the p-values for the number of model pairs.
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
