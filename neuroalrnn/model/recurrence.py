"""The AL-RNN time loop: one definition, several exact backends.

``alrnn_scan`` runs, for t = 0..T-1 (``prev`` is ``z0`` at t = 0, else the last state)::

    prev[:, :N] = (1 - alpha_t) * prev[:, :N] + alpha_t * force_t     # only when force is given
    z_t = A * prev + W @ phi(prev) + drive_t                           # phi: identity, ReLU on last P

Backends (all differentiable w.r.t. ``z0``, ``drive``, ``A``, ``W``, ``force`` and ``alpha``):

``"loop"``
    ``alrnn_scan_reference``, a plain per-step loop of torch ops: the definition.
``"numba"``
    a fused compiled loop (CPU, float32/float64) with a hand-written reverse-time adjoint
    (``neuroalrnn.model._numba``).
``"rnn"``
    the exact 2M-unit ReLU-RNN identity ``z = relu(z) - relu(-z)`` (``neuroalrnn.model._rnn_identity``):
    one ``torch.nn.RNN(nonlinearity="relu")``-style call (cuDNN on GPU, oneDNN on CPU). Constant-alpha
    forcing of linear units folds into it; sparse forcing (few forced steps) runs one call per
    interval. Other forcing, and calls where a state is exactly 0 while gradients are
    needed (relu'(0) = 0 would drop them), are redone with an exact backend (numba on CPU, loop else).
``"triton"``
    persistent Triton kernels (CUDA, float32/float64): one program per block of trials runs the
    whole time loop with ``W`` on chip, and a hand-written reverse-time adjoint
    (``neuroalrnn.model._triton``). Every case is exact, forcing included. On CPU tensors it runs
    only in Triton's interpreter (``TRITON_INTERPRET=1``), which the tests use.
``"auto"``
    ``"numba"`` on CPU; on CUDA ``"rnn"``, and ``"triton"`` for the cases ``"rnn"`` cannot represent
    (``"loop"`` for other dtypes and devices, without triton, or for models whose ``W`` does not fit
    the kernels' shared memory: above 128 units in float32, 64 in float64).

``"rnn"`` and ``"triton"`` are the GPU routes; on CPU ``"rnn"`` is correct but slower than
``"numba"`` (2M hidden units). ``"auto"`` prefers ``"rnn"`` (cuDNN) on CUDA until the Triton
kernels' speed has been measured on a GPU (``benchmarks/gpu_check.sh`` times both).
"""

from __future__ import annotations

import numbers

import torch

BACKENDS = ("auto", "numba", "rnn", "triton", "loop")


def _phi(z: torch.Tensor, n_lin: int) -> torch.Tensor:
    """Identity on the first ``n_lin`` units, ReLU on the rest (none at all when P = 0)."""
    if n_lin == z.shape[-1]:
        return z
    if n_lin == 0:
        return torch.relu(z)
    return torch.cat([z[..., :n_lin], torch.relu(z[..., n_lin:])], dim=-1)


def _broadcast_alpha(alpha, force: torch.Tensor, batch: int, n_steps: int) -> torch.Tensor:
    """Return ``alpha`` as a (B, T) tensor of ``force``'s dtype (``None`` means 1: full forcing)."""
    if alpha is None:
        alpha = 1.0
    alpha = torch.as_tensor(alpha, dtype=force.dtype, device=force.device)
    try:
        return torch.broadcast_to(alpha, (batch, n_steps))
    except RuntimeError:
        raise ValueError(f"alpha: expected a shape broadcastable to (batch, time) = ({batch}, {n_steps}), "
                         f"got {tuple(alpha.shape)}") from None


def _check(z0, drive, A, W, n_relu, force, alpha):
    for name, x in (("z0", z0), ("drive", drive), ("A", A), ("W", W)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if drive.ndim != 3:
        raise ValueError(f"drive: expected shape (batch, time, units), got {tuple(drive.shape)}")
    B, T, M = drive.shape
    if tuple(z0.shape) != (B, M):
        raise ValueError(f"z0: expected shape (batch, units) = ({B}, {M}), got {tuple(z0.shape)}")
    if tuple(A.shape) != (M,):
        raise ValueError(f"A: expected a vector of length {M}, got shape {tuple(A.shape)}")
    if tuple(W.shape) != (M, M):
        raise ValueError(f"W: expected shape ({M}, {M}), got {tuple(W.shape)}")
    if isinstance(n_relu, bool) or not isinstance(n_relu, numbers.Integral) or not 0 <= n_relu <= M:
        raise ValueError(f"n_relu: expected an int in [0, {M}], got {n_relu!r}")
    dtypes = {x.dtype for x in (z0, drive, A, W)}
    if len(dtypes) != 1 or not drive.dtype.is_floating_point:
        raise TypeError(f"z0, drive, A, W: expected one floating dtype, got {sorted(map(str, dtypes))}")
    devices = {x.device for x in (z0, drive, A, W) + ((force,) if isinstance(force, torch.Tensor) else ())}
    if len(devices) != 1:  # a fused kernel handed a pointer from another device would read garbage
        raise ValueError(f"z0, drive, A, W, force: expected tensors on one device, got {sorted(map(str, devices))}")
    if force is None:
        if alpha is not None:
            raise ValueError("alpha: given without force")
        return None
    if not isinstance(force, torch.Tensor):
        raise TypeError(f"force: expected a torch.Tensor, got {type(force).__name__}")
    if force.ndim != 3 or force.shape[:2] != (B, T) or force.shape[2] > M:
        raise ValueError(f"force: expected shape (batch, time, N) = ({B}, {T}, N<={M}), got {tuple(force.shape)}")
    if force.dtype != drive.dtype:
        raise TypeError(f"force: expected dtype {drive.dtype}, got {force.dtype}")
    if not bool(torch.isfinite(force).all()):
        raise ValueError("force: contains NaN or inf (set alpha to 0 where there is no data, and fill force)")
    return _broadcast_alpha(alpha, force, B, T)


def _exact_fallback(drive: torch.Tensor) -> str:
    """The fastest backend exact in every case: numba on CPU, triton on CUDA, else the loop."""
    if drive.dtype not in (torch.float32, torch.float64):
        return "loop"
    if drive.device.type == "cpu":
        return "numba"
    if drive.device.type == "cuda":
        try:
            from neuroalrnn.model._triton import fits
        except ImportError:  # a CUDA torch without triton
            return "loop"
        return "triton" if fits(drive.shape[-1], drive.dtype) else "loop"  # W must fit on chip
    return "loop"


def alrnn_scan_reference(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor,
                         n_relu: int, force: torch.Tensor | None = None, alpha=None) -> torch.Tensor:
    """Plain per-step loop of torch ops: the definition the fast backends are tested against.

    Same arguments and result as :func:`alrnn_scan`.

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan_reference(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 0].tolist()
    [1.0, 1.5, 1.75]
    """
    B, T, M = drive.shape
    n_lin = M - n_relu
    drives = drive.unbind(1)  # unbind once: indexing drive[:, t] in the loop makes backward O(T^2)
    if force is not None:
        alpha = _broadcast_alpha(alpha, force, B, T)
        forces, alphas = force.unbind(1), alpha.unbind(1)
        n_force = force.shape[2]
    prev, out = z0, []
    for t in range(T):
        if force is not None:
            a = alphas[t][:, None]
            head = (1 - a) * prev[:, :n_force] + a * forces[t]
            prev = torch.cat([head, prev[:, n_force:]], dim=1)
        prev = A * prev + _phi(prev, n_lin) @ W.T + drives[t]
        out.append(prev)
    if not out:
        return drive.new_zeros((B, 0, M))
    return torch.stack(out, dim=1)


def alrnn_scan(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor, n_relu: int,
               force: torch.Tensor | None = None, alpha=None, *, backend: str = "auto") -> torch.Tensor:
    """Run the AL-RNN recurrence over T steps and return the states (batch, T, M) for steps 1..T.

    Parameters
    ----------
    z0 : Tensor (batch, M)
        Initial states.
    drive : Tensor (batch, T, M)
        ``h + C s_t``, precomputed.
    A : Tensor (M,)
        Diagonal of the linear auto-regression.
    W : Tensor (M, M)
        Connectivity, applied to ``phi(z)`` (identity on the first M - P units, ReLU on the last P).
    n_relu : int
        P, the number of ReLU units (0 = linear RNN, M = classic PLRNN).
    force : Tensor (batch, T, N), optional
        Finite teacher signal for the first N units, mixed into the previous state before each step.
    alpha : float or Tensor broadcastable to (batch, T), optional
        Forcing weight (0 = no forcing, 1 = replace; default 1 when ``force`` is given). Sparse
        teacher forcing is alpha 1 at forced steps, 0 elsewhere; generalized forcing a constant.
    backend : {"auto", "numba", "rnn", "triton", "loop"}
        See the module docstring. All give the same result to float tolerance.

    Returns
    -------
    Tensor (batch, T, M)

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 1].tolist()
    [1.0, 1.5, 1.75]
    """
    alpha_bt = _check(z0, drive, A, W, n_relu, force, alpha)
    n_relu = int(n_relu)  # numpy integers are accepted
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    M = A.shape[0]
    if drive.shape[1] == 0:
        return drive.new_zeros(drive.shape) + 0 * z0[:, None, :]  # keeps the autograd graph
    if backend in ("auto", "rnn") and (backend == "rnn" or drive.device.type != "cpu"):
        from neuroalrnn.model._rnn_identity import plan, rnn_scan

        how = plan(force, alpha, alpha_bt, n_relu, M)
        states = None if how is None else rnn_scan(z0, drive, A, W, n_relu, force, alpha, alpha_bt, how)
        if states is not None:
            return states
        backend = "auto"  # not representable, or exactly-zero states: use an exact backend
    if backend == "auto":  # resolved before the dispatch below, which may then pick triton
        backend = _exact_fallback(drive)
    if backend == "triton":
        try:
            from neuroalrnn.model._triton import triton_scan
        except ImportError as err:
            raise ValueError(f"backend: 'triton' needs the triton package ({err})") from None
        return triton_scan(z0, drive, A, W, n_relu, force, alpha_bt)
    if backend == "numba":
        if drive.device.type != "cpu":
            raise ValueError(f"backend: 'numba' runs on CPU tensors only, got device {drive.device}")
        from neuroalrnn.model._numba import numba_scan

        return numba_scan(z0, drive, A, W, n_relu, force, alpha_bt)
    return alrnn_scan_reference(z0, drive, A, W, n_relu, force, alpha_bt)
