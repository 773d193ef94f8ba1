"""The task MSE of an ensemble on CPU as one compiled step: input drive, recurrence, readout and loss.

``task_objective``'s loss of an :class:`neuroalrnn.model.ALRNNEnsemble` is, per model k,
``sum(w (B z_t + b - y_t)^2) / sum(w)`` with ``z_t`` the AL-RNN's states from ``z_0 = 0`` under the
drive ``h + C s_t``. Run through autograd that is a dozen operations per step (the drive and readout
products, the scan, the loss and their backward nodes), each over every model's
(batch, time, units) tensor: at the demo's size they cost about as much as the recurrence itself.
Here each model's whole forward and backward pass runs in compiled code on that model's arrays
(the AL-RNN recurrence and its reverse-time adjoint, with the projections around them as
BLAS calls), and autograd sees one node. Same formulas, so the same losses and gradients as the
unfused objective to float rounding (``tests/test_fit_ensemble.py``).

Inside, states are time-major (T, B, M), the layout of the recurrence kernels of
``neuroalrnn.model._numba`` (``_scan`` and ``_adjoint``, shared with every other CPU fit). When
gradients will be needed, each model's adjoint runs right after its forward pass, while its states
are still in cache, and autograd's backward only scales the gradients made then: compare at M = 64
took 0.91x the time of the forward pass of every model followed by a separate backward pass (one
thread, 2026-11-29), and the states of all models are no longer kept between the two. Every
gradient, the products over all T x B rows (dW, dC) included, is made in the kernel, one model after
another, with no Python per model: on MKL (``neuroalrnn.model._blas``) the dW product took 0.77x
torch's batched product's time at M = 16 and 0.96x at M = 64 (2,368 rows, in cache, 2026-11-29).
The drive is made per model in compiled code, where it stays in cache for the scan.

Used for the ``"mse"`` loss of float32/float64 ensembles on CPU whose backend is ``"auto"`` or
``"numba"``; everything else goes through the unfused objective.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch.autograd.function import once_differentiable

from neuroalrnn.model._blas import gemm
from neuroalrnn.model._numba import _adjoint, _np, _run, _scan, time_major


@njit(cache=True, nogil=True)
def _drive(S, CT, h):  # pragma: no cover - compiled
    """The drive h + C s_t, time-major (T, B, M), of inputs ``S`` (T, B, I); without inputs (I = 0)
    a (1, B, M) array of h, constant in time (``_scan`` takes either).

    Per model, in compiled code: the drive stays in cache for the scan that reads it. One batched
    torch product for all models was as fast at M = 16 and 2x slower at M = 64 (2026-11-29)."""
    T, B, I = S.shape
    M = h.shape[0]
    drive = np.empty((T if I > 0 else 1, B, M), dtype=h.dtype)
    flat = drive.reshape(-1, M)
    if I > 0:
        np.dot(S.reshape(T * B, I), CT, flat)
    for r in range(flat.shape[0]):
        for i in range(M):
            flat[r, i] = flat[r, i] + h[i] if I > 0 else h[i]
    return drive


_LOOP_INPUTS = 8


@njit(cache=True, nogil=True)
def _drive_backward(lam, S, dh, dC):  # pragma: no cover - compiled
    """Adds to dh (M,) and writes dC (M, I) from lam = dLoss/d drive (T, B, M) and the inputs S (T, B, I),
    per model in compiled code.

    Up to ``_LOOP_INPUTS`` inputs both sums are one pass over lam: at the task's size (2368 rows, M = 64,
    five inputs) 55 against 73 us for the sum and a BLAS product (2026-11-29)."""
    T, B, M = lam.shape
    I = S.shape[2]
    flat, s = lam.reshape(T * B, M), S.reshape(T * B, I)
    if I > _LOOP_INPUTS:
        for r in range(T * B):
            for i in range(M):
                dh[i] += flat[r, i]
        np.dot(flat.T, s, dC)
        return
    acc = np.zeros((I + 1, M), dtype=lam.dtype)  # rows: dC^T, then dh
    for r in range(T * B):
        for i in range(I):
            v = s[r, i]
            for m in range(M):
                acc[i, m] += v * flat[r, m]
        for m in range(M):
            acc[I, m] += flat[r, m]
    for m in range(M):
        dh[m] += acc[I, m]
        for i in range(I):
            dC[m, i] = acc[i, m]


@njit(cache=True, nogil=True)
def _forward_one(S, CT, h, A, WT, n_lin, BoT, bo, Y, w, out, gy):  # pragma: no cover - compiled
    """One model: time-major states into ``out`` (T, B, M), dLoss/dy into ``gy`` (T, B, O); returns the loss.

    ``S`` (T, B, I) are the inputs, ``Y`` and ``w`` (B, T, O) the targets and weights.
    """
    T, B, M = out.shape
    O = gy.shape[2]
    dt = out.dtype
    _scan(np.zeros((B, M), dtype=dt), _drive(S, CT, h), A, WT, n_lin, np.empty((T, B, 0), dtype=dt),
          np.empty((T, B), dtype=dt), False, out)
    y = np.empty((T, B, O), dtype=dt)
    np.dot(out.reshape(T * B, M), BoT, y.reshape(T * B, O))
    total = 0.0
    num = 0.0
    for t in range(T):  # y and gy time-major, Y and w trial-major: read in place, no copies
        for b in range(B):
            for o in range(O):
                weight = w[b, t, o]
                residual = y[t, b, o] + bo[o] - Y[b, t, o]
                total += weight
                num += weight * residual ** 2
                gy[t, b, o] = 2 * weight * residual  # divided by the weight total below
    denom = max(total, 1e-12)
    grad = gy.reshape(T * B * O)
    for r in range(T * B * O):
        grad[r] /= denom
    return num / denom


@njit(cache=True, nogil=True)
def _backward_one(A, W, n_lin, Bo, out, gy, S, lam, PH, dA, dW, dh, dC, dB, db):  # pragma: no cover
    """One model's gradients of its loss into the zeroed dA, dW (M, M), dh, dC (M, I), dB (O, M) and db;
    ``lam`` and ``PH`` (T, B, M) are scratch space."""
    T, B, M = out.shape
    O = gy.shape[2]
    dt = out.dtype
    g = gy.reshape(T * B, O)
    states = out.reshape(T * B, M)
    np.dot(g.T, states, dB)
    for r in range(T * B):
        for o in range(O):
            db[o] += g[r, o]
    gout = np.empty((T, B, M), dtype=dt)
    gemm(g, Bo, gout.reshape(T * B, M))
    none = np.empty((T, B, 0), dtype=dt)
    _adjoint(gout, np.zeros((B, M), dtype=dt), out, A, W, n_lin, none, np.empty((T, B), dtype=dt), False,
             np.empty((B, M), dtype=dt), lam, dA, PH, dW, none, np.zeros((0, 0), dtype=dt))
    _drive_backward(lam, S, dh, dC)


@njit(cache=True, nogil=True)
def _model_step(S, CT, h, A, WT, W, n_lin, BoT, Bo, bo, Y, w, grads, out, gy, lam, PH, dA, dW, dh, dC, dB,
                db):  # pragma: no cover - compiled
    """One model's loss and, with ``grads``, its gradients (of the loss itself: dOut/dLoss = 1) right
    after, while its states are still in cache; ``out``, ``gy``, ``lam``, ``PH`` are scratch space."""
    loss = _forward_one(S, CT, h, A, WT, n_lin, BoT, bo, Y, w, out, gy)
    if grads:
        _backward_one(A, W, n_lin, Bo, out, gy, S, lam, PH, dA, dW, dh, dC, dB, db)
    return loss


@njit(cache=True, nogil=True)
def _step(S, CT, h, A, WT, W, n_lin, BoT, Bo, bo, Y, w, grads, loss, dA, dW, dh, dC, dB, db):  # pragma: no cover
    K, T, B = S.shape[0], S.shape[1], S.shape[2]
    M, O, dt = A.shape[1], BoT.shape[2], A.dtype
    out, lam, PH = np.empty((T, B, M), dtype=dt), np.empty((T, B, M), dtype=dt), np.empty((T, B, M), dtype=dt)
    gy = np.empty((T, B, O), dtype=dt)  # scratch, reused model after model
    for k in range(K):
        loss[k] = _model_step(S[k], CT[k], h[k], A[k], WT[k], W[k], n_lin[k], BoT[k], Bo[k], bo[k], Y[k], w[k], grads,
                              out, gy, lam, PH, dA[k], dW[k], dh[k], dC[k], dB[k], db[k])


@njit(cache=True, parallel=True)
def _step_parallel(S, CT, h, A, WT, W, n_lin, BoT, Bo, bo, Y, w, grads, loss, dA, dW, dh, dC, dB,
                   db):  # pragma: no cover - compiled
    K, T, B = S.shape[0], S.shape[1], S.shape[2]
    M, O, dt = A.shape[1], BoT.shape[2], A.dtype
    for k in prange(K):
        loss[k] = _model_step(S[k], CT[k], h[k], A[k], WT[k], W[k], n_lin[k], BoT[k], Bo[k], bo[k], Y[k], w[k], grads,
                              np.empty((T, B, M), dtype=dt), np.empty((T, B, O), dtype=dt),
                              np.empty((T, B, M), dtype=dt), np.empty((T, B, M), dtype=dt),
                              dA[k], dW[k], dh[k], dC[k], dB[k], db[k])


def wants_grads(params) -> bool:
    """Whether a fused step makes gradients in its forward pass: grad mode is on and a parameter requires grad."""
    return torch.is_grad_enabled() and any(p.requires_grad for p in params)


def hand_over(ctx, pairs) -> None:
    """Offer ``train_ensemble`` the (parameter, gradient array) pairs made in the forward pass as the
    gradients of ``loss.sum()`` (it then skips autograd's backward): only when every parameter that
    requires grad is a leaf; one reached through other operations needs autograd to chain its gradient."""
    if all(p.is_leaf for p, _ in pairs if p.requires_grad):
        ctx.sum_grads = [(p, torch.from_numpy(g)) for p, g in pairs]


def scaled(grads: tuple, grad: torch.Tensor) -> tuple:
    """The gradients made in a fused step's forward pass, times dOut/dLoss (K,) per model: as they are for
    loss.sum() (ones), scaled for another weighting."""
    scale = _np(grad)
    if (scale == 1).all():
        return grads
    return tuple(g * scale.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype) for g in grads)


class _FusedTaskMSE(torch.autograd.Function):
    # The gradients are made in the forward pass (each model's adjoint right after its forward, on
    # arrays still in cache) when they will be needed; backward only scales them by dOut/dLoss.
    @staticmethod
    def forward(ctx, inputs, targets, weight, A, W, h, C, B, b, n_relu, grads):
        K, nb, T, _ = inputs.shape
        M, O, I = A.shape[1], B.shape[1], inputs.shape[3]
        dtype = _np(A).dtype
        n_lin = np.array([M - p for p in n_relu], dtype=np.int64)
        S, Y = time_major(inputs), _np(targets)  # S time-major (K, T, B, I)
        w = _np(weight.expand(K, nb, T, O))
        loss = np.empty(K, dtype=dtype)
        shapes = ((K, M), (K, M, M), (K, M), (K, M, I), (K, O, M), (K, O)) if grads else \
            ((K, 0), (K, 0, 0), (K, 0), (K, 0, 0), (K, 0, 0), (K, 0))  # not written without grads
        ctx.grads = tuple(np.zeros(shape, dtype) for shape in shapes)
        _run(_step, _step_parallel, K, S, _np(C.transpose(1, 2)), _np(h), _np(A), _np(W.transpose(1, 2)), _np(W),
             n_lin, _np(B.transpose(1, 2)), _np(B), _np(b), Y, w, bool(grads), loss, *ctx.grads)
        if grads:
            hand_over(ctx, list(zip((A, W, h, C, B, b), ctx.grads)))
        return torch.from_numpy(loss)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return (None, None, None) + tuple(torch.from_numpy(g) for g in scaled(ctx.grads, grad)) + (None, None)


def fusable(ensemble, batch) -> bool:
    """Whether ``fused_task_mse`` applies: a CPU float32/64 ensemble on the numba backend, data without grad."""
    A = ensemble.A
    return (A.device.type == "cpu" and A.dtype in (torch.float32, torch.float64)
            and ensemble.backend in ("auto", "numba") and ensemble.n_outputs > 0
            and not any(batch[key].requires_grad for key in ("inputs", "targets", "weight"))
            and batch["inputs"].dtype == A.dtype)


def fused_task_mse(ensemble, inputs, targets, weight) -> torch.Tensor:
    """(K,) weighted MSE of each model's outputs from z0 = 0 over ``inputs`` (K, B, T, I), differentiable.

    ``targets`` (K, B, T, O); ``weight`` broadcastable to it.

    Examples
    --------
    >>> import torch
    >>> from neuroalrnn.model import ALRNNEnsemble
    >>> ens = ALRNNEnsemble(4, [0, 2], n_inputs=1, n_outputs=1, seeds=[0, 1])
    >>> x, y, w = torch.randn(2, 3, 5, 1), torch.zeros(2, 3, 5, 1), torch.ones(2, 3, 5, 1)
    >>> _, out = ens(x)
    >>> bool(torch.allclose(fused_task_mse(ens, x, y, w), (out ** 2).mean((1, 2, 3))))
    True
    """
    weight = weight.to(ensemble.A.dtype)
    params = (ensemble.A, ensemble.W, ensemble.h, ensemble.C, ensemble.B, ensemble.b)
    return _FusedTaskMSE.apply(inputs, targets.to(ensemble.A.dtype), weight, *params, tuple(ensemble.n_relu),
                              wants_grads(params))
