"""The demo's report: every number with its context (``summary.json``) and the HTML page.

``summarize_results`` turns the demo's step results into plain numbers, each beside what it
should be read against (chance, the ideal observer, baselines, units, trial counts, settings);
``write_report`` draws the figures (``neuroalrnn._report_figures``) and writes the page.
"""

from __future__ import annotations

import datetime
import html
import json
import platform
from pathlib import Path

import numpy as np

from neuroalrnn.plot import region_label
from neuroalrnn.utils import atomic_write


def _time_constant(abs_eigenvalue: float, dt: float) -> float | None:
    """Seconds for a mode of |lambda| to change e-fold: dt / |ln |lambda|| (None, i.e. infinite, at 1)."""
    log = abs(np.log(abs_eigenvalue)) if abs_eigenvalue > 0 else np.inf
    return float(dt / log) if log > 0 else None


def _fixed_point_rows(fp, dt: float, n_relu: int) -> list[dict]:
    real = fp.isel(point=np.flatnonzero(fp["real"].values))
    return [{"region": int(r), "region_label": region_label(int(r), n_relu), "stable": bool(s),
             "slowest_abs_eigenvalue": float(a), "time_constant_s": _time_constant(float(a), dt),
             "grows": bool(a > 1)}
            for r, s, a in zip(real["region"].values, real["stable"].values, real["slowest_abs"].values)]


def mechanism_sentence(points: dict, stimulus_s: float) -> str:
    """One sentence on what the fixed points show, computed from the per-context rows.

    ``points`` maps a context to its real fixed points (``region``, ``stable``,
    ``time_constant_s`` and ``grows`` per point); ``stimulus_s`` is the mean stimulus duration.

    Examples
    --------
    >>> pts = {"motion": [{"region": 1, "stable": True, "time_constant_s": 2.0, "grows": False}],
    ...        "color": [{"region": 2, "stable": True, "time_constant_s": 0.1, "grows": False}]}
    >>> mechanism_sentence(pts, 0.75)  # doctest: +NORMALIZE_WHITESPACE
    "The two contexts' stable fixed points lie in different linear subregions (motion: region 1, color:
    region 2), so the context cue switches which linear dynamics act during the stimulus; the slowest
    mode there outlasts the 0.75 s stimulus in one context but not the other (time constant 2 s under
    the motion cue, 0.1 s under the color cue)."
    """
    stable = {c: sorted({p["region"] for p in pts if p["stable"]}) for c, pts in points.items()}
    where = ", ".join(f"{c}: region{'s' if len(r) > 1 else ''} {', '.join(map(str, r))}"
                      for c, r in stable.items() if r)
    missing = [c for c, r in stable.items() if not r]
    if not missing:
        shared = set.intersection(*(set(r) for r in stable.values()))
        first = ("The two contexts' stable fixed points lie in different linear subregions "
                 f"({where}), so the context cue switches which linear dynamics act during the stimulus"
                 if not shared else
                 f"The two contexts' stable fixed points share linear subregion {', '.join(map(str, sorted(shared)))} "
                 f"({where}): the context cue moves the attractor but keeps the same linear dynamics")
    elif len(missing) == len(stable):
        return ("Under neither context's input does the network have a stable fixed point: its stimulus-epoch "
                "dynamics do not settle (the training budget may be too small).")
    else:
        have = [c for c in stable if stable[c]]
        first = (f"Only under the {' and '.join(have)} cue does the network have a stable fixed point ({where}); "
                 f"under the {' and '.join(missing)} cue it has none, so there its stimulus-epoch state keeps moving")
    slow = {c: max(np.inf if p["time_constant_s"] is None else p["time_constant_s"] for p in points[c] if p["stable"])
            for c in stable if stable[c]}
    longer = [f"{t:.2g} s under the {c} cue" for c, t in slow.items() if t >= stimulus_s]
    shorter = [f"{t:.2g} s under the {c} cue" for c, t in slow.items() if t < stimulus_s]
    if longer and shorter:
        tail = (f"the slowest mode there outlasts the {stimulus_s:.2g} s stimulus in one context but not the other "
                f"(time constant {', '.join(longer + shorter)})")
    elif longer:
        tail = (f"the slowest mode there outlasts the {stimulus_s:.2g} s stimulus (time constant {', '.join(longer)}), "
                "as an integrator of evidence would")
    else:
        tail = (f"the slowest mode there decays before the {stimulus_s:.2g} s stimulus ends (time constant "
                f"{', '.join(shorter)})")
    return f"{first}; {tail}."


def summarize_results(recording, task, dynamics, tf, geometry, comparison, settings: dict, timings: dict) -> dict:
    """Plain numbers of every step with their context, for ``summary.json`` and the page."""
    import torch

    import neuroalrnn
    from neuroalrnn.demo import chance
    from neuroalrnn.sample import sample_path

    test = task["test"]
    congruent = test["congruent"].values.astype(bool)
    acc = {f"P={p}": {"overall": float(a["overall"]), "congruent": float(a["congruent_accuracy"]),
                      "incongruent": float(a["incongruent_accuracy"])} for p, a in task["accuracy"].items()}
    ideal = task["ideal"]
    dt, model = dynamics["dt"], task["models"][2]
    points = {ctx: _fixed_point_rows(fp, dt, model.n_relu) for ctx, fp in dynamics["fixed_points"].items()}
    codes = dynamics["codes"]
    occupancy = {}
    for ctx in points:
        c = codes.values[codes["context"].values == ctx]
        c = c[c >= 0]  # -1 marks padded steps
        occupancy[ctx] = {region_label(r, model.n_relu): float(np.mean(c == r)) for r in np.unique(c)}
    sim, shuf = geometry["similarity"], geometry["shuffled"]
    summ, res = comparison["summary"], comparison["results"]
    scores = res["score"].mean("seed")
    units = recording["activity"].attrs.get("units", recording.attrs.get("activity_units", "a.u."))
    diff = {}
    if {"P=0", "P=2"} <= set(summ["model"].values.tolist()):
        pair = dict(model="P=2", other="P=0")
        diff = {"P=2 - P=0": {"mean": float(summ["diff"].sel(**pair)), "t_pvalue": float(summ["t_pvalue"].sel(**pair))}}
    return {
        "package": {"name": "neuroalrnn", "version": neuroalrnn.__version__, "python": platform.python_version(),
                    "torch": torch.__version__, "numpy": np.__version__},
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": settings,
        "data": {"path": str(sample_path()), "n_trials": int(recording.sizes["trial"]),
                 "n_units": int(recording.sizes["unit"]), "dt": float(recording.attrs["dt"]),
                 "activity_units": units, "source": str(recording.attrs.get("source", ""))},
        "task": {"n_units": settings["n_units"], "n_test_trials": int(test.sizes["trial"]),
                 "n_congruent": int(congruent.sum()), "n_incongruent": int((~congruent).sum()),
                 "chance": chance(test),
                 "accuracy": acc,
                 "ideal_observer": {"overall": float(ideal["overall"]), "congruent": float(ideal["congruent_accuracy"]),
                                    "incongruent": float(ideal["incongruent_accuracy"])}},
        "mechanism": {"model": "P=2", "dt_s": dt, "stimulus_s": dynamics["stimulus_s"], "fixed_points": points,
                      "regions_visited": int(np.unique(codes.values[codes.values >= 0]).size),
                      "n_regions": 2 ** model.n_relu, "region_occupancy": occupancy,
                      "sentence": mechanism_sentence(points, dynamics["stimulus_s"])},
        "teacher_forcing": {"n_step": tf["n_ahead"], "n_step_s": tf["n_ahead"] * float(recording.attrs["dt"]),
                            "error_units": f"({units})^2", "held_out_error": tf["errors"]["fitted"],
                            "persistence_baseline": tf["errors"]["persistence"],
                            "training_mean_baseline": tf["errors"]["training_mean"],
                            "n_trials": tf["n_trials"], "n_steps": tf["n_steps"]},
        "geometry": {"cka": float(sim["cka"].mean()), "cka_shuffled": float(shuf["cka"].mean()),
                     "cka_folds": sim["cka"].values.ravel().tolist(),
                     "procrustes": float(sim["procrustes"].mean()),
                     "procrustes_shuffled": float(shuf["procrustes"].mean()),
                     "n_folds": int(sim["cka"].size), "n_components": 5},
        "comparison": {"n_trials": comparison["n_trials"], "cv": comparison["cv"], "n_steps": comparison["n_steps"],
                       "n_test_per_fold": res["n_test"].values.tolist(), "ideal_observer": comparison["ideal"],
                       "chance": comparison["chance"],
                       "models": {str(m): {"mean": float(summ["mean"].sel(model=m)), "sem": float(summ["sem"].sel(model=m)),
                                           "folds": scores.sel(model=m).values.tolist()} for m in summ["model"].values},
                       "paired": diff},
        "seconds": timings,
    }


def _table(header, rows) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(name: str, caption: str) -> str:
    return f'<figure><img src="{name}.png" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'


def _tau(p) -> str:
    t = p["time_constant_s"]
    return "&infin;" if t is None else f"{t:.2g} s ({'grows' if p['grows'] else 'decays'})"


def page(summary: dict, captions: dict) -> str:
    """The report's HTML: sections in the order of the demo's steps, figures with captions."""
    s, t, m = summary["settings"], summary["task"], summary["mechanism"]
    tf, geo, cmp_ = summary["teacher_forcing"], summary["geometry"], summary["comparison"]
    d, io_ = summary["data"], t["ideal_observer"]
    ts, tfs = s["task"], s["task_fit"]
    acc_rows = [[html.escape(k), f"{v['overall']:.3f}", f"{v['congruent']:.3f}", f"{v['incongruent']:.3f}"]
                for k, v in t["accuracy"].items()]
    acc_rows += [["ideal observer", f"{io_['overall']:.3f}", f"{io_['congruent']:.3f}", f"{io_['incongruent']:.3f}"],
                 ["chance", f"{t['chance']:.3f}", "", ""]]
    fp_rows = [[ctx, html.escape(p["region_label"]), "stable" if p["stable"] else "unstable",
                f"{p['slowest_abs_eigenvalue']:.3f}", _tau(p)]
               for ctx, pts in m["fixed_points"].items() for p in pts]
    fp_rows = fp_rows or [["(none)", "no real fixed point under either context's input", "", "", ""]]
    fp_rows += [[ctx, "no real fixed point", "", "", ""] for ctx, pts in m["fixed_points"].items() if not pts]
    n_folds = len(next(iter(cmp_["models"].values()))["folds"])
    cmp_rows = [[html.escape(k), *(f"{x:.3f}" for x in v["folds"]), f"<b>{v['mean']:.3f} &plusmn; {v['sem']:.3f}</b>"]
                for k, v in cmp_["models"].items()]
    cmp_rows.append(["trials per test fold", *map(str, cmp_["n_test_per_fold"]), ""])
    paired = "".join(f" {html.escape(k)}: {v['mean']:+.3f} (paired t-test over folds, p = {v['t_pvalue']:.2g})."
                     for k, v in cmp_["paired"].items())
    occ = "; ".join(f"{ctx}: " + ", ".join(f"{html.escape(k.split(':')[0])} {v:.0%}" for k, v in o.items())
                    for ctx, o in m["region_occupancy"].items())
    tr = tf["n_trials"]
    secs = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in summary["seconds"].items() if k != "total")
    small = " <b>Run with <code>--small</code>: tiny training budgets, the numbers mean nothing.</b>" if s["small"] else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>neuroalrnn demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}}
img{{max-width:100%}}figure{{margin:1.2em 0}}figcaption{{font-size:.9em;color:#444}}
table{{border-collapse:collapse;margin:.6em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.key{{background:#f4f6fa;padding:.6em 1em;border-left:4px solid #4a6fa5}}
.meta{{font-size:.85em;color:#555}}</style></head><body>
<h1>neuroalrnn demo report</h1>
<p class="meta">neuroalrnn {summary['package']['version']} (Python {summary['package']['python']}, torch
{summary['package']['torch']}), seed {s['seed']}, {summary['created']}; computed in {summary['seconds']['total']:.0f} s
({secs}). Every number below is also in <a href="summary.json">summary.json</a>.{small}</p>
<p class="key"><b>Mechanism.</b> {html.escape(m['sentence'])}</p>
<p>Data: the embedded sample recording, {d['n_trials']} trials of a context-dependent stimulus-selection task
(Mante et al. 2013), {d['n_units']} units, spike counts in {d['dt'] * 1e3:g} ms bins ({html.escape(d['source'])}).</p>

<h2>1. Stimulus selection: accuracy against the number of ReLU units</h2>
<p>AL-RNNs with M = {t['n_units']} units, P of them ReLU, trained together as one ensemble (each model
with its own batches) by {ts['n_steps']} Adam steps (batch
{tfs['batch_size']}, learning rate {tfs['lr']:g}, decay {tfs['lr_decay']:g} per step) on {ts['n_train']} trials, the
parameters with the best validation accuracy kept. Accuracy on {t['n_test_trials']} new trials
({t['n_congruent']} congruent, where both streams point the same way, and {t['n_incongruent']} incongruent, where only
the cued stream gives the right answer). Chance is the frequency of the commoner correct answer; the ideal observer
knows the stream statistics and integrates the cued stream perfectly.</p>
{_table(["model", "overall", "congruent", "incongruent"], acc_rows)}
{_figure("task_accuracy", captions["task_accuracy"])}

<h2>2. The mechanism of the P = 2 network</h2>
<p>An AL-RNN is linear inside each of its 2<sup>P</sup> = {m['n_regions']} linear subregions, which are named by
which ReLU units are positive (region code = the sum of 2<sup>i</sup> over the positive ReLU units i = 0..P-1). Under
each context's stimulus-epoch input (fixation and the context cue on, no evidence) the fixed points of every region
are solved exactly; only those inside their own region are real. |&lambda;| is the largest eigenvalue modulus of the
Jacobian there (stable when below 1); its time constant is dt / |ln|&lambda;|| with dt = {m['dt_s'] * 1e3:g} ms, against
a stimulus of {m['stimulus_s']:.2g} s on average.</p>
{_table(["context", "region", "stability", "slowest |&lambda;|", "time constant"], fp_rows)}
{_figure("mechanism", captions["mechanism"])}
<p>The held-out trajectories visit {m['regions_visited']} of the {m['n_regions']} regions; share of valid steps per
region: {occ}.</p>
{_figure("regions", captions["regions"])}

<h2>3. Teacher forcing an AL-RNN on the recording</h2>
<p>An AL-RNN (M = {s['n_units']}, P = 2) fitted to the smoothed recording (Gaussian, &sigma; =
{s['teacher_forcing_fit']['smooth_s']:g} s) by generalized teacher forcing, {tf['n_steps']} Adam steps, on
{tr['train']} trials; {tr['validation']} validation trials chose the checkpoint; {tr['test']} test trials score it.
Mean squared {tf['n_step']}-step-ahead ({tf['n_step_s']:g} s) prediction error on the test trials, in
{html.escape(tf['error_units'])}: <b>{tf['held_out_error']:.3f}</b>, against persistence (x<sub>t+n</sub> =
x<sub>t</sub>) {tf['persistence_baseline']:.3f} and the training trials' mean {tf['training_mean_baseline']:.3f}
(lower is better).</p>
{_figure("teacher_forcing", captions["teacher_forcing"])}

<h2>4. Geometry and behaviour of the recording</h2>
<p>The ground-truth network that generated the recording against the recorded units, cross-validated over
{geo['n_folds']} folds of trials after PCA to {geo['n_components']} dimensions: CKA {geo['cka']:.2f} (1 = same
geometry; folds {', '.join(f'{x:.2f}' for x in geo['cka_folds'])}) against {geo['cka_shuffled']:.2f} when trials are
shuffled between the two; Procrustes distance {geo['procrustes']:.2f} rad (0 = identical shape, &pi;/2 unrelated)
against {geo['procrustes_shuffled']:.2f} rad shuffled.</p>
{_figure("psychometric", captions["psychometric"])}
{_figure("tdr", captions["tdr"])}

<h2>5. Cross-validated comparison of P</h2>
<p>{cmp_['cv']}-fold cross-validation on {cmp_['n_trials']} new trials; each model trained by {cmp_['n_steps']} Adam
steps per fold. Held-out accuracy per fold (the same folds for every model), and mean &plusmn; SEM over folds. Ideal
observer on these trials: {cmp_['ideal_observer']:.3f}; chance {cmp_['chance']:.3f}.{paired}</p>
{_table(["model", *(f"fold {i}" for i in range(n_folds)), "mean &plusmn; SEM"], cmp_rows)}
{_figure("compare", captions["compare"])}
</body></html>"""


def write_report(out: Path, summary: dict, results: dict) -> Path:
    """Draw the figures and write PNGs, ``summary.json`` and ``index.html`` atomically into ``out``."""
    from neuroalrnn._report_figures import CAPTIONS, figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures(results, summary).items():
        with atomic_write(out / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")  # constrained layout: no second "tight" draw
    with atomic_write(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    with atomic_write(out / "index.html") as tmp:
        tmp.write_text(page(summary, CAPTIONS))
    return out / "index.html"
