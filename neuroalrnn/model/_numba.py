"""Fused CPU backend of :func:`neuroalrnn.model.recurrence.alrnn_scan`: numba forward and adjoint.

The time loop runs in compiled code on the (batch, time, units) arrays as given (no transposed
copies); each step is one small GEMM
(``phi(prev) @ W.T``) plus fused elementwise work. The backward pass is a hand-written
reverse-time adjoint (BPTT) that recomputes ``phi`` from the saved states, so memory is
O(B T M) and time O(T); ``dW`` is accumulated by one small GEMM per step.

The GEMMs go through the BLAS that numba links (scipy's OpenBLAS); its thread count is limited to
``torch.get_num_threads()`` during a call, so that the backend respects ``torch.set_num_threads``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from numba import njit
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
def _phi_row(prev, phi, b, n_lin):  # pragma: no cover - compiled
    """phi[b] <- identity on the first n_lin units, ReLU on the rest."""
    for i in range(n_lin):
        phi[b, i] = prev[b, i]
    for i in range(n_lin, prev.shape[1]):
        v = prev[b, i]
        phi[b, i] = v if v > 0 else 0


@njit(cache=True)
def _forward(z0, drive, A, WT, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    B, T, M = drive.shape
    out = np.empty((B, T, M), dtype=drive.dtype)
    prev = z0.copy()
    phi = np.empty((B, M), dtype=drive.dtype)
    tmp = np.empty((B, M), dtype=drive.dtype)
    for t in range(T):
        if has_force:
            _mix_forcing(prev, force, alpha, t)
        for b in range(B):
            _phi_row(prev, phi, b, n_lin)
        np.dot(phi, WT, tmp)
        for b in range(B):
            for i in range(M):
                v = A[i] * prev[b, i] + tmp[b, i] + drive[b, t, i]
                out[b, t, i] = v
                prev[b, i] = v
    return out


@njit(cache=True)
def _backward(gout, z0, out, A, W, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    B, T, M = out.shape
    N = force.shape[2]
    dt = out.dtype
    lam = np.empty((B, T, M), dtype=dt)    # total dL/dz_t = the gradient of drive
    dforce = np.zeros((B, T, N), dtype=dt)
    dalpha = np.zeros((B, T), dtype=dt)
    dA = np.zeros(M, dtype=dt)
    dW = np.zeros((M, M), dtype=dt)
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
        for b in range(B):
            _phi_row(prev, ph, b, n_lin)
            for i in range(M):
                dA[i] += lt[b, i] * prev[b, i]
        np.dot(lt, W, tmp)       # W^T lambda, per trial
        np.dot(lt.T, ph, dWt)    # lambda phi^T, summed over trials
        for i in range(M):
            for j in range(M):
                dW[i, j] += dWt[i, j]
        for b in range(B):
            for i in range(n_lin):
                carry[b, i] = A[i] * lt[b, i] + tmp[b, i]
            for i in range(n_lin, M):
                carry[b, i] = A[i] * lt[b, i] + (tmp[b, i] if prev[b, i] > 0 else 0)
        if has_force:  # through the mixing: to force, alpha and the unforced state
            for b in range(B):
                a = alpha[b, t]
                for i in range(N):
                    dp = carry[b, i]
                    dforce[b, t, i] = a * dp
                    dalpha[b, t] += dp * (force[b, t, i] - raw[b, i])
                    carry[b, i] = (1 - a) * dp
    return carry, lam, dA, dW, dforce, dalpha


def _blas_limit():
    """Context manager limiting OpenBLAS threads to torch's thread count (no-op without threadpoolctl)."""
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            import threadpoolctl

            _CONTROLLER = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
        return _CONTROLLER.limit(limits=torch.get_num_threads())
    except Exception:  # threadpoolctl missing or unable to control this BLAS
        return contextlib.nullcontext()


_CONTROLLER = None


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy())


class _NumbaScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z0, drive, A, W, force, alpha, n_relu):
        M = A.shape[0]
        n_lin = M - n_relu
        has_force = force is not None
        B, T = drive.shape[:2]
        dtype = _np(A).dtype
        f = _np(force) if has_force else np.zeros((B, T, 0), dtype=dtype)
        a = _np(alpha) if has_force else np.zeros((B, T), dtype=dtype)
        with _blas_limit():
            out = _forward(_np(z0), _np(drive), _np(A), _np(W.T), n_lin, f, a, has_force)
        ctx.n_lin, ctx.has_force = n_lin, has_force
        ctx.arrays = (f, a)
        states = torch.from_numpy(out)
        ctx.save_for_backward(z0, A, W, states)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z0, A, W, states = ctx.saved_tensors
        f, a = ctx.arrays
        with _blas_limit():
            dz0, lam, dA, dW, dforce, dalpha = _backward(
                _np(grad), _np(z0), states.numpy(), _np(A), _np(W), ctx.n_lin, f, a, ctx.has_force)
        need = ctx.needs_input_grad
        t = torch.from_numpy
        return (t(dz0) if need[0] else None,
                t(lam) if need[1] else None,
                t(dA) if need[2] else None,
                t(dW) if need[3] else None,
                t(dforce) if (ctx.has_force and need[4]) else None,
                t(dalpha) if (ctx.has_force and need[5]) else None,
                None)


def numba_scan(z0, drive, A, W, n_relu, force=None, alpha_bt=None):
    """Fused-loop scan (CPU, float32/float64); ``alpha_bt`` already broadcast to (B, T)."""
    if drive.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"drive: the numba backend needs float32 or float64, got {drive.dtype}")
    if force is None:
        return _NumbaScan.apply(z0, drive, A, W, None, None, n_relu)
    return _NumbaScan.apply(z0, drive, A, W, force, alpha_bt, n_relu)
