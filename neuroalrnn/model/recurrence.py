"""The AL-RNN time loop: one definition, several exact backends.

``alrnn_scan`` runs, for t = 0..T-1 (``prev`` is ``z0`` at t = 0, else the last state)::

    prev[:, :N] = (1 - alpha_t) * prev[:, :N] + alpha_t * force_t     # only when force is given
    z_t = A * prev + W @ phi(prev) + drive_t                           # phi: identity, ReLU on last P

Ensembles: with a leading model dim K on every argument (``z0`` (K, B, M), ``drive`` (K, B, T, M),
``A`` (K, M), ``W`` (K, M, M), ``force`` (K, B, T, N), ``alpha`` broadcastable to (K, B, T)) and
``n_relu`` one int or K ints, K independent models (each with its own trials and its own P_k) run
as one computation; a single model is the K = 1 case.

Backends (all differentiable w.r.t. ``z0``, ``drive``, ``A``, ``W``, ``force`` and ``alpha``; all
follow torch's NaN rules: ``relu(NaN) = NaN``, and ``relu'`` is 0 only at z <= 0, so 1 at NaN):

``"loop"``
    ``alrnn_scan_reference``, a plain per-step loop of torch ops: the definition.
``"numba"``
    a fused compiled loop (CPU, float32/float64) with a hand-written reverse-time adjoint
    (``neuroalrnn.model._numba``); ensembles loop over the models inside the compiled code, on
    up to ``torch.get_num_threads()`` threads.
``"rnn"``
    the exact 2M-unit ReLU-RNN identity ``z = relu(z) - relu(-z)`` (``neuroalrnn.model._rnn_identity``):
    one ``torch.nn.RNN(nonlinearity="relu")``-style call (cuDNN on GPU, oneDNN on CPU) per model.
    Constant-alpha forcing of linear units folds into it; sparse forcing (few forced steps) runs
    one call per interval. Other forcing, and calls where a state is exactly 0 while gradients are
    needed (relu'(0) = 0 would drop them) or not finite, are redone with an exact backend (numba
    on CPU, triton or the loop on CUDA). Ensembles make one call per model: a block-diagonal
    2KM-unit RNN would be a single call, but K times the FLOPs.
``"triton"``
    persistent Triton kernels (CUDA, float32/float64): one program per (model, block of trials)
    runs the whole time loop with its ``W`` on chip, and a hand-written reverse-time adjoint
    (``neuroalrnn.model._triton``); K models are one launch. Every case is exact, forcing
    included. On CPU tensors it runs only in Triton's interpreter (``TRITON_INTERPRET=1``), which
    the tests use.
``"auto"``
    ``"numba"`` on CPU. On CUDA, a single model takes ``"rnn"``, or ``"triton"`` where the table of
    routes measured on this GPU model says it is faster at the nearest size
    (``neuroalrnn.model._cuda_routes``: ``DEVICE``, the GPU's name, and ``MEASURED``,
    ``{(B, T, M, P): {"rnn": ms, "triton": ms}}`` of forward+backward, written by
    ``benchmarks/gpu_check.sh`` from ``benchmarks/bench_recurrence.py --device cuda``; a table
    measured on another GPU model is not used); an ensemble takes
    ``"triton"`` (one launch for all models). Cases
    ``"rnn"`` cannot represent go to ``"triton"``; ``"loop"`` for other dtypes and devices,
    without triton, or for models whose ``W`` does not fit the kernels' shared memory (above 128
    units in float32, 64 in float64).

Exactness on GPUs: PyTorch runs float32 cuDNN RNNs in TF32 on Ampere and Hopper by default (and
matmuls when the user allows it), ~1e-3 relative error per step. The ``"rnn"`` and ``"loop"``
routes therefore run with full float32 in their forward and backward passes
(``neuroalrnn.model._precision``; the user's settings are restored after), and the Triton kernels
use ``tl.dot(..., input_precision="ieee")``.

``"rnn"`` and ``"triton"`` are the GPU routes; on CPU ``"rnn"`` is correct but slower than
``"numba"`` (2M hidden units).
"""

from __future__ import annotations

import functools
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


def _broadcast_alpha(alpha, force: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Return ``alpha`` broadcast to ``shape`` ((B, T), or (K, B, T)) in ``force``'s dtype (None: 1, full forcing)."""
    if alpha is None:
        alpha = 1.0
    alpha = torch.as_tensor(alpha, dtype=force.dtype, device=force.device)
    try:
        return torch.broadcast_to(alpha, shape)
    except RuntimeError:
        dims = "(batch, time)" if len(shape) == 2 else "(models, batch, time)"
        raise ValueError(f"alpha: expected a shape broadcastable to {dims} = {tuple(shape)}, "
                         f"got {tuple(alpha.shape)}") from None


def _n_relu_per_model(n_relu, K: int, M: int, single: bool) -> tuple[int, ...]:
    """P_k of each model as a tuple of K ints in [0, M] (one int for all, or K values for an ensemble)."""
    if isinstance(n_relu, torch.Tensor) and n_relu.ndim == 0 and not n_relu.is_floating_point():
        n_relu = int(n_relu)
    if not single and not isinstance(n_relu, numbers.Integral):
        if isinstance(n_relu, torch.Tensor):
            values = n_relu.tolist() if n_relu.ndim == 1 and not n_relu.is_floating_point() else None
        else:
            try:
                values = list(n_relu)
            except TypeError:
                values = None
        ok = values is not None and len(values) == K and all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) and 0 <= p <= M for p in values)
        if not ok:
            raise ValueError(f"n_relu: expected an int in [0, {M}] or {K} of them (one per model), got {n_relu!r}")
        return tuple(int(p) for p in values)
    if isinstance(n_relu, bool) or not isinstance(n_relu, numbers.Integral) or not 0 <= n_relu <= M:
        what = "" if single else f" or {K} of them (one per model)"
        raise ValueError(f"n_relu: expected an int in [0, {M}]{what}, got {n_relu!r}")
    return (int(n_relu),) * K


def _check(z0, drive, A, W, n_relu, force, alpha):
    """Validate a single-model or ensemble call; return it in ensemble form.

    Returns ``(z0, drive, A, W, n_relu, force, alpha, single)`` with a leading model dim K (K = 1 for
    a single model), ``n_relu`` a tuple of K ints, and ``alpha`` broadcast to (K, B, T) (None without
    ``force``).
    """
    for name, x in (("z0", z0), ("drive", drive), ("A", A), ("W", W)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if drive.ndim not in (3, 4):
        raise ValueError(f"drive: expected shape (batch, time, units), or (models, batch, time, units) for an "
                         f"ensemble, got {tuple(drive.shape)}")
    single = drive.ndim == 3
    K, B, T, M = (1,) + tuple(drive.shape) if single else tuple(drive.shape)
    lead, names = ((), "") if single else ((K,), "models, ")
    for name, x, want, dims in (("z0", z0, (B, M), "batch, units"), ("A", A, (M,), "units"),
                                ("W", W, (M, M), "units, units")):
        if tuple(x.shape) != lead + want:
            raise ValueError(f"{name}: expected shape ({names}{dims}) = {lead + want}, got {tuple(x.shape)}")
    n_relu = _n_relu_per_model(n_relu, K, M, single)
    dtypes = {x.dtype for x in (z0, drive, A, W)}
    if len(dtypes) != 1 or not drive.dtype.is_floating_point:
        raise TypeError(f"z0, drive, A, W: expected one floating dtype, got {sorted(map(str, dtypes))}")
    devices = {x.device for x in (z0, drive, A, W) + ((force,) if isinstance(force, torch.Tensor) else ())}
    if len(devices) != 1:  # a fused kernel handed a pointer from another device would read garbage
        raise ValueError(f"z0, drive, A, W, force: expected tensors on one device, got {sorted(map(str, devices))}")
    if force is not None:
        if not isinstance(force, torch.Tensor):
            raise TypeError(f"force: expected a torch.Tensor, got {type(force).__name__}")
        if force.ndim != drive.ndim or force.shape[:-1] != drive.shape[:-1] or force.shape[-1] > M:
            raise ValueError(f"force: expected shape ({names}batch, time, N) = {lead + (B, T)} + (N<={M},), "
                             f"got {tuple(force.shape)}")
        if force.dtype != drive.dtype:
            raise TypeError(f"force: expected dtype {drive.dtype}, got {force.dtype}")
        if not bool(torch.isfinite(force).all()):
            raise ValueError("force: contains NaN or inf (set alpha to 0 where there is no data, and fill force)")
        alpha = _broadcast_alpha(alpha, force, lead + (B, T))
    elif alpha is not None:
        raise ValueError("alpha: given without force")
    if single:
        z0, drive, A, W = z0[None], drive[None], A[None], W[None]
        if force is not None:
            force, alpha = force[None], alpha[None]
    return z0, drive, A, W, n_relu, force, alpha, single


def _triton_fits(drive: torch.Tensor) -> bool:
    """Whether the Triton kernels can run this call (triton installed, W on chip)."""
    try:
        from neuroalrnn.model._triton import fits
    except ImportError:  # a CUDA torch without triton
        return False
    return fits(drive.shape[-1], drive.dtype)


def _exact_fallback(drive: torch.Tensor) -> str:
    """The fastest backend exact in every case: numba on CPU, triton on CUDA, else the loop."""
    if drive.dtype not in (torch.float32, torch.float64):
        return "loop"
    if drive.device.type == "cpu":
        return "numba"
    if drive.device.type == "cuda" and _triton_fits(drive):  # W must fit on chip
        return "triton"
    return "loop"


@functools.lru_cache(maxsize=16)
def _gpu_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def _measured_route(device: torch.device, B: int, T: int, M: int) -> str | None:
    """The faster exact route measured on this GPU model at the nearest size (``_cuda_routes``), or None."""
    from neuroalrnn.model import _cuda_routes

    index = device.index if device.index is not None else torch.cuda.current_device()
    if _cuda_routes.DEVICE is None or _cuda_routes.DEVICE != _gpu_name(index):
        return None  # nothing measured, or measured on another GPU
    return _cuda_routes.faster_route(B, T, M)


def _auto(drive: torch.Tensor) -> str:
    """The route ``"auto"`` tries first for ensemble-form ``drive`` (K, B, T, M)."""
    if drive.device.type == "cpu":
        return _exact_fallback(drive)
    K, B, T, M = drive.shape
    if drive.device.type == "cuda" and drive.dtype in (torch.float32, torch.float64) and _triton_fits(drive):
        if K > 1 or _measured_route(drive.device, B, T, M) == "triton":
            return "triton"
    return "rnn"


def _constant_alpha(alpha, force, single: bool):
    """Each model's alpha (K,) when it is one value per model (for the rnn route's folding), else None."""
    if force is None:
        return None
    K = force.shape[0]
    a = torch.as_tensor(1.0 if alpha is None else alpha, dtype=force.dtype, device=force.device)
    try:
        return torch.broadcast_to(a, (1, 1) if single else (K, 1, 1)).reshape(K)
    except RuntimeError:
        return None


def _relu_mask(n_relu: tuple, M: int, device) -> torch.Tensor:
    """(K, 1, M) bool: True on the ReLU units of each model (the last P_k)."""
    n_lin = torch.tensor([M - p for p in n_relu], device=device)
    return (torch.arange(M, device=device) >= n_lin[:, None])[:, None, :]


def _phi_models(z: torch.Tensor, n_relu: tuple, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``_phi`` of each model's states z (K, ..., M): ReLU on the last P_k units of model k."""
    M = z.shape[-1]
    if all(p == 0 for p in n_relu):
        return z
    if all(p == M for p in n_relu):
        return torch.relu(z)
    if mask is None:
        mask = _relu_mask(n_relu, M, z.device)
    return torch.where(mask.reshape((len(n_relu),) + (1,) * (z.ndim - 2) + (M,)), torch.relu(z), z)


def _scan_reference(z0, drive, A, W, n_relu: tuple, force=None, alpha=None):
    """The loop on ensemble-form tensors (K leading; ``alpha`` (K, B, T)), as ``_check`` returns them."""
    K, B, T, M = drive.shape
    mask = _relu_mask(n_relu, M, drive.device)
    drives = drive.unbind(2)  # unbind once: indexing drive[:, :, t] in the loop makes backward O(T^2)
    if force is not None:
        forces, alphas = force.unbind(2), alpha.unbind(2)
        n_force = force.shape[-1]
    a, WT = A[:, None, :], W.transpose(1, 2)
    prev, out = z0, []
    for t in range(T):
        if force is not None:
            al = alphas[t][..., None]
            head = (1 - al) * prev[..., :n_force] + al * forces[t]
            prev = torch.cat([head, prev[..., n_force:]], dim=-1)
        prev = a * prev + torch.matmul(_phi_models(prev, n_relu, mask), WT) + drives[t]
        out.append(prev)
    if not out:
        return drive.new_zeros(drive.shape) + 0 * z0[:, :, None, :]  # keeps the autograd graph
    return torch.stack(out, dim=2)


def alrnn_scan_reference(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor,
                         n_relu, force: torch.Tensor | None = None, alpha=None) -> torch.Tensor:
    """Plain per-step loop of torch ops: the definition the fast backends are tested against.

    Same arguments and result as :func:`alrnn_scan` (one model, or an ensemble of K).

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan_reference(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 0].tolist()
    [1.0, 1.5, 1.75]
    """
    z0, drive, A, W, n_relu, force, alpha, single = _check(z0, drive, A, W, n_relu, force, alpha)
    states = _scan_reference(z0, drive, A, W, n_relu, force, alpha)
    return states[0] if single else states


def alrnn_scan(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor, n_relu,
               force: torch.Tensor | None = None, alpha=None, *, backend: str = "auto") -> torch.Tensor:
    """Run the AL-RNN recurrence over T steps and return the states for steps 1..T.

    One model, or an ensemble of K models run as one computation (a leading model dim on every
    argument; each model has its own batch of trials, its own parameters and its own P).

    Parameters
    ----------
    z0 : Tensor (batch, M), or (K, batch, M)
        Initial states.
    drive : Tensor (batch, T, M), or (K, batch, T, M)
        ``h + C s_t``, precomputed.
    A : Tensor (M,), or (K, M)
        Diagonal of the linear auto-regression.
    W : Tensor (M, M), or (K, M, M)
        Connectivity, applied to ``phi(z)`` (identity on the first M - P units, ReLU on the last P).
    n_relu : int, or (ensembles) a sequence or 1-D integer tensor of K ints
        P, the number of ReLU units (0 = linear RNN, M = classic PLRNN); for an ensemble one P for
        all models, or P_k per model.
    force : Tensor (batch, T, N), or (K, batch, T, N), optional
        Finite teacher signal for the first N units, mixed into the previous state before each step.
    alpha : float or Tensor broadcastable to (batch, T), or (K, batch, T), optional
        Forcing weight (0 = no forcing, 1 = replace; default 1 when ``force`` is given). Sparse
        teacher forcing is alpha 1 at forced steps, 0 elsewhere; generalized forcing a constant.
    backend : {"auto", "numba", "rnn", "triton", "loop"}
        See the module docstring. All give the same result to float tolerance.

    Returns
    -------
    Tensor (batch, T, M), or (K, batch, T, M)

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 1].tolist()
    [1.0, 1.5, 1.75]

    Two models (K = 2) with P = 0 and P = 2, one trial each:

    >>> A, W = torch.full((2, 2), 0.5), torch.zeros(2, 2, 2)
    >>> alrnn_scan(torch.zeros(2, 1, 2), -torch.ones(2, 1, 3, 2), A, W, [0, 2]).shape
    torch.Size([2, 1, 3, 2])
    """
    z0_, drive_, A_, W_, n_relu, force_, alpha_, single = _check(z0, drive, A, W, n_relu, force, alpha)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if drive.shape[-2] == 0:
        return drive.new_zeros(drive.shape) + 0 * z0[..., None, :]  # keeps the autograd graph
    args = (z0_, drive_, A_, W_, n_relu, force_, alpha_)
    if backend == "auto":
        backend = _auto(drive_)
    if backend == "rnn":
        from neuroalrnn.model._precision import pinned
        from neuroalrnn.model._rnn_identity import rnn_scan

        states = pinned(rnn_scan, *args[:-1], _constant_alpha(alpha, force_, single), alpha_)
        if states is not None:
            return states[0] if single else states
        backend = _exact_fallback(drive)  # not representable, or an exact redo is needed
    if backend == "triton":
        try:
            from neuroalrnn.model._triton import triton_scan
        except ImportError as err:
            raise ValueError(f"backend: 'triton' needs the triton package ({err})") from None
        states = triton_scan(*args)
    elif backend == "numba":
        if drive.device.type != "cpu":
            raise ValueError(f"backend: 'numba' runs on CPU tensors only, got device {drive.device}")
        from neuroalrnn.model._numba import numba_scan

        states = numba_scan(*args)
    else:
        from neuroalrnn.model._precision import pinned

        states = pinned(_scan_reference, *args)
    return states[0] if single else states
