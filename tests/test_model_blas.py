"""The kernels' matrix product (neuroalrnn.model._blas): right in both precisions, on both libraries."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from numba import njit

from neuroalrnn.model import _blas


@njit
def _call(x, y, out, trans_x, beta):
    _blas.gemm(x, y, out, trans_x, beta)


@njit
def _call_rows(x, y, out, beta):
    _blas.gemm_rows(x, y, out, beta)


SHAPES = [(5, 3, 4), (64, 64, 64), (1, 7, 1), (3, 1, 2), (300, 20, 1), (1, 300, 16)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_x", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_gemm_matches_numpy(dtype, trans_x, shape):
    rows, inner, cols = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(inner, rows) if trans_x else (rows, inner)).astype(dtype)
    y = rng.normal(size=(inner, cols)).astype(dtype)
    before = rng.normal(size=(rows, cols)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    op = x.T if trans_x else x
    out = before.copy()
    _call(x, y, out, trans_x, 0.5)
    np.testing.assert_allclose(out, op.astype(float) @ y + 0.5 * before, rtol=tol, atol=tol * inner)
    out = np.full((rows, cols), np.nan, dtype)  # beta = 0: whatever out held is not read
    _call(x, y, out, trans_x, 0.0)
    np.testing.assert_allclose(out, op.astype(float) @ y, rtol=tol, atol=tol * inner)


def test_gemm_empty_and_bad_arguments():
    out = np.ones((2, 3), np.float32)
    _call(np.ones((2, 0), np.float32), np.ones((0, 3), np.float32), out, False, 0.0)  # no inner dim: zeros
    assert not out.any()
    with pytest.raises(ValueError, match="shapes"):
        _call(np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), np.ones((2, 3), np.float32), False, 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _call(np.ones((3, 2), np.float32).T, np.ones((3, 3), np.float32), np.ones((2, 3), np.float32), False, 0.0)


@pytest.mark.parametrize("cols", [16, _blas._ROWS_GEMM_MAX + 1])  # the gemm branch and the np.dot branch
def test_gemm_rows_sums_over_rows(cols):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, cols)), rng.normal(size=(500, 3))
    before = rng.normal(size=(cols, 3))
    out = before.copy()
    _call_rows(x, y, out, 1.0)
    np.testing.assert_allclose(out, x.T @ y + before, rtol=1e-12, atol=1e-10)
    _call_rows(x, y, out, 0.0)
    np.testing.assert_allclose(out, x.T @ y, rtol=1e-12, atol=1e-10)


def test_library_is_torchs_mkl_where_torch_has_it():
    assert _blas.LIBRARY in ("MKL (torch)", "OpenBLAS (scipy)")
    if torch.backends.mkl.is_available() and _blas._torch_library() is not None \
            and _blas._address(_blas._torch_library(), "sgemm_"):
        assert _blas.LIBRARY == "MKL (torch)"


def test_fallback_binds_scipys_blas(monkeypatch):
    monkeypatch.setattr(_blas, "_torch_library", lambda: None)
    try:
        assert _blas._bind() == "OpenBLAS (scipy)"

        @njit
        def product(x, y, out):  # compiled after the rebinding: it links scipy's
            _blas.gemm(x, y, out)

        x = np.arange(6.0).reshape(2, 3)
        out = np.empty((2, 2))
        product(x, x.T.copy(), out)
        np.testing.assert_array_equal(out, x @ x.T)
    finally:
        monkeypatch.undo()
        assert _blas._bind() == _blas.LIBRARY


def test_compiled_kernels_load_from_numbas_cache(tmp_path):
    """The kernels name the symbol, not an address: a second process loads them from the cache."""
    script = ("import numpy as np, torch\n"
              "from neuroalrnn.model import _numba\n"
              "z = torch.zeros(1, 2, 3, dtype=torch.float64)\n"
              "_numba.numba_scan(torch.zeros(1, 2, 3, dtype=torch.float64), torch.ones(1, 2, 4, 3, dtype=torch.float64),"
              " torch.full((1, 3), 0.5, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None], [1])\n"
              "print(sum(_numba._forward.stats.cache_hits.values()), sum(_numba._forward.stats.cache_misses.values()))\n")
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": ""}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.split() == ["0", "1"]  # compiled (and cached) by the first process
    assert runs[1].stdout.split() == ["1", "0"]  # loaded by the second
