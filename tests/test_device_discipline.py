"""Every tensor a fit creates lives on the model's device, for every public fit path.

Why this test exists: CI has no GPU. On a CPU-only machine every tensor is on the CPU, so a tensor
that a fit creates without ``device=`` (a *stray*) goes unnoticed until a user fits on CUDA, where
the first op that mixes it with the model's tensors raises. Such strays did reach users: on the code
before this test, 8 of its 12 tests failed (the observation model's L/B/b and the z-scoring buffers);
with those fixed, the evaluation's x0 and inputs, and an in-place update of the adaptive alpha that the
GPU route's autograd graph still held.

How it detects strays: the model is placed on a stand-in device. ``Remote`` tensors hold a real CPU
tensor but claim the device "meta" (so ``.device`` is not CPU and the code takes the route it takes
on a GPU: the recurrence's "auto" tries the cuDNN-style 2M-unit RNN identity first, then the exact
loop; ``.numpy()`` fails as on CUDA). A ``TorchDispatchMode`` turns every factory call for that
device into a ``Remote``, unwraps ``Remote`` tensors for the computation and wraps the results, and
flags (raises, and records) every op that receives both a ``Remote`` and a plain CPU tensor with
more than 0 dims (0-dim CPU tensors are legal next to CUDA ones), except the ops that move data
between devices (copy_, to) and the index arguments of indexing (CPU indices are legal on CUDA).
A ``TorchFunctionMode`` routes ``torch.tensor``/``as_tensor`` for the stand-in device through the
same wrapping (torch would otherwise make data-less meta tensors); a CPU generator drawing for the
device is flagged too. ``Remote`` says ``is_meta`` is False (torch skips loading state into meta
parameters) and checkpoints pickle its inner CPU tensor, as CUDA checkpoints loaded with
``map_location="cpu"`` hold host tensors.
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

DEVICE = torch.device("meta")  # the stand-in for a GPU
_MOVES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}
_INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put_.default, torch.ops.aten.index_put.default,
             torch.ops.aten._index_put_impl_.default}


class StrayTensorError(RuntimeError):
    """An op mixed a tensor on the model's device with a CPU tensor (CUDA raises here)."""


class Remote(torch.Tensor):
    """A CPU tensor that claims to live on ``DEVICE``."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, elem):
        # sizes and strides are asked of the inner tensor: in-place view ops (transpose_) change them
        out = torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(),
                                                  storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                  layout=elem.layout, device=DEVICE, requires_grad=elem.requires_grad,
                                                  dispatch_sizes_strides_policy="sizes")
        out.elem = elem
        return out

    def __repr__(self):
        return f"Remote({self.elem!r})"

    @property
    def is_meta(self):  # a device tensor with data (torch skips loading state into meta parameters)
        return False

    def tolist(self):  # CUDA tensors copy to the host here
        return self.elem.tolist()

    def numpy(self, *, force=False):  # ... but not here
        raise TypeError(f"can't convert {DEVICE} device type tensor to numpy. Use Tensor.cpu() first.")

    def __reduce_ex__(self, protocol):  # checkpoints hold host tensors
        return self.elem.__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class DeviceWatch:
    """Records the ops that mixed devices (with the package frames that called them)."""

    strays: list = []

    @classmethod
    def flag(cls, func, why):
        where = [f"{f.filename.split('neuroalrnn/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_stack()
                 if "/neuroalrnn/" in f.filename and "/tests/" not in f.filename]
        cls.strays.append((str(func), why, where[-3:]))
        raise StrayTensorError(f"{func}: {why}; called from {where[-3:]}")


def _unwrap(x):
    if isinstance(x, Remote):
        return x.elem
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(a) for a in x)
    return x


def _leaves(args, kwargs):
    """The arguments of an ATen op, with lists of tensors (cat, stack, index) opened one level."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _is_host(x):
    return isinstance(x, torch.Tensor) and not isinstance(x, Remote) and x.device.type == "cpu" and x.dim() > 0


def _run(func, args, kwargs):
    flat = list(_leaves(args, kwargs))
    remote = any(isinstance(a, Remote) for a in flat)
    if any(isinstance(a, torch.Tensor) and not isinstance(a, Remote) and a.device == DEVICE for a in flat):
        DeviceWatch.flag(func, "a data-less meta tensor reached an op")
    device = kwargs.get("device")
    device = None if device is None else torch.device(device)
    if device == DEVICE:
        gen = kwargs.get("generator")
        if gen is not None and gen.device.type == "cpu":
            DeviceWatch.flag(func, "a CPU generator draws a tensor for the device")
        kwargs = {**kwargs, "device": torch.device("cpu")}
    if remote and func not in _MOVES:
        checked = _leaves([args[0], *args[2:3]], {}) if func in _INDEXING else flat
        if any(_is_host(a) for a in checked):
            DeviceWatch.flag(func, "a CPU tensor met a tensor on the model's device")
    out = func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
    if device is not None and device.type == "cpu" or not (remote or device == DEVICE):
        return out
    same = {id(_unwrap(a)): a for a in flat if isinstance(a, torch.Tensor)}  # in-place ops return their input

    def wrap(t):
        if isinstance(t, (list, tuple)):
            return type(t)(wrap(a) for a in t)
        if not isinstance(t, torch.Tensor):
            return t
        return same[id(t)] if id(t) in same else Remote(t)

    return wrap(out)


class _Dispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class _Constructors(TorchFunctionMode):
    """torch.tensor / as_tensor / asarray of host data for the device: made on the CPU, then wrapped."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]) == DEVICE and not isinstance(args[0], torch.Tensor):
            return Remote(func(*args, **{**kwargs, "device": "cpu"}))
        if func is torch.Tensor.new_tensor and isinstance(args[0], Remote):
            return Remote(torch.tensor(*args[1:], **{"dtype": args[0].dtype, **kwargs}))
        return func(*args, **kwargs)


@pytest.fixture
def on_device():
    """Run the test body with the stand-in device active; fail on any op that mixed devices."""
    DeviceWatch.strays = []
    with _Constructors(), _Dispatch():
        yield DEVICE
    assert not DeviceWatch.strays, f"ops mixed the model's device with CPU tensors: {DeviceWatch.strays}"


def _on_device(module):
    assert all(isinstance(t, Remote) for t in list(module.parameters()) + list(module.buffers())), \
        [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if not isinstance(t, Remote)]


# ------------------------------------------------------------------------------------- the watch itself
def test_the_watch_flags_a_stray_and_passes_legal_mixes(on_device):
    x = torch.ones(3, 2, device=on_device)
    assert isinstance(x, Remote) and x.device == DEVICE
    assert isinstance(x * torch.tensor(2.0) + torch.as_tensor(np.ones(2), dtype=x.dtype, device=on_device), Remote)
    assert x[torch.tensor([0, 2])].shape == (2, 2)  # CPU indices are legal on CUDA too
    assert x.cpu().numpy().sum() == 6 and float(x.sum()) == 6.0
    with pytest.raises(TypeError):
        x.numpy()  # as on CUDA
    with pytest.raises(StrayTensorError):
        x + torch.ones(2)
    DeviceWatch.strays.clear()


# ------------------------------------------------------------------------------------- the fit paths
def _recording(n_trials=6, T=24, inputs=False):
    rng = np.random.default_rng(0)
    t = np.arange(T) * 0.4
    x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in rng.uniform(0, 6, n_trials)])
    x = x + 0.05 * rng.normal(size=x.shape)
    x[1, T - 5:] = np.nan  # a ragged trial
    if not inputs:
        return x
    from neuroalrnn.schema import from_arrays

    s = rng.normal(size=(n_trials, T, 1))
    lengths = np.isfinite(x).all(2).sum(1)
    return from_arrays(activity=x, inputs=s, lengths=lengths)


def test_fit_task_and_its_readouts(on_device, tmp_path):
    from neuroalrnn.fit.task import fit_task, task_accuracy
    from neuroalrnn.model import ALRNN
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(12, seed=0)
    model = ALRNN(6, 2, n_inputs=5, n_outputs=1, seed=0, device=on_device)
    ckpt = tmp_path / "task.pt"
    fit_task(model, ds, n_steps=2, batch_size=4, eval_every=2, select_metric="val_accuracy", checkpoint=ckpt,
             progress=False)
    fit_task(model, ds, n_steps=4, batch_size=4, eval_every=2, select_metric="val_accuracy", checkpoint=ckpt,
             progress=False)  # resumes from the checkpoint
    _on_device(model)
    assert 0 <= float(task_accuracy(model, ds)["overall"]) <= 1


@pytest.mark.parametrize("observation,forcing,alpha", [
    ("identity", "sparse", None), ("linear", "sparse", None),
    ("identity", "generalized", 0.3), ("linear", "generalized", 0.3),
    ("identity", "generalized", "adaptive"), ("linear", "generalized", "adaptive")])
def test_fit_teacher_forcing(on_device, observation, forcing, alpha):
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.model import ALRNN

    ds = _recording(inputs=observation == "linear")
    n_inputs = 1 if observation == "linear" else 0
    model = ALRNN(5, 1, n_inputs=n_inputs, seed=0, device=on_device)
    fitted = fit_teacher_forcing(model, ds, forcing=forcing, tau=4 if forcing == "sparse" else None, alpha=alpha,
                                 observation=observation, n_steps=3, batch_size=3, eval_every=3, n_ahead=3,
                                 noise_std=0.1 if forcing == "sparse" else 0.0, seed=0)
    _on_device(fitted)
    assert np.isfinite(fitted.train_result_.history["n_step"]).all()
    x = _recording()
    assert fitted.free_run(x[0, 0], 5, None if not n_inputs else np.zeros((5, 1))).shape == (5, 2)


def test_teacher_forcing_resumes_from_a_checkpoint(on_device, tmp_path):
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.model import ALRNN

    ckpt = tmp_path / "tf.pt"
    kw = dict(forcing="generalized", alpha="adaptive", n_steps=2, batch_size=3, eval_every=2, n_ahead=3,
              lr_decay=0.99, metrics=("n_step", "d_stsp", "d_h"), checkpoint=ckpt, seed=0)
    fit_teacher_forcing(ALRNN(5, 1, seed=0, device=on_device), _recording(), **kw)
    resumed = fit_teacher_forcing(ALRNN(5, 1, seed=0, device=on_device), _recording(), **{**kw, "n_steps": 4})
    _on_device(resumed)
    whole = fit_teacher_forcing(ALRNN(5, 1, seed=0, device=on_device), _recording(),
                                **{**kw, "n_steps": 4, "checkpoint": None})
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a.cpu(), b.cpu(), msg=name)


def test_estimators(on_device):
    from neuroalrnn.estimators import ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, GRUTaskEstimator
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(12, seed=0)
    for cls in (ALRNNTaskEstimator, GRUTaskEstimator):
        est = cls(n_units=4, n_steps=2, batch_size=4, eval_every=2, device="meta").fit(ds)
        assert 0 <= est.score(ds) <= 1
    x = _recording()
    est = ALRNNTeacherForcingEstimator(5, 1, tau=4, n_steps=2, batch_size=3, eval_every=2, n_ahead=3,
                                       device="meta").fit(x)
    assert np.isfinite(est.score(x)) and est.predict(x).shape == x.shape


def test_compare(on_device):
    from neuroalrnn.compare import compare
    from neuroalrnn.tasks import stimulus_selection

    res = compare(stimulus_selection(12, seed=0), {"P=1": {"n_units": 4, "n_relu": 1, "n_steps": 2,
                                                           "batch_size": 4, "eval_every": 2}},
                  cv=2, device="meta")
    assert np.isfinite(res["score"].values).all()


def test_save_load_simulate(on_device, tmp_path):
    from neuroalrnn.model import ALRNN, load_model

    path = tmp_path / "m.safetensors"
    ALRNN(4, 2, n_inputs=1, seed=0, device=on_device).save(path)
    model = load_model(path, device=on_device)
    _on_device(model)
    states = model.simulate(torch.ones(2, 4), inputs=np.zeros((2, 5, 1)))
    assert isinstance(states, Remote) and states.cpu().shape == (2, 5, 4)
