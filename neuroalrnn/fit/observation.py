"""Observation models for fitting an AL-RNN to recordings, and the fitted wrapper.

* ``IdentityObservation``: the first N latent units are the N observed channels
  (N <= M - P, so observed units are linear); a learned map L sets the unobserved part
  of a trial's initial state from its first observation, z_1 = [x_1; L x_1]. Teacher
  forcing acts on the first N units.
* ``LinearObservation``: x_t = B z_t + b, for more channels than latent units. The initial
  state (and the teacher signal) is the least-squares state pinv(B) (x - b); teacher
  forcing then acts on all M units.

``ObservedALRNN`` bundles an ALRNN, an observation model and the per-channel z-scoring
of the training data; it free-runs and predicts in the data's own units.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..model.recurrence import alrnn_scan
from ..utils import torch_generator

__all__ = ["IdentityObservation", "LinearObservation", "ObservedALRNN", "make_observation"]


class IdentityObservation(nn.Module):
    """Identity readout of the first ``n_obs`` units with a learned initial-state map L.

    Examples
    --------
    >>> import torch
    >>> obs = IdentityObservation(2, n_units=5, n_relu=1, seed=0)
    >>> obs.init_state(torch.ones(3, 2)).shape
    torch.Size([3, 5])
    """

    def __init__(self, n_obs: int, n_units: int, n_relu: int, *, seed=None, dtype=torch.float32, device="cpu"):
        super().__init__()
        if n_obs < 1:
            raise ValueError(f"n_obs: expected at least one observed channel, got {n_obs}")
        if n_obs > n_units - n_relu:
            raise ValueError(f"observation='identity': N = {n_obs} observed channels need N <= M - P linear "
                             f"units, but M = {n_units}, P = {n_relu} (M - P = {n_units - n_relu}); use more "
                             "units, fewer ReLU units, or observation='linear'")
        self.n_obs, self.n_force = int(n_obs), int(n_obs)
        r = 1.0 / math.sqrt(n_obs)  # the reference's uniform(-1/sqrt(N), 1/sqrt(N)) init of B
        # drawn on the CPU (the same seed gives the same start on every device), then moved
        L = torch.rand(n_units - n_obs, n_obs, generator=torch_generator(seed), dtype=torch.float64)
        self.L = nn.Parameter(((2 * L - 1) * r).to(device=device, dtype=dtype))

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        return torch.cat([x1, x1 @ self.L.T], dim=-1)

    def forcing_signal(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def latent_signal(self, x: torch.Tensor) -> torch.Tensor:
        """The data as a full latent state [x; 0] (where adaptive alpha takes its Jacobians)."""
        return torch.cat([x, x.new_zeros(*x.shape[:-1], self.L.shape[0])], dim=-1)

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., : self.n_obs]


class LinearObservation(nn.Module):
    """Linear readout x = B z + b; states are inferred by least squares through B.

    Examples
    --------
    >>> import torch
    >>> obs = LinearObservation(6, n_units=4, seed=0)
    >>> z = torch.randn(2, 4)
    >>> torch.allclose(obs.init_state(obs.readout(z)), z, atol=1e-4)
    True
    """

    def __init__(self, n_obs: int, n_units: int, *, seed=None, dtype=torch.float32, device="cpu"):
        super().__init__()
        if n_obs < 1:
            raise ValueError(f"n_obs: expected at least one observed channel, got {n_obs}")
        self.n_obs, self.n_force = int(n_obs), int(n_units)
        gen = torch_generator(seed)
        q, _ = torch.linalg.qr(torch.randn(max(n_obs, n_units), min(n_obs, n_units), generator=gen,
                                           dtype=torch.float64))
        B = q if n_obs >= n_units else q.T  # orthonormal columns (or rows): well-conditioned start
        self.B = nn.Parameter(B.to(device=device, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_obs, dtype=dtype, device=device))

    def _pinv(self) -> torch.Tensor:
        return torch.linalg.pinv(self.B)

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        return (x1 - self.b) @ self._pinv().T

    def forcing_signal(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the teacher signal is data; B learns through the readout
            return (x - self.b) @ self._pinv().T

    latent_signal = forcing_signal  # already a full latent state

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.B.T + self.b


def make_observation(kind: str, n_obs: int, model, *, seed=None) -> nn.Module:
    """Build the observation model ``kind`` ('identity' or 'linear') for ``model``.

    Examples
    --------
    >>> from neuroalrnn.model import ALRNN
    >>> type(make_observation("linear", 10, ALRNN(4, 2, seed=0), seed=0)).__name__
    'LinearObservation'
    """
    where = dict(dtype=model.A.dtype, device=model.A.device)  # the model's dtype and device
    if kind == "identity":
        return IdentityObservation(n_obs, model.n_units, model.n_relu, seed=seed, **where)
    if kind == "linear":
        return LinearObservation(n_obs, model.n_units, seed=seed, **where)
    raise ValueError(f"observation: expected 'identity' or 'linear', got {kind!r}")


class ObservedALRNN(nn.Module):
    """An ALRNN with an observation model and the data's per-channel z-scoring.

    ``free_run`` and ``predict_ahead`` take and return observations in the data's own
    units; ``latent_free_run`` returns latent states. The current generalized-teacher-forcing
    alpha is kept as the buffer ``alpha`` (saved with checkpoints).
    """

    def __init__(self, model, observation: nn.Module, mean, std):
        super().__init__()
        self.model, self.observation = model, observation
        where = dict(dtype=model.A.dtype, device=model.A.device)
        self.register_buffer("mean", torch.as_tensor(np.array(mean, dtype=float), **where))
        self.register_buffer("std", torch.as_tensor(np.array(std, dtype=float), **where))
        self.register_buffer("alpha", torch.zeros((), **where))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.int64, device=model.A.device))

    # -- helpers ---------------------------------------------------------------------------------
    def drive(self, inputs: torch.Tensor | None, batch: int, n_steps: int) -> torch.Tensor:
        """h + C s_t as (batch, n_steps, M)."""
        return self.model.drive(inputs, batch, n_steps)

    def _tensor(self, x):
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                               dtype=self.model.A.dtype, device=self.model.A.device)

    def normalize(self, x):
        return (self._tensor(x) - self.mean) / self.std

    def denormalize(self, x):
        return x * self.std + self.mean

    # -- running ---------------------------------------------------------------------------------
    @torch.no_grad()
    def latent_free_run(self, x0, n_steps: int, inputs=None) -> torch.Tensor:
        """Latent states (batch, n_steps, M) after z_1 = init(x0) (raw units), driven by inputs (batch, n_steps, K)."""
        x0 = self.normalize(x0)
        squeeze = x0.ndim == 1
        x0 = x0[None] if squeeze else x0
        s = None if inputs is None else self._tensor(inputs)
        if s is not None and s.ndim == 2:
            s = s[None]
        want = (len(x0), int(n_steps), self.model.n_inputs)
        if s is not None and tuple(s.shape) != want:
            raise ValueError(f"inputs: expected shape (batch, n_steps, n_inputs) = {want} (the inputs of the "
                             f"steps after x0), got {tuple(s.shape)}")
        z1 = self.observation.init_state(x0)
        m = self.model
        states = alrnn_scan(z1, self.drive(s, len(x0), n_steps).contiguous(), m.A, m.W, m.n_relu,
                            backend=m.backend)
        return states[0] if squeeze else states

    @torch.no_grad()
    def free_run(self, x0, n_steps: int, inputs=None) -> np.ndarray:
        """Observations (batch, n_steps, N) in data units for the steps after x0.

        Examples
        --------
        >>> import numpy as np
        >>> from neuroalrnn.model import ALRNN
        >>> fitted = ObservedALRNN(ALRNN(4, 1, seed=0), IdentityObservation(2, 4, 1, seed=0), [1, 1], [2, 2])
        >>> fitted.free_run(np.zeros((5, 2)), 3).shape
        (5, 3, 2)
        """
        out = self.denormalize(self.observation.readout(self.latent_free_run(x0, n_steps, inputs)))
        return out.cpu().numpy().astype(np.float64)

    def predict_ahead(self, x0, n: int, inputs=None) -> np.ndarray:
        """n-step-ahead predictions (batch, n, N) from observations x0 (batch, N); see
        :func:`neuroalrnn.analysis.dsr.n_step_prediction_error`."""
        return self.free_run(x0, n, inputs)
