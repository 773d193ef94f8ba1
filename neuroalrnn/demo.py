"""``neuroalrnn demo``: the whole flow on the embedded sample, written to a report folder.

Steps (each a function returning data; the report is assembled by ``neuroalrnn._report``,
figures drawn by ``neuroalrnn.plot``):

1. load and validate the embedded recording;
2. train the stimulus-selection task with P = 0, 2 and M ReLU units, against the ideal observer;
3. the P = 2 network's mechanism: fixed points and slow modes under each context's input, on the
   task's own (TDR) axes, and the linear subregions its trajectories visit;
4. teacher-force an AL-RNN on the recording and score it on held-out trials;
5. geometry: the ground-truth network against the recorded units (cross-validated CKA,
   Procrustes, against a shuffled-trial baseline), TDR trajectories, psychometric curves;
6. a cross-validated comparison of P;

then ``summary.json``, PNG figures and ``index.html`` in the report folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from neuroalrnn.utils import available_cores

N_UNITS = 16
P_VALUES = (0, 2, N_UNITS)
CONTEXTS = ("motion", "color")
#: training budgets: the full demo, and ``--small`` (same flow, meaningless numbers, for tests)
BUDGETS = {
    "full": {"task": {"n_train": 1500, "n_test": 600, "n_steps": 500},
             "teacher_forcing": {"n_steps": 1500},
             "compare": {"n_trials": 1500, "n_steps": 600, "cv": 5}},
    "small": {"task": {"n_train": 200, "n_test": 80, "n_steps": 30},
              "teacher_forcing": {"n_steps": 20},
              "compare": {"n_trials": 150, "n_steps": 10, "cv": 3}},
}
TASK_FIT = {"batch_size": 64, "lr": 1e-2, "lr_decay": 0.999, "eval_every": 50}
TF_FIT = {"lr": 3e-3, "forcing": "generalized", "observation": "linear", "n_ahead": 20, "smooth_s": 0.1}
#: torch work per step of the demo's computations (batch * T * M^2), for the package's thread policy
WORK = TASK_FIT["batch_size"] * 41 * N_UNITS ** 2
#: wall time of the whole demo on two free CPU cores (benchmarks/bench_demo.py measures it)
EXPECTED_S = {"full": 60, "small": 15}


def task_step(seed: int, progress: bool, n_train: int = 1500, n_test: int = 600, n_steps: int = 500) -> dict:
    """Train AL-RNNs with P in ``P_VALUES`` on stimulus selection; held-out accuracy per P.

    The models train together as one ensemble (one computation for all P, each model with its own
    ReLU units, batches and best checkpoint: the same fits as one by one, about 2.5x faster).
    """
    from neuroalrnn.fit.ensemble_task import fit_task_ensemble
    from neuroalrnn.fit.task import task_accuracy
    from neuroalrnn.model import ALRNNEnsemble
    from neuroalrnn.tasks import stimulus_selection
    from neuroalrnn.tasks.stimulus_selection import ideal_observer

    train = stimulus_selection(n_train, seed=seed)
    test = stimulus_selection(n_test, seed=seed + 1)
    ensemble = ALRNNEnsemble(N_UNITS, list(P_VALUES), n_inputs=5, n_outputs=1, seeds=[seed] * len(P_VALUES))
    fit_task_ensemble(ensemble, train, n_steps=n_steps, select_metric="val_accuracy", seeds=seed, progress=progress,
                      **TASK_FIT)
    models = {p: ensemble.member(k) for k, p in enumerate(P_VALUES)}
    accuracy = {p: task_accuracy(model, test) for p, model in models.items()}
    return {"test": test, "models": models, "accuracy": accuracy, "ideal": ideal_observer(test)}


def context_inputs(test) -> dict:
    """Constant input of each context during the stimulus epoch: fixation and the cue on, no evidence."""
    names = list(test["input"].values)
    out = {}
    for context in CONTEXTS:
        s = np.zeros(len(names))
        s[names.index("fixation")] = 1.0
        s[names.index(f"ctx_{context}")] = 1.0
        out[context] = s
    return out


def dynamics_step(model, test, accuracy) -> dict:
    """Fixed points per context, region codes, and the stimulus-epoch trajectories on TDR axes.

    The states of the trained network on the held-out trials carry the trials' conditions and the
    network's own choices; TDR axes (choice, motion, colour, context) are regressed on them (Mante
    et al. 2013), and the condition averages of the stimulus epoch, when each context's input
    holds, are projected on those axes with the context's fixed points.
    """
    import torch
    import xarray as xr

    from neuroalrnn.analysis import fixed_points, region_codes, tdr_axes, tdr_trajectories

    points = {ctx: fixed_points(model, s) for ctx, s in context_inputs(test).items()}
    inputs = torch.as_tensor(np.nan_to_num(test["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        states, _ = model(inputs)
    coords = {k: ("trial", test[k].values) for k in ("context", "coh_motion", "coh_color")}
    coords.update(choice=("trial", np.asarray(accuracy["choice"].values, float)), time=test["time"].values)
    states = xr.DataArray(np.where(test["mask"].values[..., None], states.numpy(), np.nan),
                          dims=("trial", "time", "latent"), coords=coords)
    codes = region_codes(states, model.n_relu)
    t = test["time"].values[None, :]
    stimulus = (t >= test["stim_onset"].values[:, None] - 1e-9) & (t < test["stim_offset"].values[:, None] - 1e-9)
    during = states.where(xr.DataArray(stimulus, dims=("trial", "time")))
    axes = tdr_axes(states, ["choice", "coh_motion", "coh_color", "context"])
    axes = axes.assign_coords(axis=["choice", "motion", "colour", "context"])  # named as a reader says them
    trajectories = {stim: tdr_trajectories(during, axes, by=["context", stim]) for stim in ("coh_motion", "coh_color")}
    return {"fixed_points": points, "states": states, "codes": codes, "tdr_axes": axes,
            "trajectories": trajectories, "dt": float(test.attrs["dt"]),
            "stimulus_s": float(np.mean(test["stim_offset"].values - test["stim_onset"].values))}


def teacher_forcing_step(recording, seed: int, progress: bool, n_steps: int = 1500) -> dict:
    """Fit an AL-RNN to the smoothed recording by generalized teacher forcing (adaptive alpha).

    Trials are split 60/20/20 into training, validation (checkpoint selection) and test trials;
    the ``n_ahead``-step prediction error on the test trials is reported beside two baselines:
    persistence (x_{t+n} = x_t) and the training trials' mean.
    """
    from neuroalrnn import ALRNN
    from neuroalrnn.analysis import n_step_prediction_error
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.preprocess import gaussian_smooth

    n_ahead = TF_FIT["n_ahead"]
    smooth = gaussian_smooth(recording, TF_FIT["smooth_s"]).drop_vars(["targets", "loss_weight"], errors="ignore")
    order = np.random.default_rng(seed).permutation(smooth.sizes["trial"])
    n = len(order) // 5
    test, val, train = (smooth.isel(trial=np.sort(part)) for part in (order[:n], order[n:2 * n], order[2 * n:]))
    model = ALRNN(N_UNITS, 2, n_inputs=smooth.sizes["input"], seed=seed)
    fitted = fit_teacher_forcing(model, train, val=val, observation=TF_FIT["observation"],
                                 forcing=TF_FIT["forcing"], n_steps=n_steps, lr=TF_FIT["lr"],
                                 eval_every=min(250, n_steps), metrics=("n_step",), n_ahead=n_ahead, seed=seed,
                                 progress=progress)
    mean = np.nanmean(train["activity"].values, axis=(0, 1))
    errors = {
        "fitted": n_step_prediction_error(fitted, test, n=n_ahead),
        "persistence": n_step_prediction_error(lambda x0, k, s: np.repeat(np.asarray(x0)[:, None], k, 1),
                                               test, n=n_ahead),
        "training_mean": n_step_prediction_error(lambda x0, k, s: np.broadcast_to(mean, (len(x0), k, len(mean))),
                                                 test, n=n_ahead),
    }
    return {"model": fitted, "test": test, "n_ahead": n_ahead, "errors": {k: float(v) for k, v in errors.items()},
            "n_trials": {"train": train.sizes["trial"], "validation": val.sizes["trial"], "test": test.sizes["trial"]},
            "n_steps": n_steps}


def geometry_step(recording, seed: int) -> dict:
    """Ground-truth network vs recorded units; TDR trajectories; animal psychometric curves."""
    import xarray as xr

    from neuroalrnn.analysis import cv_similarity, psychometric, shuffled_baseline, tdr_axes, tdr_trajectories
    from neuroalrnn.analysis.behavior import fit_psychometric
    from neuroalrnn.preprocess import gaussian_smooth
    from neuroalrnn.sample import load_ground_truth

    _, obs = load_ground_truth()
    states = xr.DataArray(obs["latent"], dims=("trial", "time", "latent"),
                          coords={"trial": recording["trial"].values, "time": recording["time"].values})
    smooth = gaussian_smooth(recording, TF_FIT["smooth_s"])
    similarity = cv_similarity(states, smooth, n_splits=5, n_components=5, seed=seed)
    shuffled = shuffled_baseline(states, smooth, n_shuffles=5, n_splits=5, n_components=5, seed=seed)
    axes = tdr_axes(smooth, ["choice", "coh_motion", "coh_color", "context"], n_pcs=10)
    axes = axes.assign_coords(axis=["choice", "motion", "colour", "context"])
    trajectories = tdr_trajectories(smooth, axes, by=["context", "coh_motion"])
    curves = {stim: psychometric(recording, stim, "choice", by="context") for stim in ("coh_motion", "coh_color")}
    fits = {stim: fit_psychometric(recording, stim, "choice", by="context", seed=seed) for stim in curves}
    return {"similarity": similarity, "shuffled": shuffled, "trajectories": trajectories,
            "curves": curves, "fits": fits}


def compare_step(seed: int, progress: bool, n_trials: int = 1500, n_steps: int = 600, cv: int = 5) -> dict:
    """Cross-validated held-out accuracy for P = 0, 2, M on a fresh task set."""
    from neuroalrnn.compare import compare, summarize
    from neuroalrnn.tasks import stimulus_selection
    from neuroalrnn.tasks.stimulus_selection import ideal_observer

    ds = stimulus_selection(n_trials, seed=seed + 2)
    models = {f"P={p}": {"n_units": N_UNITS, "n_relu": p, "n_steps": n_steps, "eval_every": TASK_FIT["eval_every"],
                         "lr": TASK_FIT["lr"]} for p in P_VALUES}
    results = compare(ds, models, cv=cv, seeds=(seed,), progress=progress)
    return {"results": results, "summary": summarize(results), "ideal": float(ideal_observer(ds)["overall"]),
            "chance": chance(ds), "n_trials": n_trials, "n_steps": n_steps, "cv": cv}


def chance(ds) -> float:
    """Accuracy of always giving the commoner correct answer: the chance level of a task set."""
    correct = ds["correct_choice"].values
    return float(max(np.mean(correct == v) for v in np.unique(correct)))


def _plan(out: Path, small: bool) -> str:
    """What the demo will do, about how long it takes, and where it writes."""
    mode = "small" if small else "full"
    b = BUDGETS[mode]
    n_fits = len(P_VALUES) * b["compare"]["cv"]
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        load = 0.0
    busy = (f" This machine is busy (load {load:.1f} on {cores} cores): expect it to take longer."
            if load > cores - 0.5 else "")
    return (f"neuroalrnn demo: the whole flow on the embedded sample recording, in six steps:\n"
            f"  1 load and validate the recording\n"
            f"  2 train AL-RNNs with P = {', '.join(map(str, P_VALUES))} of M = {N_UNITS} units on the "
            f"stimulus-selection task ({b['task']['n_steps']} steps, one ensemble)\n"
            f"  3 the P = 2 network's fixed points and subregions per context\n"
            f"  4 teacher-force an AL-RNN on the recording ({b['teacher_forcing']['n_steps']} steps)\n"
            f"  5 geometry of the recorded population against the ground-truth network\n"
            f"  6 {b['compare']['cv']}-fold cross-validated comparison of P ({n_fits} fits)\n"
            f"About {EXPECTED_S[mode]} s on two free CPU cores{' (--small: tiny budgets)' if small else ''}.{busy}\n"
            f"Writing the report to {(out / 'index.html').resolve()}")


def run_demo(out: str | Path = "neuroalrnn_report", quiet: bool = False, seed: int = 0,
             small: bool = False) -> dict:
    """Run the whole flow on the embedded sample and write the report into ``out``.

    ``small`` cuts every training budget (for tests: same flow, meaningless numbers).
    Prints its plan, one line per step with its duration, and training progress bars
    (none with ``quiet``). Returns the summary dictionary (also written to
    ``out/summary.json``).
    """
    from neuroalrnn._report import summarize_results, write_report
    from neuroalrnn._threads import threads_for
    from neuroalrnn.cli import summarize
    from neuroalrnn.sample import load_sample

    out = Path(out)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    progress = not quiet
    budget = BUDGETS["small" if small else "full"]
    timings, start = {}, time.perf_counter()
    steps = {"load": "loading the embedded sample recording",
             "task": f"training the stimulus-selection task with P = {', '.join(map(str, P_VALUES))} (M = {N_UNITS})",
             "dynamics": "fixed points and linear subregions of the P = 2 network",
             "teacher_forcing": "teacher forcing an AL-RNN on the recording",
             "geometry": "geometry: ground-truth network vs recorded population; psychometric curves",
             "compare": "cross-validated comparison of P"}

    def step(name, func, *args, **kwargs):
        say(f"[{list(steps).index(name) + 1}/{len(steps)}] {steps[name]}")
        t0 = time.perf_counter()
        # the analyses between fits are small too: the package's thread policy for torch and BLAS
        # (numpy/scipy's threads busy-wait like torch's: 10x slower on a loaded 2-core machine)
        with threads_for(WORK):
            result = func(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 2)
        say(f"      done in {timings[name]:.1f} s")
        return result

    say(_plan(out, small))
    recording = step("load", load_sample)
    say(summarize(recording))
    task = step("task", task_step, seed, progress, **budget["task"])
    dynamics = step("dynamics", dynamics_step, task["models"][2], task["test"], task["accuracy"][2])
    tf = step("teacher_forcing", teacher_forcing_step, recording, seed, progress, **budget["teacher_forcing"])
    geometry = step("geometry", geometry_step, recording, seed)
    comparison = step("compare", compare_step, seed, progress, **budget["compare"])
    settings = {"seed": seed, "small": small, "n_units": N_UNITS, "p_values": list(P_VALUES), **budget,
                "task_fit": TASK_FIT, "teacher_forcing_fit": TF_FIT}
    timings["total"] = round(time.perf_counter() - start, 2)  # the figures and the page follow (a few seconds)
    summary = summarize_results(recording, task, dynamics, tf, geometry, comparison, settings, timings)
    say("writing the report: figures, summary.json, index.html")
    t0 = time.perf_counter()
    page = write_report(out, summary, {"task": task, "dynamics": dynamics, "teacher_forcing": tf,
                                       "geometry": geometry, "compare": comparison, "recording": recording})
    say(f"      done in {time.perf_counter() - t0:.1f} s")
    for p, acc in summary["task"]["accuracy"].items():
        say(f"  {p}: held-out accuracy {acc['overall']:.3f} (incongruent {acc['incongruent']:.3f})")
    say(f"  ideal observer {summary['task']['ideal_observer']['overall']:.3f}, "
        f"chance {summary['task']['chance']:.3f}")
    say(f"  {summary['mechanism']['sentence']}")
    say(f"report written to {page.resolve()} ({time.perf_counter() - start:.0f} s)")
    return summary
