"""Tests of neuroalrnn.fit.trainer: convergence, resume equality, NaN handling, early stopping."""

import numpy as np
import pytest
import torch

from neuroalrnn.fit import NonFiniteLossError, train


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, 3, generator=g)
    y = x.sum(1) @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return {"x": x, "y": y}


class Net(torch.nn.Module):
    """Small GRU with dropout: exercises torch's global RNG during training."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = torch.nn.GRU(3, 8, batch_first=True)
        self.drop = torch.nn.Dropout(0.1)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.drop(self.rnn(x)[0][:, -1]))


def mse(model, batch):
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()


KW = dict(n_steps=40, batch_size=16, lr=0.01, lr_decay=0.99, clip_grad_norm=1.0, eval_every=10,
          seed=3, progress=False, optimizer="radam")


def test_train_reduces_loss_and_selects_best():
    data, val = _data(), _data(48, seed=1)
    model = Net(0)
    with torch.no_grad():
        before = float(mse(model.eval(), val))
    res = train(model, mse, data, val=val, **{**KW, "n_steps": 100, "optimizer": "adam"})
    assert res.n_steps == 100 and list(res.history.index) == list(range(10, 101, 10))
    assert res.history["val_loss"].min() < 0.3 * before
    assert res.best_step == int(res.history["val_loss"].idxmin())
    with torch.no_grad():
        after = float(mse(model.eval(), val))
    assert after == pytest.approx(res.best_metric, rel=1e-5)
    np.testing.assert_allclose(res.history["lr"].iloc[-1], 0.01 * 0.99 ** 100, rtol=1e-6)


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    data, val = _data(), _data(48, seed=1)
    ref = Net(0)
    res_ref = train(ref, mse, data, val=val, checkpoint=tmp_path / "ref.pt", **KW)

    # run 1: stop after 20 steps (a clean stop), then resume in a fresh process-like state
    part = Net(0)
    train(part, mse, data, val=val, checkpoint=tmp_path / "a.pt", **{**KW, "n_steps": 20})
    resumed = Net(0)
    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG state
    res = train(resumed, mse, data, val=val, checkpoint=tmp_path / "a.pt", **KW)
    for p, q in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert res.history.equals(res_ref.history) and res.best_step == res_ref.best_step

    # run 2: killed in the middle of step 27 (checkpoint at step 20 on disk), then resumed
    calls = {"n": 0}

    def dying(model, batch):
        calls["n"] += 1
        if calls["n"] == 28:
            raise KeyboardInterrupt
        return mse(model, batch)

    killed = Net(0)
    with pytest.raises(KeyboardInterrupt):
        train(killed, dying, data, val=val, checkpoint=tmp_path / "b.pt", **KW)
    resumed = Net(0)
    train(resumed, mse, data, val=val, checkpoint=tmp_path / "b.pt", **KW)
    for p, q in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(p, q)

    # run 3: the same model object trained on in the same session (it holds the checkpoint's best parameters)
    same = Net(0)
    train(same, mse, data, val=val, checkpoint=tmp_path / "c.pt", **{**KW, "n_steps": 20})
    train(same, mse, data, val=val, checkpoint=tmp_path / "c.pt", **KW)
    for p, q in zip(ref.parameters(), same.parameters()):
        assert torch.equal(p, q)


def _changed(data, val):
    other = _data(seed=9)
    return {
        "lr": ({"lr": 0.001}, "lr changed (saved 0.01, now 0.001)"),
        "batch_size": ({"batch_size": 32}, "batch_size changed (saved 16, now 32)"),
        "optimizer": ({"optimizer": "adam"}, "optimizer changed (saved 'radam', now 'adam')"),
        "lr_decay": ({"lr_decay": 0.9}, "lr_decay changed (saved 0.99, now 0.9)"),
        "seed": ({"seed": 4}, "seed changed (saved 3, now 4)"),
        "clip": ({"clip_grad_norm": None}, "clip_grad_norm changed (saved 1.0, now None)"),
        "data": ({"train": other}, "the training data changed"),
        "one value": ({"train": {**data, "y": data["y"].clone().index_fill_(0, torch.tensor([0]), 5.0)}},
                      "the training data changed"),
        "val": ({"val": other}, "the validation data changed"),
        "no val": ({"val": None}, "validation data removed"),
        "init": ({"model": Net(7)}, "the model's initial parameters changed"),
    }


@pytest.mark.parametrize("change", ["lr", "batch_size", "optimizer", "lr_decay", "seed", "clip", "data",
                                    "one value", "val", "no val", "init"])
def test_resume_with_other_settings_is_refused(tmp_path, change):
    data, val = _data(), _data(48, seed=1)
    ckpt = tmp_path / "run.pt"
    train(Net(0), mse, data, val=val, checkpoint=ckpt, **{**KW, "n_steps": 10})
    kwargs, message = _changed(data, val)[change]
    model = kwargs.pop("model", Net(0))
    before = [p.detach().clone() for p in model.parameters()]
    run = {"train": data, "val": val, **{k: kwargs.pop(k) for k in ("train", "val") if k in kwargs}}
    with pytest.raises(ValueError) as err:
        train(model, mse, run["train"], val=run["val"], checkpoint=ckpt, **{**KW, **kwargs})
    text = str(err.value)
    assert text.startswith("checkpoint: ") and message in text and "resume with the same settings" in text
    assert text.count("changed") + text.count("removed") == 1  # only what changed is named
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the model is left as given


def test_resume_with_a_longer_run_or_other_patience_is_accepted(tmp_path):
    data = _data()
    ckpt = tmp_path / "run.pt"
    train(Net(0), mse, data, checkpoint=ckpt, **{**KW, "n_steps": 10})
    res = train(Net(0), mse, data, checkpoint=ckpt, patience=3, **{**KW, "n_steps": 20})
    assert res.n_steps == 20 and list(res.history.index) == [10, 20]
    other = Net(0)
    with pytest.raises(ValueError, match="written for another model"):
        train(torch.nn.Linear(3, 1), lambda m, b: m(b["x"].sum(1)).pow(2).mean(), data, checkpoint=ckpt,
              **{**KW, "n_steps": 30})
    old = tmp_path / "old.pt"
    torch.save({"version": 1, "seed": 3}, old)
    with pytest.raises(ValueError, match="older neuroalrnn"):
        train(other, mse, data, checkpoint=old, **KW)


def test_nonfinite_loss_keeps_last_good_parameters():
    data = _data()
    model = Net(0)
    seen = []

    def objective(m, batch):
        loss = mse(m, batch)
        if len(seen) == 5:
            return loss * float("nan")
        seen.append([p.detach().clone() for p in m.parameters()])
        return loss

    with pytest.raises(NonFiniteLossError, match="step 5"):
        train(model, objective, data, **KW)
    # the parameters that gave the last finite loss (step 4), not the ones after it
    for p, q in zip(model.parameters(), seen[-1]):
        assert torch.equal(p, q)
    assert not torch.equal(seen[-1][0], seen[0][0])


def test_nonfinite_loss_keeps_history_and_best_validated_parameters():
    data, val = _data(), _data(48, seed=1)
    model = Net(0)
    steps = {"n": 0}
    best = {}

    def objective(m, batch):
        if m.training:
            steps["n"] += 1
            if steps["n"] == 26:
                return mse(m, batch) * float("nan")
        return mse(m, batch)

    def evaluate(m, batch):  # remember the parameters of each evaluation
        best[len(best) + 1] = [p.detach().clone() for p in m.parameters()]
        return {}

    with pytest.raises(NonFiniteLossError, match="step 25") as err:
        train(model, objective, data, val=val, evaluate=evaluate, **KW)
    result = err.value.result
    assert list(result.history.index) == [10, 20] and result.n_steps == 25
    assert result.best_step == int(result.history["val_loss"].idxmin())
    assert "best validated parameters (step" in str(err.value) and err.value.model is model
    for p, q in zip(model.parameters(), best[result.best_step // 10]):
        assert torch.equal(p, q)


def test_early_stopping_and_bad_input(tmp_path):
    data = _data()
    model = Net(0)
    # a metric that never improves after the first evaluation
    res = train(model, mse, data, val=data, evaluate=lambda m, b: {"const": 1.0}, select_metric="const",
                patience=2, **{**KW, "n_steps": 500})
    assert res.stopped_early and res.n_steps == 30 and res.best_step == 10
    with pytest.raises(ValueError, match="n_steps"):
        train(model, mse, data, n_steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        train(model, mse, data, optimizer="sgd")
    with pytest.raises(ValueError, match="checkpoint_every"):
        train(model, mse, data, checkpoint_every=0, progress=False)
    with pytest.raises(ValueError, match="share their first"):
        train(model, mse, {"x": data["x"], "y": data["y"][:3]})
    with pytest.raises(ValueError, match="select_metric"):
        train(model, mse, data, val=data, select_metric="acc", progress=False, n_steps=10, eval_every=5)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint"):
        train(model, mse, data, checkpoint=bad, progress=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr": "x"}, TypeError, "lr: expected a number, got str"),
    ({"lr": None}, TypeError, "lr: expected a number"),
    ({"lr": float("nan")}, ValueError, "lr: expected a finite number > 0"),
    ({"lr_decay": "x"}, TypeError, "lr_decay: expected a number"),
    ({"lr_decay": 1.5}, ValueError, "lr_decay: expected a finite number > 0 and <= 1"),
    ({"weight_decay": "x"}, TypeError, "weight_decay: expected a number"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay: expected a finite number >= 0"),
    ({"clip_grad_norm": "x"}, TypeError, "clip_grad_norm: expected None or a number"),
    ({"clip_grad_norm": -1.0}, ValueError, "clip_grad_norm: expected a finite number > 0"),
    ({"clip_grad_norm": float("nan")}, ValueError, "clip_grad_norm"),
    ({"seed": "x"}, TypeError, "seed: expected an int"),
    ({"seed": None}, TypeError, "seed: expected an int"),
    ({"patience": True}, ValueError, "patience"),
])
def test_bad_hyper_parameters_are_named(kwargs, error, message):
    model = torch.nn.Linear(3, 1)
    data = {"x": torch.randn(8, 3), "y": torch.randn(8, 1)}
    mse = lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean()  # noqa: E731
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=message):
        train(model, mse, data, n_steps=2, progress=False, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # rejected before any step


_KILLED_RUN = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
import test_fit_trainer as t
from neuroalrnn.fit import train
real, writes = torch.save, []

def dying_save(obj, f, *args, **kwargs):  # dies half-way through the second checkpoint write
    writes.append(f)
    if len(writes) == 2:
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *args, **kwargs)

torch.save = dying_save
train(t.Net(0), t.mse, t._data(), val=t._data(48, seed=1), checkpoint={ckpt!r}, **t.KW)
"""


def test_a_run_killed_while_writing_a_checkpoint_resumes_and_cleans_up(tmp_path):
    import os
    import subprocess
    import sys

    ckpt = tmp_path / "run.pt"
    code = _KILLED_RUN.format(tests=os.path.dirname(__file__), ckpt=str(ckpt))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -9, done.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[1] == "run.pt" and left[0].startswith(".run.pt.") and len(left) == 2  # a temporary file left
    data, val = _data(), _data(48, seed=1)
    seen = []

    def objective(model, batch):  # the leftover is gone when training starts
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        return mse(model, batch)

    resumed = Net(0)
    res = train(resumed, objective, data, val=val, checkpoint=ckpt, **KW)
    assert seen[0] == ["run.pt"] and res.history.index[0] == 10  # resumed from the first checkpoint
    ref = Net(0)
    train(ref, mse, data, val=val, **KW)
    for p, q in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
