"""An ensemble of K AL-RNNs that share M and the input/output sizes, run as one computation.

Every parameter gains a leading model dim: A (K, M), W (K, M, M), h (K, M), C (K, M, inputs),
B (K, outputs, M), b (K, outputs). Model k has its own number of ReLU units P_k (ReLU on its last
P_k units; P_k = 0 is a linear RNN, P_k = M the classic PLRNN), so models with different P run
together. Inputs, states and outputs carry the model dim first: (K, batch, time, features).
A single :class:`neuroalrnn.model.ALRNN` is the K = 1 case; :meth:`ALRNNEnsemble.member` and
:meth:`ALRNNEnsemble.from_models` convert between the two.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from neuroalrnn.model._stacked_linear import stacked_linear
from neuroalrnn.model.alrnn import _PARAMS, ALRNN, _check_int, _resolve_device
from neuroalrnn.model.recurrence import alrnn_scan


def per_model(name: str, value, k: int, check=None) -> list:
    """A scalar or a sequence of ``k`` values -> a list of ``k`` values (``check(name, v)`` applied).

    Examples
    --------
    >>> per_model("lr", 0.1, 2), per_model("lr", [0.1, 0.2], 2)
    ([0.1, 0.1], [0.1, 0.2])
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, torch.Tensor)):
        values = [value] * k
    else:
        values = list(value.tolist() if hasattr(value, "tolist") else value)
        if len(values) != k:
            raise ValueError(f"{name}: expected one value per model ({k}), got {len(values)}")
    return [check(name, v) for v in values] if check else values


class ALRNNEnsemble(nn.Module):
    """K AL-RNNs of M units with per-model ReLU counts, parameters stacked on a leading model dim.

    Parameters
    ----------
    n_units : int
        M, shared by all models.
    n_relu : sequence of int
        P_k per model (its length is K).
    n_inputs, n_outputs : int
        Shared input and output sizes.
    init : str or sequence of str
        Initialisation per model (see :class:`neuroalrnn.model.ALRNN`).
    seeds : sequence of int, optional
        Seed per model: model k starts with exactly the parameters of
        ``ALRNN(n_units, n_relu[k], n_inputs, n_outputs, init=init[k], seed=seeds[k])``.
    device, dtype, backend
        As for :class:`neuroalrnn.model.ALRNN`.

    Examples
    --------
    >>> import torch
    >>> ens = ALRNNEnsemble(8, [0, 2, 8], n_inputs=3, n_outputs=1, seeds=[0, 1, 2])
    >>> states, outputs = ens(torch.zeros(3, 4, 10, 3))
    >>> tuple(states.shape), tuple(outputs.shape)
    ((3, 4, 10, 8), (3, 4, 10, 1))
    >>> bool(torch.equal(ens.member(1).W, ALRNN(8, 2, 3, 1, seed=1).W))
    True
    """

    def __init__(self, n_units: int, n_relu: Sequence[int], n_inputs: int = 0, n_outputs: int = 0, *,
                 init="reference", seeds: Sequence[int] | None = None, device="cpu",
                 dtype: torch.dtype = torch.float32, backend: str = "auto"):
        super().__init__()
        if isinstance(n_relu, (int, np.integer)) or not isinstance(n_relu, (Sequence, np.ndarray, torch.Tensor)):
            raise TypeError(f"n_relu: expected a sequence of ints (one per model), got {type(n_relu).__name__}")
        n_units = _check_int("n_units", n_units, 1)
        k = len(n_relu)
        if k < 1:
            raise ValueError("n_relu: expected at least one model")
        seeds = [None] * k if seeds is None else per_model("seeds", seeds, k)
        inits = per_model("init", init, k)
        models = [ALRNN(n_units, p, n_inputs, n_outputs, init=i, seed=s, device=device, dtype=dtype, backend=backend)
                  for p, i, s in zip(per_model("n_relu", n_relu, k), inits, seeds)]
        self._adopt(models)

    def _adopt(self, models):
        first = models[0]
        self.n_units, self.n_inputs, self.n_outputs = first.n_units, first.n_inputs, first.n_outputs
        self.backend = first.backend
        self.n_relu = tuple(m.n_relu for m in models)
        self.inits = tuple(m.init for m in models)
        for name in _PARAMS:
            setattr(self, name, nn.Parameter(torch.stack([getattr(m, name).detach() for m in models]).clone()))
        mask = torch.zeros(len(models), self.n_units, dtype=first.A.dtype, device=first.A.device)
        for i, p in enumerate(self.n_relu):
            mask[i, self.n_units - p:] = 1.0
        self.register_buffer("relu_mask", mask, persistent=False)

    @classmethod
    def from_models(cls, models: Sequence[ALRNN]) -> "ALRNNEnsemble":
        """Stack single models (same M, inputs, outputs, dtype, device and backend); parameters are copied.

        Examples
        --------
        >>> ens = ALRNNEnsemble.from_models([ALRNN(4, 0, seed=0), ALRNN(4, 4, seed=1)])
        >>> ens.n_models, ens.n_relu
        (2, (0, 4))
        """
        models = list(models)
        if not models or not all(isinstance(m, ALRNN) for m in models):
            raise TypeError("models: expected a non-empty sequence of neuroalrnn ALRNN models")
        first = models[0]
        for i, m in enumerate(models):
            for attr in ("n_units", "n_inputs", "n_outputs", "backend"):
                if getattr(m, attr) != getattr(first, attr):
                    raise ValueError(f"models[{i}]: {attr} = {getattr(m, attr)!r} differs from models[0]'s "
                                     f"{getattr(first, attr)!r}; an ensemble shares it")
            if m.A.dtype != first.A.dtype or m.A.device != first.A.device:
                raise ValueError(f"models[{i}]: dtype/device {m.A.dtype}/{m.A.device} differ from models[0]'s "
                                 f"{first.A.dtype}/{first.A.device}")
        ens = cls.__new__(cls)
        nn.Module.__init__(ens)
        ens._adopt(models)
        return ens

    @property
    def n_models(self) -> int:
        """K, the number of models."""
        return len(self.n_relu)

    def member(self, k: int, out: ALRNN | None = None) -> ALRNN:
        """Model ``k`` as a stand-alone :class:`neuroalrnn.model.ALRNN` (parameters copied).

        ``out``: a model of the same architecture (e.g. an earlier ``member(k)``) to copy them into.

        Examples
        --------
        >>> ALRNNEnsemble(4, [1, 3], seeds=[0, 0]).member(1).n_relu
        3
        """
        k = _check_int("k", k, -self.n_models, self.n_models - 1) % self.n_models
        params = {name: getattr(self, name).detach()[k] for name in _PARAMS}
        if out is not None:
            if out.n_relu != self.n_relu[k]:
                raise ValueError(f"out: has n_relu = {out.n_relu}, model {k} has {self.n_relu[k]}")
            out._set_params(params)
            return out
        model = ALRNN.from_params(**params, n_relu=self.n_relu[k], device=self.A.device, dtype=self.A.dtype,
                                  backend=self.backend)
        model.init = self.inits[k]
        return model

    def members(self) -> list[ALRNN]:
        """All models as stand-alone ALRNNs."""
        return [self.member(k) for k in range(self.n_models)]

    # ------------------------------------------------------------------ dynamics
    def drive(self, inputs: torch.Tensor | None, batch: int, n_steps: int) -> torch.Tensor:
        """``h + C s_t`` as a (K, batch, T, M) tensor (``inputs`` (K, batch, T, n_inputs) or None)."""
        K, M = self.n_models, self.n_units
        if inputs is None or self.n_inputs == 0:
            return self.h[:, None, None, :].expand(K, batch, n_steps, M)
        flat = inputs.reshape(K, batch * n_steps, self.n_inputs)
        return stacked_linear(flat, self.C, self.h).reshape(K, batch, n_steps, M)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """``B z + b`` of states (K, ..., M) -> (K, ..., O)."""
        K = self.n_models
        if states.ndim == 4 and not states.is_contiguous() and states.transpose(1, 2).is_contiguous():
            # the numba backend's states are views of time-major arrays: read out in that layout, no copy
            return self.readout(states.transpose(1, 2)).transpose(1, 2)
        flat = states.reshape(K, -1, self.n_units)
        return stacked_linear(flat, self.B, self.b).reshape(*states.shape[:-1], self.n_outputs)

    def _inputs(self, inputs):
        x = torch.as_tensor(inputs, dtype=self.A.dtype, device=self.A.device)
        if x.ndim != 4 or x.shape[0] != self.n_models or x.shape[3] != self.n_inputs:
            raise ValueError(f"inputs: expected shape (models={self.n_models}, batch, time, "
                             f"n_inputs={self.n_inputs}), got {tuple(x.shape)}")
        return x

    def _z0(self, z0, batch):
        if z0 is None:
            return self.A.new_zeros(self.n_models, batch, self.n_units)
        z = torch.as_tensor(z0, dtype=self.A.dtype, device=self.A.device)
        if z.ndim != 3 or z.shape[0] != self.n_models or z.shape[2] != self.n_units or \
                (batch is not None and z.shape[1] != batch):
            raise ValueError(f"z0: expected shape (models={self.n_models}, batch, n_units={self.n_units}), "
                             f"got {tuple(z.shape)}")
        return z

    def forward(self, inputs, z0=None, *, force=None, alpha=None):
        """Run every model over its inputs (K, B, T, n_inputs) from z0 (K, B, M; default 0).

        Returns ``(states (K, B, T, M), outputs (K, B, T, O))``; ``force`` (K, B, T, N) and ``alpha``
        (broadcastable to (K, B, T)) force the first N units as in ``alrnn_scan``.
        """
        x = self._inputs(inputs)
        z0 = self._z0(z0, x.shape[1])
        drive = self.drive(x, x.shape[1], x.shape[2])
        states = alrnn_scan(z0, drive, self.A, self.W, self.n_relu, force, alpha, backend=self.backend)
        return states, self.readout(states)

    def simulate(self, z0, n_steps: int | None = None, inputs=None, *, grad: bool = False) -> torch.Tensor:
        """Free runs from z0 (K, B, M) for ``n_steps`` (or as many steps as ``inputs`` has): (K, B, T, M).

        Plain tensors unless ``grad=True`` (as :meth:`neuroalrnn.model.ALRNN.simulate`).

        Examples
        --------
        >>> import torch
        >>> tuple(ALRNNEnsemble(4, [1, 2]).simulate(torch.ones(2, 3, 4), n_steps=5).shape)
        (2, 3, 5, 4)
        """
        x = None if inputs is None else self._inputs(inputs)
        z0 = self._z0(z0, None if x is None else x.shape[1])
        if x is None:
            if n_steps is None:
                raise ValueError("n_steps: required when no inputs are given")
            n_steps = _check_int("n_steps", n_steps, 0)
        elif n_steps is not None and int(n_steps) != x.shape[2]:
            raise ValueError(f"n_steps: {n_steps} does not match the {x.shape[2]} time steps of inputs")
        T = x.shape[2] if x is not None else n_steps
        with torch.set_grad_enabled(bool(grad) and torch.is_grad_enabled()):
            return alrnn_scan(z0, self.drive(x, z0.shape[1], T).contiguous(), self.A, self.W, self.n_relu,
                              backend=self.backend)

    def extra_repr(self) -> str:
        return (f"n_models={self.n_models}, n_units={self.n_units}, n_relu={list(self.n_relu)}, "
                f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}")

