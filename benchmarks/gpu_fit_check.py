"""Every public fit path on a device, then end-to-end training times per GPU route.

For the session that is lent a GPU (``benchmarks/gpu_check.sh`` runs it). Part 1 runs each public
path with ``device`` and checks that it finishes, that the fitted parameters live on the device (or
on the CPU where the estimators promise it) and that its scores are finite:

* ``fit_task`` (stimulus selection), resumed from a checkpoint, and ``task_accuracy``;
* ``fit_teacher_forcing`` on the embedded sample: identity and linear observation, sparse forcing and
  generalized forcing with fixed and adaptive alpha, with the DSR metrics, and resumed from a checkpoint;
* the estimators ``ALRNNTaskEstimator``, ``GRUTaskEstimator`` and ``ALRNNTeacherForcingEstimator``
  with ``device=``;
* ``compare(device=...)`` in this process and on a Dask ``LocalCluster`` whose one worker holds the device;
* ``ALRNN.save`` / ``load_model(device=...)`` and ``simulate``.

Part 2 (``--backends``) trains the stimulus-selection model (M = 32, P = 2, Adam, as in
``acceptance_tasks.py``) and a sparse teacher-forcing fit on the sample once per recurrence backend
and prints wall time, held-out accuracy against the ideal observer and the teacher-forcing metrics.

Each line of part 1 reads ``PASS <path> <seconds> s`` or ``FAIL <path>: <error>``; the exit status is
the number of failures. ``--dry-run`` runs everything tiny (for a CPU check of this script).

Usage: python benchmarks/gpu_fit_check.py [--device cuda] [--backends rnn triton] [--steps 600]
                                         [--tf-steps 300] [--no-dask] [--dry-run]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

import neuroalrnn
from neuroalrnn import ALRNN


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _on(module, device):
    """Raise unless every parameter and buffer of ``module`` is on ``device``'s type."""
    off = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.device.type != device.type]
    if off:
        raise AssertionError(f"not on {device}: {off}")


def _finite(**values):
    bad = {k: v for k, v in values.items() if not np.all(np.isfinite(v))}
    if bad:
        raise AssertionError(f"not finite: {bad}")


def public_paths(device, tiny: bool, dask: bool, tmp: Path):
    """(name, callable) for every public fit path, each small."""
    from neuroalrnn.compare import compare
    from neuroalrnn.estimators import ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, GRUTaskEstimator
    from neuroalrnn.fit.task import fit_task, task_accuracy
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.model import load_model
    from neuroalrnn.tasks import stimulus_selection

    dev = str(device)
    steps = 4 if tiny else 40
    task = stimulus_selection(24 if tiny else 256, seed=0)
    rec = neuroalrnn.load_sample()
    rec = rec.isel(trial=slice(0, 24)) if tiny else rec
    few = rec.isel(unit=slice(0, 6))  # the identity readout needs N <= M - P

    def task_fit():
        model = ALRNN(16, 2, n_inputs=5, n_outputs=1, seed=0, device=device)
        kw = dict(n_steps=steps // 2, batch_size=16, eval_every=2, select_metric="val_accuracy",
                  checkpoint=tmp / "task.pt", progress=False)
        fit_task(model, task, **kw)
        res = fit_task(model, task, **{**kw, "n_steps": steps})  # resumed
        _on(model, device)
        _finite(accuracy=float(task_accuracy(model, task)["overall"]), loss=res.history["train_loss"].values)

    def teacher_forcing(observation, forcing, alpha):
        def run():
            data = few if observation == "identity" else rec
            model = ALRNN(16, 2, n_inputs=rec.sizes["input"], seed=0, device=device)
            fitted = fit_teacher_forcing(model, data, forcing=forcing, alpha=alpha, observation=observation,
                                         tau=5 if forcing == "sparse" else None, n_steps=steps, batch_size=8,
                                         eval_every=steps, n_ahead=5, seed=0)
            _on(fitted, device)
            last = fitted.train_result_.history.iloc[-1]  # (D_stsp/D_H of a short fit may be inf: diverged runs)
            _finite(train_loss=last["train_loss"], val_loss=last["val_loss"], n_step=last["n_step"])
        return run

    def teacher_forcing_resumed():
        kw = dict(forcing="generalized", alpha="adaptive", observation="linear", n_steps=steps // 2,
                  batch_size=8, eval_every=2, n_ahead=5, lr_decay=0.99, checkpoint=tmp / "tf.pt", seed=0)
        fit_teacher_forcing(ALRNN(16, 2, n_inputs=5, seed=0, device=device), rec, **kw)
        fitted = fit_teacher_forcing(ALRNN(16, 2, n_inputs=5, seed=0, device=device), rec, **{**kw, "n_steps": steps})
        _on(fitted, device)
        assert fitted.train_result_.n_steps == steps

    def estimators():
        for cls in (ALRNNTaskEstimator, GRUTaskEstimator):
            est = cls(n_units=16, n_steps=steps, batch_size=16, eval_every=steps, device=dev).fit(task)
            _finite(score=est.score(task))
        est = ALRNNTeacherForcingEstimator(16, 2, tau=5, n_steps=steps, batch_size=8, eval_every=steps, n_ahead=5,
                                           device=dev).fit(few)
        _finite(score=est.score(few), predict=np.nan_to_num(est.predict(few), nan=0.0))

    def comparison(scheduler=None):
        def run():
            spec = {"P=2": {"n_units": 8, "n_relu": 2, "n_steps": steps, "batch_size": 16, "eval_every": steps}}
            _finite(score=compare(task, spec, cv=2, device=dev, scheduler=scheduler)["score"].values)
        return run

    def comparison_on_dask():
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            comparison(client)()
            where = client.run(lambda: torch.cuda.is_available())  # the worker sees the GPU
            print(f"    dask worker sees CUDA: {list(where.values())}")

    def save_load():
        path = tmp / "model.safetensors"
        ALRNN(8, 2, n_inputs=1, seed=0, device=device).save(path)
        model = load_model(path, device=device)
        _on(model, device)
        states = model.simulate(torch.ones(2, 8), inputs=np.zeros((2, 20, 1)))
        assert states.device.type == device.type and not states.requires_grad
        _finite(states=states.cpu().numpy())

    paths = [("fit_task + resume + task_accuracy", task_fit)]
    for obs in ("identity", "linear"):
        for forcing, alpha in (("sparse", None), ("generalized", 0.3), ("generalized", "adaptive")):
            paths.append((f"fit_teacher_forcing {obs} {forcing} alpha={alpha}", teacher_forcing(obs, forcing, alpha)))
    paths += [("fit_teacher_forcing resume (generalized adaptive, linear)", teacher_forcing_resumed),
              ("estimators (ALRNN task, GRU, teacher forcing)", estimators),
              ("compare(device=...) in process", comparison()),
              ("save / load_model(device=...) / simulate", save_load)]
    if dask:
        paths.append(("compare(device=...) on a Dask worker", comparison_on_dask))
    return paths


def route_timings(device, backends, steps, tf_steps, n_trials=4000):
    from neuroalrnn.fit.task import fit_task, task_accuracy
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.tasks import ideal_observer, stimulus_selection

    train, test = stimulus_selection(n_trials, seed=0), stimulus_selection(n_trials, seed=1)
    print(f"ideal observer on the held-out trials: {float(ideal_observer(test)['overall']):.3f}")
    rec = neuroalrnn.load_sample()
    for backend in backends:
        model = ALRNN(32, 2, n_inputs=5, n_outputs=1, seed=0, device=device, backend=backend)
        t0 = time.perf_counter()
        fit_task(model, train, n_steps=steps, lr=0.01, lr_decay=0.998, batch_size=128, eval_every=100,
                 select_metric="val_accuracy", seed=0, progress=False)
        _sync(device)
        spent = time.perf_counter() - t0
        acc = float(task_accuracy(model, test)["overall"])
        print(f"  {backend:7s} task fit: {steps} steps in {spent:6.1f} s, held-out accuracy {acc:.3f}")
        model = ALRNN(16, 2, n_inputs=rec.sizes["input"], seed=0, device=device, backend=backend)
        t0 = time.perf_counter()
        res = fit_teacher_forcing(model, rec, observation="linear", tau=5, n_steps=tf_steps, seed=0).train_result_
        _sync(device)
        spent = time.perf_counter() - t0
        last = {k: float(f"{v:.4g}") for k, v in res.history.iloc[-1].items()}
        print(f"  {backend:7s} teacher forcing: {tf_steps} steps in {spent:6.1f} s, best step {res.best_step}, "
              f"last evaluation {last}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backends", nargs="*", default=["rnn", "triton"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--tf-steps", type=int, default=300)
    ap.add_argument("--no-dask", action="store_true", help="skip compare on a Dask worker")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes (a CPU check of this script)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device={name} torch={torch.__version__}")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path, run in public_paths(device, args.dry_run, not args.no_dask, Path(tmp)):
            t0 = time.perf_counter()
            try:
                run()
                _sync(device)
                print(f"PASS {path} {time.perf_counter() - t0:.1f} s", flush=True)
            except Exception as err:  # report every path, then fail
                failures += 1
                print(f"FAIL {path}: {type(err).__name__}: {err}", flush=True)
                traceback.print_exc()
    if args.backends:
        sizes = (5, 5, 64) if args.dry_run else (args.steps, args.tf_steps, 4000)
        route_timings(device, args.backends, *sizes)
    print(f"public fit paths: {failures} failed")
    return failures


if __name__ == "__main__":
    raise SystemExit(main())
