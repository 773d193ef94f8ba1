"""Fused CPU backend of :func:`neuroalrnn.model.recurrence.alrnn_scan`: numba forward and adjoint.

The tensors come in ensemble form (a leading model dim K; a single model is K = 1). The time loop
of each model runs in compiled code on time-major (time, batch, units) copies of its arrays: each
step's B x M values are one contiguous block, so the step's elementwise work (phi, the update, the
adjoint's carry) runs as flat loops that LLVM vectorises. On the (batch, time, units) layout the
same loops ran at about 1 ns per value; time-major, the kernels' forward + backward of the Lorenz
teacher-forcing step (30 models, 16 x 199 steps, M = 20) went from 45 to 26 ms (2026-11-29, 2-core
dev box), and ``alrnn_scan`` with its copies in and out takes 0.85-1.03x the time it took before.
States and gradients go back to torch as (K, B, T, M) views of the time-major arrays; the fused
objectives (``neuroalrnn.fit._fused_task``, ``_fused_tf``) call the kernels without those copies.
Each step has one small GEMM (``phi(prev) @ W.T``, all the model's trials at once). The backward
pass is a hand-written reverse-time adjoint (BPTT) that recomputes ``phi`` from the saved states,
so memory is O(K B T M) and time O(T). ``dW`` is one product over all T x B rows after the time loop
(2-7% faster than one small product per step at M = 16-64). The GEMMs go through
``neuroalrnn.model._blas`` (MKL where torch carries it: 0.8x the time of scipy's OpenBLAS, which
``np.dot`` links); hand-written loops (vectorised by LLVM, no fastmath) took 1.4-2x OpenBLAS's time
at M = 16-128 (measured with ``benchmarks/bench_recurrence.py``'s machine, AVX2), and 7x at M = 16
with the sizes known to the compiler (2026-11-29). No fastmath anywhere, so NaN and inf follow IEEE
rules as in torch.

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

from neuroalrnn._memory import keep_freed_memory
from neuroalrnn._threads import load_numba_blas
from neuroalrnn.model._blas import gemm, gemm_rows


@njit(cache=True, nogil=True)
def _unit_tables(A, n_lin, B):  # pragma: no cover - compiled
    """A and "unit is linear" repeated for the B rows of a flat (B * M) step."""
    M = A.shape[0]
    Arep = np.empty(B * M, dtype=A.dtype)
    linear = np.empty(B * M, dtype=np.bool_)
    for b in range(B):
        for i in range(M):
            Arep[b * M + i] = A[i]
            linear[b * M + i] = i < n_lin
    return Arep, linear


@njit(cache=True, inline="always")
def _mix_forcing(prev, force, alpha, M):  # pragma: no cover - compiled
    """Flat prev[b * M + i] <- (1 - alpha_b) prev + alpha_b force_bi for i < N: the forced state of one step."""
    for b in range(force.shape[0]):
        a = alpha[b]
        if a != 0:
            for i in range(force.shape[1]):
                prev[b * M + i] = (1 - a) * prev[b * M + i] + a * force[b, i]


@njit(cache=True, nogil=True)
def _scan(z0, drive, A, WT, n_lin, force, alpha, has_force, out):  # pragma: no cover - compiled
    """One model's forward pass, time-major: out (T, B, M), force (T, B, N), alpha (T, B); WT = W^T.

    ``drive`` is (T, B, M), or (1, B, M) for a drive constant in time (no inputs: h only).
    """
    T, B, M = out.shape
    n = B * M
    zero = np.zeros(1, dtype=drive.dtype)[0]
    Arep, linear = _unit_tables(A, n_lin, B)
    prev = z0.copy().reshape(n)
    phi = np.empty(n, dtype=drive.dtype)
    tmp = np.empty(n, dtype=drive.dtype)
    for t in range(T):
        if has_force:
            _mix_forcing(prev, force[t], alpha[t], M)
        for e in range(n):  # NaN is not < 0: it stays NaN, as torch.relu
            v = prev[e]
            phi[e] = v if linear[e] or not v < 0 else zero
        gemm(phi.reshape(B, M), WT, tmp.reshape(B, M))
        d, o = drive[t if drive.shape[0] == T else 0].reshape(n), out[t].reshape(n)
        for e in range(n):
            v = Arep[e] * prev[e] + tmp[e] + d[e]
            o[e] = v
            prev[e] = v


@njit(cache=True, nogil=True)
def _adjoint(gout, z0, out, A, W, n_lin, force, alpha, has_force,
             dz0, lam, dA, PH, dW, dforce, dalpha):  # pragma: no cover - compiled
    """Reverse-time adjoint of ``_scan`` (same layout): writes dz0 (B, M), lam = d drive (T, B, M) and
    PH = phi of each step's (forced) previous state (T, B, M), adds to dA, dW, dforce (T, B, N; written
    where alpha != 0) and dalpha (T, B; a (0, 0) array: not needed).

    ``dW += lam^T PH`` is one product over all T x B rows at the end; with ``dW`` a (0, 0) array it is
    left out."""
    T, B, M = out.shape
    n = B * M
    dt = out.dtype
    zero = np.zeros(1, dtype=dt)[0]
    Arep, linear = _unit_tables(A, n_lin, B)
    carry = np.zeros(n, dtype=dt)     # dL/dz_t arriving from step t + 1
    forced = np.empty(n, dtype=dt)
    tmp = np.empty(n, dtype=dt)
    dAe = np.zeros(n, dtype=dt)
    need_dalpha = dalpha.shape[0] > 0
    for t in range(T - 1, -1, -1):
        g, lam_t, ph = gout[t].reshape(n), lam[t].reshape(n), PH[t].reshape(n)
        raw = z0.reshape(n) if t == 0 else out[t - 1].reshape(n)
        prev = raw  # the previous state, after forcing; read in place without forcing (0.8-0.9x the time)
        if has_force:  # recompute the forced previous state
            forced[:] = raw
            _mix_forcing(forced, force[t], alpha[t], M)
            prev = forced
        for e in range(n):
            v = g[e] + carry[e]
            lam_t[e] = v
            p = prev[e]
            ph[e] = p if linear[e] or not p < 0 else zero
            dAe[e] += v * p
        gemm(lam_t.reshape(B, M), W, tmp.reshape(B, M))       # W^T lambda, per trial
        for e in range(n):  # relu' = 0 only at z <= 0 (1 at NaN), as torch
            carry[e] = Arep[e] * lam_t[e] + (tmp[e] if linear[e] or not prev[e] <= 0 else zero)
        if has_force:  # through the mixing: to force, alpha and the unforced state
            for b in range(B):
                a = alpha[t, b]
                if a == 0 and not need_dalpha:  # nothing flows to the teacher signal
                    continue
                for i in range(force.shape[2]):
                    dp = carry[b * M + i]
                    dforce[t, b, i] = a * dp
                    if need_dalpha:
                        dalpha[t, b] += dp * (force[t, b, i] - raw[b * M + i])
                    carry[b * M + i] = (1 - a) * dp
    dz0[:] = carry.reshape(B, M)
    if dW.shape[0] > 0:
        gemm_rows(lam.reshape(T * B, M), PH.reshape(T * B, M), dW, 1.0)  # += lambda phi^T over all steps and trials
    for b in range(B):
        for i in range(M):
            dA[i] += dAe[b * M + i]


# The same per-model kernels, run over the K models in turn or spread over threads with prange.
@njit(cache=True, nogil=True)
def _forward(z0, drive, A, WT, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    out = np.empty(drive.shape, dtype=drive.dtype)
    for k in range(drive.shape[0]):
        _scan(z0[k], drive[k], A[k], WT[k], n_lin[k], force[k], alpha[k], has_force, out[k])
    return out


@njit(cache=True, parallel=True)
def _forward_parallel(z0, drive, A, WT, n_lin, force, alpha, has_force):  # pragma: no cover - compiled
    out = np.empty(drive.shape, dtype=drive.dtype)
    for k in prange(drive.shape[0]):
        _scan(z0[k], drive[k], A[k], WT[k], n_lin[k], force[k], alpha[k], has_force, out[k])
    return out


def _grads(out, force, need_dalpha=True):
    """Zeroed/empty gradient arrays of a time-major (K, T, B, M) run: dz0, lam, dA, dW, dforce, dalpha."""
    K, T, B, M = out.shape
    dalpha = np.zeros((K, T, B) if need_dalpha else (K, 0, 0), out.dtype)
    return (np.empty((K, B, M), out.dtype), np.empty(out.shape, out.dtype), np.zeros((K, M), out.dtype),
            np.zeros((K, M, M), out.dtype), np.zeros(force.shape, out.dtype), dalpha)


@njit(cache=True, nogil=True)
def _backward(gout, z0, out, A, W, n_lin, force, alpha, has_force, dz0, lam, dA, dW, dforce,
              dalpha):  # pragma: no cover - compiled
    for k in range(out.shape[0]):
        _adjoint(gout[k], z0[k], out[k], A[k], W[k], n_lin[k], force[k], alpha[k], has_force,
                 dz0[k], lam[k], dA[k], np.empty(out.shape[1:], dtype=out.dtype), dW[k], dforce[k], dalpha[k])


@njit(cache=True, parallel=True)
def _backward_parallel(gout, z0, out, A, W, n_lin, force, alpha, has_force, dz0, lam, dA, dW, dforce,
                       dalpha):  # pragma: no cover - compiled
    for k in prange(out.shape[0]):
        _adjoint(gout[k], z0[k], out[k], A[k], W[k], n_lin[k], force[k], alpha[k], has_force,
                 dz0[k], lam[k], dA[k], np.empty(out.shape[1:], dtype=out.dtype), dW[k], dforce[k], dalpha[k])


_PARALLEL = threading.Lock()  # numba's workqueue threading layer must not be entered from two threads


_BLAS = []  # threadpoolctl's controllers of the OpenBLAS libraries loaded (scipy's is numba's np.dot)
_BLAS_LOOKUP = threading.Lock()


@contextlib.contextmanager
def _blas_threads(n: int):
    """Limit OpenBLAS to ``n`` threads within the block (no-op without threadpoolctl)."""
    if not _BLAS:  # looked up once; the lock only for a sweep's threads starting their first kernels together
        with _BLAS_LOOKUP:
            if not _BLAS:
                load_numba_blas()  # before the lookup: numba loads it only when a kernel first runs
                found = []
                try:
                    import threadpoolctl

                    found = threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers
                except Exception:  # threadpoolctl missing or unable to control this BLAS
                    pass
                _BLAS[:] = [*found, None]  # whole at once: a thread that skips the lock sees all or nothing
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


@njit(cache=True, nogil=True)
def _time_major_rows(x):  # pragma: no cover - compiled
    """(K, B, T, F) -> a (K, T, B, F) copy."""
    K, B, T, F = x.shape
    out = np.empty((K, T, B, F), dtype=x.dtype)
    for k in range(K):
        for b in range(B):
            for t in range(T):
                for f in range(F):
                    out[k, t, b, f] = x[k, b, t, f]
    return out


def time_major(x: torch.Tensor) -> np.ndarray:
    """A (K, B, T, ...) tensor as a contiguous (K, T, B, ...) array, the kernels' layout.

    No copy when ``x`` is already a time-major array's view (the states ``_NumbaScan`` returns). Rows
    of several values (K, B, T, F > 1) are copied by a compiled loop: 0.3-0.6x the time of torch's
    or numpy's strided copy at F = 3-5 (the inputs, the teacher signal), as fast at F = 16-64; (K, B, T)
    and F = 1 by numpy, which took a third of the loop's time there (2026-11-29, 2-core dev box).

    Examples
    --------
    >>> x = torch.arange(24.0).reshape(1, 2, 3, 4)
    >>> bool((torch.from_numpy(time_major(x)) == x.transpose(1, 2)).all())
    True
    """
    x = x.detach().cpu()
    swapped = x.transpose(1, 2)
    if swapped.is_contiguous():
        return swapped.numpy()
    if x.ndim == 4 and x.shape[3] > 1 and x.is_contiguous():
        return _time_major_rows(x.numpy())
    return np.ascontiguousarray(swapped.numpy())


class _NumbaScan(torch.autograd.Function):
    # The kernels run time-major; states and gradients go back as (K, B, T, ...) views of those arrays.
    @staticmethod
    def forward(ctx, z0, drive, A, W, force, alpha, n_relu):
        K, B, T, M = drive.shape
        n_lin = np.array([M - p for p in n_relu], dtype=np.int64)
        has_force = force is not None
        dtype = _np(A).dtype
        f = time_major(force) if has_force else np.zeros((K, T, B, 0), dtype=dtype)
        a = time_major(alpha) if has_force else np.zeros((K, T, B), dtype=dtype)
        out = _run(_forward, _forward_parallel, K, _np(z0), time_major(drive), _np(A), _np(W.transpose(1, 2)),
                   n_lin, f, a, has_force)
        ctx.n_lin, ctx.has_force, ctx.arrays = n_lin, has_force, (f, a)
        states = torch.from_numpy(out).transpose(1, 2)
        ctx.save_for_backward(z0, A, W, states)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z0, A, W, states = ctx.saved_tensors
        f, a = ctx.arrays
        out = time_major(states)  # the kernel's own array, no copy
        need = ctx.needs_input_grad
        grads = _grads(out, f, ctx.has_force and need[5])
        _run(_backward, _backward_parallel, out.shape[0], time_major(grad), _np(z0), out, _np(A), _np(W),
             ctx.n_lin, f, a, ctx.has_force, *grads)
        dz0, lam, dA, dW, dforce, dalpha = (torch.from_numpy(g) for g in grads)
        return (dz0 if need[0] else None,
                lam.transpose(1, 2) if need[1] else None,
                dA if need[2] else None,
                dW if need[3] else None,
                dforce.transpose(1, 2) if (ctx.has_force and need[4]) else None,
                dalpha.transpose(1, 2) if (ctx.has_force and need[5]) else None,
                None)


def numba_scan(z0, drive, A, W, n_relu, force=None, alpha=None):
    """Fused-loop scan (CPU, float32/float64) of ensemble-form tensors: K leading, ``n_relu`` K ints,
    ``alpha`` (K, B, T)."""
    if drive.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"drive: the numba backend needs float32 or float64, got {drive.dtype}")
    keep_freed_memory()  # its arrays are MBs, allocated anew every call (neuroalrnn._memory)
    if force is None:
        return _NumbaScan.apply(z0, drive, A, W, None, None, tuple(n_relu))
    return _NumbaScan.apply(z0, drive, A, W, force, alpha, tuple(n_relu))
