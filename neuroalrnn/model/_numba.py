"""Fused CPU backend of :func:`neuroalrnn.model.recurrence.alrnn_scan`: numba forward and adjoint.

The tensors come in ensemble form (a leading model dim K; a single model is K = 1). The time loop
of each model runs in compiled code on its (batch, time, units) arrays as given (no transposed
copies of the data); each step is one small GEMM (``phi(prev) @ W.T``, all the model's trials at
once) plus fused elementwise work. The backward pass is a hand-written reverse-time adjoint (BPTT)
that recomputes ``phi`` from the saved states, so memory is O(K B T M) and time O(T); ``dW`` is
accumulated by one small GEMM per step. The GEMMs go through the BLAS numba links (scipy's
OpenBLAS): hand-written loops (vectorised by LLVM, no fastmath) took 1.4-2x its time at M = 16-128
(measured with ``benchmarks/bench_recurrence.py``'s machine, AVX2). No fastmath anywhere, so NaN
and inf follow IEEE rules as in torch.

Models are independent: with ``torch.get_num_threads()`` > 1 and K > 1 they are spread over that
many numba threads (``prange`` over K; ``numba.set_num_threads`` is set for the call and restored
after; OpenBLAS runs one thread per model then), otherwise one thread runs them in turn with
OpenBLAS limited to torch's thread count, so the backend respects ``torch.set_num_threads``.

NaN semantics are torch's: ``relu(NaN) = NaN`` forward, and ``relu'`` is 0 only where the state is
<= 0 backward (1 at NaN, as torch's ``threshold_backward``).
"""

from __future__ import annotations

import contextlib
import threading

import numba
import numpy as np
import torch
from numba import njit, prange
from torch.autograd.function import once_differentiable


@njit(cache=True, inline="always")
def _mix_forcing(prev, force, alpha, t):  # pragma: no cover - compiled
    """prev[:, :N] <- (1 - alpha_t) prev + alpha_t force_t, in place (the forced previous state)."""
    N = force.shape[2]
    for b in range(prev.shape[0]):
        a = alpha[b, t]
        if a != 0:
            for i in range(N):
                prev[b, i] = (1 - a) * prev[b, i] + a * force[b, t, i]


@njit(cache=True, inline="always")
def _phi_rows(prev, phi, n_lin, zero):  # pragma: no cover - compiled
    """phi <- identity on the first n_lin units, ReLU on the rest; NaN is not < 0 and stays NaN, as torch.relu."""
    for b in range(prev.shape[0]):
        for i in range(prev.shape[1]):
            v = prev[b, i]
            phi[b, i] = zero if i >= n_lin and v < 0 else v


@njit(cache=True)
def _forward_model(z0, drive, A, WT, n_lin, force, alpha, has_force, out):  # pragma: no cover - compiled
    """One model's forward pass into ``out`` (B, T, M); WT is W transposed."""
    B, T, M = drive.shape
    zero = np.zeros(1, dtype=drive.dtype)[0]
    prev = z0.copy()
    phi = np.empty((B, M), dtype=drive.dtype)
    tmp = np.empty((B, M), dtype=drive.dtype)
    for t in range(T):
        if has_force:
            _mix_forcing(prev, force, alpha, t)
        _phi_rows(prev, phi, n_lin, zero)
        np.dot(phi, WT, tmp)
        for b in range(B):
            for i in range(M):
                v = A[i] * prev[b, i] + tmp[b, i] + drive[b, t, i]
                out[b, t, i] = v
                prev[b, i] = v


@njit(cache=True)
def _backward_model(gout, z0, out, A, W, n_lin, force, alpha, has_force,
                    dz0, lam, dA, dW, dforce, dalpha):  # pragma: no cover - compiled
    """One model's adjoint: writes dz0 (B, M) and lam = d drive (B, T, M), adds to dA, dW, dforce, dalpha."""
    B, T, M = out.shape
    N = force.shape[2]
    dt = out.dtype
    zero = np.zeros(1, dtype=dt)[0]
    dWt = np.empty((M, M), dtype=dt)
    carry = np.zeros((B, M), dtype=dt)     # dL/dz_t arriving from step t + 1
    lt = np.empty((B, M), dtype=dt)
    raw = np.empty((B, M), dtype=dt)
    prev = np.empty((B, M), dtype=dt)
    ph = np.empty((B, M), dtype=dt)
    tmp = np.empty((B, M), dtype=dt)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for i in range(M):
                v = gout[b, t, i] + carry[b, i]
                lt[b, i] = v
                lam[b, t, i] = v
                r = z0[b, i] if t == 0 else out[b, t - 1, i]
                raw[b, i] = r
                prev[b, i] = r
        if has_force:  # recompute the forced previous state
            _mix_forcing(prev, force, alpha, t)
        _phi_rows(prev, ph, n_lin, zero)
        for b in range(B):
            for i in range(M):
                dA[i] += lt[b, i] * prev[b, i]
        np.dot(lt, W, tmp)       # W^T lambda, per trial
        np.dot(lt.T, ph, dWt)    # lambda phi^T, summed over trials
        for i in range(M):
            for j in range(M):
                dW[i, j] += dWt[i, j]
        for b in range(B):
            for i in range(M):
                g = tmp[b, i]
                if i >= n_lin and prev[b, i] <= 0:  # relu' = 0 only at z <= 0 (1 at NaN), as torch
                    g = zero
                carry[b, i] = A[i] * lt[b, i] + g
        if has_force:  # through the mixing: to force, alpha and the unforced state
            for b in range(B):
                a = alpha[b, t]
                for i in range(N):
                    dp = carry[b, i]
                    dforce[b, t, i] = a * dp
                    dalpha[b, t] += dp * (force[b, t, i] - raw[b, i])
                    carry[b, i] = (1 - a) * dp
    for b in range(B):
        for i in range(M):
            dz0[b, i] = carry[b, i]


# The same per-model kernels, run over the K models in turn or spread over threads with prange.
@njit(cache=True)
def _forward(z0, drive, A, WT, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    out = np.empty(drive.shape, dtype=drive.dtype)
    for k in range(drive.shape[0]):
        _forward_model(z0[k], drive[k], A[k], WT[k], n_lin[k], force[k], alpha[k], has_force, out[k])
    return out


@njit(cache=True, parallel=True)
def _forward_parallel(z0, drive, A, WT, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    out = np.empty(drive.shape, dtype=drive.dtype)
    for k in prange(drive.shape[0]):
        _forward_model(z0[k], drive[k], A[k], WT[k], n_lin[k], force[k], alpha[k], has_force, out[k])
    return out


def _grads(out, force):
    K, B, T, M = out.shape
    return (np.empty((K, B, M), out.dtype), np.empty(out.shape, out.dtype), np.zeros((K, M), out.dtype),
            np.zeros((K, M, M), out.dtype), np.zeros(force.shape, out.dtype), np.zeros((K, B, T), out.dtype))


@njit(cache=True)
def _backward(gout, z0, out, A, W, n_lin, force, alpha, has_force, dz0, lam, dA, dW, dforce,
              dalpha):  # pragma: no cover - compiled
    for k in range(out.shape[0]):
        _backward_model(gout[k], z0[k], out[k], A[k], W[k], n_lin[k], force[k], alpha[k], has_force,
                        dz0[k], lam[k], dA[k], dW[k], dforce[k], dalpha[k])


@njit(cache=True, parallel=True)
def _backward_parallel(gout, z0, out, A, W, n_lin, force, alpha, has_force, dz0, lam, dA, dW, dforce,
                       dalpha):  # pragma: no cover - compiled
    for k in prange(out.shape[0]):
        _backward_model(gout[k], z0[k], out[k], A[k], W[k], n_lin[k], force[k], alpha[k], has_force,
                        dz0[k], lam[k], dA[k], dW[k], dforce[k], dalpha[k])


_PARALLEL = threading.Lock()  # numba's workqueue threading layer must not be entered from two threads


_BLAS = []  # threadpoolctl's controllers of the OpenBLAS libraries loaded (scipy's is numba's np.dot)


@contextlib.contextmanager
def _blas_threads(n: int):
    """Limit OpenBLAS to ``n`` threads within the block (no-op without threadpoolctl)."""
    if not _BLAS:
        try:
            import threadpoolctl

            _BLAS.extend(threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers)
        except Exception:  # threadpoolctl missing or unable to control this BLAS
            pass
        _BLAS.append(None)  # looked up once
    changed = []
    try:
        for lib in _BLAS[:-1]:
            before = lib.get_num_threads()
            if before != n:
                lib.set_num_threads(n)
                changed.append((lib, before))
        yield
    finally:
        for lib, before in changed:
            lib.set_num_threads(before)


def _run(serial, parallel, K: int, *args):
    """Run ``serial``, or ``parallel`` on min(torch threads, K) numba threads (restored after).

    The GEMMs inside use torch's thread count when the models run in turn, one thread each when
    they are spread over threads.
    """
    threads = torch.get_num_threads()
    n = min(threads, K, numba.config.NUMBA_NUM_THREADS)
    if n <= 1:
        with _blas_threads(threads):
            return serial(*args)
    with _PARALLEL, _blas_threads(1):
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            return parallel(*args)
        finally:
            numba.set_num_threads(before)


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy())


class _NumbaScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z0, drive, A, W, force, alpha, n_relu):
        K, B, T, M = drive.shape
        n_lin = np.array([M - p for p in n_relu], dtype=np.int64)
        has_force = force is not None
        dtype = _np(A).dtype
        f = _np(force) if has_force else np.zeros((K, B, T, 0), dtype=dtype)
        a = _np(alpha) if has_force else np.zeros((K, B, T), dtype=dtype)
        out = _run(_forward, _forward_parallel, K, _np(z0), _np(drive), _np(A), _np(W.transpose(1, 2)),
                   n_lin, f, a, has_force)
        ctx.n_lin, ctx.has_force, ctx.arrays = n_lin, has_force, (f, a)
        states = torch.from_numpy(out)
        ctx.save_for_backward(z0, A, W, states)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z0, A, W, states = ctx.saved_tensors
        f, a = ctx.arrays
        out = states.numpy()
        grads = _grads(out, f)
        _run(_backward, _backward_parallel, out.shape[0], _np(grad), _np(z0), out, _np(A), _np(W), ctx.n_lin,
             f, a, ctx.has_force, *grads)
        need = ctx.needs_input_grad
        dz0, lam, dA, dW, dforce, dalpha = (torch.from_numpy(g) for g in grads)
        return (dz0 if need[0] else None,
                lam if need[1] else None,
                dA if need[2] else None,
                dW if need[3] else None,
                dforce if (ctx.has_force and need[4]) else None,
                dalpha if (ctx.has_force and need[5]) else None,
                None)


def numba_scan(z0, drive, A, W, n_relu, force=None, alpha=None):
    """Fused-loop scan (CPU, float32/float64) of ensemble-form tensors: K leading, ``n_relu`` K ints,
    ``alpha`` (K, B, T)."""
    if drive.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"drive: the numba backend needs float32 or float64, got {drive.dtype}")
    if force is None:
        return _NumbaScan.apply(z0, drive, A, W, None, None, tuple(n_relu))
    return _NumbaScan.apply(z0, drive, A, W, force, alpha, tuple(n_relu))
