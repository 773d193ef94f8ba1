"""Teacher-forced fitting of K AL-RNNs to recordings as one computation (an ensemble).

``fit_teacher_forcing_ensemble`` is :func:`neuroalrnn.fit.teacher_forcing.fit_teacher_forcing`
for the K models of an :class:`neuroalrnn.model.ALRNNEnsemble`: model k takes the trials
``train_trials[k]`` of the recording (e.g. its cross-validation fold), splits off its validation
trials with its own seed, z-scores with its own training statistics, and is trained by
:func:`neuroalrnn.fit.ensemble.train_ensemble` with the same objective, done for all models at
once (sparse or generalized forcing, fixed or adaptive alpha, noise on the teacher signal, random
windows). Random draws (windows, noise) come from one generator per model seeded as ``train``
seeds torch's global one, so model k's result equals ``fit_teacher_forcing`` with seed
``seeds[k]`` to float tolerance. Evaluation runs the single-model metrics on each model.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from neuroalrnn.fit._ensemble_observation import ObservedEnsemble, StackedObservation
from neuroalrnn.fit._fused_tf import fused_teacher_forcing_mse, fusable
from neuroalrnn.fit.ensemble import train_ensemble
from neuroalrnn.fit.observation import make_observation
from neuroalrnn.fit.recordings import (METRICS, _as_dataset, _check_fit_data, _check_starts, _split, make_evaluate,
                                       to_tensors, zscore_stats)
from neuroalrnn.fit.teacher_forcing import TeacherForcingObjective, jacobian_norm_bound, teacher_forcing_alpha
from neuroalrnn.model.ensemble import per_model
from neuroalrnn.model.recurrence import alrnn_scan
from neuroalrnn.utils import torch_generator


class EnsembleTeacherForcingObjective:
    """:class:`TeacherForcingObjective` for an :class:`ObservedEnsemble`: ``objective(module, batch) -> (K,)``.

    ``batch`` holds ``x`` (K, B, T, N), ``mask`` (K, B, T), optionally ``inputs`` and ``valid`` (K, B).
    The settings are those of ``TeacherForcingObjective`` (checked by it); ``seeds`` seed one
    generator per model for the random windows and the noise.
    """

    def __init__(self, forcing="sparse", tau=None, alpha=None, *, seeds, device="cpu", **settings):
        self.single = TeacherForcingObjective(forcing, tau, alpha, **settings)
        self.generators = [torch_generator(s, device) for s in seeds]

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)

    def _draw(self, fn, sizes, width, *shape, like, dtype=None):
        """Per model k, ``fn(sizes[k], *shape)`` from its own generator, zero-padded to ``width`` rows."""
        dtype = like.dtype if dtype is None else dtype
        out = torch.zeros((len(sizes), width) + shape, dtype=dtype, device=like.device)
        for k, (g, n) in enumerate(zip(self.generators, sizes)):
            out[k, :n] = fn((n,) + shape, generator=g, dtype=dtype, device=like.device)
        return out

    def __call__(self, module, batch) -> torch.Tensor:
        cfg, training = self.single, module.training
        x, mask, s = batch["x"], batch["mask"].bool(), batch.get("inputs")
        K, B = x.shape[:2]
        if "valid" in batch:
            mask = mask & batch["valid"][:, :, None]
        sizes = batch["valid"].sum(1).tolist() if "valid" in batch else [B] * K
        L = cfg.sequence_length
        if L is not None and L < x.shape[2] and training:  # a random window per trial, as _crop
            high = (mask.sum(2) - L).clamp_min(0) + 1
            # torch.rand(len(x)) of _crop: the default dtype
            start = (self._draw(torch.rand, sizes, B, like=x, dtype=torch.get_default_dtype()) * high).long()
            idx = (start[..., None] + torch.arange(L, device=x.device)).clamp_max(x.shape[2] - 1)
            take = lambda a: torch.gather(a, 2, idx[..., None].expand(-1, -1, -1, a.shape[3]))  # noqa: E731
            x, mask, s = take(x), torch.gather(mask, 2, idx), None if s is None else take(s)
        T = x.shape[2]
        if T < 2:
            raise ValueError("x: windows need at least 2 time steps")
        model, obs = module.model, module.observation
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        adapt = cfg.alpha == "adaptive" and training and self._due(module)
        if adapt and cfg.alpha_schedule == "reference":  # before the step, at the forcing signals
            self._adapt(module, obs.latent_signal(x[:, :, 1:]), mask[:, :, 1:])
        force = obs.forcing_signal(x[:, :, :-1])
        if cfg.noise_std and training:
            force = force + cfg.noise_std * self._draw(torch.randn, sizes, B, *force.shape[2:], like=force)
        on = (torch.arange(T - 1, device=x.device) % cfg.tau == 0) & (torch.arange(T - 1, device=x.device) > 0)
        a = module.alpha if cfg.alpha == "adaptive" else torch.full((K,), float(cfg.alpha), dtype=x.dtype,
                                                                     device=x.device)
        alpha = (on & mask[:, :, :-1]).to(x.dtype) * a.detach().clone()[:, None, None]
        w = mask[:, :, 1:].to(x.dtype)
        inputs = None if s is None or model.n_inputs == 0 else s[:, :, 1:]
        if not (adapt and cfg.alpha_schedule == "fast") and fusable(obs.kind == "identity", model, cfg.backend, x,
                                                                     force, alpha, inputs):
            return fused_teacher_forcing_mse(model, obs.L, x, w, force, alpha, inputs)  # the same loss, compiled
        z1 = obs.init_state(x[:, :, 0])
        drive = model.drive(inputs, B, T - 1)
        states = alrnn_scan(z1, drive.contiguous(), model.A, model.W, model.n_relu, force.contiguous(), alpha,
                            backend=cfg.backend or model.backend)
        pred = obs.readout(states)
        loss = (((pred - x[:, :, 1:]) ** 2).mean(3) * w).sum((1, 2)) / w.sum((1, 2)).clamp_min(1)
        if adapt and cfg.alpha_schedule == "fast":  # after the step, at the predicted states
            self._adapt(module, states.detach(), mask[:, :, 1:])
        return loss

    def _due(self, module) -> bool:
        module.n_updates += 1
        n, every = int(module.n_updates), self.single.adapt_every
        return n % every == 0 if self.single.alpha_schedule == "reference" else (n - 1) % every == 0

    def _adapt(self, module, states, mask):
        """Each model's alpha from the Jacobians along its own batch (as TeacherForcingObjective._adapt)."""
        m, decay = module.model, self.single.alpha_decay
        for k in range(m.n_models):
            view = types.SimpleNamespace(n_relu=m.n_relu[k], A=m.A[k], W=m.W[k])
            target = teacher_forcing_alpha(float(jacobian_norm_bound(view, states[k], mask[k]).max()))
            current = float(module.alpha[k])
            new = target if target > current else decay * current + (1 - decay) * target
            module.alpha[k] = min(1.0, max(0.0, new))


def _rows(datasets, stats, dtype):
    """One tensor table of every model's (normalized) trials, sharing rows between equal ones.

    Returns the table (dict of tensors) and, per model, its row indices.
    """
    table, index, seen, start = [], [], {}, 0
    for ds, (mean, std) in zip(datasets, stats):
        key = (tuple(ds["trial"].values.tolist()), mean.tobytes(), std.tobytes())
        if key not in seen:
            table.append(to_tensors(ds, mean, std, dtype))
            seen[key] = np.arange(start, start + ds.sizes["trial"])
            start += ds.sizes["trial"]
        index.append(seen[key])
    return {k: torch.cat([t[k] for t in table]) for k in table[0]}, index


def fit_teacher_forcing_ensemble(ensemble, ds, train_trials=None, *, val=0.2, forcing: str = "sparse", tau=None,
                                 alpha=None, observation: str = "identity", noise_std: float = 0.0,
                                 sequence_length=None, zscore: bool = True, n_steps: int = 2000, batch_size: int = 16,
                                 optimizer: str = "radam", lr=1e-3, lr_decay=None, clip_grad_norm=10.0,
                                 eval_every: int = 100, patience=None, select_metric: str = "n_step",
                                 metrics=METRICS, n_ahead: int = 20, free_run_steps=None, transient: int = 0,
                                 free_run_starts: int = 1, free_run_combine: str = "worst",
                                 alpha_schedule: str = "reference", adapt_every=None,
                                 alpha_decay=None, checkpoint=None, seeds=0, fingerprint: str = "",
                                 progress: bool = False) -> list:
    """Teacher-force the K models of ``ensemble`` on recorded trials; one fitted ObservedALRNN per model.

    Parameters
    ----------
    ensemble : neuroalrnn.model.ALRNNEnsemble
        Trained in place.
    ds : TrialDataset or array (trial, time, N)
    train_trials : sequence of K integer arrays, optional
        Positions of each model's trials in ``ds`` (default: all trials for every model).
    lr, lr_decay, clip_grad_norm, patience, seeds
        One value for all models or one per model (``lr_decay`` None: a 100-fold decay over the run).
    val, forcing, tau, alpha, observation, noise_std, sequence_length, zscore, n_steps, batch_size, optimizer,
    eval_every, select_metric, metrics, n_ahead, free_run_steps, transient, free_run_starts, free_run_combine,
    alpha_schedule, adapt_every, alpha_decay
        As for :func:`neuroalrnn.fit.teacher_forcing.fit_teacher_forcing`, shared by all models.
    checkpoint, fingerprint, progress
        See :func:`neuroalrnn.fit.ensemble.train_ensemble`.

    Returns
    -------
    list of ObservedALRNN
        Model k with its observation model and z-scoring; ``train_result_`` holds its
        ``TrainResult`` (``extra["error"]`` if its loss became NaN/inf).

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.model import ALRNNEnsemble
    >>> t = np.arange(60) * 0.3
    >>> x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 10)])
    >>> fits = fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [0, 2], seeds=[0, 1]), x, tau=5, n_steps=40,
    ...                                     eval_every=20, metrics=("n_step",), n_ahead=5, seeds=[0, 1])
    >>> [f.free_run(x[0, 0], 10).shape for f in fits]
    [(10, 2), (10, 2)]
    """
    K = ensemble.n_models
    ds = _as_dataset(ds)
    n_trials = ds.sizes["trial"]
    train_trials = [np.arange(n_trials)] * K if train_trials is None else [np.asarray(t) for t in train_trials]
    if len(train_trials) != K:
        raise ValueError(f"train_trials: expected one index array per model ({K}), got {len(train_trials)}")
    seeds = per_model("seeds", seeds, K)
    objective = EnsembleTeacherForcingObjective(forcing, tau, alpha, noise_std=noise_std,
                                                sequence_length=sequence_length, alpha_schedule=alpha_schedule,
                                                adapt_every=adapt_every, alpha_decay=alpha_decay, seeds=seeds,
                                                device=ensemble.A.device)
    # what the checks and observation models read of a member (building K ALRNNs costs ~ms each)
    members = [types.SimpleNamespace(n_units=ensemble.n_units, n_relu=p, n_inputs=ensemble.n_inputs, A=ensemble.A[0])
               for p in ensemble.n_relu]
    splits, stats, observations = [], [], []
    for k in range(K):
        train_ds, val_ds = _split(ds.isel(trial=train_trials[k]), val, seeds[k])
        if val_ds is not None:
            val_ds = _as_dataset(val_ds)
        _check_starts(free_run_starts, free_run_steps, None if val_ds is None else val_ds.sizes["trial"])
        _check_fit_data(members[k], train_ds, None, observation, objective.single.tau, sequence_length)
        N = train_ds.sizes["unit"]
        stats.append(zscore_stats(train_ds) if zscore else (np.zeros(N), np.ones(N)))
        splits.append((train_ds, val_ds))
        observations.append(make_observation(observation, N, members[k], seed=seeds[k]))
    if len({v is None for _, v in splits}) > 1:
        raise ValueError("val: either every model has validation trials or none has")
    module = ObservedEnsemble(ensemble, StackedObservation(observations, ensemble.n_relu),
                              [m for m, _ in stats], [s for _, s in stats])
    module.alpha.fill_(objective.single.alpha_start)
    dtype = ensemble.A.dtype
    data, train_index = _rows([t for t, _ in splits], stats, dtype)
    val_data, val_index, evaluate = None, None, None
    if splits[0][1] is not None:
        val_data, val_index = _rows([v for _, v in splits], stats, dtype)
        evaluators = [make_evaluate(metrics, n_ahead=n_ahead, free_run_steps=free_run_steps, transient=transient,
                                    free_run_starts=free_run_starts, free_run_combine=free_run_combine, seed=s)
                      for s in seeds]
        lengths = [len(ix) for ix in val_index]
        views = [module.member(k) for k in range(K)]  # refreshed before each evaluation

        def evaluate(mod, batch):  # the single-model metrics, model by model
            rows = [fn(mod.member(k, views[k]).eval(),
                       {key: value[k, :lengths[k]] for key, value in batch.items() if key != "valid"})
                    for k, fn in enumerate(evaluators)]
            return {name: np.array([r[name] for r in rows]) for name in rows[0]}
    else:
        select_metric = "train_loss"
    hundredfold = 0.01 ** (1.0 / n_steps) if isinstance(n_steps, (int, np.integer)) and n_steps >= 1 else 1.0
    lr_decay = [hundredfold if d is None else d for d in per_model("lr_decay", lr_decay, K)]
    results = train_ensemble(module, objective, data, train_index, val_index=val_index, val_data=val_data,
                             evaluate=evaluate,
                             n_steps=n_steps, batch_size=batch_size, optimizer=optimizer, lr=lr, lr_decay=lr_decay,
                             clip_grad_norm=clip_grad_norm, eval_every=eval_every, patience=patience,
                             select_metric=select_metric, select_mode="min", checkpoint=checkpoint, seeds=seeds,
                             fingerprint=fingerprint, progress=progress)
    module.eval()
    fitted = []
    for k, res in enumerate(results):
        member = module.member(k).eval()
        member.train_result_ = res
        fitted.append(member)
    return fitted

