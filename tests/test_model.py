"""Tests for neuroalrnn.model: the ALRNN module, initialisation, save/load and bad input."""
import json

import numpy as np
import pytest
import torch

from neuroalrnn.model import ALRNN, load_model


def _model(dtype=torch.float64, **kw):
    kw = {"n_units": 6, "n_relu": 2, "n_inputs": 3, "n_outputs": 2, "seed": 1, **kw}
    m = ALRNN(dtype=dtype, **kw)
    with torch.no_grad():  # make h, W non-trivial so the tests can fail
        m.h.normal_(generator=torch.Generator().manual_seed(5))
        m.W.mul_(30)
    return m


@pytest.mark.parametrize("backend", ["auto", "numba", "rnn", "loop"])
def test_forward_matches_step_loop(backend):
    m = _model(backend=backend)
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    z0 = torch.randn(4, 6, dtype=torch.float64)
    states, out = m(x, z0)
    z = z0
    for t in range(9):
        z = m.step(z, x[:, t])
        torch.testing.assert_close(states[:, t], z)
    torch.testing.assert_close(out, states @ m.B.T + m.b)


def test_step_is_the_exact_map():
    m = _model()
    z = torch.randn(5, 6, dtype=torch.float64)
    s = torch.randn(5, 3, dtype=torch.float64)
    p = m.params_numpy()
    zn, sn = z.numpy(), s.numpy()
    phi = zn.copy()
    phi[:, 4:] = np.maximum(phi[:, 4:], 0)  # ReLU on the last P = 2 units only
    want = p["A"] * zn + phi @ p["W"].T + p["h"] + sn @ p["C"].T
    np.testing.assert_allclose(m.step(z, s).detach().numpy(), want, rtol=1e-12)


def test_p0_applies_no_relu_and_pm_is_plrnn():
    z = -torch.ones(1, 3, dtype=torch.float64)
    W = np.ones((3, 3))
    lin = ALRNN.from_params(A=np.zeros(3), W=W, h=np.zeros(3), n_relu=0)
    plrnn = ALRNN.from_params(A=np.zeros(3), W=W, h=np.zeros(3), n_relu=3)
    assert lin.step(z).tolist() == [[-3.0, -3.0, -3.0]]
    assert plrnn.step(z).tolist() == [[0.0, 0.0, 0.0]]
    assert lin.simulate(z, n_steps=2)[0, -1].tolist() == [-9.0, -9.0, -9.0]


def test_reference_init():
    m = ALRNN(40, 4, seed=3, dtype=torch.float64)
    A = m.A.detach().numpy()
    assert np.all(A > 0) and np.all(A <= 1)
    # A = diag(K) / lambda_max(K), K = R^T R / M + I: recompute from the same seeded draw
    gen = torch.Generator().manual_seed(3)
    R = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    K = R.T @ R / 40 + torch.eye(40, dtype=torch.float64)
    np.testing.assert_allclose(A, (torch.diagonal(K) / torch.linalg.eigvalsh(K)[-1]).numpy(), rtol=1e-12)
    assert abs(m.W.std().item() - 0.01) < 0.002
    assert torch.all(m.h == 0)
    same = ALRNN(40, 4, seed=3, dtype=torch.float64)
    assert all(torch.equal(getattr(m, n), getattr(same, n)) for n in "AWhCBb")
    assert not torch.equal(ALRNN(40, 4, seed=4).W, ALRNN(40, 4, seed=3).W)


def test_other_inits():
    ident = ALRNN(8, 1, init="identity", seed=0)
    assert torch.all(ident.A == 1)
    normal = ALRNN(64, 1, init="normal", seed=0)
    assert torch.all(normal.A == 0) and abs(normal.W.std().item() - 1 / 8) < 0.02
    with pytest.raises(ValueError, match="init"):
        ALRNN(4, 1, init="xavier-magic")


def test_simulate_free_run_and_with_inputs():
    m = _model()
    z0 = torch.randn(2, 6, dtype=torch.float64)
    states = m.simulate(z0, n_steps=5)
    z = z0
    for t in range(5):
        z = m.step(z)
        torch.testing.assert_close(states[:, t], z)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(m.simulate(z0, inputs=x), m(x, z0)[0])
    with pytest.raises(ValueError, match="n_steps"):
        m.simulate(z0, n_steps=3, inputs=x)
    with pytest.raises(ValueError, match="n_steps"):
        m.simulate(z0)


def test_simulate_returns_plain_tensors_unless_asked_for_gradients():
    m = ALRNN(6, 2, seed=0)
    states = m.simulate(torch.ones(2, 6), n_steps=50)
    assert not states.requires_grad and states.numpy().shape == (2, 50, 6)  # it used to carry a graph
    run = m.simulate(torch.ones(2, 6), n_steps=5, grad=True)
    run.sum().backward()
    assert m.W.grad is not None and m.W.grad.abs().sum() > 0
    with torch.no_grad():
        assert not m.simulate(torch.ones(2, 6), n_steps=5, grad=True).requires_grad


def test_gradients_reach_all_parameters():
    m = _model(dtype=torch.float32)
    _, y = m(torch.randn(3, 6, 3))
    y.square().mean().backward()
    for name in "AWhCBb":
        g = getattr(m, name).grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_from_params_roundtrip_and_copies():
    p = _model().params_numpy()
    m = ALRNN.from_params(**p, n_relu=2)
    assert (m.n_units, m.n_relu, m.n_inputs, m.n_outputs) == (6, 2, 3, 2)
    assert m.A.dtype == torch.float64
    for k, v in m.params_numpy().items():
        np.testing.assert_array_equal(v, p[k])
    before = p["W"].copy()
    with torch.no_grad():
        m.W.add_(1)
    np.testing.assert_array_equal(p["W"], before)  # user input untouched
    m2 = ALRNN.from_params(A=np.diag(p["A"]), W=torch.tensor(p["W"]), h=p["h"], n_relu=6, dtype=torch.float32)
    assert m2.n_inputs == 0 and m2.n_outputs == 0 and m2.A.dtype == torch.float32
    with pytest.raises(ValueError, match="A"):
        ALRNN.from_params(A=np.ones((6, 6)), W=p["W"], h=p["h"], n_relu=1)
    with pytest.raises(ValueError, match="n_relu"):
        ALRNN.from_params(A=p["A"], W=p["W"], h=p["h"], n_relu=7)
    with pytest.raises(ValueError, match="W"):
        ALRNN.from_params(A=p["A"], W=p["W"][:5], h=p["h"], n_relu=1)
    with pytest.raises(ValueError, match="C"):
        ALRNN.from_params(A=p["A"], W=p["W"], h=p["h"], C=np.ones((5, 2)), n_relu=1)
    with pytest.raises(ValueError, match="h"):
        ALRNN.from_params(A=p["A"], W=p["W"], h=np.full(6, np.nan), n_relu=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_load_roundtrip(tmp_path, dtype):
    m = _model(dtype=dtype)
    m.save(tmp_path / "m.safetensors")
    m2 = load_model(tmp_path / "m.safetensors")
    assert m2.hyper_params()["n_relu"] == 2 and m2.A.dtype == dtype
    for name in "AWhCBb":
        assert torch.equal(getattr(m, name), getattr(m2, name))
    x = torch.randn(2, 5, 3, dtype=dtype)
    torch.testing.assert_close(m(x)[1], m2(x)[1], rtol=0, atol=0)


def test_load_refuses_tampered_and_foreign_files(tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    path = tmp_path / "m.safetensors"
    _model().save(path)
    tensors = load_file(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    # 1) weights modified after saving (metadata kept): checksum mismatch
    bad = dict(tensors, W=tensors["W"] + 1e-3)
    save_file(bad, tmp_path / "w.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path / "w.safetensors")
    # 2) bytes flipped / truncated
    raw = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="path"):
        load_model(tmp_path / "trunc.safetensors")
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path / "flip.safetensors")
    # 3) another architecture: hyper-parameters that do not fit the tensors, or a foreign file
    hp = json.loads(meta["hyper_params"])
    save_file(tensors, tmp_path / "arch.safetensors", metadata=dict(meta, hyper_params=json.dumps({**hp, "n_units": 7})))
    with pytest.raises(ValueError, match="architecture"):
        load_model(tmp_path / "arch.safetensors")
    # 4) hyper-parameters edited so that the shapes still fit (P = 2 -> 3): the checksum covers them
    edited = dict(meta, hyper_params=json.dumps({**hp, "n_relu": 3}))
    save_file(tensors, tmp_path / "p.safetensors", metadata=edited)
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path / "p.safetensors")
    # 5) version 1 files (checksum of the tensors only) still load
    from neuroalrnn.model._io import _checksum
    save_file(tensors, tmp_path / "v1.safetensors", metadata=dict(meta, version="1", sha256=_checksum(tensors)))
    assert load_model(tmp_path / "v1.safetensors").n_relu == 2
    save_file({"weight": torch.zeros(3, 3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(ValueError, match="not an ALRNN file"):
        load_model(tmp_path / "foreign.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ValueError, match="path"):
        load_model(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("args,exc,match", [
    ((3, 4), ValueError, "n_relu"),
    ((3, -1), ValueError, "n_relu"),
    ((0, 0), ValueError, "n_units"),
    ((3, 1.5), TypeError, "n_relu"),
    ((3, 1, -2), ValueError, "n_inputs"),
])
def test_bad_hyper_params(args, exc, match):
    with pytest.raises(exc, match=match):
        ALRNN(*args)


def test_bad_inputs():
    m = _model(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"inputs: expected 3 features"):
        m(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"inputs: expected shape"):
        m(torch.zeros(4, 3))
    x = torch.zeros(2, 4, 3)
    x[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="inputs: contains NaN"):
        m(x)
    with pytest.raises(ValueError, match="z0"):
        m(torch.zeros(2, 4, 3), z0=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="z0"):
        m.simulate(torch.full((1, 6), float("inf")), n_steps=2)
    with pytest.raises(TypeError, match="inputs"):
        m("not an array")


def test_bad_device():
    with pytest.raises(ValueError, match="device"):
        ALRNN(3, 1, device="tpu-please")
    with pytest.raises(TypeError, match="device: expected"):
        ALRNN(3, 1, device=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: CUDA"):
            ALRNN(3, 1, device="cuda")


def test_numpy_inputs_and_device_auto():
    m = ALRNN(4, 1, 2, 1, seed=0, device="auto")
    assert m.A.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    states, y = m(np.zeros((2, 3, 2)))
    assert states.shape == (2, 3, 4) and y.shape == (2, 3, 1)


def test_from_params_dtype_follows_the_arrays():
    """Lists/scalars give torch's default dtype; floating arrays keep theirs; mixed ones need dtype=."""
    lists = ALRNN.from_params(A=[0.5, 0.5], W=[[0, 0], [0, 0]], h=[0.0, 1.0], C=[[1.0], [1.0]],
                              B=[[1.0, 1.0]], n_relu=1)
    assert lists.A.dtype == torch.get_default_dtype() == torch.float32
    x = torch.ones(2, 3, 1)  # float32, as the task generators / fit give
    states, y = lists(x)
    assert states.dtype == y.dtype == torch.float32
    np.testing.assert_allclose(lists.readout(lists.step(torch.zeros(1, 2), x[:1, 0])).detach().numpy(), [[3.0]])
    assert ALRNN.from_params(A=np.array([1, 0]), W=np.zeros((2, 2), np.float32), h=[0, 0],
                             n_relu=0).A.dtype == torch.float32  # int arrays carry no precision
    assert ALRNN.from_params(A=np.zeros(2), W=torch.zeros(2, 2, dtype=torch.float64), h=[0.0, 0.0],
                             n_relu=0).A.dtype == torch.float64
    with pytest.raises(TypeError, match=r"dtype.*A: torch.float64.*W: torch.float32"):
        ALRNN.from_params(A=np.zeros(2), W=np.zeros((2, 2), np.float32), h=[0.0, 0.0], n_relu=0)
    mixed = ALRNN.from_params(A=np.zeros(2), W=np.zeros((2, 2), np.float32), h=[0.0, 0.0], n_relu=0,
                              dtype=torch.float64)
    assert mixed.W.dtype == torch.float64


def test_step_and_readout_name_a_dtype_mismatch():
    m = _model(dtype=torch.float64)
    z32, s32 = torch.zeros(2, 6), torch.zeros(2, 3)
    with pytest.raises(TypeError, match=r"z: expected dtype torch.float64.*got torch.float32"):
        m.step(z32)
    with pytest.raises(TypeError, match=r"s: expected dtype torch.float64.*got torch.float32"):
        m.step(z32.double(), s32)
    with pytest.raises(TypeError, match=r"states: expected dtype torch.float64.*got torch.float32"):
        m.readout(z32)
    states, _ = m(torch.zeros(2, 4, 3))  # forward converts its inputs to the model's dtype
    assert states.dtype == torch.float64


def test_from_params_names_a_float_dtype_torch_lacks():
    with pytest.raises(TypeError, match="A: expected float16/32/64"):
        ALRNN.from_params(A=np.ones(2, np.longdouble), W=np.zeros((2, 2)), h=np.zeros(2), n_relu=1)


@pytest.mark.parametrize("complex_array", [np.array([0.5 + 1j, 0.5]), torch.tensor([0.5 + 1j, 0.5]), [0.5j, 0.5]])
def test_from_params_refuses_complex_values(complex_array):
    # the imaginary part used to be dropped with only a numpy ComplexWarning
    with pytest.raises(TypeError, match=r"A: expected real values, got complex"):
        ALRNN.from_params(A=complex_array, W=np.zeros((2, 2)), h=np.zeros(2), n_relu=1)
