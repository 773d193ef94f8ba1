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
    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG state
    resumed = Net(7)  # different initial weights: the checkpoint must overwrite them
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
    resumed = Net(5)
    train(resumed, mse, data, val=val, checkpoint=tmp_path / "b.pt", **KW)
    for p, q in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


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
