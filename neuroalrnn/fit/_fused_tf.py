"""The teacher-forcing MSE on CPU as one compiled step (identity observation models).

The loss of model k of ``EnsembleTeacherForcingObjective`` (and of ``TeacherForcingObjective``, as
K = 1) is ``sum_bt w_bt mean_n (z_btn - x_b,t+1,n)^2 / max(sum w, 1)``: the AL-RNN runs from
``z_1 = [x_1, L x_1]`` under the drive ``h + C s_t``, its first N units are forced towards the
teacher signal (``alpha`` per trial and step), and its first N units are read out. Through
autograd that is a dozen operations over (K, B, T, M) tensors, with time-major copies in and out
of the recurrence kernels, and at the Lorenz sweep's size (30 models, 16 x 199 steps, M = 20)
those cost about as much as the recurrence itself. Here each model's forward and backward pass
runs in compiled code (the time-major ``_scan`` and ``_adjoint`` of ``neuroalrnn.model._numba``,
shared with every other CPU fit, and the drive helpers of ``_fused_task``) and autograd sees one
node. Same formulas, so the same losses and gradients as the unfused objective to float rounding
(``tests/test_fit_ensemble.py``, ``tests/test_fit_teacher_forcing.py``). As in the task step, each
model's adjoint runs right after its forward pass when gradients will be needed: the kernels of
compare's teacher-forcing benchmark case (15 models, 16 x 200, M = 20) took 0.78x the time of a
forward pass over every model followed by a backward pass, the whole compare 0.84x (one thread,
2026-11-29).

Used for identity observation models of float32/float64 models and ensembles on CPU whose backend
is ``"auto"`` or ``"numba"``, except on the steps where the ``"fast"`` adaptive-alpha schedule needs
the states; linear observation models and every other case go through the unfused objective.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch.autograd.function import once_differentiable

from neuroalrnn.fit._fused_task import _drive, _drive_backward, hand_over, scaled, wants_grads
from neuroalrnn.model._numba import _adjoint, _np, _run, _scan, time_major


@njit(cache=True, nogil=True)
def _forward_one(x, w, force, alpha, S, CT, h, A, WT, n_lin, L, z0, out, gy):  # pragma: no cover - compiled
    """One model: states (T, B, M) into ``out``, dLoss/dz of the N observed units into ``gy`` (T, B, N).

    ``x`` (B, T + 1, N) is the window, ``w`` (B, T) the loss weights of steps 1..T, ``force``
    (T, B, N) and ``alpha`` (T, B) the teacher signal (time-major), ``S`` (T, B, I) the inputs.
    Returns the loss.
    """
    T, B, M = out.shape
    N = x.shape[2]
    for b in range(B):  # z_1 = [x_1, L x_1]
        for i in range(N):
            z0[b, i] = x[b, 0, i]
        for j in range(M - N):
            v = 0.0
            for i in range(N):
                v += L[j, i] * x[b, 0, i]
            z0[b, N + j] = v
    _scan(z0, _drive(S, CT, h), A, WT, n_lin, force, alpha, True, out)
    total = 0.0
    num = 0.0
    for b in range(B):
        for t in range(T):
            total += w[b, t]
    denom = max(total, 1.0)
    for t in range(T):
        for b in range(B):
            wt = w[b, t]
            for n in range(N):
                residual = out[t, b, n] - x[b, t + 1, n]
                num += wt * residual ** 2
                gy[t, b, n] = 2 * wt * residual / (N * denom)
    return num / (N * denom)


@njit(cache=True, nogil=True)
def _backward_one(x, force, alpha, S, A, W, n_lin, z0, out, gy, dA, dW, dh, dC, dL):  # pragma: no cover
    """One model's gradients of its loss into dA, dW, dh, dC (M, I) and dL (M - N, N)."""
    T, B, M = out.shape
    N = x.shape[2]
    dt = out.dtype
    gout = np.zeros((T, B, M), dtype=dt)
    for t in range(T):
        for b in range(B):
            for n in range(N):
                gout[t, b, n] = gy[t, b, n]
    lam = np.empty((T, B, M), dtype=dt)
    dz0 = np.empty((B, M), dtype=dt)
    _adjoint(gout, z0, out, A, W, n_lin, force, alpha, True, dz0, lam, dA, np.empty((T, B, M), dtype=dt), dW,
             np.empty(force.shape, dtype=dt), np.zeros((0, 0), dtype=dt))  # the teacher signal is data: no dforce, dalpha
    _drive_backward(lam, S, dh, dC)
    for b in range(B):  # through z_1 = [x_1, L x_1]
        for j in range(M - N):
            g = dz0[b, N + j]
            for i in range(N):
                dL[j, i] += g * x[b, 0, i]


@njit(cache=True, nogil=True)
def _model_step(x, w, force, alpha, S, CT, h, A, WT, W, n_lin, L, grads, z0, out, gy, dA, dW, dh, dC,
                dL):  # pragma: no cover - compiled
    """One model's loss and, with ``grads``, its gradients (dOut/dLoss = 1) right after, while its states
    are still in cache; ``z0``, ``out``, ``gy`` are scratch space."""
    loss = _forward_one(x, w, force, alpha, S, CT, h, A, WT, n_lin, L, z0, out, gy)
    if grads:
        _backward_one(x, force, alpha, S, A, W, n_lin, z0, out, gy, dA, dW, dh, dC, dL)
    return loss


@njit(cache=True, nogil=True)
def _step(x, w, force, alpha, S, CT, h, A, WT, W, n_lin, L, grads, loss, dA, dW, dh, dC, dL):  # pragma: no cover
    K, B, N = x.shape[0], x.shape[1], x.shape[3]
    T, M, dt = x.shape[2] - 1, A.shape[1], A.dtype
    z0, out, gy = np.empty((B, M), dtype=dt), np.empty((T, B, M), dtype=dt), np.empty((T, B, N), dtype=dt)
    for k in range(K):  # scratch reused model after model
        loss[k] = _model_step(x[k], w[k], force[k], alpha[k], S[k], CT[k], h[k], A[k], WT[k], W[k], n_lin[k], L[k],
                              grads, z0, out, gy, dA[k], dW[k], dh[k], dC[k], dL[k])


@njit(cache=True, parallel=True)
def _step_parallel(x, w, force, alpha, S, CT, h, A, WT, W, n_lin, L, grads, loss, dA, dW, dh, dC,
                   dL):  # pragma: no cover - compiled
    K, B, N = x.shape[0], x.shape[1], x.shape[3]
    T, M, dt = x.shape[2] - 1, A.shape[1], A.dtype
    for k in prange(K):
        loss[k] = _model_step(x[k], w[k], force[k], alpha[k], S[k], CT[k], h[k], A[k], WT[k], W[k], n_lin[k], L[k],
                              grads, np.empty((B, M), dtype=dt), np.empty((T, B, M), dtype=dt),
                              np.empty((T, B, N), dtype=dt), dA[k], dW[k], dh[k], dC[k], dL[k])


class _FusedTeacherForcingMSE(torch.autograd.Function):
    # As the task step (``_fused_task``): the gradients are made in the forward pass when they will be
    # needed, each model's adjoint right after its forward; backward only scales them by dOut/dLoss.
    @staticmethod
    def forward(ctx, x, weight, force, alpha, inputs, A, W, h, C, L, n_relu, grads):
        K, B, T1, N = x.shape
        T, M = T1 - 1, A.shape[1]
        dtype = _np(A).dtype
        n_lin = np.array([M - p for p in n_relu], dtype=np.int64)
        f, a = time_major(force), time_major(alpha)
        S = time_major(inputs) if inputs is not None else np.empty((K, T, B, 0), dtype=dtype)
        I = S.shape[3]
        loss = np.empty(K, dtype=dtype)
        shapes = ((K, M), (K, M, M), (K, M), (K, M, I), (K, M - N, N)) if grads else \
            ((K, 0), (K, 0, 0), (K, 0), (K, 0, 0), (K, 0, 0))  # not written without grads
        ctx.grads = tuple(np.zeros(shape, dtype) for shape in shapes)
        ctx.has_inputs = inputs is not None
        _run(_step, _step_parallel, K, _np(x), _np(weight), f, a, S, _np(C.transpose(1, 2)), _np(h), _np(A),
             _np(W.transpose(1, 2)), _np(W), n_lin, _np(L), bool(grads), loss, *ctx.grads)
        if grads:  # C has no gradient without inputs
            hand_over(ctx, [(p, g) for p, g in zip((A, W, h, C, L), ctx.grads) if p is not C or ctx.has_inputs])
        return torch.from_numpy(loss)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        dA, dW, dh, dC, dL = (torch.from_numpy(g) for g in scaled(ctx.grads, grad))
        return (None,) * 5 + (dA, dW, dh, dC if ctx.has_inputs else None, dL, None, None)


def fusable(identity: bool, model, backend, *tensors) -> bool:
    """Whether ``fused_teacher_forcing_mse`` applies: ``identity`` observations of a CPU float32/64
    model on the numba backend (``backend``, or the model's if None), data without grad."""
    A = model.A
    return (identity and A.device.type == "cpu" and A.dtype in (torch.float32, torch.float64)
            and (backend or model.backend) in ("auto", "numba")
            and not any(t is not None and (t.requires_grad or t.dtype != A.dtype) for t in tensors))


def fused_teacher_forcing_mse(model, L, x, weight, force, alpha, inputs=None) -> torch.Tensor:
    """(K,) teacher-forced MSE of K AL-RNNs with identity observation models, differentiable.

    ``model`` has ensemble-form ``A`` (K, M), ``W``, ``h``, ``C`` and ``n_relu`` (an
    :class:`neuroalrnn.model.ALRNNEnsemble`, or a single model's tensors with K = 1); ``L``
    (K, M - N, N) are the observation models' initial-state maps. ``x`` (K, B, T + 1, N) are the
    windows (zero where masked), ``weight`` (K, B, T) the loss weights of steps 1..T, ``force``
    (K, B, T, N) and ``alpha`` (K, B, T) the teacher signal of the states before steps 1..T,
    ``inputs`` (K, B, T, I) those of steps 1..T, or None.

    Examples
    --------
    >>> import torch
    >>> from neuroalrnn.model import ALRNNEnsemble
    >>> ens = ALRNNEnsemble(4, [0, 2], seeds=[0, 1])
    >>> x = torch.randn(2, 3, 6, 2)
    >>> L = torch.zeros(2, 2, 2)
    >>> fused_teacher_forcing_mse(ens, L, x, torch.ones(2, 3, 5), x[:, :, :-1], torch.zeros(2, 3, 5)).shape
    torch.Size([2])
    """
    params = (model.A, model.W, model.h, model.C, L)
    return _FusedTeacherForcingMSE.apply(x, weight, force, alpha, inputs, *params, tuple(model.n_relu),
                                         wants_grads(params))
