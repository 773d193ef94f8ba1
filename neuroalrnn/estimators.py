"""scikit-learn estimators around the AL-RNN (and a GRU baseline).

* :class:`ALRNNTaskEstimator`: task training (inputs -> targets, ``neuroalrnn.fit.task``);
  ``score`` is the held-out choice accuracy at the response epoch for choice tasks (datasets
  with ``response_onset`` and ``correct_choice`` trial coords, e.g. ``stimulus_selection``),
  else the negative masked mean squared error of the outputs.
* :class:`GRUTaskEstimator`: the same training and score with a ``torch.nn.GRU`` and a
  linear readout, as a baseline.
* :class:`ALRNNTeacherForcingEstimator`: teacher-forced fitting of recorded ``activity``
  (``neuroalrnn.fit.teacher_forcing``); ``score`` is the negative n-step-ahead prediction
  error on held-out trials, in units z-scored with the training trials' statistics.

``fit(X, y=None)`` takes a TrialDataset, a :class:`Trials` view of one, or arrays:
(trial, time, input) inputs with (trial, time, output) targets ``y`` for task training,
(trial, time, unit) activity for teacher forcing (which ignores ``y``). NaN pads the steps
after a trial's end (every feature NaN from there on); NaN or inf anywhere else is an error.
A 2-D array is one trial (time, feature), with targets (time, output) or (time,): the
scikit-learn (n_samples, n_features) layout read as time steps, so reordering or splitting
its rows changes the outputs. Wrap a TrialDataset in :class:`Trials` to use
``sklearn.model_selection`` splitters, which index X by integer arrays;
``Trials(ds).groups("session")`` gives the groups for ``GroupKFold``.

The task estimators are regressors (``predict`` gives continuous outputs; ``score`` is the
choice accuracy or the negative MSE, not R^2); teacher forcing has no estimator type (it is
unsupervised and predicts trajectories of X itself).

Training runs on ``device`` (``"auto"`` picks CUDA when available); the fitted model
``model_`` is kept on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from neuroalrnn._estimator_input import Trials, _read, as_dataset  # noqa: F401 (as_dataset re-exported)
from neuroalrnn.model import _resolve_device

__all__ = ["Trials", "ALRNNTaskEstimator", "GRUTaskEstimator", "ALRNNTeacherForcingEstimator"]


def _check_choice(ds):
    return "response_onset" in ds.coords and "correct_choice" in ds.coords


class GRUNet(torch.nn.Module):
    """``torch.nn.GRU`` plus a linear readout, with the ALRNN's ``forward`` contract.

    ``forward(inputs) -> (states (B, T, M), outputs (B, T, O))``.
    """

    def __init__(self, n_units: int, n_inputs: int, n_outputs: int, *, seed=None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.gru = torch.nn.GRU(n_inputs, n_units, batch_first=True)
            self.out = torch.nn.Linear(n_units, n_outputs)
        self.n_units, self.n_inputs, self.n_outputs = n_units, n_inputs, n_outputs

    def forward(self, inputs, z0=None):
        x = torch.as_tensor(inputs, dtype=self.out.weight.dtype, device=self.out.weight.device)
        states, _ = self.gru(x, None if z0 is None else z0[None])
        return states, self.out(states)


class _TrialEstimator(BaseEstimator):
    """Input reading, tags, seed and fitted-state checks shared by the estimators."""

    _kind, _feature_dim = "task", "input"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # (trial, time, feature) arrays, and a 2-D array as one (time, feature) trial; allow_nan
        # stays False: NaN only pads a trial's end, anywhere else it is an error
        tags.input_tags.three_d_array = True
        return tags

    def _read_fit(self, X, y):
        """The training TrialDataset; checks ``seed`` (validated in fit, as scikit-learn does)."""
        seed = self.seed
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__} {seed!r}")
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed}")
        return _read(X, y, kind=self._kind)[0]

    def _read_fitted(self, X, y=None) -> tuple[xr.Dataset, bool]:
        """X (and y) of predict/score, with the fitted check and the feature count of the fit."""
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit first")
        ds, one_trial = _read(X, y, kind=self._kind)
        n = ds.sizes[self._feature_dim]
        if n != self.n_features_in_:
            raise ValueError(f"X has {n} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                             "features as input")
        return ds, one_trial


class _TaskEstimatorBase(_TrialEstimator):
    """Shared fit/predict/score of the task-training estimators."""

    def __sklearn_tags__(self):
        from sklearn.utils import RegressorTags  # scikit-learn >= 1.6, the first to call __sklearn_tags__

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"  # continuous outputs, trained on targets y
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        # score is the choice accuracy or the negative MSE, not the R^2 scikit-learn's checks threshold
        tags.regressor_tags = RegressorTags(poor_score=True)
        return tags

    def _build(self, n_inputs, n_outputs, device):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y=None):
        """Train on the trials of ``X`` (targets inside a TrialDataset, or ``y``); returns self."""
        from neuroalrnn.fit.task import fit_task

        ds = self._read_fit(X, y)
        if "targets" not in ds.data_vars:
            raise ValueError(f"y: {type(self).__name__} requires y to be passed, but the target y is None; pass "
                             "targets (trial, time, output) as y, or a TrialDataset with 'targets'")
        device = _resolve_device(self.device)
        model = self._build(ds.sizes["input"], ds.sizes["output"], device)
        result = fit_task(model, ds, loss=self.loss, val_fraction=self.val_fraction, n_steps=self.n_steps,
                          batch_size=self.batch_size, lr=self.lr, lr_decay=self.lr_decay,
                          optimizer=self.optimizer, clip_grad_norm=self.clip_grad_norm,
                          eval_every=self.eval_every, patience=self.patience, select_metric=self.select_metric,
                          seed=self.seed, progress=self.progress)
        self.model_ = model.cpu().eval()
        self.train_result_ = result
        self.history_ = result.history
        self.n_features_in_ = self.n_inputs_ = ds.sizes["input"]
        self.n_outputs_ = ds.sizes["output"]
        return self

    def predict(self, X) -> np.ndarray:
        """Model outputs (trial, time, output), NaN outside each trial's valid steps.

        For one 2-D trial (time, input): (time, output), or (time,) for one output.
        """
        from neuroalrnn.fit.task import task_outputs

        ds, one_trial = self._read_fitted(X)
        out = task_outputs(self.model_, ds).values.astype(float, copy=False)
        if one_trial:
            return out[0, :, 0] if out.shape[2] == 1 else out[0]
        return out

    def score(self, X, y=None) -> float:
        """Choice accuracy at the response epoch (choice tasks), else negative masked MSE."""
        from neuroalrnn.fit.task import _tensors, masked_loss, model_choices

        ds, _ = self._read_fitted(X, y)
        if _check_choice(ds):
            choice = model_choices(self.model_, ds).values
            return float(np.mean(choice == ds["correct_choice"].values))
        if "targets" not in ds.data_vars:
            raise ValueError("y: score needs targets (trial, time, output) as y, or a TrialDataset with 'targets' "
                             "(or a choice task's 'correct_choice')")
        data = _tensors(self.model_, ds)
        with torch.no_grad():
            _, outputs = self.model_(data["inputs"])
            return -float(masked_loss(outputs, data["targets"], data["weight"], "mse"))


class ALRNNTaskEstimator(_TaskEstimatorBase):
    """Task-trained AL-RNN as a scikit-learn estimator.

    Parameters
    ----------
    n_units, n_relu : int
        M latent units, the last P of which are ReLU units.
    init : str
        ALRNN initialisation (see ``neuroalrnn.ALRNN``).
    loss : {"mse", "ce"}
    n_steps, batch_size, lr, lr_decay, optimizer, clip_grad_norm, eval_every, patience
        Passed to ``neuroalrnn.fit.task.fit_task``.
    val_fraction : float
        Fraction of the training trials held out for best-step selection (0: none; needed
        for a single trial, e.g. a 2-D X).
    select_metric : str
        ``"val_loss"`` or ``"val_accuracy"``.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    seed : int
        Seeds the initialisation, the validation split and the batches (a non-negative int,
        checked in ``fit``).
    progress : bool

    Attributes
    ----------
    model_ : neuroalrnn.ALRNN
        The fitted model (on the CPU).
    train_result_, history_
        The trainer's result and its metric history.
    n_features_in_, n_inputs_, n_outputs_ : int
        Input features (= inputs) and outputs seen in ``fit``.

    Examples
    --------
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(32, seed=0)
    >>> est = ALRNNTaskEstimator(n_units=8, n_relu=2, n_steps=5, eval_every=5).fit(ds)
    >>> 0 <= est.score(stimulus_selection(16, seed=1)) <= 1
    True
    """

    def __init__(self, n_units: int = 16, n_relu: int = 2, *, init: str = "reference", loss: str = "mse",
                 n_steps: int = 500, batch_size: int = 64, lr: float = 1e-2, lr_decay: float = 1.0,
                 optimizer: str = "adam", clip_grad_norm: float | None = 1.0, val_fraction: float = 0.2,
                 eval_every: int = 50, patience: int | None = None, select_metric: str = "val_loss",
                 device: str = "cpu", seed: int = 0, progress: bool = False):
        self.n_units, self.n_relu, self.init, self.loss = n_units, n_relu, init, loss
        self.n_steps, self.batch_size, self.lr, self.lr_decay = n_steps, batch_size, lr, lr_decay
        self.optimizer, self.clip_grad_norm, self.val_fraction = optimizer, clip_grad_norm, val_fraction
        self.eval_every, self.patience, self.select_metric = eval_every, patience, select_metric
        self.device, self.seed, self.progress = device, seed, progress

    def _build(self, n_inputs, n_outputs, device):
        from neuroalrnn.model import ALRNN

        return ALRNN(self.n_units, self.n_relu, n_inputs, n_outputs, init=self.init, seed=self.seed,
                     device=device)


class GRUTaskEstimator(_TaskEstimatorBase):
    """Task-trained GRU baseline (``torch.nn.GRU`` + linear readout), trained like the AL-RNN.

    Same parameters as :class:`ALRNNTaskEstimator` without ``n_relu``/``init``.

    Examples
    --------
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> est = GRUTaskEstimator(n_units=4, n_steps=5, eval_every=5).fit(stimulus_selection(16, seed=0))
    >>> type(est.model_).__name__
    'GRUNet'
    """

    def __init__(self, n_units: int = 16, *, loss: str = "mse", n_steps: int = 500, batch_size: int = 64,
                 lr: float = 1e-2, lr_decay: float = 1.0, optimizer: str = "adam",
                 clip_grad_norm: float | None = 1.0, val_fraction: float = 0.2, eval_every: int = 50,
                 patience: int | None = None, select_metric: str = "val_loss", device: str = "cpu",
                 seed: int = 0, progress: bool = False):
        self.n_units, self.loss = n_units, loss
        self.n_steps, self.batch_size, self.lr, self.lr_decay = n_steps, batch_size, lr, lr_decay
        self.optimizer, self.clip_grad_norm, self.val_fraction = optimizer, clip_grad_norm, val_fraction
        self.eval_every, self.patience, self.select_metric = eval_every, patience, select_metric
        self.device, self.seed, self.progress = device, seed, progress

    def _build(self, n_inputs, n_outputs, device):
        if not isinstance(self.n_units, (int, np.integer)) or self.n_units < 1:
            raise ValueError(f"n_units: expected a positive int, got {self.n_units!r}")
        return GRUNet(int(self.n_units), n_inputs, n_outputs, seed=self.seed).to(device)


class ALRNNTeacherForcingEstimator(_TrialEstimator):
    """AL-RNN fitted to recorded activity by teacher forcing, as a scikit-learn estimator.

    Parameters
    ----------
    n_units, n_relu : int
        M latent units, the last P ReLU units (identity observation needs N <= M - P).
    init : str
    forcing, tau, alpha, observation, noise_std, sequence_length
        See ``neuroalrnn.fit.teacher_forcing.fit_teacher_forcing``.
    n_steps, batch_size, lr, lr_decay, optimizer, clip_grad_norm, eval_every, patience
        Trainer settings.
    val : float or None
        Fraction of the training trials held out for best-step selection (None for a single
        trial, e.g. a 2-D X).
    n_ahead : int
        Horizon of the n-step prediction error (selection metric and ``score``).
    device : str
    seed : int
        A non-negative int, checked in ``fit``.
    progress : bool

    Attributes
    ----------
    model_ : neuroalrnn.ALRNN
        The fitted latent model (on the CPU).
    observed_ : neuroalrnn.fit.observation.ObservedALRNN
        The model with its observation model and z-scoring (``free_run``, ``predict_ahead``).
    train_result_, history_
    n_features_in_, n_units_observed_ : int
        Observed units (features of X) seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(40) * 0.3
    >>> x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 10)])
    >>> est = ALRNNTeacherForcingEstimator(6, 2, tau=5, n_steps=10, eval_every=5, n_ahead=5).fit(x)
    >>> est.score(x) <= 0
    True
    """

    def __init__(self, n_units: int = 16, n_relu: int = 2, *, init: str = "reference", forcing: str = "sparse",
                 tau: int | None = None, alpha=None, observation: str = "identity", noise_std: float = 0.0,
                 sequence_length: int | None = None, n_steps: int = 1000, batch_size: int = 16,
                 lr: float = 1e-3, lr_decay: float | None = None, optimizer: str = "radam",
                 clip_grad_norm: float | None = 10.0, val: float | None = 0.2, eval_every: int = 100,
                 patience: int | None = None, n_ahead: int = 10, device: str = "cpu", seed: int = 0,
                 progress: bool = False):
        self.n_units, self.n_relu, self.init, self.forcing = n_units, n_relu, init, forcing
        self.tau, self.alpha, self.observation, self.noise_std = tau, alpha, observation, noise_std
        self.sequence_length, self.n_steps, self.batch_size, self.lr = sequence_length, n_steps, batch_size, lr
        self.lr_decay, self.optimizer, self.clip_grad_norm, self.val = lr_decay, optimizer, clip_grad_norm, val
        self.eval_every, self.patience, self.n_ahead = eval_every, patience, n_ahead
        self.device, self.seed, self.progress = device, seed, progress

    _kind, _feature_dim = "activity", "unit"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = None  # unsupervised: it models X itself and predicts its trajectories
        tags.target_tags.required = False
        return tags

    def fit(self, X, y=None):
        """Fit to the trials' ``activity`` (and ``inputs`` when present); ``y`` is ignored. Returns self."""
        from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
        from neuroalrnn.model import ALRNN

        ds = self._read_fit(X, None)
        n_inputs = ds.sizes["input"] if "inputs" in ds.data_vars else 0
        device = _resolve_device(self.device)
        model = ALRNN(self.n_units, self.n_relu, n_inputs, 0, init=self.init, seed=self.seed, device=device)
        observed = fit_teacher_forcing(model, ds, val=self.val, forcing=self.forcing, tau=self.tau,
                                       alpha=self.alpha, observation=self.observation, noise_std=self.noise_std,
                                       sequence_length=self.sequence_length, n_steps=self.n_steps,
                                       batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                                       lr_decay=self.lr_decay, clip_grad_norm=self.clip_grad_norm,
                                       eval_every=self.eval_every, patience=self.patience,
                                       select_metric="n_step" if self.val else "val_loss",
                                       metrics=("n_step",), n_ahead=self.n_ahead, seed=self.seed,
                                       progress=self.progress)
        self.observed_ = observed.cpu().eval()
        self.model_ = self.observed_.model
        self.train_result_ = observed.train_result_
        self.history_ = self.train_result_.history
        self.n_features_in_ = self.n_units_observed_ = ds.sizes["unit"]
        return self

    def predict(self, X) -> np.ndarray:
        """Free runs (trial, time, unit) from each trial's first observation, driven by its inputs.

        Step 0 is the observation itself; NaN after each trial's end. One 2-D trial
        (time, unit) gives (time, unit).
        """
        ds, one_trial = self._read_fitted(X)
        x = ds["activity"].values
        s = np.nan_to_num(ds["inputs"].values[:, 1:]) if "inputs" in ds.data_vars else None
        runs = self.observed_.free_run(x[:, 0], x.shape[1] - 1, s) if x.shape[1] > 1 else x[:, :0]
        out = np.concatenate([x[:, :1], runs], axis=1)
        out[~ds["mask"].values] = np.nan
        return out[0] if one_trial else out

    def score(self, X, y=None) -> float:
        """Negative ``n_ahead``-step prediction error on the trials of ``X`` (z-scored units); ``y`` is ignored."""
        from neuroalrnn.analysis.dsr import n_step_prediction_error

        ds, _ = self._read_fitted(X)
        obs = self.observed_
        mean, std = obs.mean.numpy().astype(float), obs.std.numpy().astype(float)
        x = (ds["activity"].values - mean) / std
        s = np.nan_to_num(ds["inputs"].values) if "inputs" in ds.data_vars else None

        def predict(x0, n, inputs):
            return (obs.predict_ahead(np.asarray(x0) * std + mean, n, inputs) - mean) / std

        return -float(n_step_prediction_error(predict, x, n=self.n_ahead, inputs=s))
