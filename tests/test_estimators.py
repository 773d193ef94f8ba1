"""scikit-learn estimators: conventions, Trials indexing, cross_validate, GridSearchCV, GroupKFold."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

from neuroalrnn.estimators import (ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, GRUTaskEstimator, Trials,
                                   as_dataset)
from neuroalrnn.schema import from_arrays, to_arrays

TINY = dict(n_units=6, n_steps=3, eval_every=3, batch_size=16)


@pytest.fixture(scope="module")
def ds():
    from neuroalrnn.tasks import stimulus_selection

    data = stimulus_selection(36, seed=0, timing={"stimulus": 0.3})
    return data.assign_coords(session=("trial", np.repeat(np.arange(3), 12)))


def test_trials_indexing(ds):
    t = Trials(ds)
    assert len(t) == 36 and t.shape == (36,)
    sub = t[np.array([3, 1, 5])]
    assert isinstance(sub, Trials) and sub.ds["trial"].values.tolist() == [3, 1, 5]
    assert t[np.arange(36) < 4].ds.sizes["trial"] == 4
    assert t[(np.array([0, 2]), Ellipsis)].ds["trial"].values.tolist() == [0, 2]
    assert t[7].ds.sizes["trial"] == 1
    assert t[[]].ds.sizes["trial"] == 0 and len(t[2:5]) == 3
    assert t.groups("session").tolist() == np.repeat(np.arange(3), 12).tolist()
    with pytest.raises(ValueError, match="'nope' is not a trial coord"):
        t.groups("nope")
    with pytest.raises(IndexError):
        t[np.array([0.5])]


def test_sklearn_conventions(ds):
    est = ALRNNTaskEstimator(n_relu=0, device="cpu", seed=3, **TINY)
    params = est.get_params()
    assert params["n_relu"] == 0 and params["seed"] == 3 and params["device"] == "cpu"
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert est.set_params(n_relu=2) is est and est.n_relu == 2
    with pytest.raises(NotFittedError):
        est.score(ds)
    assert est.fit(ds) is est
    assert not hasattr(twin, "model_")
    assert est.model_.n_relu == 2 and est.model_.n_units == 6
    assert "train_loss" in est.history_.columns
    out = est.predict(ds)
    assert out.shape == ds["targets"].shape and np.isnan(out[~ds["mask"].values]).all()
    with torch.no_grad():  # the fitted model run directly on the (zero-padded) inputs
        direct = est.model_(np.nan_to_num(ds["inputs"].values))[1].double().numpy()
    valid = ds["mask"].values
    np.testing.assert_allclose(out[valid], direct[valid], rtol=1e-5, atol=1e-6)


def test_score_is_choice_accuracy(ds):
    from neuroalrnn.fit.task import model_choices

    est = ALRNNTaskEstimator(n_relu=2, **TINY).fit(ds)
    expected = np.mean(model_choices(est.model_, ds).values == ds["correct_choice"].values)
    assert est.score(ds) == pytest.approx(expected)
    assert est.score(Trials(ds)) == pytest.approx(expected)


def test_same_seed_same_fit(ds):
    a = ALRNNTaskEstimator(n_relu=2, seed=5, **TINY).fit(ds)
    b = clone(a).fit(ds)
    assert torch.equal(a.model_.W, b.model_.W)
    c = clone(a).set_params(seed=6).fit(ds)
    assert not torch.equal(a.model_.W, c.model_.W)


def test_arrays_score_negative_mse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 8, 2))
    y = np.cumsum(x[:, :, :1], axis=1)
    est = ALRNNTaskEstimator(n_relu=1, n_units=4, n_steps=2, eval_every=2, val_fraction=0.0).fit(x, y)
    pred = est.predict(x)
    assert pred.shape == (20, 8, 1)
    assert est.score(x, y) == pytest.approx(-np.mean((pred - y) ** 2), rel=1e-5)
    # ragged trials (NaN after the end) are masked, not fitted
    xr_ = x.copy()
    xr_[0, 5:] = np.nan
    assert as_dataset(xr_, y)["mask"].values[0].sum() == 5


def test_bad_input(ds):
    with pytest.raises(TypeError, match="X: expected"):
        ALRNNTaskEstimator(**TINY).fit("data.nc")
    with pytest.raises(ValueError, match="X: expected a \\(trial, time, feature\\) array"):
        ALRNNTaskEstimator(**TINY).fit(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="X: expected a \\(trial, time, feature\\) array"):
        ALRNNTaskEstimator(**TINY).fit(np.zeros((2, 3, 4, 1)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="y: ALRNNTaskEstimator requires y"):
        ALRNNTaskEstimator(**TINY).fit(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="y: expected targets"):
        ALRNNTaskEstimator(**TINY).fit(np.zeros((3, 4, 1)), np.zeros((3, 5, 1)))
    with pytest.raises(ValueError, match="y: must be None"):
        ALRNNTaskEstimator(**TINY).fit(ds, np.zeros(3))
    with pytest.raises(ValueError, match="n_relu"):
        ALRNNTaskEstimator(n_units=4, n_relu=5, n_steps=1).fit(ds)
    with pytest.raises(TypeError, match="device"):
        ALRNNTaskEstimator(device=3, **TINY).fit(ds)


def test_cross_validate_group_kfold_by_session(ds):
    X = Trials(ds)
    out = cross_validate(ALRNNTaskEstimator(n_relu=2, **TINY), X, cv=GroupKFold(3), groups=X.groups("session"),
                         error_score="raise", return_estimator=True)
    assert out["test_score"].shape == (3,) and np.all((out["test_score"] >= 0) & (out["test_score"] <= 1))
    # each fold's estimator is scored on exactly the held-out session
    for est, score in zip(out["estimator"], out["test_score"]):
        trained = set(est.train_result_.extra["train_trials"]) | set(est.train_result_.extra["val_trials"])
        held = [s for s in range(3) if not trained & set(ds["trial"].values[ds["session"].values == s])]
        assert len(held) == 1
        test = X[np.flatnonzero(ds["session"].values == held[0])]
        assert est.score(test) == pytest.approx(score)


def test_grid_search_over_n_relu(ds):
    X = Trials(ds)
    search = GridSearchCV(ALRNNTaskEstimator(**TINY), {"n_relu": [0, 2]}, cv=GroupKFold(3), error_score="raise")
    search.fit(X, groups=X.groups("session"))
    assert search.cv_results_["param_n_relu"].tolist() == [0, 2]
    assert search.best_params_["n_relu"] in (0, 2) and search.best_estimator_.model_.n_relu == search.best_params_["n_relu"]


def test_gru_baseline(ds):
    est = GRUTaskEstimator(**TINY).fit(ds)
    assert isinstance(est.model_.gru, torch.nn.GRU)
    assert 0 <= est.score(ds) <= 1
    b = clone(est).fit(ds)
    assert all(torch.equal(p, q) for p, q in zip(est.model_.parameters(), b.model_.parameters()))


def test_teacher_forcing_estimator():
    from neuroalrnn.analysis.dsr import n_step_prediction_error

    t = np.arange(30) * 0.3
    x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 12)])
    est = ALRNNTeacherForcingEstimator(6, 2, tau=5, n_steps=4, eval_every=2, n_ahead=3, batch_size=4).fit(x)
    assert est.model_ is est.observed_.model and est.model_.n_relu == 2
    # score = -(n-step error in the training z-scored units), against the reference function
    mean, std = est.observed_.mean.numpy(), est.observed_.std.numpy()

    def predictor(x0, n, inputs):
        return (est.observed_.predict_ahead(x0 * std + mean, n) - mean) / std

    assert est.score(x) == pytest.approx(-n_step_prediction_error(predictor, (x - mean) / std, n=3), rel=1e-6)
    pred = est.predict(x)
    assert pred.shape == x.shape
    np.testing.assert_array_equal(pred[:, 0], x[:, 0])  # step 0 is the observation itself
    np.testing.assert_allclose(pred[:, 1:], est.observed_.free_run(x[:, 0], x.shape[1] - 1), rtol=1e-6)
    ds = from_arrays(activity=x, trial_coords={"session": np.repeat([0, 1, 2], 4)})
    X = Trials(ds)
    out = cross_validate(est, X, cv=GroupKFold(3), groups=X.groups("session"), error_score="raise")
    assert np.all(out["test_score"] <= 0)
    # y is ignored (unsupervised, as scikit-learn's convention for pipelines and cross_validate)
    np.testing.assert_array_equal(clone(est).fit(x, x).predict(x), pred)
    assert to_arrays(ds)["activity"].shape == x.shape


def _fitted_on_arrays(**kw):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5, 2))
    y = np.cumsum(x[:, :, :1], axis=1)
    return ALRNNTaskEstimator(n_units=4, n_relu=1, n_steps=2, eval_every=2, val_fraction=0.0, **kw).fit(x, y), x, y


def test_nan_inside_a_trial_is_an_error():
    x = np.ones((3, 6, 2))
    x[1, 4:] = np.nan  # padding after the end of trial 1: fine
    assert as_dataset(x, kind="activity")["mask"].values.sum(1).tolist() == [6, 4, 6]
    gap = x.copy()
    gap[2, 2] = np.nan  # a whole step missing in the middle of trial 2 (it used to end the trial there)
    with pytest.raises(ValueError, match=r"X: NaN in the middle of trial 2 at step 2 \(every feature, but step 3"):
        as_dataset(gap, kind="activity")
    part = x.copy()
    part[0, 3, 1] = np.nan  # one feature missing at one step
    with pytest.raises(ValueError, match=r"X: NaN in the middle of trial 0 at step 3 \(features \[1\]\)"):
        ALRNNTeacherForcingEstimator(4, 1, tau=2, n_steps=1).fit(part)
    inf = x.copy()
    inf[1, 5, 0] = np.inf  # inf is never padding, even after the end
    with pytest.raises(ValueError, match=r"X: inf in trial 1 at step 5 \(feature 0\)"):
        as_dataset(inf, np.zeros((3, 6, 1)))
    empty = x.copy()
    empty[0] = np.nan
    with pytest.raises(ValueError, match="X: trial 0 is NaN from its first step"):
        as_dataset(empty, kind="activity")


def test_targets_must_be_finite_inside_trials():
    x = np.ones((2, 4, 1))
    x[0, 3:] = np.nan
    y = np.zeros((2, 4, 1))
    y[0, 3] = np.nan  # after trial 0's end: ignored
    assert np.isnan(as_dataset(x, y)["targets"].values[0, 3, 0])
    y[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"y: inf in trial 1 at step 2 \(output 0\)"):
        ALRNNTaskEstimator(n_units=4, n_steps=1).fit(x, y)


def test_seed_is_checked_in_fit():
    x, y = np.ones((4, 3, 1)), np.zeros((4, 3, 1))
    for bad in (0.5, 2.0, "0", True, None):
        est = ALRNNTaskEstimator(n_units=4, n_steps=1, seed=bad)  # __init__ stores it unchecked
        with pytest.raises(TypeError, match="seed: expected an int, got"):
            est.fit(x, y)
    with pytest.raises(TypeError, match="seed"):
        GRUTaskEstimator(n_units=4, n_steps=1, seed=1.5).fit(x, y)
    with pytest.raises(TypeError, match="seed"):
        ALRNNTeacherForcingEstimator(4, 1, tau=1, n_steps=1, val=None, seed=[0]).fit(np.ones((2, 4, 2)))
    est = ALRNNTaskEstimator(n_units=4, n_steps=1, seed=-1)
    with pytest.raises(ValueError, match="seed: expected a non-negative int, got -1"):
        est.fit(x, y)
    assert not [k for k in vars(est) if k.endswith("_")]  # a failed fit leaves nothing fitted behind
    est = ALRNNTaskEstimator(n_units=4, n_steps=1, eval_every=1, val_fraction=0.0, seed=np.int64(3)).fit(x, y)
    assert est.model_ is not None


def test_sparse_and_complex_input_are_refused():
    import scipy.sparse as sp

    est, x, y = _fitted_on_arrays()
    with pytest.raises(TypeError, match=r"X: sparse input \(csr_array\) is not supported; expected a dense "
                                        r"\(trial, time, feature\) array"):
        ALRNNTaskEstimator(n_units=4, n_steps=1).fit(sp.csr_array(np.ones((4, 2))), np.zeros(4))
    with pytest.raises(TypeError, match="X: sparse input"):
        est.predict(sp.csr_matrix(x[0]))
    with pytest.raises(ValueError, match="X: Complex data not supported"):
        est.predict(x + 1j)
    with pytest.raises(ValueError, match="y: Complex data not supported"):
        ALRNNTaskEstimator(n_units=4, n_steps=1).fit(x, y + 0j)
    with pytest.raises(TypeError, match="X: expected numbers"):
        est.predict(x.astype(str))


def test_n_features_in_and_one_trial_arrays():
    est, x, y = _fitted_on_arrays()
    assert est.n_features_in_ == 2 and est.n_outputs_ == 1
    with pytest.raises(ValueError, match="X has 1 features, but ALRNNTaskEstimator is expecting 2 features"):
        est.predict(x[:, :, :1])
    with pytest.raises(ValueError, match="X has 3 features"):
        est.score(np.ones((5, 3)), np.zeros(5))
    # a 2-D X is one trial (time, feature): its outputs equal the 3-D run of that trial (to float32
    # rounding: BLAS rounds a product of one trial's row and of a batch's rows differently by an ulp)
    full = est.predict(x)
    np.testing.assert_allclose(est.predict(x[2]), full[2, :, 0], rtol=1e-6)
    assert est.predict(x[2]).shape == (5,)
    assert est.score(x[2], y[2, :, 0]) == pytest.approx(est.score(x[2:3], y[2:3]))
    with pytest.raises(ValueError, match="y: score needs targets"):
        est.score(x)
    one = ALRNNTaskEstimator(n_units=4, n_steps=1, eval_every=1, val_fraction=0.0).fit(x[0], y[0, :, 0])
    assert one.n_features_in_ == 2 and one.train_result_.extra["train_trials"].size == 1
    two_out = ALRNNTaskEstimator(n_units=4, n_steps=1, eval_every=1, val_fraction=0.0).fit(x[0], np.ones((5, 2)))
    assert two_out.predict(x[1]).shape == (5, 2) and two_out.predict(x).shape == (6, 5, 2)
    tf = ALRNNTeacherForcingEstimator(4, 1, tau=2, n_steps=2, eval_every=2, val=None).fit(x[0])
    assert tf.n_features_in_ == 2 and tf.predict(x[1]).shape == (5, 2)
    with pytest.raises(ValueError, match="X has 3 features, but ALRNNTeacherForcingEstimator is expecting 2"):
        tf.score(np.ones((5, 3)))


def test_pickle_repr_and_params_of_fitted():
    import pickle

    est, x, _ = _fitted_on_arrays(seed=4)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(x), est.predict(x))
    assert back.get_params() == est.get_params() and back.n_features_in_ == 2
    assert " ".join(repr(est).split()) == ("ALRNNTaskEstimator(eval_every=2, n_relu=1, n_steps=2, n_units=4, "
                                           "seed=4, val_fraction=0.0)")
    twin = clone(est)
    assert not hasattr(twin, "n_features_in_") and twin.get_params() == est.get_params()


def test_cross_validate_on_trial_arrays():
    est, x, y = _fitted_on_arrays()
    out = cross_validate(clone(est), x, y, cv=3, error_score="raise", return_estimator=True)
    assert out["test_score"].shape == (3,) and np.all(out["test_score"] <= 0)
    assert [e.train_result_.extra["train_trials"].size for e in out["estimator"]] == [4, 4, 4]  # trials are split
