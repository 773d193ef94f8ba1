"""Observation models and the observed wrapper of K teacher-forced AL-RNNs stacked on a model dim.

``StackedObservation`` stacks K :class:`IdentityObservation` or K :class:`LinearObservation` of
``neuroalrnn.fit.observation`` (built as the single fits build them, so every model starts from the
same parameters) and applies model k's to the slice k of (K, ...) tensors; ``ObservedEnsemble``
bundles it with an :class:`neuroalrnn.model.ALRNNEnsemble` and each model's z-scoring, as
:class:`ObservedALRNN` does for one model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroalrnn.fit.observation import IdentityObservation, LinearObservation, ObservedALRNN
from neuroalrnn.model._stacked_linear import stacked_linear


def _bmm(x: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """x (K, ..., a) @ mat (K, a, b) per model -> (K, ..., b)."""
    K = x.shape[0]
    return torch.bmm(x.reshape(K, -1, x.shape[-1]), mat).reshape(*x.shape[:-1], mat.shape[-1])


class StackedObservation(nn.Module):
    """K observation models of one kind, applied per model to (K, ...) tensors.

    Examples
    --------
    >>> import torch
    >>> obs = StackedObservation([IdentityObservation(2, 5, p, seed=s) for p, s in ((0, 0), (3, 1))], [0, 3])
    >>> tuple(obs.init_state(torch.ones(2, 4, 2)).shape), type(obs.member(1)).__name__
    ((2, 4, 5), 'IdentityObservation')
    """

    def __init__(self, observations, n_relu):
        super().__init__()
        first = observations[0]
        if not all(type(o) is type(first) for o in observations):
            raise TypeError("observations: expected K observation models of one kind")
        self.kind = "identity" if isinstance(first, IdentityObservation) else "linear"
        self.n_obs, self.n_force, self.n_relu = first.n_obs, first.n_force, tuple(n_relu)
        names = ("L",) if self.kind == "identity" else ("B", "b")
        for name in names:
            setattr(self, name, nn.Parameter(torch.stack([getattr(o, name).detach() for o in observations]).clone()))

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        """States (K, B, M) from first observations (K, B, N)."""
        if self.kind == "identity":
            return torch.cat([x1, _bmm(x1, self.L.transpose(1, 2))], dim=-1)
        return _bmm(x1 - self.b[:, None, :], torch.linalg.pinv(self.B).transpose(1, 2))

    def forcing_signal(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher signal (K, B, T, n_force) of observations (K, B, T, N)."""
        if self.kind == "identity":
            return x
        with torch.no_grad():  # the teacher signal is data; B learns through the readout
            return self.latent_signal(x)

    def latent_signal(self, x: torch.Tensor) -> torch.Tensor:
        """The data as full latent states (K, B, T, M) (where adaptive alpha takes its Jacobians)."""
        if self.kind == "identity":
            return torch.cat([x, x.new_zeros(*x.shape[:-1], self.L.shape[1])], dim=-1)
        b = self.b.reshape((self.b.shape[0],) + (1,) * (x.ndim - 2) + (-1,))
        return _bmm(x - b, torch.linalg.pinv(self.B).transpose(1, 2))

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        """Observations (K, ..., N) of states (K, ..., M)."""
        if self.kind == "identity":
            return z[..., : self.n_obs]
        flat = z.reshape(z.shape[0], -1, z.shape[-1])
        return stacked_linear(flat, self.B, self.b).reshape(*z.shape[:-1], self.B.shape[1])

    def member(self, k: int, out: nn.Module | None = None) -> nn.Module:
        """Model k's observation model (parameters copied, into ``out`` when given)."""
        where = dict(dtype=self.n_dtype, device=self.n_device)
        if out is not None:
            obs = out
        elif self.kind == "identity":
            obs = IdentityObservation(self.n_obs, self.L.shape[1] + self.n_obs, self.n_relu[k], seed=0, **where)
        else:
            obs = LinearObservation(self.n_obs, self.B.shape[2], seed=0, **where)
        with torch.no_grad():
            for name, p in obs.named_parameters():
                p.copy_(getattr(self, name)[k])
        return obs

    @property
    def n_dtype(self):
        return next(self.parameters()).dtype

    @property
    def n_device(self):
        return next(self.parameters()).device


class ObservedEnsemble(nn.Module):
    """K AL-RNNs with their observation models and z-scoring (mean, std (K, N)); ``alpha`` (K,) per model.

    ``member(k)`` is model k as an :class:`ObservedALRNN`.
    """

    def __init__(self, model, observation: StackedObservation, mean, std):
        super().__init__()
        self.model, self.observation = model, observation
        where = dict(dtype=model.A.dtype, device=model.A.device)
        self.register_buffer("mean", torch.as_tensor(np.array(mean, dtype=float), **where))
        self.register_buffer("std", torch.as_tensor(np.array(std, dtype=float), **where))
        self.register_buffer("alpha", torch.zeros(model.n_models, **where))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.int64, device=model.A.device))

    def member(self, k: int, out: ObservedALRNN | None = None) -> ObservedALRNN:
        """Model k as an :class:`ObservedALRNN` (copied, into ``out``, an earlier ``member(k)``, when given)."""
        if out is None:
            module = ObservedALRNN(self.model.member(k), self.observation.member(k), self.mean[k].cpu().numpy(),
                                   self.std[k].cpu().numpy())
        else:
            module = out
            self.model.member(k, out.model)
            self.observation.member(k, out.observation)
        module.alpha.fill_(float(self.alpha[k]))
        module.n_updates.fill_(int(self.n_updates))
        return module.train(self.training)
