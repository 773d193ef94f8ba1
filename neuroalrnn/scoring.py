"""Scorers of fitted models on held-out trials: built-in per-condition scores and scikit-learn scorers.

A scorer follows scikit-learn's protocol, ``scorer(estimator, X, y=None) -> float``, with a
fitted estimator of :mod:`neuroalrnn.estimators` and the held-out trials ``X`` (a
:class:`~neuroalrnn.estimators.Trials` view or a TrialDataset; the targets are inside it).
:func:`get_scorer` turns a name, a scikit-learn scorer or a callable into a :class:`Scorer`;
:func:`check_scoring` does so for the ``scoring=`` argument of ``compare``.

Built-in names (``BUILTIN``); each may be restricted to a condition in brackets:

``accuracy``
    Choice accuracy at the response epoch (datasets with ``response_onset`` and
    ``correct_choice`` trial coords: stimulus selection, delayed match, digits).
``mse``
    Mean squared error of the outputs on the scored steps, weighted by ``loss_weight``.
``sign_accuracy``
    Fraction of scored steps with a non-zero target where the output has the target's sign
    (flip-flop, delayed match).
``class_accuracy``
    Fraction of scored steps with a one-hot target whose argmax over the scored outputs is
    the target's class (copy, digits).
``ideal_gap``
    Ideal-observer accuracy minus the model's on the same trials (stimulus selection).
``prediction_error``, ``d_stsp``, ``d_h``
    Teacher-forced models: the ``n_ahead``-step prediction error, the state-space
    divergence and the power-spectrum Hellinger distance between the held-out activity and
    the model's free runs from each trial's first observation (z-scored units).

Conditions: ``[coord=value]`` keeps the trials whose trial coord equals ``value`` (compared
as text: ``accuracy[context=motion]``, ``mse[task=addition]``); ``[name]`` keeps the trials
where the boolean coord ``name`` is true and ``[incongruent]`` those where ``congruent`` is
false. Any other string is a scikit-learn scorer name (``sklearn.metrics.get_scorer``); it and
scikit-learn scorer objects (``make_scorer``) see the scored steps flattened: ``y_true`` and
``y_pred`` of shape (steps,) or (steps, outputs).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

import numpy as np
import xarray as xr

from neuroalrnn.schema import validate

BUILTIN = ("accuracy", "mse", "sign_accuracy", "class_accuracy", "ideal_gap", "prediction_error",
           "d_stsp", "d_h")
_LOWER_IS_BETTER = {"mse", "ideal_gap", "prediction_error", "d_stsp", "d_h"}
_NAME = re.compile(r"^(?P<base>[A-Za-z_]\w*)(\[(?P<cond>[^\[\]]+)\])?$")


class Scorer:
    """A named scorer: ``scorer(estimator, X, y=None) -> float``.

    ``greater_is_better`` says which direction is better (MSE-like scores are not negated:
    they keep their units and say so here).

    Examples
    --------
    >>> s = get_scorer("accuracy[incongruent]")
    >>> s.name, s.greater_is_better
    ('accuracy[incongruent]', True)
    """

    def __init__(self, name: str, fn: Callable, greater_is_better: bool = True):
        self.name, self._fn, self.greater_is_better = name, fn, bool(greater_is_better)

    def __call__(self, estimator, X, y=None):
        return self._fn(estimator, X, y)

    def __repr__(self) -> str:
        return f"Scorer({self.name!r}, greater_is_better={self.greater_is_better})"


def _dataset(X) -> xr.Dataset:
    if isinstance(X, xr.Dataset):
        return validate(X)
    ds = getattr(X, "ds", None)  # a Trials view
    if isinstance(ds, xr.Dataset):
        return ds
    raise TypeError(f"X: expected a TrialDataset or a Trials view of one, got {type(X).__name__}")


def _condition(cond: str | None) -> Callable[[xr.Dataset], np.ndarray] | None:
    """A function ds -> boolean trial selection for a bracketed condition."""
    if cond is None:
        return None
    key, sep, value = (part.strip() for part in cond.partition("="))

    def select(ds):
        name = "congruent" if key == "incongruent" and not sep else key
        if name not in ds.coords or ds[name].dims != ("trial",):
            have = sorted(k for k, v in ds.coords.items() if v.dims == ("trial",) and k != "trial")
            raise ValueError(f"scoring: condition [{cond}] needs the trial coord {name!r}; the data have {have}")
        values = ds[name].values
        if sep:
            return np.array([str(v) == value for v in values.tolist()])
        if values.dtype != bool:
            raise ValueError(f"scoring: condition [{cond}] needs a boolean coord, {name!r} has dtype {values.dtype}; "
                             f"write [{name}=value]")
        return ~values if key == "incongruent" else values.copy()

    return select


def _scored_steps(ds: xr.Dataset) -> np.ndarray:
    """Weights (trial, time, output): loss_weight (or 1) inside the mask, 0 outside."""
    mask = ds["mask"].values
    if "loss_weight" in ds:
        lw = ds["loss_weight"].values
        w = np.where(mask if lw.ndim == 2 else mask[:, :, None], np.nan_to_num(lw), 0.0)
    else:
        w = mask.astype(float)
    return np.repeat(w[:, :, None], ds.sizes["output"], 2) if w.ndim == 2 else w


def _choice_ok(estimator, ds):
    import torch

    from neuroalrnn.fit.task import _choices, _response_steps

    if _response_steps(ds) is None or "correct_choice" not in ds.coords:
        raise ValueError("scoring: 'accuracy' needs a choice task (trial coords 'response_onset' and "
                         "'correct_choice'); use 'mse', 'sign_accuracy' or 'class_accuracy'")
    out = np.nan_to_num(estimator.predict(ds))
    choice = _choices(torch.as_tensor(out), torch.as_tensor(_response_steps(ds))).numpy()
    return choice == ds["correct_choice"].values


def _targets(ds):
    if "targets" not in ds.data_vars:
        raise ValueError("scoring: this score needs 'targets' in the held-out trials")
    return np.nan_to_num(ds["targets"].values)


def _accuracy(estimator, ds):
    return float(_choice_ok(estimator, ds).mean())


def _mse(estimator, ds):
    w = _scored_steps(ds)
    err = (np.nan_to_num(estimator.predict(ds)) - _targets(ds)) ** 2
    return float((w * err).sum() / w.sum()) if w.sum() > 0 else np.nan


def _sign_accuracy(estimator, ds):
    t = _targets(ds)
    use = (_scored_steps(ds) > 0) & (t != 0)
    out = np.nan_to_num(estimator.predict(ds))
    return float((np.sign(out[use]) == np.sign(t[use])).mean()) if use.any() else np.nan


def _class_accuracy(estimator, ds):
    t, w = _targets(ds), _scored_steps(ds)
    steps = (w > 0).any(2) & (t.sum(2) > 0)  # scored steps with a class
    if not steps.any():
        return np.nan
    out = np.where(w > 0, np.nan_to_num(estimator.predict(ds)), -np.inf)  # argmax among the scored outputs
    return float((out.argmax(2)[steps] == np.where(w > 0, t, -np.inf).argmax(2)[steps]).mean())


def _ideal_gap(estimator, ds):
    from neuroalrnn.tasks.stimulus_selection import ideal_observer

    return float(ideal_observer(ds)["overall"]) - _accuracy(estimator, ds)


def _prediction_error(estimator, ds):
    return -float(estimator.score(ds))


def _free_runs(estimator, ds):
    """Held-out activity and the model's free runs from each trial's first step, z-scored by the fit."""
    obs = getattr(estimator, "observed_", None)
    if obs is None:
        raise ValueError("scoring: 'd_stsp' and 'd_h' need a teacher-forced estimator (ALRNNTeacherForcingEstimator)")
    mean, std = obs.mean.numpy().astype(float), obs.std.numpy().astype(float)
    return (ds["activity"].values - mean) / std, (estimator.predict(ds) - mean) / std


def _d_stsp(estimator, ds):
    from neuroalrnn.analysis.dsr import state_space_divergence

    return state_space_divergence(*_free_runs(estimator, ds), seed=0)


def _d_h(estimator, ds):
    from neuroalrnn.analysis.dsr import power_spectrum_error

    return power_spectrum_error(*_free_runs(estimator, ds))


_FUNCTIONS = {"accuracy": _accuracy, "mse": _mse,
              "sign_accuracy": _sign_accuracy, "class_accuracy": _class_accuracy, "ideal_gap": _ideal_gap,
              "prediction_error": _prediction_error, "d_stsp": _d_stsp, "d_h": _d_h}


def _builtin(name: str, base: str, cond: str | None) -> Scorer:
    fn, select = _FUNCTIONS[base], _condition(cond)

    def score(estimator, X, y=None):
        ds = _dataset(X)
        if select is not None:
            keep = select(ds)
            if not keep.any():
                return np.nan
            ds = ds.isel(trial=np.flatnonzero(keep))
        return fn(estimator, ds)

    return Scorer(name, score, base not in _LOWER_IS_BETTER)


def _flat(sk_scorer) -> Callable:
    """A scikit-learn scorer applied to the scored steps, flattened to (steps[, outputs])."""

    from sklearn.base import BaseEstimator, RegressorMixin

    class _Steps(RegressorMixin, BaseEstimator):  # what the scorer calls predict on
        def __init__(self, estimator=None, use=None):
            self.estimator, self.use = estimator, use

        def predict(self, ds):
            out = np.nan_to_num(self.estimator.predict(ds))[self.use]
            return out[:, 0] if out.shape[1] == 1 else out

    def score(estimator, X, y=None):
        ds = _dataset(X)
        use = (_scored_steps(ds) > 0).any(2)
        y_true = _targets(ds)[use]
        return float(sk_scorer(_Steps(estimator, use), ds, y_true[:, 0] if y_true.shape[1] == 1 else y_true))

    return score


def get_scorer(spec, name: str | None = None) -> Scorer:
    """A :class:`Scorer` from a built-in name, a scikit-learn scorer (name or object) or a callable.

    Parameters
    ----------
    spec : str, Scorer, scikit-learn scorer or callable
        A built-in name with an optional condition (see the module docs), a name known to
        ``sklearn.metrics.get_scorer`` (e.g. ``"r2"``), a ``make_scorer`` object, or any
        ``f(estimator, X, y) -> float`` (taken as higher-is-better unless it has a
        ``greater_is_better`` attribute).
    name : str, optional
        The scorer's name (default: the string, or the callable's ``__name__``).

    Examples
    --------
    >>> get_scorer("mse[task=addition]").greater_is_better
    False
    >>> get_scorer("r2").name
    'r2'
    """
    if isinstance(spec, Scorer):
        return spec if name is None else Scorer(name, spec._fn, spec.greater_is_better)
    if isinstance(spec, str):
        match = _NAME.match(spec.strip())
        if match and match["base"] in _FUNCTIONS:
            return _builtin(name or spec.strip(), match["base"], match["cond"])
        from sklearn.metrics import get_scorer as sk_get_scorer

        try:
            sk = sk_get_scorer(spec)
        except ValueError:
            raise ValueError(f"scoring: unknown scorer {spec!r}; expected one of {list(BUILTIN)} (optionally with "
                             "a [condition]) or a scikit-learn scorer name") from None
        return Scorer(name or spec, _flat(sk), True)  # scikit-learn's scorers are all higher-is-better
    if not callable(spec):
        raise TypeError(f"scoring: expected a scorer name, a scikit-learn scorer or a callable, got "
                        f"{type(spec).__name__}")
    from sklearn.metrics._scorer import _BaseScorer

    if isinstance(spec, _BaseScorer):
        return Scorer(name or repr(spec), _flat(spec), True)
    label = name or getattr(spec, "__name__", None)
    if not label or label == "<lambda>":
        raise ValueError("scoring: name this callable (pass a dict {'name': callable})")
    return Scorer(label, spec, getattr(spec, "greater_is_better", True))


def check_scoring(scoring) -> dict[str, Scorer]:
    """Named scorers from the ``scoring`` argument: a name, a list of names/callables, or a dict.

    Examples
    --------
    >>> list(check_scoring(["accuracy", "accuracy[incongruent]"]))
    ['accuracy', 'accuracy[incongruent]']
    >>> list(check_scoring({"hit rate": "accuracy"}))
    ['hit rate']
    """
    if scoring is None:
        return {}
    if isinstance(scoring, Mapping):
        items = [(str(k), v) for k, v in scoring.items()]
    elif isinstance(scoring, (str, Scorer)) or callable(scoring):
        items = [(None, scoring)]
    elif isinstance(scoring, (list, tuple)):
        items = [(None, s) for s in scoring]
    else:
        raise TypeError(f"scoring: expected a name, a callable, a list or a dict of them, got {type(scoring).__name__}")
    out = {}
    for key, spec in items:
        scorer = get_scorer(spec, key)
        if scorer.name in out:
            raise ValueError(f"scoring: the name {scorer.name!r} is used twice")
        out[scorer.name] = scorer
    return out
