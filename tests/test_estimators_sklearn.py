"""scikit-learn's own estimator checks (``parametrize_with_checks``) on the three estimators.

The checks feed 2-D arrays, which the estimators read as one trial (time, feature); the
instances are tiny (a few units, two training steps, no validation split: one trial cannot be
split) so the whole run stays within seconds.
"""

import pytest

pytest.importorskip("sklearn", minversion="1.8")  # Tags dataclasses (1.6) and xfail_strict (1.8)

from sklearn.base import is_regressor  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from neuroalrnn.estimators import ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, GRUTaskEstimator  # noqa: E402

TINY = dict(n_steps=2, eval_every=2, batch_size=4)
ESTIMATORS = [
    ALRNNTaskEstimator(n_units=4, n_relu=1, val_fraction=0.0, **TINY),
    GRUTaskEstimator(n_units=4, val_fraction=0.0, **TINY),
    # identity observation needs M - P >= the checks' 10 features; tau=2 fits their 10-step trials
    ALRNNTeacherForcingEstimator(n_units=12, n_relu=1, tau=2, val=None, **TINY),
]

ROWS_ARE_TIME_STEPS = ("a 2-D X is one trial (time, feature): its rows are the time steps of one recurrent "
                       "run, so reordering or splitting them changes the outputs")
EXPECTED_FAILED = {
    "check_methods_sample_order_invariance": ROWS_ARE_TIME_STEPS,
    "check_methods_subset_invariance": ROWS_ARE_TIME_STEPS,
}
TEACHER_FORCING_FAILED = {
    "check_fit2d_1sample": "a one-step trial cannot be teacher forced (there is no next step to predict); the "
                           "error names the trial and tau rather than scikit-learn's '1 sample' phrases",
}


def expected_failed_checks(estimator) -> dict:
    if isinstance(estimator, ALRNNTeacherForcingEstimator):
        return {**EXPECTED_FAILED, **TEACHER_FORCING_FAILED}
    return EXPECTED_FAILED


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_tags_declare_trials(estimator):
    tags = get_tags(estimator)
    assert tags.input_tags.three_d_array and tags.input_tags.two_d_array
    assert not tags.input_tags.sparse and not tags.input_tags.allow_nan
    supervised = not isinstance(estimator, ALRNNTeacherForcingEstimator)
    assert is_regressor(estimator) == supervised and tags.target_tags.required == supervised
    assert tags.estimator_type == ("regressor" if supervised else None)
