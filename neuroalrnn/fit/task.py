"""Task training of a model on a TrialDataset, and its choices and accuracy.

The loss is masked: it applies where ``mask`` is True, weighted by the
dataset's ``loss_weight`` ((trial, time) or (trial, time, output)) when it has
one (the task generators of ``neuroalrnn.tasks`` mark the scored epochs this
way). NaN padding of the inputs is replaced by 0 before the model sees it.
Choices are read at the response epoch: the mean output over the steps from
``response_onset`` (a trial coord, seconds) to the trial's end; its sign for
one output, its argmax for several.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import xarray as xr

from neuroalrnn.fit.trainer import TrainResult, train
from neuroalrnn.schema import validate
from neuroalrnn.utils import check_random_state

LOSSES = ("mse", "ce")


def _model_dims(model):
    dtype = next(model.parameters()).dtype
    return getattr(model, "n_inputs", None), getattr(model, "n_outputs", None), dtype


def _tensors(model, ds: xr.Dataset, *, need_targets: bool = True) -> dict:
    """Model-ready tensors of a TrialDataset (inputs zero-padded, weights, response steps)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected a TrialDataset (xarray.Dataset), got {type(ds).__name__}")
    validate(ds)
    if "inputs" not in ds:
        raise ValueError("ds: has no 'inputs' (trial, time, input) to drive the model")
    n_in, n_out, dtype = _model_dims(model)
    if n_in is not None and ds.sizes["input"] != n_in:
        raise ValueError(f"inputs: the dataset has {ds.sizes['input']} input features, the model expects "
                         f"n_inputs={n_in}")
    mask = ds["mask"].values
    x = np.where(mask[:, :, None], ds["inputs"].values, 0.0)
    out = {"inputs": torch.as_tensor(x, dtype=dtype), "mask": torch.as_tensor(mask)}
    if need_targets:
        if "targets" not in ds:
            raise ValueError("ds: has no 'targets' (trial, time, output) to fit")
        if n_out is not None and ds.sizes["output"] != n_out:
            raise ValueError(f"targets: the dataset has {ds.sizes['output']} outputs, the model has "
                             f"n_outputs={n_out}")
        y = np.where(mask[:, :, None], ds["targets"].values, 0.0)
        if "loss_weight" in ds:
            lw = ds["loss_weight"]
            if lw.dims not in (("trial", "time"), ("trial", "time", "output")):
                raise ValueError(f"loss_weight: expected dims (trial, time[, output]), got {lw.dims}")
            w = np.where(mask if lw.ndim == 2 else mask[:, :, None], lw.values, 0.0)
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("loss_weight: expected finite non-negative weights inside the mask")
        else:
            w = mask.astype(float)
        if w.ndim == 2:
            w = np.repeat(w[:, :, None], ds.sizes["output"], axis=2)
        if not (w > 0).any():
            raise ValueError("mask/loss_weight: they hide every step; there is nothing to fit")
        out["targets"] = torch.as_tensor(y, dtype=dtype)
        out["weight"] = torch.as_tensor(w, dtype=dtype)
    resp = _response_steps(ds)
    if resp is not None:
        out["response"] = torch.as_tensor(resp, dtype=dtype)
    if "correct_choice" in ds.coords:
        out["correct_choice"] = torch.as_tensor(ds["correct_choice"].values.astype(float), dtype=dtype)
    return out


def _response_steps(ds):
    """(trial, time) weights averaging the response epoch, or None."""
    if "response_onset" not in ds.coords:
        return None
    t = ds["time"].values
    resp = (t[None, :] >= ds["response_onset"].values[:, None] - 1e-9 * ds.attrs["dt"]) & ds["mask"].values
    empty = ~resp.any(1)
    if empty.any():
        raise ValueError(f"response_onset: trial {ds['trial'].values[np.argmax(empty)].item()!r} has no valid step "
                         "at or after its response onset")
    return resp / resp.sum(1, keepdims=True)


def masked_loss(outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, loss: str = "mse"):
    """Weighted MSE or cross-entropy over (trial, time, output) tensors.

    ``mse``: sum(w (y - t)^2) / sum(w). ``ce`` with one output: binary
    cross-entropy of the logit ``y`` against ``t > 0`` on the weighted steps
    whose target is non-zero (targets +1/-1); with several outputs: soft-label
    cross-entropy over the output dim on the weighted steps whose targets
    sum to a positive value (one-hot classes), weighted by the mean weight.

    Examples
    --------
    >>> import torch
    >>> y = torch.zeros(1, 2, 1); t = torch.ones(1, 2, 1); w = torch.tensor([[[1.0], [0.0]]])
    >>> float(masked_loss(y, t, w))
    1.0
    """
    if loss == "mse":
        return (weight * (outputs - targets) ** 2).sum() / weight.sum().clamp_min(1e-12)
    if loss != "ce":
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if outputs.shape[-1] == 1:
        w = weight * (targets != 0)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(outputs, (targets > 0).to(outputs.dtype),
                                                                   reduction="none")
        return (w * bce).sum() / w.sum().clamp_min(1e-12)
    total = targets.sum(-1)
    w = weight.mean(-1) * (total > 0)
    p = targets / total.clamp_min(1e-12).unsqueeze(-1)
    ce = -(p * torch.log_softmax(outputs, -1)).sum(-1)
    return (w * ce).sum() / w.sum().clamp_min(1e-12)


def _choices(outputs, response):
    mean = (outputs * response.unsqueeze(-1)).sum(1)  # (trial, output)
    if mean.shape[-1] == 1:
        return torch.where(mean[:, 0] >= 0, 1.0, -1.0).to(outputs.dtype)
    return mean.argmax(-1).to(outputs.dtype)


def split_trials(n_trials: int, val_fraction: float, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of trial indices into (train, val).

    Examples
    --------
    >>> tr, va = split_trials(10, 0.2, seed=0)
    >>> len(tr), len(va), sorted(np.r_[tr, va].tolist()) == list(range(10))
    (8, 2, True)
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    perm = check_random_state(seed).permutation(n_trials)
    n_val = int(round(val_fraction * n_trials))
    if val_fraction > 0 and not 1 <= n_val < n_trials:
        raise ValueError(f"val_fraction: {val_fraction} of {n_trials} trials leaves an empty train or val set")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def fit_task(model: torch.nn.Module, ds: xr.Dataset, *, loss: str = "mse", val_fraction: float = 0.2,
             val: xr.Dataset | None = None, n_steps: int = 1000, batch_size: int = 64, lr: float = 1e-2,
             lr_decay: float = 1.0, optimizer: str = "adam", clip_grad_norm: float | None = 1.0,
             eval_every: int = 50, patience: int | None = None, select_metric: str = "val_loss",
             select_mode: str | None = None, checkpoint=None, seed: int = 0, progress: bool = True,
             **train_kwargs) -> TrainResult:
    """Train ``model`` (in place) on a TrialDataset's inputs -> targets with a masked loss.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(inputs) -> (states, outputs)`` (e.g. ``neuroalrnn.ALRNN``) whose
        ``n_inputs``/``n_outputs`` match the dataset's ``input``/``output`` dims.
    ds : xarray.Dataset
        TrialDataset with ``inputs`` and ``targets`` (optionally ``loss_weight``).
    loss : {"mse", "ce"}
        See ``masked_loss``.
    val_fraction : float
        Fraction of trials held out (seeded split) for validation, early
        stopping and best-checkpoint selection; ignored when ``val`` is given.
    val : xarray.Dataset, optional
        An explicit validation TrialDataset.
    select_metric : str
        ``val_loss`` or, for datasets with ``correct_choice`` and
        ``response_onset`` coords, ``val_accuracy`` (choices at the response
        epoch). ``select_mode`` defaults to "max" for accuracies, else "min".
    n_steps, batch_size, lr, lr_decay, optimizer, clip_grad_norm, eval_every, patience, checkpoint, seed, progress
        Passed to ``neuroalrnn.fit.trainer.train``.

    Returns
    -------
    TrainResult
        ``extra`` holds ``train_trials`` and ``val_trials`` (trial labels).

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(64, seed=0)
    >>> model = ALRNN(8, 2, n_inputs=5, n_outputs=1, seed=0)
    >>> res = fit_task(model, ds, n_steps=20, eval_every=10, progress=False)
    >>> list(res.history.columns)
    ['lr', 'train_loss', 'val_loss', 'val_accuracy']
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds: expected a TrialDataset (xarray.Dataset), got {type(ds).__name__}")
    if val is None:
        tr_idx, va_idx = split_trials(ds.sizes["trial"], val_fraction, seed)
        train_ds = ds.isel(trial=tr_idx)
        val_ds = ds.isel(trial=va_idx) if len(va_idx) else None
    else:
        train_ds, val_ds = ds, val
    data = _tensors(model, train_ds)
    val_data = _tensors(model, val_ds) if val_ds is not None else None

    def objective(m, batch):
        _, outputs = m(batch["inputs"])
        return masked_loss(outputs, batch["targets"], batch["weight"], loss)

    evaluate = None
    if val_data is not None and "response" in val_data and "correct_choice" in val_data:
        def evaluate(m, batch):
            _, outputs = m(batch["inputs"])
            choice = _choices(outputs, batch["response"])
            return {"val_accuracy": float((choice == batch["correct_choice"]).float().mean())}
    if select_mode is None:
        select_mode = "max" if "accuracy" in select_metric else "min"
    result = train(model, objective, data, val=val_data, evaluate=evaluate, n_steps=n_steps,
                   batch_size=batch_size, optimizer=optimizer, lr=lr, lr_decay=lr_decay,
                   clip_grad_norm=clip_grad_norm, eval_every=eval_every, patience=patience,
                   select_metric=select_metric, select_mode=select_mode, checkpoint=checkpoint, seed=seed,
                   progress=progress, **train_kwargs)
    result.extra.update(train_trials=train_ds["trial"].values,
                        val_trials=None if val_ds is None else val_ds["trial"].values)
    return result


def task_outputs(model: torch.nn.Module, ds: xr.Dataset, *, batch_size: int = 1024) -> xr.DataArray:
    """Model outputs (trial, time, output) on a TrialDataset, NaN outside the mask.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import addition
    >>> ds = addition(3, T=10, seed=0)
    >>> task_outputs(ALRNN(4, 1, n_inputs=2, n_outputs=1, seed=0), ds).dims
    ('trial', 'time', 'output')
    """
    data = _tensors(model, ds, need_targets=False)
    n_out = getattr(model, "n_outputs", None)
    chunks = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, ds.sizes["trial"], batch_size):
                chunks.append(model(data["inputs"][start:start + batch_size])[1].cpu().double().numpy())
    finally:
        model.train(was_training)
    y = np.concatenate(chunks)
    y = np.where(ds["mask"].values[:, :, None], y, np.nan)
    names = ds["output"].values if "output" in ds.dims and ds.sizes["output"] == y.shape[2] else np.arange(n_out or y.shape[2])
    trial_coords = {k: v for k, v in ds.coords.items() if v.dims[:1] == ("trial",) and v.ndim == 1}
    return xr.DataArray(y, dims=("trial", "time", "output"), name="outputs",
                        coords={**trial_coords, "time": ds["time"].values, "output": names})


def model_choices(model: torch.nn.Module, ds: xr.Dataset) -> xr.DataArray:
    """The model's choice per trial, read at the response epoch (needs a ``response_onset`` coord).

    +1/-1 (the sign of the mean output over the response epoch) for one
    output, the argmax output index for several; a DataArray on ``trial``
    carrying the dataset's trial coords (for psychometric curves).

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(6, seed=0)
    >>> choice = model_choices(ALRNN(8, 2, n_inputs=5, n_outputs=1, seed=0), ds)
    >>> choice.dims, set(choice.values.tolist()) <= {-1.0, 1.0}
    (('trial',), True)
    """
    resp = _response_steps(ds)
    if resp is None:
        raise ValueError("ds: needs a 'response_onset' trial coord (seconds) to read out choices")
    out = task_outputs(model, ds)
    choice = _choices(torch.as_tensor(np.nan_to_num(out.values)), torch.as_tensor(resp)).numpy()
    return xr.DataArray(choice, dims="trial", coords={k: v for k, v in out.coords.items() if k == "trial"
                                                       or v.dims == ("trial",)}, name="choice")


def task_accuracy(model: torch.nn.Module, ds: xr.Dataset) -> xr.Dataset:
    """Accuracy of the model's choices on stimulus-selection trials.

    Returns ``neuroalrnn.tasks.choice_accuracy`` of ``model_choices``:
    ``accuracy`` (ctx, coherence) with coherence the unsigned coherence of the
    cued stream, scalars ``overall``, ``congruent_accuracy``,
    ``incongruent_accuracy``, and per-trial ``choice``/``correct`` with all
    trial coords (e.g. ``neuroalrnn.analysis.behavior.psychometric(acc,
    "coh_motion", "choice", by="context")``).

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(20, seed=0)
    >>> acc = task_accuracy(ALRNN(8, 2, n_inputs=5, n_outputs=1, seed=0), ds)
    >>> acc["accuracy"].dims
    ('ctx', 'coherence')
    """
    from neuroalrnn.tasks.stimulus_selection import choice_accuracy

    return choice_accuracy(ds, model_choices(model, ds).values)
