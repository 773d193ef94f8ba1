"""Task training of an :class:`neuroalrnn.model.ALRNNEnsemble`: K models, each on its own trials.

``fit_task_ensemble`` is :func:`neuroalrnn.fit.task.fit_task` for K models at once: model k takes
the trials ``train_trials[k]`` of the dataset (e.g. its cross-validation fold), holds out
``val_fraction`` of them with its own seed (``split_trials``, as ``fit_task`` does), and is
trained by :func:`neuroalrnn.fit.ensemble.train_ensemble` with the masked loss of ``fit_task``
(``masked_loss``, mapped over the model dim). Model k's result equals ``fit_task`` on
``ds.isel(trial=train_trials[k])`` with seed ``seeds[k]`` from ``ALRNN(..., seed=seeds[k])``,
to float tolerance.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from neuroalrnn.fit._fused_task import fusable, fused_task_mse
from neuroalrnn.fit.ensemble import train_ensemble
from neuroalrnn.fit.task import LOSSES, _choices, _tensors, masked_loss, split_trials
from neuroalrnn.fit.trainer import TrainResult
from neuroalrnn.model.ensemble import per_model

_KEYS = ("inputs", "targets", "weight", "response", "correct_choice")


def _valid_weight(batch, name="weight"):
    """The batch's loss weights with the padding rows of a short training set zeroed."""
    w = batch[name]
    valid = batch.get("valid")
    return w if valid is None else w * valid.reshape(valid.shape + (1,) * (w.ndim - 2)).to(w.dtype)


def task_objective(loss: str = "mse"):
    """``objective(ensemble, batch) -> (K,)``: ``masked_loss`` of each model's outputs on its own batch.

    Examples
    --------
    >>> import torch
    >>> from neuroalrnn.model import ALRNNEnsemble
    >>> ens = ALRNNEnsemble(4, [0, 2], n_inputs=1, n_outputs=1, seeds=[0, 1])
    >>> batch = {"inputs": torch.ones(2, 3, 5, 1), "targets": torch.zeros(2, 3, 5, 1), "weight": torch.ones(2, 3, 5, 1)}
    >>> tuple(task_objective()(ens, batch).shape)
    (2,)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    per_model_loss = torch.vmap(lambda y, t, w: masked_loss(y, t, w, loss))

    def objective(ensemble, batch):
        if loss == "mse" and fusable(ensemble, batch):  # one compiled step on CPU: the same values, faster
            return fused_task_mse(ensemble, batch["inputs"], batch["targets"], _valid_weight(batch))
        _, outputs = ensemble(batch["inputs"])
        return per_model_loss(outputs, batch["targets"], _valid_weight(batch))

    return objective


# Validation runs in chunks of trials whose states take at most this much: the whole set at once
# (K x trials x T x M) passed glibc's 32 MB mmap threshold at M = 64, so every evaluation paged in
# fresh memory (25,000 page faults, 87 ms each for 15 models of 240 trials, 2026-11-29).
_EVAL_CHUNK_BYTES = 8 << 20


def _outputs(ensemble, inputs):
    """The ensemble's outputs for ``inputs`` (K, B, T, I), run over chunks of trials."""
    K, B, T = inputs.shape[:3]
    step = max(1, _EVAL_CHUNK_BYTES // (K * T * ensemble.n_units * inputs.element_size()))
    return torch.cat([ensemble(inputs[:, s:s + step])[1] for s in range(0, B, step)], 1)


def _evaluate(loss: str):
    """``evaluate(ensemble, batch)``: the validation loss and the choice accuracy at the response epoch,
    {"val_loss": (K,), "val_accuracy": (K,)}, from one run of each model over its validation trials."""
    per_model_loss = torch.vmap(lambda y, t, w: masked_loss(y, t, w, loss))

    def evaluate(ensemble, batch):
        outputs = _outputs(ensemble, batch["inputs"])
        choice = torch.vmap(_choices)(outputs, batch["response"])
        correct = (choice == batch["correct_choice"]).float()  # float32, as fit_task's accuracy
        valid = batch.get("valid")
        accuracy = correct.mean(1) if valid is None else (correct * valid.float()).sum(1) / valid.float().sum(1)
        return {"val_loss": per_model_loss(outputs, batch["targets"], _valid_weight(batch)),
                "val_accuracy": accuracy}

    return evaluate


def fit_task_ensemble(ensemble, ds: xr.Dataset, train_trials=None, *, loss: str = "mse", val_fraction=0.2,
                      n_steps: int = 1000, batch_size: int = 64, lr=1e-2, lr_decay=1.0, optimizer: str = "adam",
                      clip_grad_norm=1.0, eval_every: int = 50, patience=None, select_metric: str = "val_loss",
                      select_mode: str | None = None, checkpoint=None, seeds=0, fingerprint: str = "",
                      progress: bool = False) -> list[TrainResult]:
    """Train the K models of ``ensemble`` (in place) on a TrialDataset's inputs -> targets.

    Parameters
    ----------
    ensemble : neuroalrnn.model.ALRNNEnsemble
    ds : xarray.Dataset
        TrialDataset with ``inputs`` and ``targets``.
    train_trials : sequence of K integer arrays, optional
        Positions (``isel``) of each model's trials in ``ds``; default: all trials for every model.
    val_fraction, lr, lr_decay, clip_grad_norm, patience, seeds
        One value for all models or one per model; as for :func:`neuroalrnn.fit.task.fit_task`.
    loss, n_steps, batch_size, optimizer, eval_every, select_metric, select_mode, progress
        Shared by all models; as for ``fit_task``.
    checkpoint, fingerprint
        See :func:`neuroalrnn.fit.ensemble.train_ensemble`.

    Returns
    -------
    list of TrainResult
        One per model; ``extra`` holds ``train_trials`` and ``val_trials`` (trial labels) and, for a
        model whose loss became NaN/inf, ``error``.

    Examples
    --------
    >>> from neuroalrnn.model import ALRNNEnsemble
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(64, seed=0)
    >>> ens = ALRNNEnsemble(8, [0, 2], n_inputs=5, n_outputs=1, seeds=[0, 1])
    >>> results = fit_task_ensemble(ens, ds, n_steps=20, eval_every=10, seeds=[0, 1])
    >>> [list(r.history.columns) for r in results][0]
    ['lr', 'train_loss', 'val_loss', 'val_accuracy']
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected a TrialDataset (xarray.Dataset), got {type(ds).__name__}")
    K = ensemble.n_models
    n_trials = ds.sizes["trial"]
    if train_trials is None:
        train_trials = [np.arange(n_trials)] * K
    if len(train_trials) != K:
        raise ValueError(f"train_trials: expected one index array per model ({K}), got {len(train_trials)}")
    train_trials = [np.asarray(t) for t in train_trials]
    for k, t in enumerate(train_trials):
        if t.ndim != 1 or t.dtype.kind not in "iu" or len(t) == 0 or t.min() < -n_trials or t.max() >= n_trials:
            raise ValueError(f"train_trials[{k}]: expected a non-empty 1-D array of trial positions in "
                             f"[0, {n_trials}), got {t!r}")
    seeds = per_model("seeds", seeds, K)
    fractions = per_model("val_fraction", val_fraction, K)
    splits = [split_trials(len(t), f, s) for t, f, s in zip(train_trials, fractions, seeds)]
    has_val = [len(va) > 0 for _, va in splits]
    if any(has_val) and not all(has_val):
        raise ValueError("val_fraction: either every model has validation trials or none has")
    data = {k: v for k, v in _tensors(ensemble, ds).items() if k in _KEYS}
    train_index = [t[tr] for t, (tr, _) in zip(train_trials, splits)]
    val_index = [t[va] for t, (_, va) in zip(train_trials, splits)] if all(has_val) else None
    evaluate = _evaluate(loss) if val_index is not None and "response" in data and "correct_choice" in data \
        else None
    if select_mode is None:
        select_mode = "max" if "accuracy" in select_metric else "min"
    results = train_ensemble(ensemble, task_objective(loss), data, train_index, val_index=val_index,
                             evaluate=evaluate, n_steps=n_steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
                             lr_decay=lr_decay, clip_grad_norm=clip_grad_norm, eval_every=eval_every,
                             patience=patience, select_metric=select_metric, select_mode=select_mode,
                             checkpoint=checkpoint, seeds=seeds, fingerprint=fingerprint,
                             batch_keys=("inputs", "targets", "weight"), progress=progress)
    labels = ds["trial"].values
    for k, res in enumerate(results):
        res.extra.update(train_trials=labels[train_index[k]],
                         val_trials=None if val_index is None else labels[val_index[k]])
    return results
