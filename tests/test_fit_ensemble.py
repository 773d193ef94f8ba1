"""Ensemble training: each model's result equals training it alone; freezing, padding and resume."""

import numpy as np
import pytest
import torch

from neuroalrnn.fit._stacked import StackedOptimizer, clip_coefficients, model_norms
from neuroalrnn.fit.ensemble import train_ensemble
from neuroalrnn.fit.ensemble_task import fit_task_ensemble
from neuroalrnn.fit.task import fit_task
from neuroalrnn.model import ALRNN, ALRNNEnsemble

F64 = torch.float64


@pytest.mark.parametrize("kind", ["adam", "radam"])
def test_stacked_optimizer_matches_torch(kind):
    K, shapes = 3, [(4,), (4, 4), (2, 4)]
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(K, *s, generator=g, dtype=F64) for s in shapes]
    lrs, gammas, clips = [0.01, 0.02, 0.005], [0.99, 1.0, 0.95], [1.0, 0.5, None]
    solo = []
    for k in range(K):
        ps = [torch.nn.Parameter(t[k].clone()) for t in init]
        opt = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}[kind](ps, lr=lrs[k], weight_decay=0.01 * k)
        solo.append((ps, opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gammas[k])))
    stacked = [torch.nn.Parameter(t.clone()) for t in init]
    opt = StackedOptimizer(stacked, kind, torch.tensor(lrs, dtype=F64), torch.tensor(gammas, dtype=F64),
                           torch.tensor([0.0, 0.01, 0.02], dtype=F64))
    max_norm = torch.tensor([np.inf if c is None else c for c in clips], dtype=F64)
    for _ in range(30):  # RAdam switches to its rectified update after 5 steps
        grads = [3 * torch.randn(K, *s, generator=g, dtype=F64) for s in shapes]
        for k, (ps, o, sched) in enumerate(solo):
            for p, gr in zip(ps, grads):
                p.grad = gr[k].clone()
            if clips[k] is not None:
                torch.nn.utils.clip_grad_norm_(ps, clips[k])
            o.step()
            sched.step()
        coef = clip_coefficients(model_norms(grads), max_norm)
        for p, gr in zip(stacked, grads):
            p.grad = gr * coef.reshape((-1,) + (1,) * (gr.ndim - 1))
        opt.step()
    for k, (ps, o, _) in enumerate(solo):
        assert opt.lr[k].item() == o.param_groups[0]["lr"]
        for p, s in zip(ps, stacked):
            torch.testing.assert_close(s[k].detach(), p.detach(), rtol=0, atol=1e-13)


@pytest.fixture(scope="module")
def ds():
    from neuroalrnn.tasks import stimulus_selection

    return stimulus_selection(120, seed=0)


def _assert_same(single_model, single_res, member, res, atol=1e-10, rtol=1e-9):
    for name in "AWhCBb":
        torch.testing.assert_close(getattr(member, name), getattr(single_model, name).detach(), rtol=0, atol=atol)
    assert (res.best_step, res.n_steps, res.stopped_early) == \
        (single_res.best_step, single_res.n_steps, single_res.stopped_early)
    assert list(res.history.columns) == list(single_res.history.columns)
    np.testing.assert_allclose(res.history.to_numpy(), single_res.history.to_numpy(), rtol=rtol, atol=atol)
    assert res.history.index.tolist() == single_res.history.index.tolist()
    np.testing.assert_array_equal(res.extra["val_trials"], single_res.extra["val_trials"])


def test_task_ensemble_equals_separate_fits(ds):
    # different P, seeds, learning rates and clipping; folds of different sizes (padded validation
    # sets), one smaller than a batch (padded batches); early stopping at different steps
    folds = [np.arange(0, 90), np.arange(30, 120), np.arange(0, 120, 2), np.arange(100, 120)]
    P, seeds, lrs, clip = [0, 2, 8, 2], [3, 4, 5, 6], [0.01, 0.05, 0.003, 0.02], [1.0, 0.1, None, 1.0]
    kw = dict(n_steps=48, eval_every=8, batch_size=32, patience=2, lr_decay=0.99)
    ens = ALRNNEnsemble(8, P, 5, 1, seeds=seeds, dtype=F64)
    results = fit_task_ensemble(ens, ds, folds, seeds=seeds, lr=lrs, clip_grad_norm=clip, **kw)
    for k in range(len(P)):
        model = ALRNN(8, P[k], 5, 1, seed=seeds[k], dtype=F64)
        solo = fit_task(model, ds.isel(trial=folds[k]), seed=seeds[k], lr=lrs[k], clip_grad_norm=clip[k],
                        progress=False, **kw)
        _assert_same(model, solo, ens.member(k), results[k])
    assert len({r.n_steps for r in results}) > 1  # some stopped early, the others went on


def test_accuracy_selection_and_float32(ds):
    kw = dict(n_steps=20, eval_every=5, batch_size=16, select_metric="val_accuracy", loss="ce")
    ens = ALRNNEnsemble(6, [1, 6], 5, 1, seeds=[0, 1])
    results = fit_task_ensemble(ens, ds, seeds=[0, 1], **kw)
    for k in range(2):
        model = ALRNN(6, [1, 6][k], 5, 1, seed=k)
        solo = fit_task(model, ds, seed=k, progress=False, **kw)
        _assert_same(model, solo, ens.member(k), results[k], atol=1e-5, rtol=1e-5)


class Linear(torch.nn.Module):
    """K linear regressions x -> y, stacked."""

    def __init__(self, k):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(k, 3, 1, dtype=F64))


def mse(module, batch):
    return ((batch["x"] @ module.w - batch["y"]) ** 2).mean((1, 2))


def _regression(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=F64)
    return {"x": x, "y": x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64)}


def test_a_diverging_model_is_frozen_and_the_others_go_on():
    data = _regression()
    data["x"][40:] = np.inf  # model 1 trains on these trials only
    kw = dict(n_steps=30, batch_size=8, lr=0.05, eval_every=10, seeds=[0, 1])
    both = Linear(2)
    results = train_ensemble(both, mse, data, [range(40), range(40, 64)], **kw)
    alone = Linear(1)
    (solo,) = train_ensemble(alone, mse, data, [range(40)], **dict(kw, seeds=[0]))
    torch.testing.assert_close(both.w[0], alone.w[0], rtol=0, atol=0)
    assert "error" not in results[0].extra and results[0].n_steps == 30
    assert "loss is non-finite at step 0" in results[1].extra["error"] and results[1].n_steps == 0
    assert torch.equal(both.w[1], torch.zeros(3, 1, dtype=F64))  # held at its last finite parameters


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_is_identical(tmp_path):
    data = _regression()
    val = [range(48, 64), range(50, 64)]
    kw = dict(val_index=val, n_steps=40, batch_size=8, lr=[0.05, 0.02], eval_every=10, patience=[None, 1],
              seeds=[0, 1], fingerprint="run-a", optimizer="radam")
    full = Linear(2)
    expected = train_ensemble(full, mse, data, [range(48), range(40)], **kw)
    calls = []

    def dies_at_25(module, batch):
        calls.append(module.training)
        if sum(calls) == 25:
            raise Interrupt
        return mse(module, batch)

    ckpt = tmp_path / "ensemble.ckpt"
    with pytest.raises(Interrupt):
        train_ensemble(Linear(2), dies_at_25, data, [range(48), range(40)], checkpoint=ckpt, **kw)
    assert ckpt.exists()
    calls.clear()
    resumed_model = Linear(2)
    resumed = train_ensemble(resumed_model, dies_at_25, data, [range(48), range(40)], checkpoint=ckpt, **kw)
    assert sum(calls) == 40 - 20  # went on from the checkpoint of step 20
    assert torch.equal(resumed_model.w, full.w)
    for a, b in zip(resumed, expected):
        assert (a.best_step, a.n_steps, a.stopped_early) == (b.best_step, b.n_steps, b.stopped_early)
        np.testing.assert_array_equal(a.history.to_numpy(), b.history.to_numpy())
    other_data = {k: v.clone() for k, v in data.items()}
    other_data["y"][3] += 1.0
    for change, args, extra in [("the fingerprint label", (data, [range(48), range(40)]), {"fingerprint": "b"}),
                                ("lr changed", (data, [range(48), range(40)]), {"lr": [0.05, 0.03]}),
                                ("batch_size changed", (data, [range(48), range(40)]), {"batch_size": 16}),
                                ("the data changed", (other_data, [range(48), range(40)]), {}),
                                ("the training trials", (data, [range(48), range(41)]), {}),
                                ("the validation trials", (data, [range(48), range(40)]),
                                 {"val_index": [range(48, 64), range(51, 64)]}),
                                ("the seeds", (data, [range(48), range(40)]), {"seeds": [0, 2]})]:
        with pytest.raises(ValueError, match=change):
            train_ensemble(Linear(2), mse, *args, checkpoint=ckpt, **dict(kw, **extra))
    assert torch.load(ckpt, weights_only=True)["step"] == 40  # a refused resume leaves the checkpoint as it was


def test_bad_settings_are_named(ds):
    data = _regression()
    with pytest.raises(ValueError, match="model dim"):
        train_ensemble(Linear(2), mse, data, [range(10)])
    with pytest.raises(ValueError, match="lr: expected one value per model"):
        train_ensemble(Linear(2), mse, data, [range(10), range(10)], lr=[0.1])
    with pytest.raises(ValueError, match="lr"):
        train_ensemble(Linear(2), mse, data, [range(10), range(10)], lr=[0.1, -1])
    ens = ALRNNEnsemble(4, [1, 2], 5, 1)
    with pytest.raises(ValueError, match="val_fraction"):
        fit_task_ensemble(ens, ds, val_fraction=[0.2, 0.0], n_steps=2)
    with pytest.raises(ValueError, match=r"train_trials\[1\]"):
        fit_task_ensemble(ens, ds, [np.arange(5), np.arange(500, 510)], n_steps=2)


def _recording():
    rng = np.random.default_rng(0)
    t = np.arange(80) * 0.3
    x = np.stack([np.stack([np.sin(t + p), np.cos(1.3 * t + p), np.sin(0.7 * t) * np.cos(t + p)], 1)
                  for p in np.linspace(0, 3, 14)])
    x = x + 0.05 * rng.standard_normal(x.shape)
    x[3, 60:] = np.nan  # a trial that ends early
    return x


TF_CASES = {"sparse, noise, windows": dict(forcing="sparse", tau=8, noise_std=0.1, sequence_length=30),
            "generalized adaptive, linear": dict(forcing="generalized", observation="linear"),
            "generalized adaptive, identity": dict(forcing="generalized"),
            "generalized adaptive fast, identity": dict(forcing="generalized", alpha_schedule="fast"),
            "generalized fixed, noise": dict(forcing="generalized", alpha=0.3, noise_std=0.05)}


@pytest.mark.parametrize("case", TF_CASES)
def test_teacher_forcing_ensemble_equals_separate_fits(case):
    from neuroalrnn.fit.ensemble_tf import fit_teacher_forcing_ensemble
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing

    x = _recording()
    folds, P, seeds, lrs = [np.arange(0, 10), np.arange(4, 14), np.arange(14)], [0, 2, 3], [1, 2, 3], [1e-3, 3e-3, 2e-3]
    kw = dict(n_steps=20, eval_every=10, batch_size=4, metrics=("n_step",), n_ahead=5, **TF_CASES[case])
    fits = fit_teacher_forcing_ensemble(ALRNNEnsemble(6, P, seeds=seeds, dtype=F64), x, folds, seeds=seeds, lr=lrs,
                                        **kw)
    for k in range(3):
        single = fit_teacher_forcing(ALRNN(6, P[k], seed=seeds[k], dtype=F64), x[folds[k]], seed=seeds[k],
                                     lr=lrs[k], **kw)
        for a, b in zip(list(single.parameters()), list(fits[k].parameters())):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
        torch.testing.assert_close(fits[k].mean, single.mean)
        a, b = single.train_result_, fits[k].train_result_
        assert (a.best_step, a.n_steps) == (b.best_step, b.n_steps)
        np.testing.assert_allclose(b.history.to_numpy(), a.history.to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(fits[k].free_run(x[0, 0], 5), single.free_run(x[0, 0], 5), rtol=1e-10)


def test_teacher_forcing_ensemble_resumes_with_its_random_streams(tmp_path, monkeypatch):
    from neuroalrnn.fit import ensemble_tf

    x = _recording()
    kw = dict(n_steps=20, eval_every=5, batch_size=4, metrics=("n_step",), n_ahead=5, seeds=[0, 1],
              **TF_CASES["sparse, noise, windows"])
    expected = ensemble_tf.fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [1, 2], seeds=[0, 1]), x, **kw)
    real, calls = ensemble_tf.EnsembleTeacherForcingObjective.__call__, []

    def dies_at_13(self, module, batch):
        calls.append(module.training)
        if sum(calls) == 13:
            raise Interrupt
        return real(self, module, batch)

    monkeypatch.setattr(ensemble_tf.EnsembleTeacherForcingObjective, "__call__", dies_at_13)
    with pytest.raises(Interrupt):
        ensemble_tf.fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [1, 2], seeds=[0, 1]), x,
                                                 checkpoint=tmp_path / "c.ckpt", **kw)
    calls.clear()
    resumed = ensemble_tf.fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [1, 2], seeds=[0, 1]), x,
                                                       checkpoint=tmp_path / "c.ckpt", **kw)
    assert sum(calls) == 20 - 10
    for a, b in zip(expected, resumed):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        np.testing.assert_array_equal(a.train_result_.history.to_numpy(), b.train_result_.history.to_numpy())


@pytest.mark.parametrize("n_in, n_out, dtype, unit", [(5, 1, F64, False), (2, 3, F64, False), (0, 2, F64, False),
                                                     (5, 1, torch.float32, False), (5, 1, F64, True),
                                                     (2, 3, torch.float32, True)])
def test_fused_task_mse_equals_the_unfused_objective(n_in, n_out, dtype, unit):
    """The compiled CPU step gives the autograd objective's losses and gradients (padded batches too),
    for the sum of the losses (the gradients made in the forward pass as they are) and a weighted sum."""
    from neuroalrnn.fit import ensemble_task
    from neuroalrnn.fit.task import masked_loss

    ens = ALRNNEnsemble(6, [0, 3, 6], n_inputs=n_in, n_outputs=n_out, seeds=[0, 1, 2], dtype=dtype)
    g = torch.Generator().manual_seed(1)
    batch = {"inputs": torch.randn(3, 4, 7, n_in, generator=g, dtype=dtype),
             "targets": torch.randn(3, 4, 7, n_out, generator=g, dtype=dtype),
             "weight": (torch.rand(3, 4, 7, 1, generator=g, dtype=dtype) > 0.3).to(dtype),
             "valid": torch.tensor([[True] * 4, [True] * 4, [True, True, False, False]])}
    params = list(ens.parameters())
    upstream = torch.ones(3, dtype=dtype) if unit else torch.tensor([0.7, -1.3, 2.0], dtype=dtype)
    with torch.no_grad():  # no gradients wanted: the same losses
        without = ensemble_task.task_objective("mse")(ens, batch)
    fused = ensemble_task.task_objective("mse")(ens, batch)
    assert torch.equal(without, fused.detach())
    assert type(fused.grad_fn).__name__ == "_FusedTaskMSEBackward"  # the compiled path ran
    got = torch.autograd.grad((fused * upstream).sum(), params)
    _, outputs = ens(batch["inputs"])
    weight = ensemble_task._valid_weight(batch).expand_as(outputs)
    ref = torch.vmap(lambda y, t, w: masked_loss(y, t, w, "mse"))(outputs, batch["targets"], weight)
    want = torch.autograd.grad((ref * upstream).sum(), params, allow_unused=True)
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == F64 else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused, ref, **tol)
    for name, a, b in zip(("A", "W", "h", "C", "B", "b"), got, want):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, **tol, msg=name)


def test_fused_steps_hand_train_ensemble_the_gradients_of_the_summed_loss():
    """The fused task and teacher-forcing steps make their gradients in the forward pass; train_ensemble
    takes them from there (no backward): they equal autograd's gradients of loss.sum(), bit for bit."""
    from neuroalrnn.fit import ensemble_task
    from neuroalrnn.fit._fused_tf import fused_teacher_forcing_mse

    g = torch.Generator().manual_seed(3)
    ens = ALRNNEnsemble(6, [0, 3, 6], n_inputs=2, n_outputs=1, seeds=[0, 1, 2], dtype=F64)
    batch = {"inputs": torch.randn(3, 4, 7, 2, generator=g, dtype=F64), "targets": torch.randn(3, 4, 7, 1, dtype=F64),
             "weight": torch.ones(3, 4, 7, 1, dtype=F64)}
    L = torch.nn.Parameter(torch.randn(3, 3, 3, generator=g, dtype=F64))
    x = torch.randn(3, 4, 9, 3, generator=g, dtype=F64)
    runs = [(list(ens.parameters()), lambda: ensemble_task.task_objective("mse")(ens, batch)),
            ([ens.A, ens.W, ens.h, L], lambda: fused_teacher_forcing_mse(ens, L, x, torch.ones(3, 4, 8, dtype=F64),
                                                                         x[:, :, :-1], torch.full((3, 4, 8), 0.5,
                                                                                                  dtype=F64)))]
    for params, loss_of in runs:
        loss = loss_of()
        made = {id(p): grad for p, grad in loss.grad_fn.sum_grads}
        assert all(id(p) in made for p in params)  # the module's own parameter objects
        want = torch.autograd.grad(loss.sum(), params)
        for p, w in zip(params, want):
            assert torch.equal(made[id(p)], w)
    with torch.no_grad():  # no gradients wanted: none made
        assert not hasattr(ensemble_task.task_objective("mse")(ens, batch).grad_fn, "sum_grads")
    # a parameter that reaches the step through other operations: its gradient is autograd's to give
    L_of = torch.nn.Parameter(L.detach().clone())
    loss = fused_teacher_forcing_mse(ens, 2 * L_of, x, torch.ones(3, 4, 8, dtype=F64), x[:, :, :-1],
                                     torch.full((3, 4, 8), 0.5, dtype=F64))
    assert not hasattr(loss.grad_fn, "sum_grads")


def test_the_unfused_objective_serves_other_backends_and_losses():
    from neuroalrnn.fit import ensemble_task

    ens = ALRNNEnsemble(4, [0, 2], n_inputs=1, n_outputs=1, seeds=[0, 1], backend="loop")
    batch = {"inputs": torch.randn(2, 3, 5, 1), "targets": torch.zeros(2, 3, 5, 1), "weight": torch.ones(2, 3, 5, 1)}
    assert "Fused" not in type(ensemble_task.task_objective("mse")(ens, batch).grad_fn).__name__
    ens.backend = "numba"
    assert "Fused" not in type(ensemble_task.task_objective("ce")(ens, batch).grad_fn).__name__


def test_validation_runs_in_chunks_of_trials_with_the_same_outputs(monkeypatch):
    """Evaluation over chunks of trials (kept under glibc's mmap threshold) gives the one-run outputs."""
    from neuroalrnn.fit import ensemble_task

    ens = ALRNNEnsemble(6, [0, 3, 6], n_inputs=2, n_outputs=1, seeds=[0, 1, 2], dtype=F64)
    inputs = torch.randn(3, 10, 7, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    whole = ens(inputs)[1]
    per_trial = 3 * 7 * 6 * 8  # bytes of one trial's states over the 3 models
    for trials in (1, 3, 4, 10, 11):  # uneven last chunks, one chunk, more room than trials
        monkeypatch.setattr(ensemble_task, "_EVAL_CHUNK_BYTES", trials * per_trial)
        torch.testing.assert_close(ensemble_task._outputs(ens, inputs), whole, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n_in, dtype, alpha, unit", [(0, F64, 1.0, False), (2, F64, 0.4, False),
                                                     (0, torch.float32, 1.0, False), (2, F64, 0.4, True)])
def test_fused_teacher_forcing_equals_the_unfused_objective(n_in, dtype, alpha, unit):
    """The compiled teacher-forcing step gives the autograd objective's losses and gradients (windows,
    noise, a trial that ends early, padded batches, inputs)."""
    from neuroalrnn.fit._ensemble_observation import ObservedEnsemble, StackedObservation
    from neuroalrnn.fit.ensemble_tf import EnsembleTeacherForcingObjective
    from neuroalrnn.fit.observation import IdentityObservation

    P, seeds = [0, 2, 3], [0, 1, 2]
    ens = ALRNNEnsemble(6, P, n_inputs=n_in, seeds=seeds, dtype=dtype)
    obs = StackedObservation([IdentityObservation(3, 6, p, seed=s, dtype=dtype) for p, s in zip(P, seeds)], P)
    module = ObservedEnsemble(ens, obs, [[0.0] * 3] * 3, [[1.0] * 3] * 3)
    x = torch.as_tensor(np.nan_to_num(_recording()[:4]), dtype=dtype).expand(3, 4, 80, 3).clone()
    mask = torch.ones(3, 4, 80, dtype=torch.bool)
    mask[:, 3, 60:] = False
    batch = {"x": x, "mask": mask, "valid": torch.tensor([[True] * 4, [True] * 4, [True, True, True, False]])}
    if n_in:
        batch["inputs"] = torch.randn(3, 4, 80, n_in, generator=torch.Generator().manual_seed(0), dtype=dtype)
    params = [p for p in module.parameters()]
    upstream = torch.ones(3, dtype=dtype) if unit else torch.tensor([0.7, -1.3, 2.0], dtype=dtype)
    results = {}
    for backend in ("numba", "loop"):
        objective = EnsembleTeacherForcingObjective("sparse", 7, alpha, seeds=seeds, noise_std=0.1,
                                                    sequence_length=50, backend=backend)
        loss = objective(module, batch)
        assert ("Fused" in type(loss.grad_fn).__name__) == (backend == "numba")
        results[backend] = (loss, torch.autograd.grad((loss * upstream).sum(), params, allow_unused=True))
    tol = dict(atol=1e-12, rtol=1e-10) if dtype == F64 else dict(atol=1e-5, rtol=1e-4)
    (fused, got), (ref, want) = results["numba"], results["loop"]
    torch.testing.assert_close(fused, ref, **tol)
    for (name, p), a, b in zip(module.named_parameters(), got, want):
        zero = torch.zeros_like(p)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b, **tol, msg=name)
