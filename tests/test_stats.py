"""Tests of neuroalrnn.stats: corrected resampled t-test, Holm, paired comparisons between models."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from neuroalrnn.stats import corrected_ttest, holm, paired_comparisons


def test_corrected_ttest_formula_and_plain_limit():
    rng = np.random.default_rng(0)
    d = rng.normal(0.05, 0.1, size=12)
    r = corrected_ttest(d, 0.25)
    se = np.sqrt((1 / 12 + 0.25) * d.var(ddof=1))
    assert r["t"] == pytest.approx(d.mean() / se) and r["df"] == 11 and r["n"] == 12
    assert r["pvalue"] == pytest.approx(2 * stats.t.sf(abs(d.mean() / se), 11))
    half = stats.t.ppf(0.975, 11) * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # ratio 0 is the plain paired t-test; the correction only widens
    plain = corrected_ttest(d, 0.0)
    ref = stats.ttest_1samp(d, 0.0)
    assert plain["t"] == pytest.approx(ref.statistic) and plain["pvalue"] == pytest.approx(ref.pvalue)
    assert r["pvalue"] > plain["pvalue"] and r["ci_high"] - r["ci_low"] > plain["ci_high"] - plain["ci_low"]


def test_corrected_ttest_degenerate_and_bad_input():
    assert np.isnan(corrected_ttest([0.1], 0.25)["t"])
    same = corrected_ttest([0.2, 0.2, 0.2], 0.25)
    assert same["mean"] == pytest.approx(0.2) and np.isnan(same["pvalue"])
    assert corrected_ttest([0.1, np.nan, 0.3, 0.2], 0.25)["n"] == 3
    with pytest.raises(ValueError, match="test_train_ratio"):
        corrected_ttest([0.1, 0.2], -1)
    with pytest.raises(ValueError, match="confidence"):
        corrected_ttest([0.1, 0.2], 0.2, confidence=1.5)


def test_holm_matches_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    adj = holm(p)
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> monotone: 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(adj[[4, 0, 2, 1]], [0.02, 0.03, 0.06, 0.06])
    assert np.isnan(adj[3])
    assert holm([0.6, 0.7])[1] == 1.0 and np.isnan(holm([np.nan])).all()


def test_paired_comparisons_between_models():
    rng = np.random.default_rng(1)
    base = rng.normal(0.7, 0.05, size=(5, 3))
    scores = np.stack([base, base + 0.1 + rng.normal(0, 0.02, (5, 3)), base + rng.normal(0, 0.02, (5, 3))])
    scores[2, 0, 0] = np.nan  # a failed fit: its pairs are left out
    da = xr.DataArray(scores, dims=("model", "fold", "seed"),
                      coords={"model": ["P=0", "P=2", "P=4"], "n_relu": ("model", [0, 2, 4])})
    out = paired_comparisons(da, test_train_ratio=0.25)
    assert out["diff"].dims == ("model", "other") and out["n_relu"].values.tolist() == [0, 2, 4]
    d = scores[1] - scores[0]
    assert float(out["diff"].sel(model="P=2", other="P=0")) == pytest.approx(d.mean())
    np.testing.assert_allclose(out["diff"].values, -out["diff"].values.T)
    for name in ("p_corrected", "p_wilcoxon", "p_corrected_holm", "p_wilcoxon_holm"):
        np.testing.assert_allclose(out[name].values, out[name].values.T)
        assert np.isnan(np.diag(out[name].values)).all()
    assert float(out["n_pairs"].sel(model="P=4", other="P=0")) == 14
    assert float(out["p_wilcoxon"].sel(model="P=2", other="P=0")) == pytest.approx(stats.wilcoxon(d.ravel()).pvalue)
    assert float(out["cohens_d"].sel(model="P=2", other="P=0")) == pytest.approx(d.mean() / d.std(ddof=1))
    assert float(out["p_corrected"].sel(model="P=2", other="P=0")) < 0.001
    assert float(out["p_corrected"].sel(model="P=4", other="P=0")) > 0.05
    assert (out["p_corrected_holm"] >= out["p_corrected"] - 1e-15).where(np.isfinite(out["p_corrected"])).all()
    lo, hi = out["diff_ci_low"].sel(model="P=2", other="P=0"), out["diff_ci_high"].sel(model="P=2", other="P=0")
    assert lo < d.mean() < hi
    with pytest.raises(TypeError, match="model"):
        paired_comparisons(xr.DataArray(scores[0], dims=("fold", "seed")), test_train_ratio=0.25)
