"""Fused GPU backend of :func:`neuroalrnn.model.recurrence.alrnn_scan`: persistent Triton kernels.

The tensors come in ensemble form (a leading model dim K; a single model is K = 1). One program
owns one model and a block of ``BLOCK_B`` of its trials for the whole time loop (the grid is
(trial blocks, K), so K models are one launch) and keeps that model's ``W``, ``A`` and ReLU mask
and its states on chip: each step is one small ``tl.dot`` (``phi(prev) @ W.T``) plus fused
elementwise work, with no kernel launch per step. The backward pass is a second persistent kernel,
a hand-written reverse-time adjoint that recomputes ``phi`` (and the forced previous state) from
the saved states, so memory is O(K B T M) as in the numba backend (the same maths:
``neuroalrnn.model._numba``). ``dA`` and ``dW`` are sums over all trials and steps, so they are
taken afterwards as one batched GEMM over the adjoints and the previous states: off the serial
time loop, and without holding a second M x M block in registers. ReLU keeps NaN (torch's
``relu(NaN) = NaN``; ``tl.maximum`` would return 0) and its derivative is 0 only at z <= 0, as torch's.

``tl.dot`` runs with ``input_precision="ieee"``: full float32 (or float64), not TF32, so the
states equal the plain loop to float tolerance; the ``dW`` GEMM runs with TF32 switched off too.
Shapes are padded to powers of two of at least 16 (``tl.dot``'s minimum); padded rows and units
stay exactly 0.

With ``TRITON_INTERPRET=1`` set before triton is imported, the same kernels run on CPU tensors in
Triton's interpreter: far too slow for work, but it lets the GPU code carry its correctness tests
on a machine without a GPU (the root ``conftest.py`` sets it when no GPU is present).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from triton.runtime.errors import OutOfResources

from neuroalrnn.model._precision import full_precision
from neuroalrnn.model.recurrence import _phi_models


@triton.jit
def _tile(A, W, n_lin, B, T, M, N, TRANSPOSE_W: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr):
    """This program's model and trials: masks, its A and W (or W.T) on chip, and offsets into the arrays."""
    k = tl.program_id(1).to(tl.int64)  # the model
    rb = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    rm = tl.arange(0, BLOCK_M)
    bmask, mmask = rb < B, rm < M
    m2 = bmask[:, None] & mmask[None, :]
    fmask = bmask[:, None] & (rm[None, :] < N)  # the forced units
    relu = (rm >= tl.load(n_lin + k))[None, :]  # the model's last P_k units
    W = W + k * M * M
    if TRANSPOSE_W:
        w_ptrs = W + rm[None, :] * M + rm[:, None]
    else:
        w_ptrs = W + rm[:, None] * M + rm[None, :]
    w = tl.load(w_ptrs, mask=mmask[:, None] & mmask[None, :], other=0.0)
    a = tl.load(A + k * M + rm, mask=mmask, other=0.0)[None, :]
    row = (k * B + rb[:, None]) * T * M + rm[None, :]  # offset of (model, trial, step 0, unit): (K, B, T, M)
    frow = (k * B + rb[:, None]) * T * N + rm[None, :]  # the same in (K, B, T, N) arrays
    zrow = (k * B + rb[:, None]) * M + rm[None, :]      # (model, trial, unit) in (K, B, M) arrays
    arow = (k * B + rb) * T                             # (model, trial, step 0) in (K, B, T) arrays
    return bmask, m2, fmask, relu, a, w, row, frow, zrow, arow


@triton.jit
def _fwd_kernel(z0, drive, A, W, n_lin, force, alpha, out, B, T, M, N,
                HAS_FORCE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr,
                PRECISION: tl.constexpr):
    bmask, m2, fmask, relu, a, WT, row, frow, zrow, arow = _tile(A, W, n_lin, B, T, M, N, True, BLOCK_B, BLOCK_M)
    z = tl.load(z0 + zrow, mask=m2, other=0.0)
    for t in range(T):
        if HAS_FORCE:  # prev[:, :N] <- (1 - alpha_t) prev + alpha_t force_t
            al = tl.load(alpha + arow + t, mask=bmask, other=0.0)[:, None]
            f = tl.load(force + frow + t * N, mask=fmask, other=0.0)
            z = tl.where(fmask, (1 - al) * z + al * f, z)
        ph = tl.where(relu & (z < 0), 0.0, z)  # ReLU with relu(NaN) = NaN, as torch (tl.maximum drops NaN)
        d = tl.load(drive + row + t * M, mask=m2, other=0.0)
        z = a * z + tl.dot(ph, WT, input_precision=PRECISION) + d
        tl.store(out + row + t * M, z, mask=m2)


@triton.jit
def _bwd_kernel(gout, z0, out, A, W, n_lin, force, alpha, dz0, ddrive, prevs, dforce, dalpha,
                B, T, M, N,
                HAS_FORCE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_M: tl.constexpr,
                PRECISION: tl.constexpr):
    bmask, m2, fmask, relu, a, Wt, row, frow, zrow, arow = _tile(A, W, n_lin, B, T, M, N, False, BLOCK_B, BLOCK_M)
    carry = tl.load(z0 + zrow, mask=m2, other=0.0) * 0  # dL/dz_t from step t + 1
    for s in range(T):
        t = T - 1 - s
        lt = tl.load(gout + row + t * M, mask=m2, other=0.0) + carry  # total dL/dz_t
        tl.store(ddrive + row + t * M, lt, mask=m2)
        if t > 0:  # the state before step t
            raw = tl.load(out + row + (t - 1) * M, mask=m2, other=0.0)
        else:
            raw = tl.load(z0 + zrow, mask=m2, other=0.0)
        prev = raw
        if HAS_FORCE:  # recompute the forced previous state, and keep it for dA and dW
            al = tl.load(alpha + arow + t, mask=bmask, other=0.0)[:, None]
            f = tl.load(force + frow + t * N, mask=fmask, other=0.0)
            prev = tl.where(fmask, (1 - al) * raw + al * f, raw)
            tl.store(prevs + row + t * M, prev, mask=m2)
        back = tl.dot(lt, Wt, input_precision=PRECISION)                # W^T lambda, per trial
        carry = a * lt + tl.where(relu & (prev <= 0), 0.0, back)        # relu' = 0 at z <= 0 (1 at NaN), as torch
        if HAS_FORCE:  # through the mixing: to force, alpha and the unforced state
            tl.store(dforce + frow + t * N, al * carry, mask=fmask)
            tl.store(dalpha + arow + t, tl.sum(tl.where(fmask, carry * (f - raw), 0.0), axis=1), mask=bmask)
            carry = tl.where(fmask, (1 - al) * carry, carry)
    tl.store(dz0 + zrow, carry, mask=m2)


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` set before import)."""
    return type(_fwd_kernel).__name__ == "InterpretedFunction"


CONFIG: dict = {}  # overrides of BLOCK_B / num_warps, for benchmarks/bench_recurrence.py --triton-sweep
PRECISION = "ieee"  # full-precision tl.dot; "tf32x3" is the faster near-fp32 option to benchmark


def _config(M: int, has_force: bool = False) -> dict:
    """Block sizes and warps; ``tl.dot`` needs every dimension >= 16.

    The warps keep registers from spilling when compiled for sm_90 (checked offline by
    ``benchmarks/triton_compile_report.py``); the forced backward holds more per unit.
    """
    block_m = max(16, triton.next_power_of_2(M))
    warps = 4 if block_m <= 32 else 8 if block_m <= 128 else 16
    if block_m == 64 and not has_force:
        warps = 4
    return {**dict(BLOCK_B=16, BLOCK_M=block_m, num_warps=warps), **CONFIG}


def fits(n_units: int, dtype: torch.dtype) -> bool:
    """Whether the kernels' on-chip ``W`` fits the shared memory of every CUDA GPU triton supports.

    ``tl.dot`` stages ``W`` (``BLOCK_M`` x ``BLOCK_M``) through shared memory, about 1.5 times its
    size (``benchmarks/triton_compile_report.py`` prints it): float32 with 128 units needs 96 KiB,
    within the 99 KiB per block of the smallest (sm_86/89) GPUs, but 256 units need 320 KiB, more
    than any GPU has, and float64 with 128 units 193 KiB, more than an A100's 163 KiB. Larger
    models fail at launch; ``"auto"`` takes the loop for them.
    """
    block_m = _config(n_units)["BLOCK_M"]
    return block_m * block_m * torch.empty((), dtype=dtype).element_size() <= 64 * 1024


def _on(device: torch.device):
    """Make ``device`` current for a launch: Triton launches on the current CUDA device, not the tensors'."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _launch(kernel, grid, device, cfg, *args, **constexprs):
    """Launch on ``device``; a model too large for the GPU's shared memory gets an error naming the backend."""
    try:
        with _on(device):
            # FMA contraction as Triton has always done (explicit: triton >= 3.9 warns when left to default)
            kernel[grid](*args, **constexprs, **cfg, enable_fp_fusion=True)
    except OutOfResources as err:
        raise ValueError(f"backend: 'triton' cannot hold W of {cfg['BLOCK_M']} (padded) units on this GPU "
                         f"({err}); use backend 'auto', 'rnn' or 'loop'") from None


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z0, drive, A, W, force, alpha, n_relu):
        K, B, T, M = drive.shape
        has_force = force is not None
        z0, drive, A, W = (x.contiguous() for x in (z0, drive, A, W))
        n_lin = torch.tensor([M - p for p in n_relu], dtype=torch.int32, device=drive.device)
        f = force.contiguous() if has_force else drive.new_empty((1,))
        al = alpha.contiguous() if has_force else drive.new_empty((1,))
        N = force.shape[-1] if has_force else 0
        cfg = _config(M, has_force)
        grid = (triton.cdiv(B, cfg["BLOCK_B"]), K)  # one program per (block of trials, model)
        out = torch.empty_like(drive)
        _launch(_fwd_kernel, grid, drive.device, cfg, z0, drive, A, W, n_lin, f, al, out, B, T, M, N,
                HAS_FORCE=has_force, PRECISION=PRECISION)
        ctx.save_for_backward(z0, A, W, n_lin, out, f, al)
        ctx.meta = (n_relu, has_force, N, cfg, grid)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z0, A, W, n_lin, out, f, al = ctx.saved_tensors
        n_relu, has_force, N, cfg, grid = ctx.meta
        K, B, T, M = out.shape
        dz0, ddrive = torch.empty_like(z0), torch.empty_like(out)
        prevs = torch.empty_like(out) if has_force else out  # forced previous states, if any
        dforce = torch.empty_like(f) if has_force else f
        dalpha = torch.empty_like(al) if has_force else al
        _launch(_bwd_kernel, grid, out.device, cfg, grad.contiguous(), z0, out, A, W, n_lin, f, al, dz0, ddrive,
                prevs, dforce, dalpha, B, T, M, N, HAS_FORCE=has_force, PRECISION=PRECISION)
        need = ctx.needs_input_grad
        dA = dW = None
        if need[2] or need[3]:  # sums over trials and steps: one GEMM per model, off the serial time loop
            if not has_force:
                prevs = torch.cat([z0[:, :, None], out[:, :, :-1]], dim=2)
            lam, prevs = ddrive.reshape(K, -1, M), prevs.reshape(K, -1, M)
            dA = (lam * prevs).sum(1) if need[2] else None
            if need[3]:
                with full_precision():  # no TF32 in this GEMM either
                    dW = torch.bmm(lam.transpose(1, 2), _phi_models(prevs, n_relu))
        return (dz0 if need[0] else None,
                ddrive if need[1] else None,
                dA, dW,
                dforce if (has_force and need[4]) else None,
                dalpha if (has_force and need[5]) else None,
                None)


def triton_scan(z0, drive, A, W, n_relu, force=None, alpha=None):
    """Persistent-kernel scan (float32/float64) of ensemble-form tensors: K leading, ``n_relu`` K ints,
    ``alpha`` (K, B, T)."""
    if drive.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"drive: the triton backend needs float32 or float64, got {drive.dtype}")
    if (drive.device.type == "cpu") != interpreted():
        raise ValueError(f"backend: 'triton' runs on CUDA tensors (CPU tensors only in Triton's interpreter, "
                         f"TRITON_INTERPRET=1 set before triton is imported), got device {drive.device}")
    if force is None:
        return _TritonScan.apply(z0, drive, A, W, None, None, tuple(n_relu))
    return _TritonScan.apply(z0, drive, A, W, force, alpha, tuple(n_relu))
