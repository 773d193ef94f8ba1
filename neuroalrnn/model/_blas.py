"""The matrix product the compiled kernels call: MKL's (inside torch's x86 builds) when present, else scipy's.

numba's ``np.dot`` calls scipy's OpenBLAS. torch's x86 builds carry Intel MKL, and at the kernels'
sizes MKL's GEMM took 0.78-0.82x OpenBLAS's time, one thread, called from compiled code: 7.6
against 9.4 us at (64 x 64) @ (64 x 64), 2.1 against 2.6 us at M = 32, 0.72 against 0.87 us at
M = 16, 0.43 against 0.54 us at (16 x 20) @ (20 x 20) (2026-11-29, 2-core AMD EPYC dev box, AVX2).
The recurrence does one such product per time step forward and one backward, so they are most of
an M = 64 fit.

``gemm`` (compiled) calls one external symbol per precision, ``neuroalrnn_sgemm`` /
``neuroalrnn_dgemm``, bound at import (``llvmlite.binding.add_symbol``) to MKL's Fortran
``sgemm_`` / ``dgemm_`` when torch's library exports them and they pass a small product check, else
to scipy's ``cython_blas`` ones (the library ``np.dot`` uses). The compiled code names the symbol,
not an address, so numba's on-disk cache stays valid from one process to the next.

MKL's thread count is torch's (``torch.set_num_threads`` sets both), as OpenBLAS's is in the
kernels' serial route (``_numba._run``); in their parallel route (numba's OpenMP threads, the libgomp
torch loads) each call is a nested OpenMP region and MKL runs it on one thread.
"""

from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

_SYMBOLS = {types.float32: "neuroalrnn_sgemm", types.float64: "neuroalrnn_dgemm"}


def _torch_library() -> ctypes.CDLL | None:
    """torch's CPU library (already loaded by ``import torch``), or None."""
    folder = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def _address(lib, name: str) -> int | None:
    try:
        return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def _checked(address: int, dtype) -> bool:
    """Whether the Fortran ?gemm at ``address`` computes a small product right (32-bit integers)."""
    c_type = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(address)
    a = np.arange(6, dtype=dtype).reshape(2, 3)     # row-major out = a @ b: column-major out^T = b^T a^T
    b = np.arange(12, dtype=dtype).reshape(3, 4) - 5
    out = np.zeros((2, 4), dtype)
    no = ctypes.c_char(b"N")
    m, n, k = (ctypes.c_int32(v) for v in (4, 2, 3))
    alpha, beta = c_type(1.0), c_type(0.0)
    ref = ctypes.byref
    fn(ref(no), ref(no), ref(m), ref(n), ref(k), ref(alpha), b.ctypes.data, ref(m), a.ctypes.data, ref(k),
       ref(beta), out.ctypes.data, ref(m))
    return bool(np.array_equal(out, a @ b))


def _bind() -> str:
    """Bind the two symbols; returns the name of the library bound."""
    lib = _torch_library()
    mkl = {}
    if lib is not None and _address(lib, "mkl_get_max_threads"):
        mkl = {dtype: _address(lib, name) for dtype, name in ((np.float32, "sgemm_"), (np.float64, "dgemm_"))}
        try:
            if not all(address and _checked(address, dtype) for dtype, address in mkl.items()):
                mkl = {}
        except Exception:  # a library that does not take this call: keep scipy's
            mkl = {}
    for dtype, name in ((np.float32, "sgemm"), (np.float64, "dgemm")):
        address = mkl.get(dtype) or get_cython_function_address("scipy.linalg.cython_blas", name)
        llvm.add_symbol(_SYMBOLS[types.float32 if dtype == np.float32 else types.float64], address)
    return "MKL (torch)" if mkl else "OpenBLAS (scipy)"


LIBRARY = _bind()


@intrinsic
def _gemm_call(typingctx, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Column-major C = A op(B) + beta C through the bound symbol; scalars are passed by reference."""
    dtype = c.dtype
    sig = types.void(trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        tb, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
        vp = cgutils.voidptr_t
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vp] * 13),
                                            _SYMBOLS[dtype])
        byte, i32, real = ir.IntType(8), ir.IntType(32), context.get_value_type(dtype)

        def ref(value):  # a stack slot in the entry block (not one per loop iteration)
            slot = cgutils.alloca_once(builder, value.type)
            builder.store(value, slot)
            return builder.bitcast(slot, vp)

        def data(ty, value):
            return builder.bitcast(context.make_array(ty)(context, builder, value).data, vp)

        char_b = builder.select(builder.icmp_unsigned("!=", tb, ir.Constant(tb.type, 0)),
                                ir.Constant(byte, ord("T")), ir.Constant(byte, ord("N")))
        beta_v = context.cast(builder, beta_, signature.args[8], dtype)
        builder.call(fn, [ref(ir.Constant(byte, ord("N"))), ref(char_b), ref(builder.trunc(m_, i32)),
                          ref(builder.trunc(n_, i32)), ref(builder.trunc(k_, i32)), ref(ir.Constant(real, 1.0)),
                          data(signature.args[4], a_), ref(builder.trunc(lda_, i32)), data(signature.args[6], b_),
                          ref(builder.trunc(ldb_, i32)), ref(beta_v), data(signature.args[9], c_),
                          ref(builder.trunc(ldc_, i32))])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _c_contiguous(a):  # pragma: no cover - compiled
    rows, cols = a.shape
    return rows == 0 or cols == 0 or ((cols == 1 or a.strides[1] == a.itemsize)
                                      and (rows == 1 or a.strides[0] == cols * a.itemsize))


@njit(cache=True, nogil=True, inline="always")
def gemm(x, y, out, trans_x=False, beta=0.0):  # pragma: no cover - compiled
    """``out = x @ y + beta * out`` (``x.T @ y`` with ``trans_x``) of C-contiguous 2-D arrays of one dtype.

    Examples
    --------
    >>> x, y = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    >>> out = np.zeros((2, 4), np.float32)
    >>> gemm(x, y, out)
    >>> float(out.sum())
    24.0
    """
    rows, cols = out.shape
    inner = y.shape[0]
    if (x.shape[1] if trans_x else x.shape[0]) != rows or (x.shape[0] if trans_x else x.shape[1]) != inner \
            or y.shape[1] != cols:
        raise ValueError("gemm: the shapes of x, y and out do not match")
    if not (_c_contiguous(x) and _c_contiguous(y) and _c_contiguous(out)):
        raise ValueError("gemm: x, y and out must be C-contiguous")
    if rows == 0 or cols == 0:
        return
    if inner == 0:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = beta * out[r, c] if beta != 0 else 0
        return
    # Row-major out (rows x cols) is column-major out^T = y^T op(x)^T: A = y (cols x inner), B = x.
    _gemm_call(trans_x, cols, rows, inner, y, cols, x, rows if trans_x else inner, beta, out, cols)


# Columns up to which ``gemm_rows`` uses ``gemm``: over 2368-3184 rows (the demo's and the Lorenz
# sweep's batches), MKL took 0.45-0.7x OpenBLAS's time at 16-32 columns, about the same at 64, and
# 1.6x at 128 (2026-11-29, dev box, one thread).
_ROWS_GEMM_MAX = 64


@njit(cache=True, nogil=True, inline="always")
def gemm_rows(x, y, out, beta=0.0):  # pragma: no cover - compiled
    """``out = x.T @ y + beta * out`` for long, thin x (rows, m) and y (rows, n): sums over all rows.

    Examples
    --------
    >>> x = np.ones((100, 2))
    >>> out = np.ones((2, 2))
    >>> gemm_rows(x, x, out, 1.0)
    >>> out.tolist()
    [[101.0, 101.0], [101.0, 101.0]]
    """
    if max(out.shape[0], out.shape[1]) <= _ROWS_GEMM_MAX:
        gemm(x, y, out, True, beta)
        return
    product = np.dot(x.T, y)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = product[i, j] + beta * out[i, j] if beta != 0 else product[i, j]
