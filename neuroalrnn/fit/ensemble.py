"""Train K models stacked on a leading model dim as one computation (an ensemble).

``train_ensemble`` is :func:`neuroalrnn.fit.trainer.train` for a module whose parameters are
(K, ...) stacks (e.g. :class:`neuroalrnn.model.ALRNNEnsemble`): every model k draws its own
mini-batches from its own training trials with its own seed (the same batches ``train`` draws
for that seed: a seeded permutation per epoch), takes its own Adam/RAdam update with its own
learning rate, decay and gradient-norm clipping, is evaluated on its own validation trials, keeps
its own best parameters and stops early on its own; a model that stops is frozen while the others
go on. One step is one forward and one backward for all K models, one stacked optimizer update
and one finiteness check of the (K,) losses and gradient norms. A model whose loss or gradients
become NaN/inf is frozen (at its best validated parameters, else those of its last finite loss, as
``train`` leaves a model when it raises ``NonFiniteLossError``) and its result names the error; the
others continue.
Atomic checkpoints hold everything, so a killed run resumes to the same result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from neuroalrnn._threads import check_cancelled, threads_for
from neuroalrnn.fit._checkpoint import ensemble_changes, ensemble_fingerprint
from neuroalrnn.fit._stacked import StackedOptimizer, clip_coefficients, model_norms
from neuroalrnn.fit.trainer import TrainResult, _permutation
from neuroalrnn.model.ensemble import per_model
from neuroalrnn.utils import atomic_write, check_number, progress_bar, remove_stale_temps

CHECKPOINT_FORMAT = "neuroalrnn.ensemble/2"  # /2: the fingerprint covers settings, data and trials


def _positive_int(name, value, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected {'None or ' if optional else ''}a positive integer, got {value!r}")
    return int(value)


class _Batches:
    """Per model, the trial indices of each step's mini-batch, as ``train`` draws them for its seed."""

    def __init__(self, train_index, batch_size, seeds, device):
        self.index = [torch.as_tensor(np.asarray(ix), dtype=torch.long) for ix in train_index]
        self.n = np.array([len(ix) for ix in self.index])
        if (self.n == 0).any():
            raise ValueError(f"train_index: model {int(np.argmin(self.n))} has no training trials")
        self.size = np.minimum(batch_size, self.n)
        self.per_epoch = self.n // self.size
        self.seeds, self.K = [int(s) for s in seeds], len(self.index)
        width = int(self.size.max())
        self.table = torch.zeros(self.K, int(self.per_epoch.max()), width, dtype=torch.long, device=device)
        self.epoch = np.full(self.K, -1)
        self.same_epochs = bool((self.per_epoch == self.per_epoch[0]).all())
        self.valid = None if (self.size == width).all() else \
            torch.arange(width, device=device)[None, :] < torch.as_tensor(self.size, device=device)[:, None]
        self.rows = torch.arange(self.K, device=device)

    def __call__(self, step: int) -> torch.Tensor:
        epochs, pos = np.divmod(step, self.per_epoch)
        for k in np.flatnonzero(epochs != self.epoch):  # once per epoch and model
            n, b, e = int(self.n[k]), int(self.size[k]), int(self.per_epoch[k])
            perm = _permutation(self.seeds[k], int(epochs[k]), n)[: e * b].reshape(e, b)
            self.table[k, :e, :b] = self.index[k][perm].to(self.table.device)
        self.epoch = epochs
        if self.same_epochs:
            return self.table[:, int(pos[0])]
        return self.table[self.rows, torch.as_tensor(pos, device=self.table.device)]


def padded_index(index, device):
    """Trial-index lists of different lengths -> ((K, n_max) indices, (K, n_max) valid mask or None)."""
    n = [len(ix) for ix in index]
    width = max(n)
    out = torch.zeros(len(index), width, dtype=torch.long)
    for k, ix in enumerate(index):
        out[k, : n[k]] = torch.as_tensor(np.asarray(ix), dtype=torch.long)
    valid = None if min(n) == width else torch.arange(width)[None, :] < torch.as_tensor(n)[:, None]
    return out.to(device), None if valid is None else valid.to(device)


def gather(data: Mapping[str, torch.Tensor], idx: torch.Tensor, valid: torch.Tensor | None) -> dict:
    """Per-model batches: every tensor of ``data`` indexed by (K, b) trial indices -> (K, b, ...)."""
    rows = idx.reshape(-1)  # index_select of the flat rows: 3x faster on CPU than value[idx]
    batch = {key: value.index_select(0, rows).reshape(idx.shape + value.shape[1:]) for key, value in data.items()}
    if valid is not None:
        batch["valid"] = valid
    return batch


def train_ensemble(module: torch.nn.Module, objective: Callable, data: Mapping[str, torch.Tensor],
                   train_index: Sequence, *, val_index: Sequence | None = None, val_data: Mapping | None = None,
                   evaluate: Callable | None = None,
                   n_steps: int = 1000, batch_size: int = 32, optimizer: str = "adam", lr=1e-3, lr_decay=1.0,
                   weight_decay=0.0, clip_grad_norm=1.0, eval_every: int = 50, patience=None,
                   select_metric: str = "val_loss", select_mode: str = "min", restore_best: bool = True,
                   checkpoint=None, checkpoint_every: int | None = None, seeds=0, fingerprint: str = "",
                   batch_keys: Sequence[str] | None = None, progress: bool = False) -> list[TrainResult]:
    """Train the K models of ``module`` at once; one :class:`TrainResult` per model.

    Parameters
    ----------
    module : torch.nn.Module
        Every trainable parameter has the model dim first (K, ...); trained in place.
    objective : callable
        ``objective(module, batch) -> (K,) losses``. ``batch`` maps the keys of ``data`` to
        (K, b, ...) tensors (model k's trials) and, when models have batches of different sizes
        (a training set smaller than ``batch_size``), ``"valid"`` (K, b) marks the real trials.
    data : dict of torch.Tensor
        Trial-major tensors of every trial any model uses (on the module's device).
    train_index, val_index : sequence of K index arrays
        Model k's training (and validation) trials: rows of ``data`` (of ``val_data`` for
        ``val_index`` when it is given). ``val_index`` None: no validation.
    val_data : dict of torch.Tensor, optional
        A separate table of validation trials.
    evaluate : callable, optional
        ``evaluate(module, val_batch) -> dict`` of (K,) metrics, called under ``torch.no_grad``;
        ``val_loss`` (the objective on all validation trials) is always recorded with validation:
        computed by ``evaluate`` when it returns one (from the same run as its other metrics),
        else by the objective.
    n_steps, batch_size, optimizer, eval_every, select_metric, select_mode, restore_best, checkpoint_every
        As for :func:`neuroalrnn.fit.trainer.train`, shared by all models.
    lr, lr_decay, weight_decay, clip_grad_norm, patience, seeds
        A value for all models or one per model (as for ``train``).
    checkpoint : path, optional
        Written atomically every ``checkpoint_every`` steps (default: every evaluation) and at the
        end; if it exists, training resumes from it (its ``fingerprint`` must match).
    fingerprint : str
        A label of the run. A checkpoint records it with the settings, a hash of the data, each
        model's trials and the seeds; a resume where any of them differs is refused, naming it.
    batch_keys : sequence of str, optional
        The keys of ``data`` the training objective reads (default: all); validation batches get all.
    progress : bool

    Returns
    -------
    list of TrainResult
        ``extra["error"]`` names the failure of a model whose loss or gradients became NaN/inf.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(64, 3); y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    >>> w = torch.nn.Parameter(torch.zeros(2, 3, 1))           # two linear models
    >>> module = torch.nn.Module(); module.w = w
    >>> mse = lambda m, b: ((b["x"] @ m.w - b["y"]) ** 2).mean((1, 2))
    >>> res = train_ensemble(module, mse, {"x": x, "y": y}, [range(64), range(32)], n_steps=300, lr=[0.05, 0.1])
    >>> [bool(r.history["train_loss"].iloc[-1] < 1e-3) for r in res]
    [True, True]
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("module: has no trainable parameters")
    K = len(train_index)
    if any(p.ndim == 0 or p.shape[0] != K for p in params):
        raise ValueError(f"module: every trainable parameter needs the model dim first ({K} models)")
    if val_index is not None and len(val_index) != K:
        raise ValueError(f"val_index: expected one index array per model ({K}), got {len(val_index)}")
    n_steps, batch_size, eval_every = (_positive_int(n, v) for n, v in
                                       (("n_steps", n_steps), ("batch_size", batch_size), ("eval_every", eval_every)))
    checkpoint_every = eval_every if checkpoint_every is None else _positive_int("checkpoint_every", checkpoint_every)
    if select_mode not in ("min", "max"):
        raise ValueError(f"select_mode: expected 'min' or 'max', got {select_mode!r}")
    device = params[0].device
    f64 = dict(dtype=torch.float64, device=device)
    lr = torch.tensor(per_model("lr", lr, K, lambda n, v: check_number(n, v, 0, open_low=True)), **f64)
    decay = torch.tensor(per_model("lr_decay", lr_decay, K, lambda n, v: check_number(n, v, 0, 1, open_low=True)), **f64)
    wd = torch.tensor(per_model("weight_decay", weight_decay, K, lambda n, v: check_number(n, v, 0)), **f64)
    clip = per_model("clip_grad_norm", clip_grad_norm, K,
                     lambda n, v: check_number(n, v, 0, open_low=True, optional=True))
    max_norm = torch.tensor([np.inf if c is None else c for c in clip], **f64)
    clipping = any(c is not None for c in clip)
    patience = np.array([np.inf if p is None else p for p in
                         per_model("patience", patience, K, lambda n, v: _positive_int(n, v, optional=True))])
    seeds = per_model("seeds", seeds, K)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"seeds: expected ints, got {type(s).__name__} {s!r}")
    data = {k: v.to(device) for k, v in data.items()}
    train_data = data if batch_keys is None else {k: data[k] for k in batch_keys}
    batches = _Batches(train_index, batch_size, seeds, device)
    val = None
    if val_index is not None:
        idx, valid = padded_index(val_index, device)
        val = gather(data if val_data is None else {k: v.to(device) for k, v in val_data.items()}, idx, valid)
    opt = StackedOptimizer(params, optimizer, lr, decay, wd)
    sign = 1.0 if select_mode == "min" else -1.0
    run = _Run(K, params, device)
    settings = dict(optimizer=optimizer, lr=lr.tolist(), lr_decay=decay.tolist(), weight_decay=wd.tolist(),
                    clip_grad_norm=clip, batch_size=batch_size, eval_every=eval_every, select_metric=select_metric,
                    select_mode=select_mode)
    fingerprint = ensemble_fingerprint(fingerprint, settings, (data, val_data), train_index, val_index, seeds)
    if checkpoint is not None:
        remove_stale_temps(Path(checkpoint).parent)  # what a killed run's interrupted write left
    if checkpoint is not None and Path(checkpoint).exists():
        run.load(checkpoint, module, opt, objective, fingerprint)
    last_good = [p.detach().clone() for p in params]
    t0 = time.perf_counter()
    steps = max((v.shape[1] for v in data.values() if v.ndim > 1), default=1)
    work = int(batches.size.max()) * steps * sum(p[0].numel() for p in params) * K
    bar = progress_bar(n_steps, desc="ensemble", unit="step", enabled=progress, initial=run.step)
    with threads_for(work), bar:
        while run.step < n_steps and run.active.any():
            check_cancelled()  # a sweep running this fit in a thread stopped
            active = None if run.active.all() else torch.as_tensor(run.active, device=device)
            module.train()
            loss = objective(module, gather(train_data, batches(run.step), batches.valid))
            active = _update(params, loss, run, active, last_good, opt, max_norm if clipping else None)
            run.add_loss(loss.detach(), active)
            run.step += 1
            bar.update(1)
            if run.step % eval_every == 0 or run.step == n_steps:
                run.evaluate(module, objective, val, evaluate, opt, select_metric, sign, patience)
            if run.step % checkpoint_every == 0 or run.step == n_steps or not run.active.any():
                if checkpoint is not None:
                    run.save(checkpoint, module, opt, objective, fingerprint)
    if restore_best:
        run.restore_best(params)
    elapsed = time.perf_counter() - t0
    return run.results(sign, elapsed, checkpoint, restore_best)


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (K,) mask shaped to broadcast against ``like`` (K, ...)."""
    return mask.reshape((-1,) + (1,) * (like.ndim - 1))


def _update(params, loss, run, active, last_good, opt, max_norm):
    """Backward of the (K,) losses, the per-model finiteness check, clipping and the stacked update.

    Models whose loss or gradients are not finite are frozen (``run.fail``); frozen models get zero
    gradients (no NaN reaches their moments) and no update. Returns the active mask (None: all).
    """
    made = getattr(loss.grad_fn, "sum_grads", None)  # a fused objective's gradients, made in its forward pass
    if made is not None:  # the gradients of loss.sum(), as backward would give them: no autograd pass
        by_param = {id(p): g for p, g in made}
        grads = [by_param[id(p)] if id(p) in by_param else torch.zeros_like(p) for p in params]
    else:
        for p in params:
            p.grad = None
        loss.sum().backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    norms = model_norms(grads)
    finite = torch.isfinite(loss) & torch.isfinite(norms)
    if not bool(finite.all()):  # the one sync of a step
        run.fail(finite.cpu().numpy(), torch.isfinite(loss).cpu().numpy(), params, last_good)
        active = torch.as_tensor(run.active, device=loss.device)
        norms = torch.where(finite, norms, torch.zeros_like(norms))  # frozen: no NaN clip factor
    if active is not None:
        grads = [torch.where(_expand(active, g), g, g.new_zeros(())) for g in grads]
    if max_norm is not None:  # one dispatch for all gradients (the same products as one mul_ each)
        coef = clip_coefficients(norms, max_norm).to(grads[0].dtype)
        torch._foreach_mul_(grads, [_expand(coef if g.dtype == coef.dtype else coef.to(g.dtype), g) for g in grads])
    for p, g in zip(params, grads):
        p.grad = g
    torch._foreach_copy_(last_good, [p.detach() for p in params])
    opt.step(active)
    return active


class _Run:
    """The mutable state of an ensemble run: step, per-model bookkeeping, best parameters, history."""

    def __init__(self, K, params, device):
        self.K, self.step, self.params = K, 0, params
        self.active = np.ones(K, bool)
        self.stopped, self.errors = np.zeros(K, bool), [None] * K
        self.n_done = np.zeros(K, int)
        self.best_value, self.best_step = np.full(K, np.inf), np.full(K, -1)
        self.bad_evals = np.zeros(K, int)
        self.best = [p.detach().clone() for p in params]
        self.loss_sum = torch.zeros(K, dtype=torch.float64, device=device)
        self.loss_count = torch.zeros(K, dtype=torch.float64, device=device)
        self.history = [[] for _ in range(K)]

    def fail(self, finite, loss_finite, params, last_good):
        """Freeze the models that went non-finite, at the parameters of their last finite loss."""
        for k in np.flatnonzero(~finite & self.active):
            if not loss_finite[k]:  # this step's loss: back to the parameters of the previous one
                with torch.no_grad():
                    for p, saved in zip(params, last_good):
                        p[k] = saved[k]
                self.errors[k] = f"the loss is non-finite at step {self.step}"
            else:
                self.errors[k] = f"the gradients are non-finite at step {self.step}"
            self.active[k] = False

    def add_loss(self, loss, active):
        keep = torch.ones_like(self.loss_count) if active is None else active.to(torch.float64)
        self.loss_sum += torch.where(keep > 0, loss.to(torch.float64), torch.zeros_like(self.loss_sum))
        self.loss_count += keep
        self.n_done[self.active] = self.step + 1

    @torch.no_grad()
    def evaluate(self, module, objective, val, evaluate, opt, select_metric, sign, patience):
        rows = {"lr": opt.lr.cpu().numpy(),
                "train_loss": (self.loss_sum / self.loss_count.clamp_min(1)).cpu().numpy()}
        self.loss_sum.zero_()
        self.loss_count.zero_()
        if val is not None:
            module.eval()
            metrics = {} if evaluate is None else \
                {k: np.asarray(torch.as_tensor(v).cpu(), dtype=float) for k, v in evaluate(module, val).items()}
            rows["val_loss"] = metrics.pop("val_loss") if "val_loss" in metrics else \
                objective(module, val).detach().cpu().numpy()  # unless evaluate computed it on its own run
            rows.update(metrics)
        if select_metric not in rows and (val is not None):
            raise ValueError(f"select_metric: {select_metric!r} is not among the metrics {sorted(rows)}")
        active = self.active.copy()
        for k in np.flatnonzero(active):
            self.history[k].append({"step": self.step, **{c: float(v[k]) for c, v in rows.items()}})
        if select_metric not in rows:
            return
        value = sign * np.asarray(rows[select_metric], dtype=float)
        better = active & (value < self.best_value)
        worse = active & ~better
        self.best_value[better], self.best_step[better], self.bad_evals[better] = value[better], self.step, 0
        self.bad_evals[worse] += 1
        stop = worse & (self.bad_evals >= patience)
        self.stopped |= stop
        self.active &= ~stop
        if better.any():
            mask = torch.as_tensor(better, device=self.best[0].device)
            for b, p in zip(self.best, self.params):
                b.copy_(torch.where(_expand(mask, p), p.detach(), b))

    def restore_best(self, params):
        has = torch.as_tensor(self.best_step >= 0, device=params[0].device)
        if bool(has.any()):
            with torch.no_grad():
                for p, b in zip(params, self.best):
                    p.copy_(torch.where(_expand(has, p), b, p))

    def results(self, sign, elapsed, checkpoint, restore_best) -> list[TrainResult]:
        out = []
        for k in range(self.K):
            hist = pd.DataFrame(self.history[k]).set_index("step") if self.history[k] else pd.DataFrame()
            has = self.best_step[k] >= 0
            res = TrainResult(hist, int(self.best_step[k]) if has else None,
                              float(sign * self.best_value[k]) if has else float("nan"), int(self.n_done[k]),
                              bool(self.stopped[k]), elapsed, None if checkpoint is None else str(checkpoint))
            if self.errors[k] is not None:
                holds = f"the best validated parameters (step {res.best_step})" if has and restore_best else \
                    f"the parameters of the last finite loss (step {res.n_steps})"
                res.extra["error"] = f"{self.errors[k]}; the model holds {holds} (try a lower lr or clip_grad_norm)"
            out.append(res)
        return out

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, module, opt, objective, fingerprint):
        blob = {"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint,
                "step": self.step, "module": module.state_dict(), "best": self.best,
                "optimizer": opt.state_dict(), "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                "objective": objective.state_dict() if hasattr(objective, "state_dict") else {},
                "state": json.dumps({"active": self.active.tolist(), "stopped": self.stopped.tolist(),
                                     "errors": self.errors, "n_done": self.n_done.tolist(),
                                     "best_value": [float(v) for v in self.best_value],
                                     "best_step": self.best_step.tolist(), "bad_evals": self.bad_evals.tolist(),
                                     "history": self.history})}
        with atomic_write(path) as tmp:
            torch.save(blob, tmp)

    def load(self, path, module, opt, objective, fingerprint):
        try:
            blob = torch.load(path, weights_only=True, map_location=self.loss_sum.device)
        except Exception as err:  # noqa: BLE001 - a tampered or foreign file
            raise ValueError(f"checkpoint: could not read {str(path)!r} as an ensemble checkpoint ({err})") from err
        if isinstance(blob, dict) and blob.get("format") == "neuroalrnn.ensemble/1":
            raise ValueError(f"checkpoint: {str(path)!r} was written by an older neuroalrnn that did not record its "
                             "data and settings; delete it to train afresh")
        if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: {str(path)!r} is not a neuroalrnn ensemble checkpoint")
        changes = ensemble_changes(blob.get("fingerprint"), fingerprint)
        if changes:
            raise ValueError(f"checkpoint: {'; '.join(changes)}; delete {str(path)!r} or resume with the same "
                             "data, settings and seeds")
        try:
            module.load_state_dict(blob["module"])
        except RuntimeError as err:
            raise ValueError(f"checkpoint: {str(path)!r} does not match this ensemble ({err})") from err
        with torch.no_grad():
            for b, saved_best in zip(self.best, blob["best"]):
                b.copy_(saved_best)
        opt.load_state_dict(blob["optimizer"])
        if hasattr(objective, "load_state_dict"):
            objective.load_state_dict(blob["objective"])
        self.loss_sum.copy_(blob["loss_sum"])
        self.loss_count.copy_(blob["loss_count"])
        state = json.loads(blob["state"])
        self.step = int(blob["step"])
        self.active, self.stopped = np.array(state["active"], bool), np.array(state["stopped"], bool)
        self.errors, self.n_done = state["errors"], np.array(state["n_done"], int)
        self.best_value = np.array(state["best_value"], float)
        self.best_step, self.bad_evals = np.array(state["best_step"], int), np.array(state["bad_evals"], int)
        self.history = state["history"]
