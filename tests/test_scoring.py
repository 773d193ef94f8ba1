"""Tests of neuroalrnn.scoring: built-in per-condition scorers and scikit-learn scorers."""

import numpy as np
import pytest
from sklearn.metrics import make_scorer, mean_absolute_error

from neuroalrnn.estimators import ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, Trials
from neuroalrnn.scoring import BUILTIN, Scorer, check_scoring, get_scorer
from neuroalrnn.tasks import copy_task, flipflop, ideal_observer, multitask, stimulus_selection
from neuroalrnn.tasks.image_sequence import digit_sequence


class Fixed:
    """An 'estimator' whose outputs are a function of the held-out dataset."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, X):
        ds = X.ds if isinstance(X, Trials) else X
        return np.where(ds["mask"].values[:, :, None], self.fn(ds), np.nan)


def _choice_outputs(choice):
    """Outputs that are +-1 on every step (the response epoch reads their sign)."""
    return lambda ds: np.broadcast_to(choice(ds)[:, None, None], ds["targets"].shape).astype(float)


def test_per_condition_accuracy_on_stimulus_selection():
    ds = stimulus_selection(300, seed=0)
    oracle = Fixed(lambda d: d["targets"].fillna(0).values)
    irrelevant = Fixed(_choice_outputs(lambda d: np.sign(d["coh_irrelevant"].values + 1e-12)))
    cong = ds["congruent"].values
    assert 0 < cong.sum() < len(cong)
    for name in ("accuracy", "accuracy[congruent]", "accuracy[incongruent]", "accuracy[context=motion]"):
        assert get_scorer(name)(oracle, Trials(ds)) == 1.0
    # following the irrelevant stream: right exactly on congruent trials with a non-zero relevant coherence
    assert get_scorer("accuracy[incongruent]")(irrelevant, ds) == 0.0
    assert get_scorer("accuracy[congruent]")(irrelevant, ds) == 1.0
    expected = np.mean(np.sign(ds["coh_irrelevant"].values) == ds["correct_choice"].values)
    assert get_scorer("accuracy")(irrelevant, ds) == pytest.approx(expected)
    # the ideal observer's own choices leave no gap to it
    io = ideal_observer(ds)
    ideal = Fixed(_choice_outputs(lambda d: ideal_observer(d)["choice"].values))
    assert get_scorer("ideal_gap")(ideal, ds) == pytest.approx(0.0)
    assert get_scorer("ideal_gap")(oracle, ds) == pytest.approx(float(io["overall"]) - 1.0)
    assert get_scorer("ideal_gap[incongruent]")(ideal, ds) == pytest.approx(0.0)


def test_mse_sign_and_class_accuracy_on_memory_tasks():
    ff = flipflop(20, n_bits=2, T=40, seed=0)
    oracle = Fixed(lambda d: d["targets"].fillna(0).values)
    flipped = Fixed(lambda d: -d["targets"].fillna(0).values)
    offset = Fixed(lambda d: d["targets"].fillna(0).values + 0.5)
    assert get_scorer("mse")(oracle, ff) == 0.0
    assert get_scorer("mse")(offset, ff) == pytest.approx(0.25)
    assert get_scorer("sign_accuracy")(oracle, ff) == 1.0 and get_scorer("sign_accuracy")(flipped, ff) == 0.0
    cp = copy_task(10, seq_len=3, delay=2, seed=0)
    # a wrong class on the unscored steps does not count; shifting the class does
    assert get_scorer("class_accuracy")(Fixed(lambda d: d["targets"].fillna(0).values - 0.1 * (
        d["loss_weight"].fillna(0).values == 0)[:, :, None]), cp) == 1.0
    assert get_scorer("class_accuracy")(Fixed(lambda d: np.roll(d["targets"].fillna(0).values, 1, 2)), cp) == 0.0
    digits = digit_sequence(30, seed=0)
    assert get_scorer("class_accuracy")(oracle, digits) == 1.0 and get_scorer("accuracy")(oracle, digits) == 1.0


def test_multitask_scores_per_task():
    ds = multitask(40, task_kwargs={"addition": {"T": 10}, "flipflop": {"T": 10}, "copy": {"delay": 2}}, seed=0)
    # right on addition trials only: the per-task MSE separates the tasks
    right_on_addition = Fixed(lambda d: d["targets"].fillna(0).values * (d["task"].values == "addition")[:, None, None])
    assert get_scorer("mse[task=addition]")(right_on_addition, ds) == 0.0
    ff = ds["task"].values == "flipflop"
    w = ds["loss_weight"].fillna(0).values[ff]
    expected = (w * ds["targets"].fillna(0).values[ff] ** 2).sum() / w.sum()
    assert expected > 0.05 and get_scorer("mse[task=flipflop]")(right_on_addition, ds) == pytest.approx(expected)
    assert get_scorer("class_accuracy[task=copy]")(Fixed(lambda d: d["targets"].fillna(0).values), ds) == 1.0
    assert np.isnan(get_scorer("mse[task=nothing]")(right_on_addition, ds))


def test_scikit_learn_scorers_see_the_scored_steps():
    ff = flipflop(10, n_bits=2, T=30, seed=1)
    offset = Fixed(lambda d: d["targets"].fillna(0).values + 0.5)
    assert get_scorer("neg_mean_squared_error")(offset, ff) == pytest.approx(-0.25)
    mae = get_scorer(make_scorer(mean_absolute_error, greater_is_better=False))
    assert mae(offset, Trials(ff)) == pytest.approx(-0.5)
    assert get_scorer(lambda est, X, y: 1.5, name="const")(offset, ff) == 1.5


def test_real_estimators_and_teacher_forcing_scores():
    ds = stimulus_selection(40, seed=0)
    est = ALRNNTaskEstimator(n_units=6, n_relu=1, n_steps=2, eval_every=2).fit(ds)
    test = stimulus_selection(30, seed=1)
    assert get_scorer("accuracy")(est, Trials(test)) == pytest.approx(est.score(test))
    t = np.arange(40) * 0.3
    x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 8)])
    tf = ALRNNTeacherForcingEstimator(6, 2, tau=5, n_steps=5, eval_every=5, n_ahead=5).fit(x)
    from neuroalrnn.estimators import as_dataset

    held = as_dataset(x, kind="activity")
    assert get_scorer("prediction_error")(tf, held) == pytest.approx(-tf.score(held))
    for name in ("d_stsp", "d_h"):
        value = get_scorer(name)(tf, held)
        assert np.isfinite(value) and value >= 0
    with pytest.raises(ValueError, match="teacher-forced"):
        get_scorer("d_h")(est, test)


def test_check_scoring_and_errors():
    assert set(BUILTIN) >= {"accuracy", "mse", "d_stsp"}
    scorers = check_scoring({"inc": "accuracy[incongruent]", "err": "mse"})
    assert list(scorers) == ["inc", "err"] and isinstance(scorers["inc"], Scorer)
    assert not scorers["err"].greater_is_better
    assert check_scoring(None) == {}
    with pytest.raises(ValueError, match="unknown scorer 'acuracy'"):
        get_scorer("acuracy")
    with pytest.raises(ValueError, match="used twice"):
        check_scoring(["mse", "mse"])
    with pytest.raises(ValueError, match="name this callable"):
        get_scorer(lambda est, X, y: 0.0)
    with pytest.raises(TypeError, match="scoring"):
        check_scoring(3)
    ds = flipflop(4, T=10, seed=0)
    with pytest.raises(ValueError, match="choice task"):
        get_scorer("accuracy")(Fixed(lambda d: d["targets"].fillna(0).values), ds)
    with pytest.raises(ValueError, match="trial coord 'context'"):
        get_scorer("accuracy[context=motion]")(Fixed(lambda d: d["targets"].fillna(0).values), ds)
    with pytest.raises(ValueError, match="boolean coord"):
        get_scorer("mse[n_pulses]")(Fixed(lambda d: d["targets"].fillna(0).values), ds)


def test_compare_scoring_gives_one_variable_per_scorer_and_summarize_tests_them():
    from neuroalrnn.compare import compare, summarize

    ds = stimulus_selection(24, seed=1, timing={"stimulus": 0.2})
    tiny = dict(n_units=5, n_steps=2, eval_every=2, batch_size=16)

    def both(est, X, y=None):  # a scorer giving several numbers
        return {"n_trials": float(len(X)), "half": 0.5}

    models = {"P=0": dict(tiny, n_relu=0), "P=2": dict(tiny, n_relu=2), "gru": dict(tiny, family="gru")}
    res = compare(ds, models, cv=2, seeds=[0, 1],
                  scoring={"acc": "accuracy", "inc": "accuracy[incongruent]", "err": "mse", "both": both})
    for name in ("acc", "inc", "err", "both.n_trials", "both.half"):
        assert res[name].dims == ("model", "fold", "seed") and np.isfinite(res[name]).all()
    # the choice score is the estimator's score, on the ensemble path (AL-RNNs) and the single path (GRU)
    np.testing.assert_array_equal(res["acc"].values, res["score"].values)
    assert res["err"].attrs["greater_is_better"] == 0 and res["inc"].attrs["greater_is_better"] == 1
    np.testing.assert_array_equal(res["both.n_trials"].values[:, :, 0], np.broadcast_to(res["n_test"].values, (3, 2)))
    assert res["n_train"].values.tolist() == [12, 12]
    s = summarize(res, variable="inc")
    assert s.attrs["variable"] == "inc" and s.attrs["test_train_ratio"] == 1.0
    for name in ("p_corrected", "p_corrected_holm", "cohens_d", "diff_ci_low", "t_pvalue"):
        assert s[name].dims == ("model", "other")
    with pytest.raises(ValueError, match="taken by compare"):
        compare(ds, models, cv=2, scoring={"score": "accuracy"})
    with pytest.raises(ValueError, match="variable: 'nope'"):
        summarize(res, variable="nope")
