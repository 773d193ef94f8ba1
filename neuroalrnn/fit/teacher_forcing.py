"""Teacher-forced fitting of an AL-RNN to recorded trials (dynamical-systems reconstruction).

One objective covers both forms of teacher forcing, run through the fast recurrence
(:func:`neuroalrnn.recurrence.alrnn_scan` with per-step ``alpha``):

* sparse (identity) forcing (``forcing="sparse"``, ``tau`` = 16, ``alpha`` = 1): every
  ``tau`` steps the observed units are replaced by the data; alpha = 1 multiplies the
  gradient into the replaced entries by 0, so it is cut;
* generalized forcing (``forcing="generalized"``, ``tau`` = 1): z~ = (1 - alpha) z + alpha x at
  every step, alpha fixed or ``"adaptive"`` (Hess et al. 2023): alpha = max(0, 1 - 1/G), G the
  largest geometric mean of the Jacobian spectral norms along a sequence, raised at once and
  lowered slowly (``alpha <- alpha + relax * (alpha* - alpha)``).

A window x_1..x_T gives z_1 = init(x_1) (the observation model), then states z_2..z_T with
forcing applied to z_k before step k when (k - 1) % tau == 0 (k > 1); the loss is the masked
MSE of readout(z_k) against x_k for k >= 2: always the prediction made before any forcing.
Nothing is forced and nothing is scored past a trial's end.
"""

from __future__ import annotations

import numpy as np
import torch

from ..recurrence import alrnn_scan

__all__ = ["TeacherForcingObjective", "jacobian_norm_bound", "teacher_forcing_alpha"]


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
    adapt_every : int
        Update the adaptive alpha every this many training calls.
    alpha_relax : float
        Fraction of the way alpha moves down towards a lower alpha* per update.
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
                 sequence_length: int | None = None, adapt_every: int = 1, alpha_relax: float = 0.01,
                 backend: str | None = None):
        self.tau, self.alpha = _check_forcing(forcing, tau, alpha)
        self.forcing = forcing
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std: expected a non-negative number, got {noise_std!r}")
        if sequence_length is not None and (not isinstance(sequence_length, (int, np.integer))
                                            or sequence_length <= self.tau):
            raise ValueError(f"sequence_length: expected an integer > tau = {self.tau}, got {sequence_length!r}")
        if not 0 < alpha_relax <= 1:
            raise ValueError(f"alpha_relax: expected a number in (0, 1], got {alpha_relax!r}")
        self.noise_std, self.sequence_length = float(noise_std), sequence_length
        self.adapt_every, self.alpha_relax, self.backend = int(adapt_every), float(alpha_relax), backend

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
        z1 = obs.init_state(x[:, 0])
        drive = model.drive(None if s is None else s[:, 1:], B, T - 1)
        force = obs.forcing_signal(x[:, :-1])
        if self.noise_std and module.training:
            force = force + self.noise_std * torch.randn_like(force)
        if self.tau == 1 and obs.n_force == obs.n_obs and bool(mask.all()):
            # constant alpha (exact: forcing z_1 = [x_1; L x_1] with x_1 changes nothing), which lets
            # the fused single-call backends fold it in
            alpha = module.alpha if self.alpha == "adaptive" else torch.tensor(float(self.alpha), dtype=x.dtype)
        else:
            alpha = self.step_alpha(module, mask)
        states = alrnn_scan(z1, drive.contiguous(), model.A, model.W, model.n_relu, force.contiguous(), alpha,
                            backend=self.backend or model.backend)
        pred = obs.readout(states)
        w = mask[:, 1:].to(pred.dtype)
        loss = (((pred - x[:, 1:]) ** 2).mean(2) * w).sum() / w.sum().clamp_min(1)
        if self.alpha == "adaptive" and module.training:
            module.n_updates += 1
            if (int(module.n_updates) - 1) % self.adapt_every == 0:
                self._adapt(module, states.detach(), mask[:, 1:])
        return loss

    def _adapt(self, module, states, mask):
        G = float(jacobian_norm_bound(module.model, states, mask).max())
        target = teacher_forcing_alpha(G)
        current = float(module.alpha)
        new = target if target > current else current + self.alpha_relax * (target - current)
        module.alpha.fill_(min(1.0, max(0.0, new)))


# ---------------------------------------------------------------------------------- data
def _as_dataset(data, inputs=None):
    """A TrialDataset from a TrialDataset or a NaN-padded (trial, time, N) array."""
    from ..schema import from_arrays, validate

    if hasattr(data, "data_vars"):
        if "activity" not in data.data_vars:
            raise ValueError("ds: the TrialDataset has no 'activity' to fit")
        act = data["activity"]
        dead = act.isnull().all(("trial", "time")).values
        if dead.any():
            raise ValueError(f"activity: channels {data['unit'].values[dead].tolist()} (unit) are NaN "
                             "everywhere; drop them before fitting")
        return validate(data)
    x = np.asarray(data.detach().cpu().numpy() if hasattr(data, "detach") else data, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"ds: expected a TrialDataset or a (trial, time, unit) array, got shape {x.shape}")
    dead = np.isnan(x).all(axis=(0, 1))
    if dead.any():
        raise ValueError(f"activity: channels {np.flatnonzero(dead).tolist()} (unit) are NaN everywhere; "
                         "drop them before fitting")
    ok = np.isfinite(x).all(axis=2)
    lengths = np.where(ok.all(1), ok.shape[1], np.argmin(ok, axis=1))
    return from_arrays(activity=x, inputs=inputs, lengths=lengths.astype(int))


def zscore_stats(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``activity`` over the valid steps of ``ds``."""
    x = ds["activity"].values[ds["mask"].values]
    mean, std = x.mean(0), x.std(0)
    if np.any(std == 0):
        raise ValueError(f"activity: channels {ds['unit'].values[std == 0].tolist()} (unit) are constant; "
                         "they cannot be z-scored")
    return mean, std


def to_tensors(ds, mean, std, dtype=torch.float32) -> dict:
    """Trial-major tensors ``x`` (z-scored, NaN outside the mask), ``mask`` and ``inputs``."""
    x = (ds["activity"].values - mean) / std
    out = {"x": torch.as_tensor(x, dtype=dtype), "mask": torch.as_tensor(ds["mask"].values)}
    if "inputs" in ds.data_vars:
        out["inputs"] = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=dtype)
    return out


def _check_fit_data(model, ds, n_obs, observation, tau, sequence_length):
    N = ds.sizes["unit"]
    if n_obs is not None and n_obs != N:
        raise ValueError(f"activity: has {N} channels (unit) but n_obs = {n_obs} observed channels were claimed")
    if observation == "identity" and N > model.n_units - model.n_relu:
        raise ValueError(f"observation='identity': N = {N} observed channels need N <= M - P linear units, "
                         f"but M = {model.n_units}, P = {model.n_relu}; use observation='linear'")
    K = ds.sizes.get("input", 0) if "inputs" in ds.data_vars else 0
    if K != model.n_inputs:
        raise ValueError(f"inputs: the data have {K} input channels, the model takes n_inputs = {model.n_inputs}")
    lengths = ds["mask"].values.sum(1)
    short = lengths <= tau
    if short.any():
        i = int(np.argmax(short))
        raise ValueError(f"activity: trial {ds['trial'].values[i]!r} has {lengths[i]} valid steps, shorter than "
                         f"the forcing interval plus one (tau + 1 = {tau + 1}); drop short trials or lower tau")
    if sequence_length is not None and sequence_length > lengths.max():
        raise ValueError(f"sequence_length: {sequence_length} exceeds the longest trial ({lengths.max()} steps)")


# ---------------------------------------------------------------------------------- evaluation
METRICS = ("n_step", "d_stsp", "d_h")


def make_evaluate(metrics=METRICS, *, n_ahead: int = 20, free_run_steps: int | None = None, n_bins: int = 30,
                  smoothing: float = 1e-5, sigma: float = 20.0, seed=0):
    """``evaluate(module, val) -> dict`` for the trainer, in z-scored units.

    ``n_step``: the ``n_ahead``-step prediction error from every valid time point of the
    validation trials. ``d_stsp``/``d_h``: the divergence and spectrum distance of free runs:
    with ``free_run_steps`` None, each trial's run from its first observation (driven by its
    inputs, as long as the trial) against the trials; else one run of ``free_run_steps`` from
    the first trial's first observation against all validation steps in order (one long
    recording cut into windows). Diverged runs score ``inf``.
    """
    from ..analysis.dsr import n_step_prediction_error, power_spectrum_error, state_space_divergence

    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"metrics: unknown {sorted(unknown)}; expected a subset of {METRICS}")

    def evaluate(module, val):
        x = torch.where(val["mask"][..., None], val["x"], torch.full((), float("nan"), dtype=val["x"].dtype))
        x = x.cpu().numpy().astype(np.float64)
        s = val.get("inputs")
        model, obs = module.model, module.observation
        out = {}

        def run(x0, n, inputs):
            x0 = torch.as_tensor(x0, dtype=model.A.dtype)
            inputs = None if inputs is None else torch.as_tensor(inputs, dtype=model.A.dtype)
            z = alrnn_scan(obs.init_state(x0), model.drive(inputs, len(x0), n).contiguous(), model.A, model.W,
                           model.n_relu, backend=model.backend)
            return obs.readout(z)

        if "n_step" in metrics:
            out["n_step"] = n_step_prediction_error(run, x, n=n_ahead, inputs=None if s is None else s.cpu().numpy())
        if "d_stsp" in metrics or "d_h" in metrics:
            if free_run_steps is None:
                gen = run(x[:, 0], x.shape[1] - 1, None if s is None else s[:, 1:]).cpu().numpy()
                gen = np.concatenate([x[:, :1], gen], axis=1)
                gen[~val["mask"].cpu().numpy()] = np.nan
                data = x
            else:
                gen = run(x[:1, 0], int(free_run_steps), None).cpu().numpy()[0]
                data = x[np.isfinite(x).all(2)]
            if not np.isfinite(gen[~np.isnan(data).any(-1)] if free_run_steps is None else gen).all():
                out.update({k: float("inf") for k in ("d_stsp", "d_h") if k in metrics})
                return out
            if "d_stsp" in metrics:
                out["d_stsp"] = state_space_divergence(data, gen, n_bins, smoothing, seed=seed)
            if "d_h" in metrics:
                ref = data if free_run_steps is None else data[: len(gen)]
                out["d_h"] = power_spectrum_error(ref, gen, sigma)
        return {k: (float("inf") if not np.isfinite(v) else float(v)) for k, v in out.items()}

    return evaluate


# ---------------------------------------------------------------------------------- fitting
def _split(ds, val, seed):
    if val is None or hasattr(val, "data_vars"):
        return ds, val
    if not (isinstance(val, float) and 0 < val < 1):
        raise ValueError(f"val: expected a TrialDataset, a fraction in (0, 1) or None, got {val!r}")
    n = ds.sizes["trial"]
    n_val = int(round(val * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"val: a fraction {val} of {n} trials leaves no training or no validation trial; "
                         "pass val=None or a TrialDataset")
    order = np.random.default_rng(seed).permutation(n)
    return ds.isel(trial=np.sort(order[n_val:])), ds.isel(trial=np.sort(order[:n_val]))


def fit_teacher_forcing(model, ds, *, val=0.2, forcing: str = "sparse", tau: int | None = None, alpha=None,
                        observation: str = "identity", n_obs: int | None = None, noise_std: float = 0.0,
                        sequence_length: int | None = None, zscore: bool = True, n_steps: int = 2000,
                        batch_size: int = 16, optimizer: str = "radam", lr: float = 1e-3,
                        lr_decay: float | None = None, clip_grad_norm: float | None = 10.0, eval_every: int = 100,
                        patience: int | None = None, select_metric: str = "n_step",
                        metrics=METRICS, n_ahead: int = 20, free_run_steps: int | None = None,
                        adapt_every: int = 1, alpha_relax: float = 0.01, checkpoint=None, seed: int = 0,
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
    tau, alpha
        Forcing interval and strength; see :class:`TeacherForcingObjective`.
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
    metrics, n_ahead, free_run_steps
        See :func:`make_evaluate`.

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
    _check_fit_data(model, ds, n_obs, observation, tau, sequence_length)
    N = ds.sizes["unit"]
    mean, std = zscore_stats(ds) if zscore else (np.zeros(N), np.ones(N))
    module = ObservedALRNN(model, make_observation(observation, N, model, seed=seed), mean, std)
    dtype = model.A.dtype
    objective = TeacherForcingObjective(forcing, tau, alpha, noise_std=noise_std, sequence_length=sequence_length,
                                        adapt_every=adapt_every, alpha_relax=alpha_relax)
    if alpha != "adaptive":
        module.alpha.fill_(float(alpha))
    train_data = to_tensors(ds, mean, std, dtype)
    val_data = None if val_ds is None else to_tensors(val_ds, mean, std, dtype)
    evaluate = None if val_ds is None else make_evaluate(metrics, n_ahead=n_ahead, free_run_steps=free_run_steps,
                                                         seed=seed)
    if val_ds is None:
        select_metric = "train_loss"
    result = run_training(module, objective, train_data, val=val_data, evaluate=evaluate, n_steps=n_steps,
                          batch_size=batch_size, optimizer=optimizer, lr=lr,
                          lr_decay=(0.01 ** (1.0 / n_steps)) if lr_decay is None else lr_decay,
                          clip_grad_norm=clip_grad_norm, eval_every=eval_every, patience=patience,
                          select_metric=select_metric, select_mode="min", checkpoint=checkpoint, seed=seed,
                          progress=progress)
    module.train_result_ = result
    module.eval()
    return module
