"""The almost-linear RNN (AL-RNN) as a ``torch.nn.Module``.

z_t = A * z_{t-1} + W phi(z_{t-1}) + h + C s_t, phi the identity on the first M - P units and ReLU
on the last P (P = 0: a linear RNN, no ReLU anywhere; P = M: the classic PLRNN); y_t = B z_t + b.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroalrnn.model.recurrence import BACKENDS, _phi, alrnn_scan
from neuroalrnn.utils import torch_generator

INITS = ("reference", "identity", "normal")
_PARAMS = ("A", "W", "h", "C", "B", "b")


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected an int in {bound}, got {value}")
    return int(value)


def _resolve_device(device) -> torch.device:
    """``"auto"``, a device string or a ``torch.device`` -> a ``torch.device`` that is available."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda[:i]' or a torch.device, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda[:i]' or a torch.device, got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but is not available (use device='auto' or 'cpu')")
    return device


class ALRNN(nn.Module):
    """Almost-linear RNN: M latent units of which the last P are ReLU units, plus a linear readout.

    Parameters
    ----------
    n_units : int
        M, the number of latent units.
    n_relu : int
        P, the number of ReLU units, 0 <= P <= M.
    n_inputs, n_outputs : int
        K external inputs s_t and O readout channels (0 allowed).
    init : {"reference", "identity", "normal"}
        ``"reference"``: A = diag(K)/lambda_max(K), K = R^T R / M + I (R standard normal M x M),
        W ~ N(0, 0.01^2) (the AL-RNN study's initialisation). ``"identity"``: A = 1, W ~ N(0, 0.01^2)
        (an integrator, IRNN-style). ``"normal"``: A = 0, W ~ N(0, 1/M). All: h = 0, C and B
        Xavier-uniform, b = 0.
    seed : int, optional
        Seeds the initialisation (same seed, same parameters on CPU).
    device : str or torch.device
        ``"auto"`` picks CUDA when available.
    dtype : torch.dtype
    backend : {"auto", "numba", "rnn", "triton", "loop"}
        Backend of :func:`neuroalrnn.model.recurrence.alrnn_scan` used by ``forward``/``simulate``.

    Examples
    --------
    >>> import torch
    >>> model = ALRNN(8, 2, n_inputs=3, n_outputs=1, seed=0)
    >>> states, outputs = model(torch.zeros(4, 10, 3))
    >>> tuple(states.shape), tuple(outputs.shape)
    ((4, 10, 8), (4, 10, 1))
    """

    def __init__(self, n_units: int, n_relu: int, n_inputs: int = 0, n_outputs: int = 0, *,
                 init: str = "reference", seed: int | None = None, device="cpu",
                 dtype: torch.dtype = torch.float32, backend: str = "auto"):
        super().__init__()
        self.n_units = _check_int("n_units", n_units, 1)
        self.n_relu = _check_int("n_relu", n_relu, 0, self.n_units)
        self.n_inputs = _check_int("n_inputs", n_inputs, 0)
        self.n_outputs = _check_int("n_outputs", n_outputs, 0)
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.init, self.backend = init, backend
        M, K, O = self.n_units, self.n_inputs, self.n_outputs
        gen = torch_generator(seed)
        f64 = torch.float64
        if init == "reference":
            R = torch.randn(M, M, generator=gen, dtype=f64)
            Kmat = R.T @ R / M + torch.eye(M, dtype=f64)
            A = torch.diagonal(Kmat) / torch.linalg.eigvalsh(Kmat)[-1]
            W = 0.01 * torch.randn(M, M, generator=gen, dtype=f64)
        elif init == "identity":
            A = torch.ones(M, dtype=f64)
            W = 0.01 * torch.randn(M, M, generator=gen, dtype=f64)
        else:
            A = torch.zeros(M, dtype=f64)
            W = torch.randn(M, M, generator=gen, dtype=f64) / M ** 0.5

        def xavier(rows, cols):
            bound = (6.0 / (rows + cols)) ** 0.5 if rows + cols else 0.0
            return (torch.rand(rows, cols, generator=gen, dtype=f64) * 2 - 1) * bound

        values = dict(A=A, W=W, h=torch.zeros(M, dtype=f64), C=xavier(M, K), B=xavier(O, M),
                      b=torch.zeros(O, dtype=f64))
        device = _resolve_device(device)
        for name in _PARAMS:
            setattr(self, name, nn.Parameter(values[name].to(device=device, dtype=dtype)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, *, A, W, h, C=None, B=None, b=None, n_relu: int, device="cpu",
                    dtype: torch.dtype | None = None, backend: str = "auto") -> "ALRNN":
        """Build a model from plain arrays (numpy or torch; copied, never shared).

        ``A`` is the diagonal (M,) (a diagonal (M, M) matrix is accepted); ``C`` (M, K) and ``B``
        (O, M) default to empty; ``b`` defaults to zeros. ``dtype`` defaults to the floating dtype
        shared by the numpy/torch arrays given; Python lists, scalars and integer arrays carry no
        precision and give ``torch.get_default_dtype()`` (float32). Floating arrays of different
        dtypes (say float64 ``A`` and float32 ``W``) raise ``TypeError`` unless ``dtype`` is given.

        Examples
        --------
        >>> import numpy as np
        >>> m = ALRNN.from_params(A=np.full(2, 0.5), W=np.zeros((2, 2)), h=np.ones(2), n_relu=1)
        >>> m.simulate(np.zeros((1, 2)), n_steps=2)[0, :, 0].tolist()
        [1.0, 1.5]
        >>> ALRNN.from_params(A=[0.5], W=[[0.0]], h=[0.0], n_relu=0).A.dtype
        torch.float32
        """
        arrays, given = {}, {}
        for name, x in dict(A=A, W=W, h=h, C=C, B=B, b=b).items():
            if x is None:
                continue
            if not isinstance(x, (np.ndarray, torch.Tensor, list, tuple, float, int)):
                raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
            if x.is_complex() if isinstance(x, torch.Tensor) else np.iscomplexobj(x):
                raise TypeError(f"{name}: expected real values, got complex ones (the imaginary part would be "
                                "dropped); pass the real part explicitly if that is meant")
            t = x.detach().cpu().clone() if isinstance(x, torch.Tensor) else torch.as_tensor(np.array(x, dtype=float))
            if isinstance(x, torch.Tensor) and x.dtype.is_floating_point:
                given[name] = x.dtype
            elif isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
                if x.dtype not in (np.float16, np.float32, np.float64):  # e.g. longdouble: torch has none
                    raise TypeError(f"{name}: expected float16/32/64 values, got {x.dtype}")
                given[name] = torch.from_numpy(np.empty(0, x.dtype)).dtype
            if not t.dtype.is_floating_point:
                t = t.to(torch.float64)
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: contains NaN or inf")
            arrays[name] = t
        if dtype is None:
            dtypes = set(given.values())
            if len(dtypes) > 1:
                found = ", ".join(f"{k}: {v}" for k, v in given.items())
                raise TypeError(f"dtype: the arrays have different floating dtypes ({found}); pass dtype= "
                                "(torch.float32 or torch.float64) or give arrays of one dtype")
            dtype = dtypes.pop() if dtypes else torch.get_default_dtype()
        A = arrays["A"]
        if A.ndim == 2 and A.shape[0] == A.shape[1]:
            if bool((A - torch.diag(torch.diagonal(A))).abs().max() > 0):
                raise ValueError("A: expected a vector (the diagonal) or a diagonal matrix, got off-diagonal entries")
            arrays["A"] = A = torch.diagonal(A).clone()
        if A.ndim != 1:
            raise ValueError(f"A: expected shape (M,), got {tuple(A.shape)}")
        M = A.shape[0]
        C = arrays.get("C", torch.zeros(M, 0))
        Bm = arrays.get("B", torch.zeros(0, M))
        if C.ndim != 2 or C.shape[0] != M:
            raise ValueError(f"C: expected shape ({M}, n_inputs), got {tuple(C.shape)}")
        if Bm.ndim != 2 or Bm.shape[1] != M:
            raise ValueError(f"B: expected shape (n_outputs, {M}), got {tuple(Bm.shape)}")
        arrays["C"], arrays["B"] = C, Bm
        arrays.setdefault("b", torch.zeros(Bm.shape[0]))
        model = cls(M, n_relu, C.shape[1], Bm.shape[0], init="reference", seed=0, device=device,
                    dtype=dtype, backend=backend)
        model._set_params(arrays)
        model.init = "from_params"
        return model

    def _set_params(self, arrays: dict) -> None:
        with torch.no_grad():
            for name in _PARAMS:
                p = getattr(self, name)
                x = arrays[name]
                if tuple(x.shape) != tuple(p.shape):
                    raise ValueError(f"{name}: expected shape {tuple(p.shape)}, got {tuple(x.shape)}")
                p.copy_(x.to(dtype=p.dtype, device=p.device))

    # ------------------------------------------------------------------ dynamics
    def _tensor(self, name, x, shape_hint):
        if not isinstance(x, torch.Tensor):
            if not isinstance(x, (np.ndarray, list, tuple)):
                raise TypeError(f"{name}: expected a tensor or array {shape_hint}, got {type(x).__name__}")
            x = torch.as_tensor(np.asarray(x, dtype=float))
        x = x.to(device=self.A.device, dtype=self.A.dtype)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or inf; expected finite values {shape_hint}")
        return x

    def _check_inputs(self, inputs):
        x = self._tensor("inputs", inputs, f"(batch, time, n_inputs={self.n_inputs})")
        if x.ndim != 3:
            raise ValueError(f"inputs: expected shape (batch, time, n_inputs={self.n_inputs}), got {tuple(x.shape)}")
        if x.shape[2] != self.n_inputs:
            raise ValueError(f"inputs: expected {self.n_inputs} features (n_inputs) in the last dim, got {x.shape[2]}")
        return x

    def _check_z0(self, z0, batch):
        if z0 is None:
            if batch is None:
                raise ValueError("z0: required when there are no inputs to take the batch size from")
            return self.A.new_zeros(batch, self.n_units)
        z = self._tensor("z0", z0, f"(batch, n_units={self.n_units})")
        if z.ndim != 2 or z.shape[1] != self.n_units or (batch is not None and z.shape[0] != batch):
            want = f"({batch if batch is not None else 'batch'}, {self.n_units})"
            raise ValueError(f"z0: expected shape {want}, got {tuple(z.shape)}")
        return z

    def _check_dtype(self, name, x):
        """Raise a TypeError naming ``name`` when tensor ``x`` is not of the model's dtype."""
        if isinstance(x, torch.Tensor) and x.dtype != self.A.dtype:
            raise TypeError(f"{name}: expected dtype {self.A.dtype} (the model's parameters), got {x.dtype}; "
                            f"convert with .to({self.A.dtype}) or build the model with dtype={x.dtype}")

    def drive(self, inputs: torch.Tensor | None, batch: int, n_steps: int) -> torch.Tensor:
        """``h + C s_t`` as a (batch, T, M) tensor (``inputs`` already checked, or None)."""
        if inputs is None or self.n_inputs == 0:
            return self.h.expand(batch, n_steps, self.n_units)
        return self.h + inputs @ self.C.T

    def step(self, z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """One application of the map to states ``z`` (..., M), with inputs ``s`` (..., K) if given.

        ``z`` and ``s`` must be tensors of the model's dtype (``TypeError`` naming them otherwise).

        Examples
        --------
        >>> import torch
        >>> m = ALRNN.from_params(A=[0.5], W=[[0.0]], h=[1.0], n_relu=0, dtype=torch.float32)
        >>> m.step(torch.tensor([[2.0]])).item()
        2.0
        """
        self._check_dtype("z", z)
        self._check_dtype("s", s)
        out = self.A * z + _phi(z, self.n_units - self.n_relu) @ self.W.T + self.h
        if s is not None and self.n_inputs:
            out = out + s @ self.C.T
        return out

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Linear readout ``B z + b`` of states (..., M) -> (..., O), ``states`` of the model's dtype.

        Examples
        --------
        >>> import torch
        >>> m = ALRNN.from_params(A=[0.5, 0.5], W=torch.zeros(2, 2), h=[0.0, 0.0], B=[[1.0, -1.0]], n_relu=0,
        ...                       dtype=torch.float32)
        >>> m.readout(torch.tensor([3.0, 1.0])).tolist()
        [2.0]
        """
        self._check_dtype("states", states)
        return states @ self.B.T + self.b

    def forward(self, inputs, z0=None, *, force=None, alpha=None):
        """Run over ``inputs`` (B, T, K) from ``z0`` (B, M; default 0).

        Returns ``(states (B, T, M), outputs (B, T, O))`` for steps 1..T. ``force``/``alpha`` are passed
        to :func:`neuroalrnn.model.recurrence.alrnn_scan` (teacher forcing of the first N units), with the
        model's ``backend``. ``inputs`` and ``z0`` (tensors, numpy arrays or lists) are converted to the
        model's dtype; ``force`` must already have it.

        Examples
        --------
        >>> import torch
        >>> m = ALRNN(4, 1, n_inputs=2, n_outputs=1, seed=0)
        >>> states, y = m(torch.randn(3, 6, 2), force=torch.zeros(3, 6, 1), alpha=0.5)
        >>> tuple(y.shape)
        (3, 6, 1)
        """
        x = self._check_inputs(inputs)
        z0 = self._check_z0(z0, x.shape[0])
        drive = self.drive(x, x.shape[0], x.shape[1])
        states = alrnn_scan(z0, drive, self.A, self.W, self.n_relu, force, alpha, backend=self.backend)
        return states, self.readout(states)

    def simulate(self, z0, n_steps: int | None = None, inputs=None, *, grad: bool = False) -> torch.Tensor:
        """Free run from ``z0`` (batch, M) for ``n_steps`` (or as many steps as ``inputs`` has).

        Returns the states (batch, T, M) for steps 1..T, on the model's device. By default they are
        plain tensors (no autograd graph, so ``.numpy()`` works on CPU and long runs keep no graph);
        ``grad=True`` records the graph for gradients (unless called under ``torch.no_grad``).

        Examples
        --------
        >>> import torch
        >>> m = ALRNN(4, 1, seed=0)
        >>> states = m.simulate(torch.ones(2, 4), n_steps=5)
        >>> states.shape, states.requires_grad
        (torch.Size([2, 5, 4]), False)
        >>> m.simulate(torch.ones(2, 4), n_steps=5, grad=True).sum().backward()
        """
        x = None if inputs is None else self._check_inputs(inputs)
        z0 = self._check_z0(z0, None if x is None else x.shape[0])
        if x is None:
            if n_steps is None:
                raise ValueError("n_steps: required when no inputs are given")
            n_steps = _check_int("n_steps", n_steps, 0)
        elif n_steps is not None and int(n_steps) != x.shape[1]:
            raise ValueError(f"n_steps: {n_steps} does not match the {x.shape[1]} time steps of inputs")
        T = x.shape[1] if x is not None else n_steps
        with torch.set_grad_enabled(bool(grad) and torch.is_grad_enabled()):
            return alrnn_scan(z0, self.drive(x, z0.shape[0], T), self.A, self.W, self.n_relu, backend=self.backend)

    def params_numpy(self) -> dict:
        """Parameters as float64 numpy arrays (copies): dict(A, W, h, C, B, b).

        Examples
        --------
        >>> sorted(ALRNN(3, 1, seed=0).params_numpy())
        ['A', 'B', 'C', 'W', 'b', 'h']
        """
        return {n: getattr(self, n).detach().cpu().to(torch.float64).numpy().copy() for n in _PARAMS}

    def hyper_params(self) -> dict:
        """The hyper-parameters that rebuild this architecture.

        Examples
        --------
        >>> ALRNN(5, 2, n_inputs=1, seed=0).hyper_params()
        {'n_units': 5, 'n_relu': 2, 'n_inputs': 1, 'n_outputs': 0, 'init': 'reference'}
        """
        return dict(n_units=self.n_units, n_relu=self.n_relu, n_inputs=self.n_inputs,
                    n_outputs=self.n_outputs, init=self.init)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hyper_params().items())

    def save(self, path) -> None:
        """Save to a safetensors file (hyper-parameters and a checksum in its metadata)."""
        from neuroalrnn.model._io import save_model

        save_model(self, path)


def load_model(path, *, device="cpu", dtype: torch.dtype | None = None) -> ALRNN:
    """Load an :class:`ALRNN` saved with :meth:`ALRNN.save` (safetensors; no pickle).

    Raises ``ValueError`` for a file of another architecture or a tampered/corrupt file.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> ALRNN(4, 2, 1, 1, seed=0).save(path)
    >>> load_model(path).n_relu
    2
    """
    from neuroalrnn.model._io import load_model as _load

    return _load(path, device=device, dtype=dtype)
