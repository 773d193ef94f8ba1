"""A generic, resumable training loop for torch models.

``train`` draws mini-batches by a seeded permutation per epoch (stateless in
the step, so a resumed run draws the same batches), steps Adam or RAdam with
an exponential learning-rate decay and gradient-norm clipping, evaluates on a
validation set every ``eval_every`` steps, keeps the best parameters by a
chosen metric, stops early after ``patience`` evaluations without
improvement, and writes atomic checkpoints (state dicts only) from which a
killed run resumes to the same result on CPU. A checkpoint remembers the
settings, the data and the initial parameters it was written for, and a
resume that changes any of them is refused (it would silently continue the
old run). A non-finite loss stops training with the history so far and the
best validated parameters kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from neuroalrnn._threads import threads_for
from neuroalrnn.utils import atomic_write, check_number, progress_bar, remove_stale_temps

from neuroalrnn.fit._checkpoint import (CHECKPOINT_VERSION, RESUME_SETTINGS, fingerprint as _fingerprint,  # noqa: F401
                                        load_checkpoint as _load_checkpoint, save_checkpoint as _save_checkpoint)


class NonFiniteLossError(FloatingPointError):
    """The training loss (or the parameters) became NaN or inf.

    ``result`` is the partial :class:`TrainResult` (history up to the failure, best
    step) and ``model`` the model, which holds the best validated parameters when
    there are any (with ``restore_best``), else those of the last finite loss.
    """

    def __init__(self, message, result=None, model=None):
        super().__init__(message)
        self.result = result
        self.model = model


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per evaluation, indexed by ``step`` (updates done), with
        ``train_loss`` (mean since the last evaluation), ``lr``, ``val_loss``
        and any metrics from ``evaluate``.
    best_step : int or None
        Step whose parameters the model holds at the end (None without validation).
    best_metric : float
    n_steps : int
        Updates done.
    stopped_early : bool
    elapsed : float
        Seconds spent in this call.
    """

    history: pd.DataFrame
    best_step: int | None
    best_metric: float
    n_steps: int
    stopped_early: bool
    elapsed: float
    checkpoint: str | None = None
    extra: dict = field(default_factory=dict)


def _check_data(name, data):
    if data is None:
        return None, 0
    if not isinstance(data, Mapping) or not data:
        raise TypeError(f"{name}: expected a non-empty dict of torch tensors, got {type(data).__name__}")
    sizes = set()
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}[{key!r}]: expected a torch.Tensor, got {type(value).__name__}")
        if value.ndim == 0:
            raise ValueError(f"{name}[{key!r}]: expected a trial-major tensor, got a scalar")
        sizes.add(value.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"{name}: tensors must share their first (trial) dim, got sizes {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise ValueError(f"{name}: no trials")
    return dict(data), n


def _permutation(seed, epoch, n):
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=gen)


def _batch(data, idx, device):
    return {k: v[idx].to(device) for k, v in data.items()}


def _clone_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(model: torch.nn.Module, objective: Callable, train: Mapping[str, torch.Tensor], *,
          val: Mapping[str, torch.Tensor] | None = None, evaluate: Callable | None = None,
          n_steps: int = 1000, batch_size: int = 32, optimizer: str = "adam", lr: float = 1e-3,
          lr_decay: float = 1.0, weight_decay: float = 0.0, clip_grad_norm: float | None = 1.0,
          eval_every: int = 50, patience: int | None = None, select_metric: str = "val_loss",
          select_mode: str = "min", restore_best: bool = True, checkpoint: str | Path | None = None,
          checkpoint_every: int | None = None, seed: int = 0, progress: bool = True) -> TrainResult:
    """Train ``model`` by mini-batch gradient descent on ``objective``.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    objective : callable
        ``objective(model, batch) -> scalar loss tensor``; ``batch`` is a dict
        of tensors (a subset of the trials of ``train``, on the model's device).
    train, val : dict of torch.Tensor
        Trial-major tensors sharing their first dim.
    evaluate : callable, optional
        ``evaluate(model, val) -> dict[str, float]`` of extra validation
        metrics (called under ``torch.no_grad``). ``val_loss`` (the objective on
        all of ``val``) is always recorded when ``val`` is given.
    n_steps : int
        Total number of updates (a resumed run continues up to it).
    batch_size : int
    optimizer : {"adam", "radam"}
    lr, lr_decay : float
        Initial learning rate and its per-step exponential decay factor.
    weight_decay : float
    clip_grad_norm : float or None
        Clip the global gradient norm to this value.
    eval_every : int
        Steps between evaluations (history rows and checkpoints).
    patience : int or None
        Stop after this many evaluations without improvement of ``select_metric``.
    select_metric, select_mode : str
        Metric (a history column, e.g. ``val_loss``) and "min"/"max" to pick
        the best parameters; with ``restore_best`` the model ends with them.
    checkpoint : path, optional
        File to write atomically every ``checkpoint_every`` steps (default:
        every evaluation) and at the end; if it exists, training resumes from it.
        Resuming needs the same settings (those in ``RESUME_SETTINGS``), the same
        ``train`` and ``val`` tensors and a model with the same initial
        parameters (or the parameters this checkpoint left it with); otherwise a
        ValueError names what changed.
    seed : int
        Seeds the batch order and torch's global RNG (for the model's own randomness).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        When the loss or the updated parameters are NaN/inf. The error's
        ``result`` holds the history so far; the model holds the best validated
        parameters (with ``restore_best``), or else those that last gave a finite loss.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(64, 3); y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    >>> net = torch.nn.Linear(3, 1)
    >>> mse = lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean()
    >>> res = train(net, mse, {"x": x, "y": y}, n_steps=300, lr=0.05, progress=False)
    >>> bool(res.history["train_loss"].iloc[-1] < 1e-3)
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(objective):
        raise TypeError("objective: expected a callable objective(model, batch) -> loss")
    train, n_train = _check_data("train", train)
    val, _ = _check_data("val", val)
    checkpoint_every = eval_every if checkpoint_every is None else checkpoint_every
    for name, value in (("n_steps", n_steps), ("batch_size", batch_size), ("eval_every", eval_every),
                        ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, (int, np.integer))
                                 or patience < 1):
        raise ValueError(f"patience: expected None or a positive integer, got {patience!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__} {seed!r}")
    if select_mode not in ("min", "max"):
        raise ValueError(f"select_mode: expected 'min' or 'max', got {select_mode!r}")
    lr = check_number("lr", lr, 0, open_low=True)
    lr_decay = check_number("lr_decay", lr_decay, 0, 1, open_low=True)
    weight_decay = check_number("weight_decay", weight_decay, 0)
    clip_grad_norm = check_number("clip_grad_norm", clip_grad_norm, 0, open_low=True, optional=True)
    opts = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}
    if optimizer not in opts:
        raise ValueError(f"optimizer: expected one of {sorted(opts)}, got {optimizer!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no trainable parameters")
    opt = opts[optimizer](params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    device = params[0].device
    batch_size = min(int(batch_size), n_train)
    per_epoch = n_train // batch_size
    checkpoint_every = int(checkpoint_every)
    sign = 1.0 if select_mode == "min" else -1.0

    state = {"step": 0, "history": [], "best_step": None, "best_value": float("inf"), "bad_evals": 0,
             "stopped_early": False, "loss_sum": 0.0, "loss_count": 0}
    best_state = None
    fingerprint = None
    if checkpoint is not None:
        settings = {"optimizer": optimizer, "lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                    "clip_grad_norm": clip_grad_norm, "batch_size": int(batch_size), "eval_every": int(eval_every),
                    "select_metric": select_metric, "select_mode": select_mode, "seed": int(seed)}
        fingerprint = _fingerprint(settings, model, train, val)  # before a checkpoint overwrites the model
        remove_stale_temps(Path(checkpoint).parent)  # what a killed run's interrupted write left
    if checkpoint is not None and Path(checkpoint).exists():
        best_state = _load_checkpoint(checkpoint, model, opt, sched, state, fingerprint)
    else:
        torch.manual_seed(int(seed))

    last_good = [p.detach().clone() for p in params]
    t0 = time.perf_counter()
    bar = progress_bar(int(n_steps), desc="train", unit="step", enabled=progress, initial=state["step"])

    def save():
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, sched, state, best_state, fingerprint)

    steps = max((v.shape[1] for v in train.values() if v.ndim > 1), default=1)
    work = batch_size * steps * sum(p.numel() for p in params)  # ~ batch * T * M^2 per step
    with threads_for(work):  # one thread for small models: torch's threads busy-wait on tiny ops
        try:
            while state["step"] < n_steps and not state["stopped_early"]:
                step = state["step"]
                epoch, pos = divmod(step, per_epoch)
                idx = _permutation(seed, epoch, n_train)[pos * batch_size:(pos + 1) * batch_size]
                model.train()
                loss = objective(model, _batch(train, idx, device))
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    raise TypeError("objective: expected a scalar torch tensor as the loss")
                if not torch.isfinite(loss):
                    _restore(params, last_good)
                    raise _failure(f"the loss is {loss.item()} at step {step}", model, state, best_state,
                                   restore_best, sign, t0, checkpoint)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
                for buf, p in zip(last_good, params):
                    buf.copy_(p.detach())
                opt.step()
                sched.step()
                if not all(torch.isfinite(p).all() for p in params):
                    _restore(params, last_good)
                    raise _failure(f"the parameters became NaN/inf at step {step} (non-finite gradients)", model,
                                   state, best_state, restore_best, sign, t0, checkpoint)
                state["step"] = step + 1
                state["loss_sum"] += float(loss.detach())
                state["loss_count"] += 1
                bar.update(1)
                if state["step"] % eval_every == 0 or state["step"] == n_steps:
                    row = _evaluate(model, objective, val, evaluate, state, opt)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "step"}, refresh=False)
                    if val is not None or select_metric in row:
                        if select_metric not in row:
                            raise ValueError(f"select_metric: {select_metric!r} is not among the metrics {sorted(row)}")
                        value = sign * row[select_metric]
                        if value < state["best_value"]:
                            state.update(best_value=value, best_step=state["step"], bad_evals=0)
                            best_state = _clone_state(model)
                        else:
                            state["bad_evals"] += 1
                            if patience is not None and state["bad_evals"] >= patience:
                                state["stopped_early"] = True
                if state["step"] % checkpoint_every == 0 or state["step"] == n_steps or state["stopped_early"]:
                    save()
        finally:
            bar.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return _result(state, sign, t0, checkpoint)


def _result(state, sign, t0, checkpoint) -> TrainResult:
    history = pd.DataFrame(state["history"]).set_index("step") if state["history"] else pd.DataFrame()
    best_metric = sign * state["best_value"] if state["best_step"] is not None else float("nan")
    return TrainResult(history, state["best_step"], best_metric, state["step"], state["stopped_early"],
                       time.perf_counter() - t0, None if checkpoint is None else str(checkpoint))


def _failure(what, model, state, best_state, restore_best, sign, t0, checkpoint) -> NonFiniteLossError:
    """The error of a non-finite loss, with the partial result; the model gets the best parameters."""
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
        holds = f"the best validated parameters (step {state['best_step']})"
    else:
        holds = f"the parameters of the last finite loss (step {state['step']})"
    return NonFiniteLossError(f"{what}; the model holds {holds} (try a lower lr or clip_grad_norm)",
                              _result(state, sign, t0, checkpoint), model)


def _restore(params, saved):
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)


def _evaluate(model, objective, val, evaluate, state, opt):
    row = {"step": state["step"], "lr": float(opt.param_groups[0]["lr"]),
           "train_loss": state["loss_sum"] / max(state["loss_count"], 1)}
    state["loss_sum"], state["loss_count"] = 0.0, 0
    if val is not None:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            batch = {k: v.to(device) for k, v in val.items()}
            row["val_loss"] = float(objective(model, batch))
            if evaluate is not None:
                row.update({k: float(v) for k, v in evaluate(model, batch).items()})
    state["history"].append(row)
    return row
