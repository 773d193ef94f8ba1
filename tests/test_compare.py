"""Cross-validated comparisons: results layout, resume, summaries, Dask, bad input."""

import json

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from neuroalrnn.compare import compare, make_estimator, make_folds, summarize, table
from neuroalrnn.estimators import ALRNNTaskEstimator, GRUTaskEstimator, Trials

TINY = dict(n_units=5, n_steps=2, eval_every=2, batch_size=16)


@pytest.fixture(scope="module")
def ds():
    from neuroalrnn.tasks import stimulus_selection

    data = stimulus_selection(24, seed=1, timing={"stimulus": 0.2})
    return data.assign_coords(session=("trial", np.repeat(np.arange(3), 8)))


MODELS = {"P=0": dict(TINY, n_relu=0), "P=2": dict(TINY, n_relu=2), "gru": dict(TINY, family="gru")}


@pytest.fixture(scope="module")
def serial(ds):
    return compare(ds, MODELS, cv=3, groups="session", seeds=[0, 1])


def test_layout_and_known_scores(ds, serial):
    assert serial["score"].dims == ("model", "fold", "seed")
    assert serial["model"].values.tolist() == ["P=0", "P=2", "gru"]
    assert serial["n_relu"].values[:2].tolist() == [0.0, 2.0] and np.isnan(serial["n_relu"].values[2])
    assert serial["family"].values.tolist() == ["alrnn", "alrnn", "gru"]
    assert serial["n_test"].values.tolist() == [8, 8, 8]
    # one cell recomputed by hand: the same estimator, fold and seed
    folds = make_folds(24, 3, ds["session"].values)
    train, test = folds[1]
    est = ALRNNTaskEstimator(n_relu=2, seed=1, **TINY).fit(Trials(ds)[train])
    assert float(serial["score"].sel(model="P=2", fold=1, seed=1)) == est.score(Trials(ds)[test])



def _record_fits(monkeypatch, what):
    """Wrap compare's sweep tasks; returns the list of ``what(task, shared)`` of each fit run (ensemble members too)."""
    import neuroalrnn.compare as cmp

    seen, real = [], cmp._run_task

    def spy(task, shared):
        seen.extend(what(member, shared) for member in task.get("members", [task]))
        return real(task, shared)

    monkeypatch.setattr(cmp, "_run_task", spy)
    return seen


def test_resume_only_missing(ds, tmp_path, monkeypatch):
    calls = _record_fits(monkeypatch, lambda task, shared: task["key"])
    models = {"P=2": MODELS["P=2"]}
    first = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len(calls) == 3 and len(list(tmp_path.glob("P=2-*.json"))) == 3
    record = json.loads((tmp_path / "P=2-fold1-seed0.json").read_text())
    assert record["result"]["score"] == float(first["score"].sel(model="P=2", fold=1, seed=0))
    (tmp_path / "P=2-fold1-seed0.json").unlink()
    for record in tmp_path.glob("ensemble-*.json"):  # the ensemble's record holds the member's result too
        record.unlink()
    calls.clear()
    second = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert calls == ["P=2-fold1-seed0"]
    xr.testing.assert_identical(first["score"], second["score"])
    calls.clear()  # changed hyper-parameters are new fits, not stale results
    compare(ds, {"P=2": dict(MODELS["P=2"], lr=0.02)}, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len(calls) == 3
    calls.clear()  # relabelled trials (a trial coord the score reads) are new data, not stale results
    relabelled = ds.assign_coords(correct_choice=-ds["correct_choice"])
    compare(relabelled, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len(calls) == 3


def test_summarize_matches_scipy():
    rng = np.random.default_rng(0)
    score = rng.uniform(0.4, 1.0, size=(3, 4, 2))
    res = xr.Dataset({"score": (("model", "fold", "seed"), score)},
                     coords={"model": ["a", "b", "c"], "n_relu": ("model", [0.0, 2.0, 8.0])})
    s = summarize(res)
    flat = score.reshape(3, -1)
    np.testing.assert_allclose(s["mean"].values, flat.mean(1))
    np.testing.assert_allclose(s["sem"].values, stats.sem(flat, axis=1))
    t = stats.ttest_rel(flat[1], flat[0])
    assert float(s["t_pvalue"].sel(model="b", other="a")) == pytest.approx(t.pvalue)
    assert float(s["t_statistic"].sel(model="b", other="a")) == pytest.approx(t.statistic)
    assert float(s["wilcoxon_pvalue"].sel(model="c", other="a")) == pytest.approx(stats.wilcoxon(flat[2], flat[0]).pvalue)
    assert float(s["diff"].sel(model="c", other="b")) == pytest.approx((flat[2] - flat[1]).mean())
    assert np.isnan(s["t_pvalue"].sel(model="a", other="a"))
    assert s["n_relu"].values.tolist() == [0.0, 2.0, 8.0]
    df = table(s)
    assert df.columns.tolist() == ["n_relu", "mean", "sem", "n"] and df.loc["b", "n"] == 8


@pytest.mark.slow  # each fresh worker process imports torch (~10-20 s on a busy 2-core box)
def test_local_cluster_matches_serial(ds, serial):
    models = {"P=2": MODELS["P=2"]}
    parallel = compare(ds, models, cv=3, groups="session", seeds=[0, 1], n_jobs=2)
    np.testing.assert_array_equal(parallel["score"].values, serial["score"].sel(model=["P=2"]).values)


def test_make_estimator_and_folds(ds):
    assert isinstance(make_estimator("gru"), GRUTaskEstimator)
    assert make_estimator({"n_relu": 1}, ds).n_relu == 1
    est = ALRNNTaskEstimator(n_relu=3)
    made = make_estimator(est)
    assert made is not est and made.n_relu == 3
    folds = make_folds(24, 3, ds["session"].values)
    for train, test in folds:
        assert len(set(ds["session"].values[test])) == 1
        assert not set(train) & set(test)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(24))


def test_bad_input(ds):
    with pytest.raises(ValueError, match="3 folds but only 2 distinct groups"):
        compare(ds.isel(trial=slice(0, 16)), {"a": TINY}, cv=3, groups="session")
    with pytest.raises(ValueError, match="unknown family 'lstm'"):
        compare(ds, {"a": {"family": "lstm"}})
    with pytest.raises(ValueError, match=r"unknown parameters \['n_relus'\]"):
        compare(ds, {"a": {"n_relus": 2}})
    with pytest.raises(ValueError, match="groups: 'subject' is not a trial coord"):
        compare(ds, {"a": TINY}, groups="subject")
    with pytest.raises(ValueError, match="models"):
        compare(ds, {})
    with pytest.raises(ValueError, match="seeds"):
        compare(ds, {"a": TINY}, seeds=[0.5])
    with pytest.raises(TypeError, match="cv: expected"):
        compare(ds, {"a": TINY}, cv="five")
    with pytest.raises(TypeError, match="unexpected keyword"):
        compare(ds, {"a": TINY}, n_fold=3)
    with pytest.raises(ValueError, match="attrs\\['dt'\\]"):
        compare(ds.drop_attrs(), {"a": TINY})
    with pytest.raises(TypeError, match="summarize|results"):
        summarize(xr.Dataset())


def test_unreachable_scheduler(ds):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        compare(ds, {"a": TINY}, cv=2, scheduler=f"tcp://127.0.0.1:{port}")


def test_device_override_is_passed_and_not_part_of_the_key(ds, tmp_path, monkeypatch):
    seen = _record_fits(monkeypatch, lambda task, shared: shared["device"])
    first = compare(ds, {"a": TINY}, cv=2, device="auto", results_dir=tmp_path)  # "auto": CPU here
    assert seen == ["auto", "auto"]
    second = compare(ds, {"a": TINY}, cv=2, device="cpu", results_dir=tmp_path)
    assert len(seen) == 2  # same fits on another device are not redone
    xr.testing.assert_identical(first["score"], second["score"])
    with pytest.raises(TypeError, match="device"):
        compare(ds, {"a": TINY}, cv=2, device=0)


def test_plot_score_vs_p(serial):
    import matplotlib

    matplotlib.use("Agg")
    from neuroalrnn.plot import plot_score_vs_p

    s = summarize(serial)
    ax = plot_score_vs_p(s)
    line = ax.containers[0].lines[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2"]  # P on a categorical axis
    np.testing.assert_allclose(line.get_ydata(), s["mean"].values[:2])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gru", "AL-RNN, mean ± SEM"]
    with pytest.raises(ValueError, match="n_relu"):
        plot_score_vs_p(s.drop_vars("n_relu"))


def test_teacher_forcing_family_on_recordings():
    from neuroalrnn.schema import from_arrays

    t = np.arange(25) * 0.3
    x = np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 12)])
    rec = from_arrays(activity=x, dt=0.1, trial_coords={"session": np.repeat([0, 1, 2], 4)})
    tf = dict(n_units=5, tau=5, n_steps=2, eval_every=2, n_ahead=3, batch_size=4)
    models = {"P=0": dict(tf, n_relu=0, noise_std=0.1), "P=2": dict(tf, n_relu=2, lr=3e-3, noise_std=0.1)}
    from neuroalrnn._compare_ensemble import group_key

    assert group_key(make_estimator(models["P=0"], rec)) == group_key(make_estimator(models["P=2"], rec))
    res = compare(rec, models, cv=3, groups="session")  # P=0 and P=2 as one ensemble
    alone = compare(rec, models, cv=3, groups="session", ensemble=False)
    np.testing.assert_allclose(res["score"].values, alone["score"].values, rtol=1e-5)
    assert res["family"].values.tolist() == ["teacher_forcing", "teacher_forcing"]
    assert res["n_relu"].values.tolist() == [0.0, 2.0]
    assert np.all(res["score"].values <= 0) and np.isfinite(res["score"].values).all()
    with pytest.raises(ValueError, match="unknown parameters"):
        compare(rec, {"a": {"n_relu": 0, "select_metric": "val_accuracy"}})  # a task option on recordings


def test_ensembles_group_compatible_fits_and_equal_the_per_model_path(ds, serial, monkeypatch):
    calls = _record_fits(monkeypatch, lambda task, shared: task["model"])
    import neuroalrnn.compare as cmp

    kinds, real = [], cmp._run_task
    monkeypatch.setattr(cmp, "_run_task", lambda task, shared: kinds.append(len(task.get("members", [0]))) or
                        real(task, shared))
    models = dict(MODELS, fast={**MODELS["P=2"], "lr": 0.05, "n_relu": 5})
    alone = compare(ds, models, cv=3, groups="session", seeds=[0, 1], ensemble=False)
    assert sorted(kinds) == [1] * 24 and len(calls) == 24
    kinds.clear()
    together = compare(ds, models, cv=3, groups="session", seeds=[0, 1])
    assert sorted(kinds) == [1] * 6 + [18]  # three AL-RNN specs x 3 folds x 2 seeds in one ensemble; GRUs alone
    np.testing.assert_allclose(together["score"].values, alone["score"].values, rtol=0, atol=1e-12)
    xr.testing.assert_identical(together["score"].sel(model=list(MODELS)), serial["score"])


def test_plan_splits_ensembles_for_workers_and_caps():
    from neuroalrnn._compare_ensemble import plan

    ests = {"a": ALRNNTaskEstimator(n_relu=0), "b": ALRNNTaskEstimator(n_relu=2, lr=0.1),
            "c": ALRNNTaskEstimator(n_units=8), "g": GRUTaskEstimator()}
    tasks = [{"key": f"{m}{i}", "model": m} for m in ests for i in range(5)]
    sizes = lambda todo: sorted(len(t.get("members", [t])) for t in todo)  # noqa: E731
    assert sizes(plan(tasks, ests, True, 1)) == [1] * 5 + [5, 10]
    assert sizes(plan(tasks, ests, True, 3)) == [1] * 5 + [1, 2, 2, 3, 3, 4]
    assert sizes(plan(tasks, ests, 4, 1)) == [1] * 5 + [2, 3, 3, 3, 4]
    assert sizes(plan(tasks, ests, False, 1)) == [1] * 20
    assert plan(tasks, ests, True, 1)[0]["key"] == plan(list(tasks), ests, True, 1)[0]["key"]  # stable keys
    with pytest.raises(ValueError, match="ensemble"):
        compare(stimulus_data(), {"a": TINY}, ensemble=0)


def stimulus_data():
    from neuroalrnn.tasks import stimulus_selection

    return stimulus_selection(12, seed=0)


def test_an_interrupted_ensemble_resumes_without_loss(ds, tmp_path, monkeypatch):
    import neuroalrnn.fit.ensemble_task as et

    models = {"P=0": dict(TINY, n_relu=0, n_steps=12, eval_every=4), "P=2": dict(TINY, n_relu=2, n_steps=12, eval_every=4)}
    expected = compare(ds, models, cv=3, groups="session", seeds=[0])
    steps, real = [], et.task_objective

    def counting(loss, stop_at=None):
        objective = real(loss)

        def run(module, batch):
            steps.append(module.training)
            if stop_at is not None and sum(steps) == stop_at:
                raise KeyboardInterrupt
            return objective(module, batch)

        return run

    monkeypatch.setattr(et, "task_objective", lambda loss: counting(loss, stop_at=10))
    with pytest.raises(KeyboardInterrupt):
        compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len(list(tmp_path.glob("ensemble-*.ckpt"))) == 1 and not list(tmp_path.glob("P=*.json"))
    steps.clear()
    monkeypatch.setattr(et, "task_objective", counting)
    resumed = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert sum(steps) == 12 - 8  # went on from the checkpoint written at step 8
    xr.testing.assert_identical(resumed["score"], expected["score"])
    assert len(list(tmp_path.glob("P=*.json"))) == 6 and not list(tmp_path.glob("*.ckpt"))


def test_damaged_member_records_are_named_and_restored_from_their_ensemble(ds, tmp_path, monkeypatch):
    models = {"P=0": dict(TINY, n_relu=0), "P=2": dict(TINY, n_relu=2)}
    expected = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    damaged = tmp_path / "P=2-fold1-seed0.json"
    damaged.write_text(damaged.read_text()[:50])  # truncated: a full disk, a killed copy
    from neuroalrnn import _compare_ensemble

    monkeypatch.setattr(_compare_ensemble, "fit_ensemble", None)  # nothing may be refitted
    with pytest.warns(RuntimeWarning, match=r"1 stored result\(s\) .* failed their check .*P=2-fold1-seed0\.json"):
        again = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    xr.testing.assert_identical(again["score"], expected["score"])
    json.loads(damaged.read_text())  # rewritten whole from the ensemble's record


def test_a_diverging_member_fails_alone(ds, tmp_path):
    models = {"ok": dict(TINY, n_relu=2), "bad": dict(TINY, n_relu=2, lr=1e38)}
    with pytest.raises(RuntimeError, match=r"'bad-fold0-seed0' failed: NonFiniteLossError"):
        compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len(list(tmp_path.glob("ok-*.json"))) == 3 and not list(tmp_path.glob("bad-*.json"))


def test_in_process_threads_only_for_cpu_ensembles_large_enough(ds, monkeypatch):
    from neuroalrnn import _compare_ensemble

    seen = []
    monkeypatch.setattr(_compare_ensemble, "sweep_threads", lambda work: seen.append(work) or 2)
    ests = {name: make_estimator(spec, ds) for name, spec in MODELS.items()}
    tasks = [{"key": f"{m}{i}", "model": m} for m in ests for i in range(2)]
    alrnn = [t for t in tasks if t["model"] != "gru"]
    assert _compare_ensemble.in_process_threads(alrnn, ests, True, ds) == 2
    assert seen == [16 * ds.sizes["time"] * 5 ** 2]  # batch x T x M^2 of one model
    assert _compare_ensemble.in_process_threads(tasks, ests, True, ds) == 1  # a GRU is fitted alone
    assert _compare_ensemble.in_process_threads(alrnn, ests, False, ds) == 1
    assert _compare_ensemble.in_process_threads(alrnn, ests, True, ds, device="meta") == 1


def _threaded(monkeypatch, n=2):
    """compare's in-process sweeps run ``n`` threads whatever the model size; returns the (thread, size) of each task."""
    import threading

    import neuroalrnn.compare as cmp
    from neuroalrnn import _compare_ensemble

    monkeypatch.setattr(_compare_ensemble, "sweep_threads", lambda work: n)
    ran, real = [], cmp._run_task

    def spy(task, shared):
        ran.append((threading.current_thread().name, len(task.get("members", [task]))))
        return real(task, shared)

    monkeypatch.setattr(cmp, "_run_task", spy)
    return ran


def test_threaded_ensembles_equal_the_serial_sweep(ds, serial, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    import neuroalrnn.compare as cmp

    ran = _threaded(monkeypatch)
    blas, spy = [], cmp._run_task

    def blas_after(task, shared):  # the BLAS thread count as a fit ends, beside the other thread's fit
        out = spy(task, shared)
        blas.extend(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
        return out

    monkeypatch.setattr(cmp, "_run_task", blas_after)
    models = {k: v for k, v in MODELS.items() if k != "gru"}
    with threadpool_limits(2, user_api="blas"):  # the process's count: one thread's end must not restore it
        together = compare(ds, models, cv=3, groups="session", seeds=[0, 1])
    assert sorted(size for _, size in ran) == [6, 6] and len({name for name, _ in ran}) == 2
    assert blas and set(blas) == {1}
    np.testing.assert_allclose(together["score"].values, serial["score"].sel(model=list(models)).values,
                               rtol=0, atol=1e-12)


def test_an_interrupted_threaded_sweep_resumes_without_loss(ds, tmp_path, monkeypatch):
    import threading

    import neuroalrnn.fit.ensemble_task as et

    models = {"P=0": dict(TINY, n_relu=0, n_steps=40, eval_every=4), "P=2": dict(TINY, n_relu=2, n_steps=40, eval_every=4)}
    expected = compare(ds, models, cv=3, groups="session", seeds=[0])
    ran = _threaded(monkeypatch)
    real, steps, lock = et.task_objective, [], threading.Lock()

    def interrupting(loss):
        objective = real(loss)

        def run(module, batch):
            with lock:
                steps.append(module.training)
                now = sum(steps) == 30
            if now:  # Ctrl-C as it reaches one thread's fit
                raise KeyboardInterrupt
            return objective(module, batch)

        return run

    monkeypatch.setattr(et, "task_objective", interrupting)
    with pytest.raises(KeyboardInterrupt):
        compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    assert len({name for name, _ in ran}) == 2 and not list(tmp_path.glob("P=*.json"))
    assert list(tmp_path.glob("ensemble-*.ckpt"))  # what they had at their last evaluation
    monkeypatch.setattr(et, "task_objective", real)
    resumed = compare(ds, models, cv=3, groups="session", seeds=[0], results_dir=tmp_path)
    xr.testing.assert_identical(resumed["score"], expected["score"])
    assert len(list(tmp_path.glob("P=*.json"))) == 6 and not list(tmp_path.glob("*.ckpt"))
