"""Tests for neuroalrnn.model.recurrence: every backend equals the plain step-by-step definition."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from neuroalrnn.model._rnn_identity import plan, rnn_identity_weights
from neuroalrnn.model import ALRNN
from neuroalrnn.model.recurrence import _phi, alrnn_scan, alrnn_scan_reference

try:
    from neuroalrnn.model._triton import interpreted as _triton_interpreted
    TRITON_ON_CPU = _triton_interpreted()
except ImportError:
    TRITON_ON_CPU = False
# the Triton kernels run on CPU tensors in Triton's interpreter (the root conftest switches it on)
NAMES = ["numba", "rnn", "loop"] + ["triton"] * TRITON_ON_CPU
CPU_BACKENDS = ["numba", "rnn", "loop", pytest.param("triton", marks=pytest.mark.skipif(
    not TRITON_ON_CPU, reason="triton is not installed, or runs compiled for a GPU (see the CUDA tests)"))]
M = 5


def _problem(P, forcing, dtype, B=3, T=7, n_force=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(B, M, generator=gen, dtype=dtype)
    drive = torch.randn(B, T, M, generator=gen, dtype=dtype)
    A = 0.9 * torch.rand(M, generator=gen, dtype=dtype)
    W = 0.4 * torch.randn(M, M, generator=gen, dtype=dtype)
    force = alpha = None
    if forcing is not None:
        force = torch.randn(B, T, n_force, generator=gen, dtype=dtype)
        if forcing == "const":
            alpha = 0.3
        elif forcing == "sparse":
            alpha = (torch.rand(B, T, generator=gen) > 0.6).to(dtype)
        elif forcing == "per-step":
            alpha = torch.rand(1, T, generator=gen, dtype=dtype)
    return z0, drive, A, W, force, alpha


def _naive(z0, drive, A, W, P, force=None, alpha=None):
    """Independent numpy transcription of the definition in INTERFACES.md."""
    z0, drive, A, W = (x.detach().double().numpy() for x in (z0, drive, A, W))
    B, T, M = drive.shape
    out = np.zeros((B, T, M))
    if force is not None:
        force = force.detach().double().numpy()
        al = np.broadcast_to(np.asarray(1.0 if alpha is None else alpha, dtype=float), (B, T))
    for b in range(B):
        prev = z0[b].copy()
        for t in range(T):
            if force is not None:
                N = force.shape[2]
                prev[:N] = (1 - al[b, t]) * prev[:N] + al[b, t] * force[b, t]
            phi = prev.copy()
            if P:
                phi[M - P:] = np.maximum(phi[M - P:], 0)
            prev = A * prev + W @ phi + drive[b, t]
            out[b, t] = prev
    return out


@pytest.mark.parametrize("P", [0, 1, M])
@pytest.mark.parametrize("forcing", [None, "const", "sparse"])
def test_reference_matches_naive_numpy(P, forcing):
    z0, drive, A, W, force, alpha = _problem(P, forcing, torch.float64)
    ref = alrnn_scan_reference(z0, drive, A, W, P, force, alpha)
    np.testing.assert_allclose(ref.numpy(), _naive(z0, drive, A, W, P, force, alpha), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("P", [0, 1, M])
@pytest.mark.parametrize("forcing", [None, "const", "sparse", "per-step"])
def test_backend_equals_reference_states_and_grads(backend, P, forcing, dtype, tol):
    z0, drive, A, W, force, alpha = _problem(P, forcing, dtype)
    leaves = [x.clone().requires_grad_() for x in (z0, drive, A, W)]
    if force is not None:
        leaves.append(force.clone().requires_grad_())
    f = leaves[4] if force is not None else None
    ref = alrnn_scan_reference(*leaves[:4], P, f, alpha)
    out = alrnn_scan(*leaves[:4], P, f, alpha, backend=backend)
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    g = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, leaves, g)
    g_out = torch.autograd.grad(out, leaves, g)
    for name, a, b in zip(["z0", "drive", "A", "W", "force"], g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * 10, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("P,forcing", [(0, None), (2, None), (M, None), (2, "const"), (1, "sparse")])
def test_gradcheck_float64(backend, P, forcing):
    z0, drive, A, W, force, alpha = _problem(P, forcing, torch.float64, B=2, T=4)
    inputs = [z0, drive, A, W] + ([force] if force is not None else [])
    inputs = [x.clone().requires_grad_() for x in inputs]

    def fn(*xs):
        f = xs[4] if len(xs) > 4 else None
        return alrnn_scan(*xs[:4], P, f, alpha, backend=backend)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_gradcheck_alpha_numba():
    z0, drive, A, W, force, _ = _problem(1, "const", torch.float64, B=2, T=4)
    alpha = torch.full((2, 4), 0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: alrnn_scan(z0, drive, A, W, 1, force, a, backend="numba"),
                                    (alpha,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_p0_is_exactly_linear(backend):
    """P = 0 applies no ReLU: the map from (z0, drive) is linear (superposition holds)."""
    z0a, da, A, W, _, _ = _problem(0, None, torch.float64, seed=1)
    z0b, db, _, _, _, _ = _problem(0, None, torch.float64, seed=2)
    run = lambda z, d: alrnn_scan(z, d, A, W, 0, backend=backend)  # noqa: E731
    torch.testing.assert_close(run(2 * z0a - 3 * z0b, 2 * da - 3 * db), 2 * run(z0a, da) - 3 * run(z0b, db),
                               rtol=1e-10, atol=1e-10)
    # and negative states stay negative-capable: a purely negative run is the mirror of a positive one
    torch.testing.assert_close(run(-z0a, -da), -run(z0a, da), rtol=1e-12, atol=1e-12)


def test_phi_only_last_units():
    z = torch.tensor([[-1.0, -2.0, -3.0, 4.0]])
    assert _phi(z, 4).tolist() == z.tolist()                # P = 0: identity everywhere
    assert _phi(z, 2).tolist() == [[-1.0, -2.0, 0.0, 4.0]]  # P = 2: ReLU on the last 2
    assert _phi(z, 0).tolist() == [[0.0, 0.0, 0.0, 4.0]]    # P = M: the classic PLRNN


def test_identity_weights_reproduce_one_step():
    z0, drive, A, W, _, _ = _problem(2, None, torch.float64)
    w_ih, w_hh = rnn_identity_weights(A, W, 2)
    u = torch.cat([torch.relu(z0), torch.relu(-z0)], 1)
    u1 = torch.relu(drive[:, 0] @ w_ih.T + u @ w_hh.T)
    torch.testing.assert_close(u1[:, :M] - u1[:, M:], alrnn_scan_reference(z0, drive[:, :1], A, W, 2)[:, 0])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_exact_zero_states_keep_their_gradient(backend):
    """z0 = 0 and zero drive for the first steps give states that are exactly 0 (as at initialisation)."""
    z0, drive, A, W, _, _ = _problem(2, None, torch.float64)
    z0 = torch.zeros_like(z0, requires_grad=True)
    drive = drive.clone()
    drive[:, :3] = 0
    drive.requires_grad_()
    g = torch.randn(3, 7, M, dtype=torch.float64)
    want = torch.autograd.grad(alrnn_scan_reference(z0, drive, A, W, 2), [z0, drive], g)
    got = torch.autograd.grad(alrnn_scan(z0, drive, A, W, 2, backend=backend), [z0, drive], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def _sparse_alpha(dtype):
    """Per-trial forcing at few steps, with alpha values other than 1 (as with ragged masks)."""
    alpha = torch.zeros(3, 12, dtype=dtype)
    alpha[:, 4] = torch.tensor([0.7, 0.0, 1.0], dtype=dtype)
    alpha[1:, 9] = 0.3
    return alpha


@pytest.mark.parametrize("P,forcing,want", [(2, None, "plain"), (2, "const", "const"), (M, "const", None),
                                             (1, "per-step", None), (M, "few", "sparse"), (1, "few", "sparse")])
def test_identity_backend_runs_itself_where_it_can(P, forcing, want):
    """The equality tests must exercise the fused identity path, not only its fallbacks."""
    from neuroalrnn.model._rnn_identity import _model_scan
    from neuroalrnn.model.recurrence import _broadcast_alpha

    z0, drive, A, W, force, alpha = _problem(P, "const" if forcing == "few" else forcing, torch.float64, T=12)
    if forcing == "few":
        alpha = _sparse_alpha(torch.float64)
    elif P == M and force is not None:
        alpha = None  # full forcing of ReLU units at every step: not foldable, not sparse
    a_bt = None if force is None else _broadcast_alpha(alpha, force, (3, 12))
    const = None if isinstance(alpha, torch.Tensor) else torch.tensor(1.0 if alpha is None else alpha)
    how = plan(force, const, a_bt, P, M)
    assert how == want
    if how is not None:
        states = _model_scan(z0, drive, A, W, P, force, const, a_bt, how)
        torch.testing.assert_close(states, alrnn_scan_reference(z0, drive, A, W, P, force, alpha))


@pytest.mark.parametrize("P", [1, M])
@pytest.mark.parametrize("alpha_grad", [False, True])
def test_identity_sparse_forcing_grads(P, alpha_grad):
    """Sparse per-interval path; with alpha requiring grad (d/dalpha != 0 where alpha = 0) it falls back."""
    z0, drive, A, W, force, _ = _problem(P, "const", torch.float64, T=12)
    alpha = _sparse_alpha(torch.float64).requires_grad_(alpha_grad)
    leaves = [x.clone().requires_grad_() for x in (z0, drive, A, W, force)] + [alpha] * alpha_grad
    out = alrnn_scan(*leaves[:4], P, leaves[4], alpha, backend="rnn")
    ref = alrnn_scan_reference(*leaves[:4], P, leaves[4], alpha)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, leaves, g), torch.autograd.grad(ref, leaves, g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_constant_alpha_tensor_gets_its_gradient(backend):
    z0, drive, A, W, force, _ = _problem(2, "const", torch.float64)
    alpha = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 7, M, dtype=torch.float64)
    (want,) = torch.autograd.grad(alrnn_scan_reference(z0, drive, A, W, 2, force, alpha), alpha, g)
    (got,) = torch.autograd.grad(alrnn_scan(z0, drive, A, W, 2, force, alpha, backend=backend), alpha, g)
    torch.testing.assert_close(got, want)


def test_numba_refuses_double_backward():
    """The hand-written adjoint is first order: asking for a graph through it must fail loudly."""
    z0, drive, A, W, _, _ = _problem(1, None, torch.float64)
    W = W.clone().requires_grad_()
    (gW,) = torch.autograd.grad(alrnn_scan(z0, drive, A, W, 1, backend="numba").square().sum(), W,
                                create_graph=True)
    with pytest.raises(RuntimeError):
        gW.sum().backward()


def test_numpy_integer_n_relu():
    z0, drive, A, W, _, _ = _problem(2, None, torch.float64)
    for backend in NAMES:
        torch.testing.assert_close(alrnn_scan(z0, drive, A, W, np.int64(2), backend=backend),
                                   alrnn_scan_reference(z0, drive, A, W, 2))


def test_zero_steps():
    z0, drive, A, W, _, _ = _problem(1, None, torch.float32)
    for backend in NAMES:
        assert alrnn_scan(z0, drive[:, :0], A, W, 1, backend=backend).shape == (3, 0, M)


@pytest.mark.skipif(not TRITON_ON_CPU, reason="triton is not installed, or runs compiled for a GPU")
@pytest.mark.parametrize("B,M_,N", [(20, 19, 19), (17, 40, 3)])
def test_triton_blocks_and_padding(B, M_, N):
    """Several programs (16 trials each, the last one ragged) and units padded up to a power of two."""
    gen = torch.Generator().manual_seed(3)
    z0, drive = torch.randn(B, M_, generator=gen), torch.randn(B, 6, M_, generator=gen)
    A, W = 0.9 * torch.rand(M_, generator=gen), torch.randn(M_, M_, generator=gen) / M_ ** 0.5
    force, alpha = torch.randn(B, 6, N, generator=gen), torch.rand(B, 6, generator=gen)
    leaves = [x.double().requires_grad_() for x in (z0, drive, A, W, force, alpha)]
    out = alrnn_scan(*leaves[:4], 3, *leaves[4:], backend="triton")
    ref = alrnn_scan_reference(*leaves[:4], 3, *leaves[4:])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, leaves, g), torch.autograd.grad(ref, leaves, g)):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.skipif(not TRITON_ON_CPU, reason="triton is not installed, or runs compiled for a GPU")
@pytest.mark.parametrize("T,N,P", [(1, 2, 2), (3, 0, M)])
@pytest.mark.parametrize("wanted", [(4,), (5,), (2, 3)])
def test_triton_one_step_no_forced_units_and_partial_grads(T, N, P, wanted):
    """T = 1 (only the z0 branch of the adjoint), N = 0 forced units, and gradients of some inputs only."""
    gen = torch.Generator().manual_seed(T)
    xs = [torch.randn(*shape, generator=gen, dtype=torch.float64)
          for shape in ((3, M), (3, T, M), (M,), (M, M), (3, T, N))] + [torch.rand(3, T, dtype=torch.float64)]
    leaves = [x.requires_grad_(i in wanted) for i, x in enumerate(xs)]
    out = alrnn_scan(*leaves[:4], P, *leaves[4:], backend="triton")
    ref = alrnn_scan_reference(*leaves[:4], P, *leaves[4:])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g, sel = torch.randn_like(ref), [leaves[i] for i in wanted]
    for a, b in zip(torch.autograd.grad(out, sel, g), torch.autograd.grad(ref, sel, g)):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_triton_gradcheck_alpha():
    if not TRITON_ON_CPU:
        pytest.skip("triton is not installed, or runs compiled for a GPU")
    z0, drive, A, W, force, _ = _problem(1, "const", torch.float64, B=2, T=4)
    alpha = torch.full((2, 4), 0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: alrnn_scan(z0, drive, A, W, 1, force, a, backend="triton"),
                                    (alpha,), eps=1e-6, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_kernels_compile_for_nvidia_gpus(tmp_path):
    """The compiled path, not only the interpreter: lower and assemble for A100 and H100 (no GPU needed)."""
    import triton

    if tuple(int(x) for x in triton.__version__.split(".")[:2]) < (3, 5):
        pytest.skip(f"the offline compile API used here is triton >= 3.5's, found {triton.__version__}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path), TRITON_DEFAULT_FP_FUSION="1")
    script = str(Path(__file__).resolve().parents[1] / "benchmarks" / "triton_compile_report.py")
    lines = []
    for args in (["--arch", "90", "--units", "20", "128"], ["--arch", "80", "--units", "40", "--dtype", "fp64"]):
        run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        lines += [line for line in run.stdout.splitlines() if "registers=" in line]
    assert len(lines) == 12, lines  # forward and backward, with and without forcing, per size
    assert all("registers=None" not in line for line in lines)
    assert all("tf32=False" in line for line in lines), lines  # full-precision dots: no TF32 mma
    # all these sizes pass `fits`: they must launch on every GPU (at most 99 KiB of shared memory per block)
    shared = [int(line.split("shared=")[1].rstrip("B")) for line in lines]
    assert 0 < max(shared) <= 99 * 1024, lines


def test_triton_fits_bounds_w_on_chip():
    """'auto' sends a model to the Triton kernels only if its W fits their shared memory on any GPU."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    from neuroalrnn.model._triton import fits

    assert fits(1, torch.float32) and fits(128, torch.float32) and not fits(129, torch.float32)
    assert fits(64, torch.float64) and not fits(65, torch.float64) and not fits(128, torch.float64)


@pytest.mark.skipif(not TRITON_ON_CPU, reason="triton is not installed, or runs compiled for a GPU")
def test_triton_too_large_for_shared_memory_names_the_backend(monkeypatch):
    """A GPU without the shared memory W needs: an error naming the backend and the way out."""
    from triton.runtime.errors import OutOfResources

    from neuroalrnn.model import _triton as ts

    class TooLarge:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise OutOfResources(327936, 232448, "shared memory")
            return launch

    monkeypatch.setattr(ts, "_bwd_kernel", TooLarge())  # the forward still runs, interpreted
    z0, drive, A, W, _, _ = _problem(1, None, torch.float32)
    out = alrnn_scan(z0, drive, A, W.requires_grad_(), 1, backend="triton")
    with pytest.raises(ValueError, match="backend: 'triton' cannot hold W of 16 .*'rnn' or 'loop'"):
        out.sum().backward()


def test_triton_launches_on_the_tensors_device():
    """Triton launches on the current CUDA device: the launches must switch to the tensors' one."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    from neuroalrnn.model._triton import _on

    guard = _on(torch.device("cuda", 1))  # built without a GPU; entering it would switch devices
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    with _on(torch.device("cpu")):  # the interpreter's CPU tensors: nothing to switch
        pass


def test_triton_refuses_cpu_tensors_when_compiled():
    if TRITON_ON_CPU or importlib.util.find_spec("triton") is None:
        pytest.skip("only meaningful where triton compiles for a GPU")
    z0, drive, A, W, _, _ = _problem(1, None, torch.float32)
    with pytest.raises(ValueError, match="backend"):
        alrnn_scan(z0, drive, A, W, 1, backend="triton")


@pytest.fixture
def tf32_allowed():
    """TF32 switched on globally for cuDNN and cuBLAS, as a user may (the legacy switches most code uses)."""
    b = torch.backends
    before = (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = True, True
    try:
        yield
    finally:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
@pytest.mark.parametrize("P,forcing", [(0, None), (2, None), (M, None), (2, "const"), (1, "sparse"), (M, "few")])
@pytest.mark.parametrize("backend", ["auto", "rnn", "triton", "loop"])
def test_cuda_backends_match_reference(backend, P, forcing, tf32_allowed):
    """float32 on the GPU with TF32 allowed: the same tolerance as float32 on CPU (TF32 would be ~1e-3)."""
    z0, drive, A, W, force, alpha = _problem(P, "const" if forcing == "few" else forcing, torch.float32, T=12)
    if forcing == "few":
        alpha = _sparse_alpha(torch.float32)
    z0, drive = 3 * z0, 3 * drive  # larger states: TF32's 10-bit mantissa would show
    cuda = [x.cuda().requires_grad_() for x in (z0, drive, A, W)]
    cpu = [x.double().requires_grad_() for x in (z0, drive, A, W)]
    a = alpha.cuda() if isinstance(alpha, torch.Tensor) else alpha
    out = alrnn_scan(*cuda, P, None if force is None else force.cuda(), a, backend=backend)
    ref = alrnn_scan_reference(*cpu, P, None if force is None else force.double(),
                               alpha.double() if isinstance(alpha, torch.Tensor) else alpha)
    torch.testing.assert_close(out.cpu().double(), ref, rtol=2e-4, atol=2e-4)
    g = torch.randn_like(ref)
    for x, y in zip(torch.autograd.grad(out, cuda, g.float().cuda()), torch.autograd.grad(ref, cpu, g)):
        torch.testing.assert_close(x.cpu().double(), y, rtol=2e-4, atol=2e-3)
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32  # the user's, restored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
@pytest.mark.parametrize("forcing", [None, "const", "sparse", "per-step"])
@pytest.mark.parametrize("backend", ["auto", "rnn", "triton", "loop"])
def test_cuda_ensemble_matches_single_model_references(backend, forcing, tf32_allowed):
    z0, drive, A, W, force, alpha = _ensemble(forcing, torch.float64, T=12)
    cpu = [x.clone().requires_grad_() for x in (z0, drive, A, W)]
    cuda = [x.float().cuda().requires_grad_() for x in (z0, drive, A, W)]
    a = alpha.float().cuda() if isinstance(alpha, torch.Tensor) else alpha
    out = alrnn_scan(*cuda, ENSEMBLE_P, None if force is None else force.float().cuda(), a, backend=backend)
    ref = _per_model(alrnn_scan_reference, *cpu, ENSEMBLE_P, force, alpha)
    torch.testing.assert_close(out.cpu().double(), ref, rtol=2e-4, atol=2e-4)
    g = torch.randn_like(ref)
    for x, y in zip(torch.autograd.grad(out, cuda, g.float().cuda()), torch.autograd.grad(ref, cpu, g)):
        torch.testing.assert_close(x.cpu().double(), y, rtol=2e-4, atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
@pytest.mark.parametrize("backend", ["rnn", "triton", "loop"])
def test_cuda_nan_propagates_as_in_torch(backend):
    z0, drive, A, W, _, _ = _ensemble(None, torch.float32)
    drive = drive.clone()
    drive[:, 1, 3, M - 1] = float("nan")
    cuda = [x.cuda().requires_grad_() for x in (z0, drive, A, W)]
    out = alrnn_scan(*cuda, ENSEMBLE_P, backend=backend)
    ref = alrnn_scan(*cuda, ENSEMBLE_P, backend="loop")
    torch.testing.assert_close(out, ref, equal_nan=True, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(ref)
    for x, y in zip(torch.autograd.grad(out, cuda, g), torch.autograd.grad(ref, cuda, g)):
        torch.testing.assert_close(x, y, equal_nan=True, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in this environment")
def test_cuda_model_device_auto():
    m = ALRNN(6, 2, 3, 1, seed=0, device="auto")
    assert m.A.is_cuda
    x = torch.randn(2, 5, 3)
    cpu = ALRNN.from_params(**m.params_numpy(), n_relu=2, dtype=torch.float32)
    torch.testing.assert_close(m(x)[1].cpu(), cpu(x)[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_relu=M + 1), "n_relu"),
    (dict(n_relu=-1), "n_relu"),
    (dict(z0=torch.zeros(3, M + 1)), "z0"),
    (dict(A=torch.zeros(M, M)), "A"),
    (dict(W=torch.zeros(M, M + 1)), "W"),
    (dict(force=torch.full((3, 7, 2), float("nan"))), "force"),
    (dict(force=torch.zeros(3, 7, 2), alpha=torch.zeros(5)), "alpha"),
    (dict(alpha=0.5), "alpha"),
    (dict(backend="cuda-magic"), "backend"),
    (dict(A=torch.zeros(M, device="meta")), "one device"),
])
def test_bad_input(kwargs, match):
    z0, drive, A, W, _, _ = _problem(1, None, torch.float32)
    args = dict(z0=z0, drive=drive, A=A, W=W, n_relu=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        alrnn_scan(**args)


def test_auto_fallback_is_exact_and_fastest_per_device():
    from neuroalrnn.model.recurrence import _exact_fallback

    assert _exact_fallback(torch.zeros(1)) == "numba"
    assert _exact_fallback(torch.zeros(1, dtype=torch.float16)) == "loop"  # numba has no half precision
    assert _exact_fallback(torch.zeros(1, device="meta")) == "loop"
    if importlib.util.find_spec("triton") is not None:  # on CUDA: triton while W fits on chip (a stand-in tensor)
        cuda = lambda M, dtype: SimpleNamespace(device=torch.device("cuda"), dtype=dtype, shape=(2, 3, M))  # noqa: E731
        assert _exact_fallback(cuda(128, torch.float32)) == "triton"
        assert _exact_fallback(cuda(200, torch.float32)) == "loop"
        assert _exact_fallback(cuda(128, torch.float64)) == "loop"


@pytest.mark.skipif(not TRITON_ON_CPU, reason="triton is not installed, or runs compiled for a GPU")
def test_auto_runs_the_backend_its_fallback_names(monkeypatch):
    """When the fused identity cannot take a case, auto must run what _exact_fallback names (triton on CUDA)."""
    import neuroalrnn.model._triton as ts
    import neuroalrnn.model.recurrence as rec

    calls = []
    real = ts.triton_scan
    monkeypatch.setattr(ts, "triton_scan", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(rec, "_exact_fallback", lambda drive: "triton")  # what a CUDA GPU gets
    z0, drive, A, W, force, alpha = _problem(2, "per-step", torch.float64)  # per-step alpha: not foldable
    out = alrnn_scan(z0, drive, A, W, 2, force, alpha)
    assert calls == [1]
    torch.testing.assert_close(out, alrnn_scan_reference(z0, drive, A, W, 2, force, alpha))


# ---- ensembles: K models in one call ----------------------------------------------------------------

ENSEMBLE_P = [0, 2, M]  # mixed P_k in one call: no ReLU, some, all


def _ensemble(forcing, dtype, P=ENSEMBLE_P, B=3, T=7, n_force=2):
    """K = len(P) independent problems (own data, parameters and P), stacked on a leading model dim."""
    problems = [_problem(p, "const" if forcing == "per-model" else forcing, dtype, B=B, T=T, n_force=n_force,
                         seed=10 + k) for k, p in enumerate(P)]
    z0, drive, A, W = (torch.stack([pr[i] for pr in problems]) for i in range(4))
    force = None if forcing is None else torch.stack([pr[4] for pr in problems])
    alphas = [pr[5] for pr in problems]
    if forcing in (None, "const"):
        alpha = alphas[0]
    elif forcing == "per-model":  # one constant per model, (K, 1, 1): folds into the rnn route per model
        alpha = torch.linspace(0.2, 0.9, len(P), dtype=dtype)[:, None, None]
    else:  # per model: (B, T) sparse or (1, T) per-step, broadcast to (K, B, T)
        alpha = torch.stack([torch.as_tensor(a, dtype=dtype).expand(B, T) for a in alphas])
    return z0, drive, A, W, force, alpha


def _per_model(fn, z0, drive, A, W, P, force, alpha):
    """Run fn as K single-model calls and stack the results."""
    K, B, T = drive.shape[:3]
    alpha_k = None if force is None else torch.broadcast_to(torch.as_tensor(alpha, dtype=drive.dtype), (K, B, T))
    return torch.stack([fn(z0[k], drive[k], A[k], W[k], P[k], None if force is None else force[k],
                           None if force is None else alpha_k[k]) for k in range(K)])


@pytest.mark.parametrize("forcing", [None, "const", "sparse", "per-step"])
def test_ensemble_reference_equals_single_model_references(forcing):
    z0, drive, A, W, force, alpha = _ensemble(forcing, torch.float64)
    out = alrnn_scan_reference(z0, drive, A, W, ENSEMBLE_P, force, alpha)
    want = _per_model(alrnn_scan_reference, z0, drive, A, W, ENSEMBLE_P, force, alpha)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    for k, p in enumerate(ENSEMBLE_P):  # and each model equals the independent numpy transcription
        a = None if force is None else torch.broadcast_to(torch.as_tensor(alpha, dtype=out.dtype), out.shape[:3])[k]
        np.testing.assert_allclose(out[k].numpy(), _naive(z0[k], drive[k], A[k], W[k], p,
                                                          None if force is None else force[k], a), atol=1e-12)


@pytest.mark.parametrize("n_relu", [2, (2, 2, 2), [0, 2, M], torch.tensor([0, 2, M]), np.array([1, 0, 3])])
def test_ensemble_n_relu_forms(n_relu):
    """One int for all models, or K values as a sequence, a 1-D int tensor or a numpy array."""
    z0, drive, A, W, _, _ = _ensemble(None, torch.float64)
    P = [int(p) for p in torch.as_tensor(n_relu).expand(3)]
    want = _per_model(alrnn_scan_reference, z0, drive, A, W, P, None, None)
    torch.testing.assert_close(alrnn_scan(z0, drive, A, W, n_relu), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_relu=[1, 2]), "n_relu: expected an int in \\[0, 5\\] or 3 of them"),
    (dict(n_relu=[1, 2, M + 1]), "n_relu"),
    (dict(n_relu=[1, 2, True]), "n_relu"),
    (dict(n_relu=torch.tensor([1.0, 2.0, 3.0])), "n_relu"),
    (dict(z0=torch.zeros(3, M)), "z0: expected shape \\(models, batch, units\\)"),
    (dict(A=torch.zeros(M)), "A: expected shape \\(models, units\\)"),
    (dict(W=torch.zeros(2, M, M)), "W"),
    (dict(force=torch.zeros(3, 7, 2)), "force"),
    (dict(force=torch.zeros(3, 3, 7, 2), alpha=torch.zeros(2, 1, 1)), "alpha: .*\\(models, batch, time\\)"),
])
def test_ensemble_bad_input(kwargs, match):
    z0, drive, A, W, _, _ = _ensemble(None, torch.float32)
    args = dict(z0=z0, drive=drive, A=A, W=W, n_relu=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        alrnn_scan(**args)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_ensemble_zero_steps_and_one_model(backend):
    z0, drive, A, W, force, alpha = _ensemble("sparse", torch.float64)
    assert alrnn_scan(z0, drive[:, :, :0], A, W, 1, backend=backend).shape == (3, 3, 0, M)
    one = alrnn_scan(z0[:1], drive[:1], A[:1], W[:1], [2], force[:1], alpha[:1], backend=backend)  # K = 1
    torch.testing.assert_close(one[0], alrnn_scan(z0[0], drive[0], A[0], W[0], 2, force[0], alpha[0],
                                                  backend=backend), rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("forcing", [None, "const", "per-model", "sparse", "per-step"])
def test_ensemble_backend_equals_single_model_references(backend, forcing, dtype, tol):
    """K models with mixed P_k (0, 2, M) in one call: states and gradients equal K single reference calls."""
    z0, drive, A, W, force, alpha = _ensemble(forcing, dtype)
    inputs = [z0, drive, A, W] + ([force] if force is not None else [])
    if isinstance(alpha, torch.Tensor):
        inputs.append(alpha)
    leaves = [x.clone().requires_grad_() for x in inputs]
    f = leaves[4] if force is not None else None
    a = leaves[5] if isinstance(alpha, torch.Tensor) else alpha
    out = alrnn_scan(*leaves[:4], ENSEMBLE_P, f, a, backend=backend)
    ref = _per_model(alrnn_scan_reference, *leaves[:4], ENSEMBLE_P, f, a)
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    g = torch.randn_like(ref)
    names = ["z0", "drive", "A", "W", "force", "alpha"]
    for name, x, y in zip(names, torch.autograd.grad(out, leaves, g), torch.autograd.grad(ref, leaves, g)):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol * 10, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("forcing", [None, "sparse"])
def test_ensemble_gradcheck_float64(backend, forcing):
    z0, drive, A, W, force, alpha = _ensemble(forcing, torch.float64, B=2, T=4)
    inputs = [z0, drive, A, W] + ([force, alpha.clone()] if force is not None else [])
    inputs = [x.clone().requires_grad_() for x in inputs]

    def fn(*xs):
        return alrnn_scan(*xs[:4], ENSEMBLE_P, *xs[4:], backend=backend)

    # fast mode (random directions): the full Jacobian takes minutes in Triton's interpreter
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, fast_mode=True)


def test_numba_spreads_models_over_torch_threads(monkeypatch):
    """With torch threads > 1 the models run on that many numba threads, restored after; else serially."""
    import numba

    from neuroalrnn.model import _numba as nb

    seen = []
    for name in ("_forward_parallel", "_backward_parallel", "_forward", "_backward"):
        real = getattr(nb, name)
        monkeypatch.setattr(nb, name, lambda *a, _r=real, _n=name: seen.append((_n, numba.get_num_threads()))
                            or _r(*a))
    z0, drive, A, W, force, alpha = _ensemble("sparse", torch.float64)
    before, threads = numba.get_num_threads(), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = alrnn_scan(z0, drive, A, W.requires_grad_(), ENSEMBLE_P, force, alpha, backend="numba")
        out.sum().backward()
        torch.set_num_threads(1)
        alrnn_scan(z0, drive, A, W.detach(), ENSEMBLE_P, force, alpha, backend="numba")
    finally:
        torch.set_num_threads(threads)
    if numba.config.NUMBA_NUM_THREADS >= 2:
        assert seen == [("_forward_parallel", 2), ("_backward_parallel", 2), ("_forward", before)]
    else:  # a machine (or NUMBA_NUM_THREADS) with one thread: always serial
        assert [n for n, _ in seen] == ["_forward", "_backward", "_forward"]
    assert numba.get_num_threads() == before
    torch.testing.assert_close(out, alrnn_scan_reference(z0, drive, A, W, ENSEMBLE_P, force, alpha))


# ---- NaN and precision: every backend computes what the loop (torch) computes ----------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("ensemble", [False, True])
def test_nan_propagates_as_in_torch(backend, ensemble):
    """relu(NaN) = NaN forward (W then spreads it to every unit); backward relu' = 0 only at z <= 0
    (1 at NaN), as torch's threshold_backward."""
    z0, drive, A, W, _, _ = _ensemble(None, torch.float64) if ensemble else _problem(2, None, torch.float64)
    P = ENSEMBLE_P if ensemble else 2
    drive = drive.clone()
    drive[..., 1, 3, M - 1] = float("nan")  # a ReLU unit (of the models with P > 0) of trial 1 at step 3
    leaves = [x.clone().requires_grad_() for x in (z0, drive, A, W)]
    out = alrnn_scan(*leaves, P, backend=backend)
    ref = alrnn_scan_reference(*leaves, P)
    torch.testing.assert_close(out, ref, equal_nan=True)
    assert torch.isnan(out[..., 1, 4:, :]).all() and torch.isfinite(out[..., [0, 2], :, :]).all()
    g = torch.randn_like(ref)
    got, want = torch.autograd.grad(out, leaves, g), torch.autograd.grad(ref, leaves, g)
    for name, x, y in zip(["z0", "drive", "A", "W"], got, want):
        torch.testing.assert_close(x, y, equal_nan=True, msg=lambda m: f"grad {name}: {m}")
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all()  # the adjoints stay finite


@pytest.fixture
def user_precision():
    """Low-precision float32 settings a user may choose (TF32 for cuDNN and cuBLAS, bf16 for oneDNN)."""
    b = torch.backends
    if not hasattr(getattr(b.cudnn, "rnn", None), "fp32_precision"):
        pytest.skip("torch < 2.9 has no per-operation fp32_precision settings")
    objs = {"cudnn.rnn": b.cudnn.rnn, "cuda.matmul": b.cuda.matmul, "mkldnn.rnn": b.mkldnn.rnn,
            "mkldnn.matmul": b.mkldnn.matmul}
    before = {k: o.fp32_precision for k, o in objs.items()}
    user = {"cudnn.rnn": "tf32", "cuda.matmul": "tf32", "mkldnn.rnn": "bf16", "mkldnn.matmul": "bf16"}
    try:
        for k, v in user.items():
            objs[k].fp32_precision = v
        yield objs, user
    finally:
        for k, v in before.items():
            objs[k].fp32_precision = v


class _Observe(torch.autograd.Function):
    """Identity that records the precision settings when its gradient passes (in the backward)."""

    @staticmethod
    def forward(ctx, x, log, objs):
        ctx.log, ctx.objs = log, objs
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        ctx.log.append(("backward", {k: o.fp32_precision for k, o in ctx.objs.items()}))
        return g, None, None


@pytest.mark.parametrize("backend,where", [("rnn", "rnn_relu"), ("loop", "_phi_models"), ("triton", "_phi_models")])
def test_routes_pin_full_float32_and_restore_the_users_settings(backend, where, user_precision, monkeypatch):
    """TF32/bf16 allowed by the user: inside the routes' torch ops (forward and backward) full float32;
    the user's settings are back after the call, after the backward, and after an error."""
    if backend == "triton" and not TRITON_ON_CPU:
        pytest.skip("triton is not installed, or runs compiled for a GPU")
    import neuroalrnn.model.recurrence as rec

    objs, user = user_precision
    log = []

    def observed(real):
        def spy(*args, **kwargs):
            if log == ["fail"]:
                raise RuntimeError("boom")
            log.append(("forward", {k: o.fp32_precision for k, o in objs.items()}))
            out = real(*args, **kwargs)
            if where == "rnn_relu":
                return (_Observe.apply(out[0], log, objs),) + tuple(out[1:])
            return _Observe.apply(out, log, objs) if torch.is_grad_enabled() else out
        return spy

    if where == "rnn_relu":
        monkeypatch.setattr(torch._VF, "rnn_relu", observed(torch._VF.rnn_relu), raising=False)
    elif backend == "loop":
        monkeypatch.setattr(rec, "_phi_models", observed(rec._phi_models))
    else:  # the Triton backward's dW GEMM (the kernels' own dots are "ieee" by construction)
        from neuroalrnn.model import _triton as ts

        monkeypatch.setattr(ts, "_phi_models", observed(ts._phi_models))
    z0, drive, A, W, _, _ = _problem(2, None, torch.float32)
    W = W.requires_grad_()
    out = alrnn_scan(z0, drive, A, W, 2, backend=backend)
    assert {k: o.fp32_precision for k, o in objs.items()} == user  # restored after the forward
    out.sum().backward()
    assert {k: o.fp32_precision for k, o in objs.items()} == user  # and after the backward
    full = {k: "ieee" for k in user}
    assert log and all(settings == full for _, settings in log), log
    if backend != "triton":
        assert {"forward", "backward"} <= {when for when, _ in log}
    log[:] = ["fail"]
    with pytest.raises(RuntimeError, match="boom"):
        alrnn_scan(z0, drive, A, W, 2, backend=backend).sum().backward()
    assert {k: o.fp32_precision for k, o in objs.items()} == user  # restored on error too


def test_full_precision_nests_and_restores():
    from neuroalrnn.model._precision import full_precision, lowered

    with full_precision():
        with full_precision():
            assert not lowered(torch.device("cuda")) and not lowered(torch.device("cpu"))
        assert not lowered(torch.device("cuda"))
    if hasattr(getattr(torch.backends.cudnn, "rnn", None), "fp32_precision"):
        assert torch.backends.cudnn.rnn.fp32_precision == "tf32"  # torch's default is back


def test_auto_on_cuda_reads_the_measured_routes(monkeypatch):
    """auto: a single model takes the route measured faster on this GPU model (rnn without a table);
    an ensemble takes triton (one launch) where W fits."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    import neuroalrnn.model._cuda_routes as routes
    import neuroalrnn.model.recurrence as rec

    def cuda(K, B, M, dtype=torch.float32):  # a stand-in for a CUDA tensor
        return SimpleNamespace(device=torch.device("cuda", 0), dtype=dtype, shape=(K, B, 37, M))

    monkeypatch.setattr(rec, "_gpu_name", lambda index: "NVIDIA H200")
    monkeypatch.setattr(routes, "DEVICE", None)
    assert rec._auto(cuda(1, 64, 16)) == "rnn"  # nothing measured: the default
    monkeypatch.setattr(routes, "DEVICE", "NVIDIA H200")
    monkeypatch.setattr(routes, "MEASURED", {(16, 200, 20, 2): {"rnn": 2.0, "triton": 1.0},
                                             (256, 500, 128, 16): {"rnn": 3.0, "triton": 4.0}})
    assert rec._auto(cuda(1, 16, 16)) == "triton"
    assert rec._auto(cuda(1, 512, 128)) == "rnn"
    assert rec._auto(cuda(1, 16, 200)) == "rnn"  # W does not fit the kernels
    assert rec._auto(cuda(3, 512, 128)) == "triton"  # an ensemble: one launch
    assert rec._auto(cuda(3, 16, 200)) == "rnn"
    assert rec._auto(cuda(1, 16, 16, torch.float16)) == "rnn"
    monkeypatch.setattr(rec, "_gpu_name", lambda index: "NVIDIA A100-SXM4-80GB")
    assert rec._auto(cuda(1, 16, 16)) == "rnn"  # measured on another GPU model: not used
    assert rec._auto(SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32, shape=(1, 2, 3, 4))) == "numba"


def test_rnn_route_folds_per_model_constant_alpha(monkeypatch):
    """A (K, 1, 1) alpha is constant within each model: the identity folds it per model (no fallback)."""
    import neuroalrnn.model._rnn_identity as ri

    plans = []
    real = ri.plan
    monkeypatch.setattr(ri, "plan", lambda *a: plans.append(real(*a)) or plans[-1])
    P = [0, 2, 3]  # N = 2 forced units are linear in every model
    z0, drive, A, W, force, alpha = _ensemble("per-model", torch.float64, P=P)
    alpha = alpha.clone().requires_grad_()
    out = alrnn_scan(z0, drive, A, W, P, force, alpha, backend="rnn")
    assert plans == ["const"] * 3
    ref = _per_model(alrnn_scan_reference, z0, drive, A, W, P, force, alpha)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, alpha, g)[0], torch.autograd.grad(ref, alpha, g)[0])
