"""``neuroalrnn demo``: the whole flow on the embedded sample, written to a report folder.

Steps (each a function returning data; figures are drawn by ``neuroalrnn.plot``):

1. load and validate the embedded recording;
2. train the stimulus-selection task with P = 0, 2 and M ReLU units, against the ideal observer;
3. fixed points and slow modes of the P = 2 network under each context's input;
4. teacher-force an AL-RNN on the recording and score it on held-out trials;
5. geometry: the ground-truth network against the recorded units (cross-validated CKA,
   Procrustes, against a shuffled-trial baseline), TDR trajectories, psychometric curves;
6. a small cross-validated comparison of P;

then ``summary.json``, PNG figures and ``index.html`` in the report folder.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from neuroalrnn.utils import atomic_write

N_UNITS = 16
P_VALUES = (0, 2, N_UNITS)


def task_step(seed: int, progress: bool, n_steps: int = 500, n_train: int = 1500) -> dict:
    """Train AL-RNNs with P in ``P_VALUES`` on stimulus selection; held-out accuracy per P."""
    from neuroalrnn import ALRNN
    from neuroalrnn.fit.task import fit_task, task_accuracy
    from neuroalrnn.tasks import stimulus_selection
    from neuroalrnn.tasks.stimulus_selection import ideal_observer

    train = stimulus_selection(n_train, seed=seed)
    test = stimulus_selection(n_train // 5 * 2, seed=seed + 1)
    models, accuracy = {}, {}
    for p in P_VALUES:
        model = ALRNN(N_UNITS, p, n_inputs=5, n_outputs=1, seed=seed)
        fit_task(model, train, n_steps=n_steps, batch_size=64, lr=1e-2, lr_decay=0.999, eval_every=50,
                 select_metric="val_accuracy", seed=seed, progress=progress)
        acc = task_accuracy(model, test)
        models[p], accuracy[p] = model, acc
    ideal = ideal_observer(test)
    return {"test": test, "models": models, "accuracy": accuracy, "ideal": ideal}


def context_inputs(test) -> dict:
    """Constant input of each context during the stimulus epoch: fixation and the cue on, no evidence."""
    names = list(test["input"].values)
    out = {}
    for context in ("motion", "color"):
        s = np.zeros(len(names))
        s[names.index("fixation")] = 1.0
        s[names.index(f"ctx_{context}")] = 1.0
        out[context] = s
    return out


def dynamics_step(model, test) -> dict:
    """Real fixed points and the slowest mode per context; region codes of the test trajectories."""
    import torch
    import xarray as xr

    from neuroalrnn.analysis import fixed_points, region_codes

    points = {ctx: fixed_points(model, s) for ctx, s in context_inputs(test).items()}
    inputs = torch.as_tensor(np.nan_to_num(test["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        states, _ = model(inputs)
    states = xr.DataArray(np.where(test["mask"].values[..., None], states.numpy(), np.nan),
                          dims=("trial", "time", "latent"),
                          coords={"context": ("trial", test["context"].values), "time": test["time"].values})
    codes = region_codes(states, model.n_relu)
    return {"fixed_points": points, "states": states, "codes": codes}


def teacher_forcing_step(recording, seed: int, progress: bool, n_steps: int = 1500, n_ahead: int = 20) -> dict:
    """Fit an AL-RNN to the smoothed recording by generalized teacher forcing (adaptive alpha).

    Trials are split 60/20/20 into training, validation (checkpoint selection) and test trials;
    the ``n_ahead``-step prediction error on the test trials is reported beside two baselines:
    persistence (x_{t+n} = x_t) and the training trials' mean.
    """
    from neuroalrnn import ALRNN
    from neuroalrnn.analysis import n_step_prediction_error
    from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
    from neuroalrnn.preprocess import gaussian_smooth

    smooth = gaussian_smooth(recording, 0.1).drop_vars(["targets", "loss_weight"], errors="ignore")
    order = np.random.default_rng(seed).permutation(smooth.sizes["trial"])
    n = len(order) // 5
    test, val, train = (smooth.isel(trial=np.sort(part)) for part in (order[:n], order[n:2 * n], order[2 * n:]))
    model = ALRNN(N_UNITS, 2, n_inputs=smooth.sizes["input"], seed=seed)
    fitted = fit_teacher_forcing(model, train, val=val, observation="linear", forcing="generalized",
                                 n_steps=n_steps, lr=3e-3, eval_every=min(250, n_steps), metrics=("n_step",),
                                 n_ahead=n_ahead, seed=seed, progress=progress)
    mean = np.nanmean(train["activity"].values, axis=(0, 1))
    errors = {
        "fitted": n_step_prediction_error(fitted, test, n=n_ahead),
        "persistence": n_step_prediction_error(lambda x0, k, s: np.repeat(np.asarray(x0)[:, None], k, 1),
                                               test, n=n_ahead),
        "training_mean": n_step_prediction_error(lambda x0, k, s: np.broadcast_to(mean, (len(x0), k, len(mean))),
                                                 test, n=n_ahead),
    }
    return {"model": fitted, "val": test, "n_ahead": n_ahead, "errors": {k: float(v) for k, v in errors.items()}}


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
    smooth = gaussian_smooth(recording, 0.1)
    similarity = cv_similarity(states, smooth, n_splits=5, n_components=5, seed=seed)
    shuffled = shuffled_baseline(states, smooth, n_shuffles=5, n_splits=5, n_components=5, seed=seed)
    axes = tdr_axes(smooth, ["choice", "coh_motion", "coh_color", "context"], n_pcs=10)
    trajectories = tdr_trajectories(smooth, axes, by=["context", "choice"])
    curves = {}
    for stim in ("coh_motion", "coh_color"):
        curves[stim] = psychometric(recording, stim, "choice", by="context")
    fit = fit_psychometric(recording, "coh_motion", "choice", by="context", seed=seed)
    return {"similarity": similarity, "shuffled": shuffled, "trajectories": trajectories,
            "curves": curves, "fit": fit}


def compare_step(seed: int, n_steps: int = 600, n_trials: int = 1500, cv: int = 5) -> dict:
    """Cross-validated held-out accuracy for P = 0, 2, M on a fresh task set."""
    from neuroalrnn.compare import compare, summarize
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(n_trials, seed=seed + 2)
    models = {f"P={p}": {"n_units": N_UNITS, "n_relu": p, "n_steps": n_steps, "eval_every": 50, "lr": 1e-2}
              for p in P_VALUES}
    results = compare(ds, models, cv=cv, seeds=(seed,))
    return {"results": results, "summary": summarize(results)}


def _summarize(task, dynamics, tf, geometry, comparison, timings) -> dict:
    """Plain numbers of every step, for ``summary.json`` and the HTML page."""
    acc = {f"P={p}": {"overall": float(a["overall"]), "incongruent": float(a["incongruent_accuracy"]),
                      "congruent": float(a["congruent_accuracy"])} for p, a in task["accuracy"].items()}
    ideal = task["ideal"]
    fixed = {}
    for ctx, fp in dynamics["fixed_points"].items():
        real = fp.where(fp["real"], drop=True) if fp.sizes["point"] else fp
        fixed[ctx] = [{"region": int(r), "stable": bool(s), "slowest_abs_eigenvalue": float(np.abs(ev).max())}
                      for r, s, ev in zip(real["region"].values, real["stable"].values, real["eigenvalues"].values)]
    sim, shuf = geometry["similarity"], geometry["shuffled"]
    codes = dynamics["codes"].values
    summ = comparison["summary"]
    return {
        "task": {"n_units": N_UNITS, "accuracy": acc,
                 "ideal_observer": {"overall": float(ideal["overall"]),
                                    "incongruent": float(ideal["incongruent_accuracy"])}},
        "fixed_points_P2": fixed,
        "regions_visited_P2": int(np.unique(codes[codes >= 0]).size),  # -1 marks padded steps
        "teacher_forcing": {"n_step": tf["n_ahead"], "held_out_error": tf["errors"]["fitted"],
                            "persistence_baseline": tf["errors"]["persistence"],
                            "training_mean_baseline": tf["errors"]["training_mean"]},
        "geometry": {"cka": float(sim["cka"].mean()), "cka_shuffled": float(shuf["cka"].mean()),
                     "procrustes": float(sim["procrustes"].mean()),
                     "procrustes_shuffled": float(shuf["procrustes"].mean())},
        "comparison": {str(m): {"mean": float(summ["mean"].sel(model=m)), "sem": float(summ["sem"].sel(model=m))}
                       for m in summ["model"].values},
        "seconds": timings,
    }


def _figures(task, dynamics, tf, geometry, comparison) -> dict:
    """Draw every figure; returns name -> matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuroalrnn import plot

    figs = {}
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ps = list(task["accuracy"])
    for key, style in (("overall", "o-"), ("incongruent_accuracy", "s--")):
        ax.plot(range(len(ps)), [float(task["accuracy"][p][key]) for p in ps], style, label=key.split("_")[0])
    ax.axhline(float(task["ideal"]["overall"]), color="k", lw=0.8, label="ideal observer")
    ax.set(xticks=range(len(ps)), xticklabels=[f"P={p}" for p in ps], ylabel="held-out accuracy", ylim=(0.4, 1))
    ax.legend(fontsize=8)
    figs["task_accuracy"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (stim, curves) in zip(axes, geometry["curves"].items()):
        plot.plot_psychometric(curves, geometry["fit"] if stim == "coh_motion" else None, ax=ax)
        ax.set_title(f"recorded choices vs {stim}")
    figs["psychometric"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, (ctx, fp) in zip(axes, dynamics["fixed_points"].items()):
        in_context = dynamics["states"].where(dynamics["states"]["context"] == ctx, drop=True)
        plot.plot_fixed_points(fp, states=in_context.isel(trial=slice(0, 8)), ax=ax)  # a few trials stay readable
        ax.set_title(f"P=2 network, {ctx} context")
    figs["fixed_points"] = fig
    fig, ax = plt.subplots(figsize=(7, 2.5))
    plot.plot_region_raster(dynamics["codes"].isel(trial=slice(0, 40)), n_relu=2, ax=ax)
    ax.set_title("linear subregion per step (first 40 test trials)")
    figs["regions"] = fig
    figs["tdr"] = plot.plot_tdr_trajectories(geometry["trajectories"], "choice", "coh_motion", by="context")
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    plot.plot_score_vs_p(comparison["summary"], ax=ax, label="cross-validated held-out accuracy")
    figs["compare"] = fig
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    val = tf["val"]
    trial = 0
    x = val["activity"].isel(trial=trial).values
    n_valid = int(val["mask"].isel(trial=trial).sum())
    s = np.nan_to_num(val["inputs"].isel(trial=trial).values[1:n_valid])
    free = tf["model"].free_run(x[0], n_valid - 1, inputs=s)
    for k, ax in enumerate(axes):
        ax.plot(val["time"].values[:n_valid], x[:n_valid, k], "k", label="held-out data")
        ax.plot(val["time"].values[1:n_valid], free[:, k], "C1", label="fitted model (free run)")
        ax.set(title=f"unit {k}", xlabel="time (s)")
    axes[0].legend(fontsize=7)
    figs["teacher_forcing"] = fig
    return figs


CAPTIONS = {
    "task_accuracy": "Stimulus selection: held-out accuracy against the number of ReLU units P (M = 16).",
    "fixed_points": "Fixed points of the P = 2 network under each context's input, over its test trajectories.",
    "regions": "Linear subregion (P-bit code) visited at each step of the test trials.",
    "psychometric": "Psychometric curves of the recorded choices per context.",
    "tdr": "Recorded population (smoothed) on the TDR choice and motion axes, per context and choice.",
    "teacher_forcing": "Teacher-forced AL-RNN: free run from the first observation vs held-out data.",
    "compare": "Cross-validated accuracy against P (mean ± SEM over folds).",
}


def write_report(out: Path, summary: dict, figs: dict) -> Path:
    """Write PNGs, ``summary.json`` and ``index.html`` atomically into ``out``."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig = getattr(fig, "figure", fig)
        with atomic_write(out / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
    with atomic_write(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{v['overall']:.3f}</td><td>{v['incongruent']:.3f}</td></tr>"
                   for m, v in summary["task"]["accuracy"].items())
    figures = "".join(f'<figure><img src="{n}.png" alt="{n}"><figcaption>{html.escape(CAPTIONS.get(n, n))}'
                      f"</figcaption></figure>" for n in figs)
    fp_rows = "".join(f"<tr><td>{ctx}</td><td>{p['region']}</td><td>{p['stable']}</td>"
                      f"<td>{p['slowest_abs_eigenvalue']:.3f}</td></tr>"
                      for ctx, points in summary["fixed_points_P2"].items() for p in points)
    cmp_rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{v['mean']:.3f} &plusmn; {v['sem']:.3f}</td></tr>"
                       for m, v in summary["comparison"].items())
    io_ = summary["task"]["ideal_observer"]
    geo, tf = summary["geometry"], summary["teacher_forcing"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>neuroalrnn demo report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1>neuroalrnn demo report</h1>
<p>Embedded sample: {summary['data']['n_trials']} trials, {summary['data']['n_units']} units,
dt = {summary['data']['dt'] * 1e3:g} ms. Total time {summary['seconds']['total']:.0f} s.</p>
<h2>Stimulus selection (held-out)</h2><table><tr><th>model</th><th>overall</th><th>incongruent</th></tr>{rows}
<tr><td>ideal observer</td><td>{io_['overall']:.3f}</td><td>{io_['incongruent']:.3f}</td></tr></table>
<h2>Recording</h2><p>Ground-truth network vs recorded units: CKA {geo['cka']:.2f} (shuffled trials
{geo['cka_shuffled']:.2f}), Procrustes distance {geo['procrustes']:.2f} rad (shuffled {geo['procrustes_shuffled']:.2f}).
Teacher-forced AL-RNN, {tf['n_step']}-step prediction error on held-out trials {tf['held_out_error']:.3f}
(baselines: persistence {tf['persistence_baseline']:.3f}, training mean {tf['training_mean_baseline']:.3f}).</p>
<h2>Real fixed points of the P = 2 network (stimulus-epoch input per context)</h2>
<table><tr><th>context</th><th>region</th><th>stable</th><th>slowest |&lambda;|</th></tr>{fp_rows}</table>
<h2>Cross-validated comparison</h2>
<table><tr><th>model</th><th>held-out accuracy (mean &plusmn; SEM over folds)</th></tr>{cmp_rows}</table>
{figures}</body></html>"""
    with atomic_write(out / "index.html") as tmp:
        tmp.write_text(page)
    return out / "index.html"


def run_demo(out: str | Path = "neuroalrnn_report", quiet: bool = False, seed: int = 0,
             small: bool = False) -> dict:
    """Run the whole flow on the embedded sample and write the report into ``out``.

    ``small`` cuts every training budget (for tests: same flow, meaningless numbers).
    Returns the summary dictionary (also written to ``out/summary.json``).
    """
    from neuroalrnn.cli import summarize
    from neuroalrnn.sample import load_sample, sample_path

    out = Path(out)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    progress = not quiet
    timings, start = {}, time.perf_counter()

    def timed(name, func, *args, **kwargs):
        t0 = time.perf_counter()
        result = func(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 2)
        return result

    say("[1/6] loading the embedded sample recording")
    recording = timed("load", load_sample)
    say(summarize(recording))
    say(f"[2/6] training the stimulus-selection task with P = {', '.join(map(str, P_VALUES))} (M = {N_UNITS})")
    budget = {"task": (30, 200), "tf": 20, "compare": (10, 150, 3)} if small else \
        {"task": (500, 1500), "tf": 1500, "compare": (600, 1500, 5)}
    task = timed("task", task_step, seed, progress, *budget["task"])
    say("[3/6] fixed points and linear subregions of the P = 2 network")
    dynamics = timed("dynamics", dynamics_step, task["models"][2], task["test"])
    say("[4/6] teacher forcing an AL-RNN on the recording")
    tf = timed("teacher_forcing", teacher_forcing_step, recording, seed, progress, budget["tf"])
    say("[5/6] geometry: ground-truth network vs recorded population; psychometric curves")
    geometry = timed("geometry", geometry_step, recording, seed)
    say("[6/6] cross-validated comparison of P")
    comparison = timed("compare", compare_step, seed, *budget["compare"])
    timings["total"] = round(time.perf_counter() - start, 2)
    summary = {"data": {"path": str(sample_path()), "n_trials": int(recording.sizes["trial"]),
                        "n_units": int(recording.sizes["unit"]), "dt": float(recording.attrs["dt"])}}
    summary.update(_summarize(task, dynamics, tf, geometry, comparison, timings))
    page = write_report(out, summary, _figures(task, dynamics, tf, geometry, comparison))
    for p, acc in summary["task"]["accuracy"].items():
        say(f"  {p}: held-out accuracy {acc['overall']:.3f} (incongruent {acc['incongruent']:.3f})")
    say(f"  ideal observer: {summary['task']['ideal_observer']['overall']:.3f}")
    say(f"report written to {page.resolve()} ({timings['total']:.0f} s)")
    return summary
