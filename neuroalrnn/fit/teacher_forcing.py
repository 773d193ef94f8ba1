"""Teacher-forced fitting of an AL-RNN to recorded trials (dynamical-systems reconstruction).

One objective covers both forms of teacher forcing, run through the fast recurrence
(:func:`neuroalrnn.model.recurrence.alrnn_scan` with per-step ``alpha``):

* sparse (identity) forcing (``forcing="sparse"``, ``tau`` = 16, ``alpha`` = 1): every
  ``tau`` steps the observed units are replaced by the data; alpha = 1 multiplies the
  gradient into the replaced entries by 0, so it is cut;
* generalized forcing (``forcing="generalized"``, ``tau`` = 1): z~ = (1 - alpha) z + alpha x at
  every step, alpha fixed or ``"adaptive"``. Adaptive alpha follows the reference code of Hess et
  al. (2023, ICML; DurstewitzLab/GTF-shPLRNN, "product_upper_bound"): alpha starts at 1; every
  5th training batch, before that batch's step, alpha* = max(0, 1 - 1/G) with G the largest (over
  the batch's sequences) geometric mean of the Jacobian spectral norms at the forcing signals
  (the data in latent space: [x; 0] for the identity readout, pinv(B)(x - b) for the linear one)
  of steps 2..T; alpha is raised to alpha* at once, else lowered as alpha <- 0.999 alpha + 0.001
  alpha*. ``alpha_schedule="fast"`` keeps this package's earlier schedule (see
  :class:`TeacherForcingObjective`).

A window x_1..x_T gives z_1 = init(x_1) (the observation model), then states z_2..z_T with
forcing applied to z_k before step k when (k - 1) % tau == 0 (k > 1); the loss is the masked
MSE of readout(z_k) against x_k for k >= 2: always the prediction made before any forcing.
Nothing is forced and nothing is scored past a trial's end.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from ..model.recurrence import alrnn_scan
from ._fused_tf import fusable, fused_teacher_forcing_mse
from .observation import IdentityObservation
from .recordings import (METRICS, _as_dataset, _check_fit_data, _check_starts, _split, make_evaluate, to_tensors,
                         zscore_stats)

__all__ = ["TeacherForcingObjective", "fit_teacher_forcing", "jacobian_norm_bound", "teacher_forcing_alpha",
           "make_evaluate", "ALPHA_SCHEDULES"]

# adaptive-alpha schedules: start value, training calls between updates, decay gamma towards a lower alpha*
ALPHA_SCHEDULES = {"reference": {"start": 1.0, "adapt_every": 5, "alpha_decay": 0.999},
                   "fast": {"start": 0.0, "adapt_every": 1, "alpha_decay": 0.99}}


def _check_forcing(forcing, tau, alpha):
    if forcing not in ("sparse", "generalized"):
        raise ValueError(f"forcing: expected 'sparse' or 'generalized', got {forcing!r}")
    if tau is None:
        tau = 16 if forcing == "sparse" else 1
    if isinstance(tau, bool) or not isinstance(tau, (int, np.integer)) or tau < 1:
        raise ValueError(f"tau: expected a forcing interval >= 1 (steps), got {tau!r}")
    if alpha is None:
        alpha = 1.0 if forcing == "sparse" else "adaptive"
    if isinstance(alpha, str):
        if alpha != "adaptive":
            raise ValueError(f"alpha: expected a number in [0, 1] or 'adaptive', got {alpha!r}")
    elif isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1] or 'adaptive', got {alpha!r}")
    return int(tau), alpha


def jacobian_norm_bound(model, states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per sequence, the geometric mean of the Jacobians' spectral norms along it.

    The Jacobian of the AL-RNN map at z is ``diag(A) + W diag(phi'(z))`` (phi' = 1 on the
    linear units, 1[z > 0] on the ReLU units); states (B, T, M), mask (B, T).
    Distinct ReLU patterns are evaluated once.

    Examples
    --------
    >>> import torch
    >>> from neuroalrnn.model import ALRNN
    >>> m = ALRNN.from_params(A=[0.5, 0.5], W=[[0.0, 0.0], [0.0, 0.0]], h=[0.0, 0.0], n_relu=1)
    >>> jacobian_norm_bound(m, torch.ones(1, 3, 2)).tolist()
    [0.5]
    """
    with torch.no_grad():
        B, T, M = states.shape
        P = model.n_relu
        if P:
            codes = (states[..., M - P:] > 0).reshape(-1, P)
            uniq, inv = torch.unique(codes, dim=0, return_inverse=True)
        else:
            uniq = torch.zeros(1, 0, dtype=torch.bool, device=states.device)
            inv = torch.zeros(B * T, dtype=torch.long, device=states.device)
        d = torch.ones(len(uniq), M, dtype=states.dtype, device=states.device)
        d[:, M - P:] = uniq.to(states.dtype)
        J = torch.diag(model.A.detach()) + model.W.detach()[None] * d[:, None, :]
        log_norm = torch.log(torch.linalg.matrix_norm(J, ord=2).clamp_min(1e-30))[inv].reshape(B, T)
        if mask is None:
            return torch.exp(log_norm.mean(1))
        w = mask.to(states.dtype)
        return torch.exp((log_norm * w).sum(1) / w.sum(1).clamp_min(1))


def teacher_forcing_alpha(G: float) -> float:
    """The GTF forcing strength alpha* = max(0, 1 - 1/G) for a Jacobian-norm bound G.

    Examples
    --------
    >>> teacher_forcing_alpha(0.9), teacher_forcing_alpha(2.0)
    (0.0, 0.5)
    """
    return float(max(0.0, 1.0 - 1.0 / G)) if G > 0 else 0.0


class TeacherForcingObjective:
    """The teacher-forcing loss ``objective(module, batch)`` for :func:`neuroalrnn.fit.trainer.train`.

    ``module`` is a :class:`neuroalrnn.fit.observation.ObservedALRNN`; ``batch`` holds ``x``
    (B, T, N; z-scored, finite, any value outside the mask), ``mask`` (B, T) and optionally
    ``inputs`` (B, T, K).

    Parameters
    ----------
    forcing : {"sparse", "generalized"}
    tau : int, optional
        Forcing interval in steps (default 16 sparse, 1 generalized).
    alpha : float in [0, 1] or "adaptive", optional
        Forcing strength at forced steps (default 1 sparse, "adaptive" generalized).
    noise_std : float
        Standard deviation of Gaussian noise added to the forcing signal (training only).
    sequence_length : int, optional
        Crop a random window of this many steps from every trial of a batch.
    alpha_schedule : {"reference", "fast"}
        Adaptive alpha only. ``"reference"`` (Hess et al. 2023's code): alpha starts at 1 (``alpha_start``,
        which :func:`fit_teacher_forcing` sets), is updated every 5th training call
        before that call's forward pass, from the Jacobians at the forcing signals, and decays by
        ``alpha_decay`` = 0.999. ``"fast"`` (this package's earlier schedule, compared in
        ``benchmarks/RESULTS_teacher_forcing.md``): starts at 0, updated after every call from the
        Jacobians at the model's predicted states (applied from the next call on), decay 0.99.
    adapt_every : int, optional
        Update the adaptive alpha every this many training calls (default: the schedule's).
    alpha_decay : float in [0, 1), optional
        gamma of ``alpha <- gamma alpha + (1 - gamma) alpha*`` when alpha* is lower (default: the
        schedule's).
    backend : str
        Backend of ``alrnn_scan`` (default: the model's).

    Examples
    --------
    >>> import torch
    >>> from neuroalrnn.model import ALRNN
    >>> from neuroalrnn.fit.observation import IdentityObservation, ObservedALRNN
    >>> model = ALRNN(6, 2, seed=0)
    >>> module = ObservedALRNN(model, IdentityObservation(2, 6, 2, seed=0), [0, 0], [1, 1])
    >>> batch = {"x": torch.randn(4, 40, 2), "mask": torch.ones(4, 40, dtype=torch.bool)}
    >>> loss = TeacherForcingObjective("sparse", tau=8)(module, batch)
    >>> loss.ndim, bool(loss > 0)
    (0, True)
    """

    def __init__(self, forcing: str = "sparse", tau: int | None = None, alpha=None, *, noise_std: float = 0.0,
                 sequence_length: int | None = None, alpha_schedule: str = "reference",
                 adapt_every: int | None = None, alpha_decay: float | None = None, backend: str | None = None):
        self.tau, self.alpha = _check_forcing(forcing, tau, alpha)
        self.forcing = forcing
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std: expected a non-negative number, got {noise_std!r}")
        if sequence_length is not None and (not isinstance(sequence_length, (int, np.integer))
                                            or sequence_length <= self.tau):
            raise ValueError(f"sequence_length: expected an integer > tau = {self.tau}, got {sequence_length!r}")
        if alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(f"alpha_schedule: expected one of {tuple(ALPHA_SCHEDULES)}, got {alpha_schedule!r}")
        defaults = ALPHA_SCHEDULES[alpha_schedule]
        adapt_every = defaults["adapt_every"] if adapt_every is None else adapt_every
        alpha_decay = defaults["alpha_decay"] if alpha_decay is None else alpha_decay
        if isinstance(adapt_every, bool) or not isinstance(adapt_every, (int, np.integer)) or adapt_every < 1:
            raise ValueError(f"adapt_every: expected a positive integer (training calls), got {adapt_every!r}")
        if isinstance(alpha_decay, bool) or not isinstance(alpha_decay, (int, float, np.integer, np.floating)) \
                or not 0 <= alpha_decay < 1:
            raise ValueError(f"alpha_decay: expected a number in [0, 1), got {alpha_decay!r}")
        self.noise_std, self.sequence_length = float(noise_std), sequence_length
        self.alpha_schedule, self.adapt_every, self.alpha_decay = alpha_schedule, int(adapt_every), float(alpha_decay)
        self.backend = backend

    @property
    def alpha_start(self) -> float:
        """The forcing strength a fit starts from (adaptive: the schedule's start; else ``alpha``)."""
        return ALPHA_SCHEDULES[self.alpha_schedule]["start"] if self.alpha == "adaptive" else float(self.alpha)

    def _crop(self, batch, training):
        x, mask, s = batch["x"], batch["mask"].bool(), batch.get("inputs")
        L = self.sequence_length
        if L is None or L >= x.shape[1] or not training:
            return x, mask, s
        lengths = mask.sum(1)
        high = (lengths - L).clamp_min(0) + 1
        start = (torch.rand(len(x), device=x.device) * high).long()
        idx = (start[:, None] + torch.arange(L, device=x.device)[None]).clamp_max(x.shape[1] - 1)
        take = lambda a: torch.gather(a, 1, idx[..., None].expand(-1, -1, a.shape[2]))
        return take(x), torch.gather(mask, 1, idx), None if s is None else take(s)

    def step_alpha(self, module, mask: torch.Tensor) -> torch.Tensor:
        """Per-step forcing weights (B, T-1) for the states z_1..z_{T-1} of a window."""
        n = mask.shape[1] - 1
        k = torch.arange(n, device=mask.device)
        on = ((k % self.tau) == 0) & (k > 0)
        a = module.alpha if self.alpha == "adaptive" else float(self.alpha)
        return (on[None, :] & mask[:, :-1]).to(module.model.A.dtype) * a

    def __call__(self, module, batch) -> torch.Tensor:
        x, mask, s = self._crop(batch, module.training)
        B, T, N = x.shape
        if T < 2:
            raise ValueError("x: windows need at least 2 time steps")
        model, obs = module.model, module.observation
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        adapt = self.alpha == "adaptive" and module.training and self._due(module)
        if adapt and self.alpha_schedule == "reference":  # before the step, at the forcing signals
            self._adapt(module, obs.latent_signal(x[:, 1:]), mask[:, 1:])
        force = obs.forcing_signal(x[:, :-1])
        noisy = bool(self.noise_std) and module.training
        if noisy:
            force = force + self.noise_std * torch.randn_like(force)
        inputs = None if s is None or model.n_inputs == 0 else s[:, 1:]
        identity = isinstance(obs, IdentityObservation)
        if not (adapt and self.alpha_schedule == "fast") and fusable(identity, model, self.backend, x, force, inputs):
            one = types.SimpleNamespace(A=model.A[None], W=model.W[None], h=model.h[None], C=model.C[None],
                                        n_relu=[model.n_relu])  # the compiled step of K = 1 models
            w = mask[:, 1:].to(x.dtype)
            alpha = self.step_alpha(module, mask).detach()
            return fused_teacher_forcing_mse(one, obs.L[None], x[None], w[None], force[None], alpha[None],
                                             None if inputs is None else inputs[None])[0]
        z1 = obs.init_state(x[:, 0])
        drive = model.drive(inputs, B, T - 1)
        if self.tau == 1 and obs.n_force == obs.n_obs and not noisy and bool(mask.all()):
            # constant alpha (exact: forcing z_1 = [x_1; L x_1] with x_1 changes nothing), which lets
            # the fused single-call backends fold it in
            # (a copy of the adaptive alpha: the update after a 'fast' step must not touch the graph)
            alpha = module.alpha.detach().clone() if self.alpha == "adaptive" else float(self.alpha)
        else:
            alpha = self.step_alpha(module, mask)
        states = alrnn_scan(z1, drive.contiguous(), model.A, model.W, model.n_relu, force.contiguous(), alpha,
                            backend=self.backend or model.backend)
        pred = obs.readout(states)
        w = mask[:, 1:].to(pred.dtype)
        loss = (((pred - x[:, 1:]) ** 2).mean(2) * w).sum() / w.sum().clamp_min(1)
        if adapt and self.alpha_schedule == "fast":  # after the step, at the predicted states
            self._adapt(module, states.detach(), mask[:, 1:])
        return loss

    def _due(self, module) -> bool:
        """Count a training call; True when alpha is updated in it."""
        module.n_updates += 1
        n = int(module.n_updates)
        return n % self.adapt_every == 0 if self.alpha_schedule == "reference" else (n - 1) % self.adapt_every == 0

    def _adapt(self, module, states, mask):
        G = float(jacobian_norm_bound(module.model, states, mask).max())
        target = teacher_forcing_alpha(G)
        current = float(module.alpha)
        new = target if target > current else self.alpha_decay * current + (1 - self.alpha_decay) * target
        module.alpha.fill_(min(1.0, max(0.0, new)))


# ---------------------------------------------------------------------------------- fitting
def fit_teacher_forcing(model, ds, *, val=0.2, forcing: str = "sparse", tau: int | None = None, alpha=None,
                        observation: str = "identity", n_obs: int | None = None, noise_std: float = 0.0,
                        sequence_length: int | None = None, zscore: bool = True, n_steps: int = 2000,
                        batch_size: int = 16, optimizer: str = "radam", lr: float = 1e-3,
                        lr_decay: float | None = None, clip_grad_norm: float | None = 10.0, eval_every: int = 100,
                        patience: int | None = None, select_metric: str = "n_step",
                        metrics=METRICS, n_ahead: int = 20, free_run_steps: int | None = None, transient: int = 0,
                        free_run_starts: int = 1, free_run_combine: str = "worst", alpha_schedule: str = "reference",
                        adapt_every: int | None = None,
                        alpha_decay: float | None = None, checkpoint=None, seed: int = 0,
                        progress: bool = False):
    """Fit an ALRNN to recorded trials by sparse or generalized teacher forcing.

    Parameters
    ----------
    model : neuroalrnn.ALRNN
        Trained in place (M units, P ReLU units, K = the data's input channels).
    ds : TrialDataset or array (trial, time, N)
        ``activity`` to fit (NaN after each trial's end) and ``inputs`` s_t entering through C.
    val : float, TrialDataset or None
        Held-out trials (a fraction of ``ds``'s trials, drawn with ``seed``) for evaluation every
        ``eval_every`` steps and best-checkpoint selection by ``select_metric``.
    forcing : {"sparse", "generalized"}
    tau, alpha, alpha_schedule, adapt_every, alpha_decay
        Forcing interval and strength, and the adaptive alpha's schedule; see
        :class:`TeacherForcingObjective`.
    observation : {"identity", "linear"}
        Identity readout of the first N units (N <= M - P) with a learned initial map L, or
        x = B z + b with least-squares states (for N > M - P, e.g. many neurons).
    n_obs : int, optional
        Number of observed channels the caller expects (checked against the data).
    noise_std : float
        Gaussian noise on the forcing signal (z-scored units).
    sequence_length : int, optional
        Train on random windows of this many steps cut from the trials.
    zscore : bool
        Z-score each channel with the training trials' mean and std (kept in the result).
    n_steps, batch_size, optimizer, lr, clip_grad_norm, eval_every, patience, checkpoint, seed, progress
        Passed to :func:`neuroalrnn.fit.trainer.train`; ``lr_decay`` defaults to a 100-fold decay
        over ``n_steps`` (as the reference tutorial).
    select_metric : {"n_step", "d_stsp", "d_h", "val_loss"}
    metrics, n_ahead, free_run_steps, transient, free_run_starts, free_run_combine
        See :func:`make_evaluate` (``free_run_starts`` > 1: select on several free runs' worst or median).

    Returns
    -------
    ObservedALRNN
        The model with its observation model and z-scoring; ``train_result_`` holds the
        trainer's result (``history`` of the metrics, ``best_step``).

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.model import ALRNN
    >>> t = np.arange(60) * 0.3
    >>> x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 10)])
    >>> fitted = fit_teacher_forcing(ALRNN(6, 2, seed=0), x, tau=5, n_steps=40, eval_every=20,
    ...                              metrics=("n_step",), n_ahead=5)
    >>> fitted.free_run(x[0, 0], 10).shape
    (10, 2)
    """
    from .observation import ObservedALRNN, make_observation
    from .trainer import train as run_training

    tau, alpha = _check_forcing(forcing, tau, alpha)
    ds = _as_dataset(ds)
    ds, val_ds = _split(ds, val, seed)
    if val_ds is not None:
        val_ds = _as_dataset(val_ds)
    _check_starts(free_run_starts, free_run_steps, None if val_ds is None else val_ds.sizes["trial"])
    _check_fit_data(model, ds, n_obs, observation, tau, sequence_length)
    N = ds.sizes["unit"]
    mean, std = zscore_stats(ds) if zscore else (np.zeros(N), np.ones(N))
    module = ObservedALRNN(model, make_observation(observation, N, model, seed=seed), mean, std)
    dtype = model.A.dtype
    objective = TeacherForcingObjective(forcing, tau, alpha, noise_std=noise_std, sequence_length=sequence_length,
                                        alpha_schedule=alpha_schedule, adapt_every=adapt_every,
                                        alpha_decay=alpha_decay)
    module.alpha.fill_(objective.alpha_start)  # a resumed run takes its alpha from the checkpoint
    train_data = to_tensors(ds, mean, std, dtype)
    val_data = None if val_ds is None else to_tensors(val_ds, mean, std, dtype)
    evaluate = None if val_ds is None else make_evaluate(metrics, n_ahead=n_ahead, free_run_steps=free_run_steps,
                                                         transient=transient, free_run_starts=free_run_starts,
                                                         free_run_combine=free_run_combine, seed=seed)
    if val_ds is None:
        select_metric = "train_loss"
    if lr_decay is None:  # a 100-fold decay over the run (n_steps itself is checked by train)
        valid = isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool) and n_steps >= 1
        lr_decay = 0.01 ** (1.0 / n_steps) if valid else 1.0
    result = run_training(module, objective, train_data, val=val_data, evaluate=evaluate, n_steps=n_steps,
                          batch_size=batch_size, optimizer=optimizer, lr=lr,
                          lr_decay=lr_decay,
                          clip_grad_norm=clip_grad_norm, eval_every=eval_every, patience=patience,
                          select_metric=select_metric, select_mode="min", checkpoint=checkpoint, seed=seed,
                          progress=progress)
    module.train_result_ = result
    module.eval()
    return module
