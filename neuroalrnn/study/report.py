"""The study's HTML report: one self-contained page (figures embedded) read from the results Dataset."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from neuroalrnn.study.summary import summarize_study


def _fmt(x, digits=3) -> str:
    return "&ndash;" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(x) -> str:
    return "&ndash;" if not np.isfinite(x) else (f"{x:.2g}" if x >= 1e-3 else "&lt; 0.001")


def _table(header, rows) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def score_table(summary: xr.Dataset) -> list[list[str]]:
    """Rows (task, P, criterion mean +- SEM, solved, difference to the reference [CI], corrected p (Holm), d).

    Examples
    --------
    >>> from neuroalrnn.study import run_study
    >>> from neuroalrnn.study.summary import summarize_study
    >>> rows = score_table(summarize_study(run_study(["digits"], p_values=[0, 2], seeds=[0, 1], quick=True)))
    >>> [r[1] for r in rows]
    ['0', '2']
    """
    rows = []
    for task in summary["task"].values.tolist():
        s = summary.sel(task=task)
        for m in summary["model"].values.tolist():
            r = s.sel(model=m)
            ci = f"[{_fmt(float(r['diff_ci_low']))}, {_fmt(float(r['diff_ci_high']))}]"
            rows.append([task, f"{int(r['n_relu'])}", f"{_fmt(float(r['criterion_mean']))} &plusmn; "
                         f"{_fmt(float(r['criterion_sem']))}", f"{_fmt(float(r['solved']), 2)}",
                         f"{_fmt(float(r['diff']))} {ci}", _p(float(r["p_corrected_holm"])),
                         _fmt(float(r["cohens_d"]), 2)])
    return rows


def mechanism_table(summary: xr.Dataset) -> list[list[str]]:
    """Rows (task, mechanism, its definition, fraction of fits per P, and among solved fits)."""
    shown = json.loads(summary.attrs["shown"])
    rows = []
    for task in summary["task"].values.tolist():
        for name, (_, words) in shown.items():
            key = f"fraction:{name}"
            if key not in summary or not np.isfinite(summary[key].sel(task=task).values).any():
                continue
            frac = summary[key].sel(task=task).values
            solved = summary[f"fraction_solved:{name}"].sel(task=task).values
            rows.append([task, html.escape(words)] + [f"{_fmt(a, 2)} ({_fmt(b, 2)})" for a, b in zip(frac, solved)])
    return rows


def write_report(results: xr.Dataset, path) -> Path:
    """Write the study's HTML report (tables, figures, settings) to ``path``; returns the path.

    Examples
    --------
    >>> import os, tempfile
    >>> from neuroalrnn.study import run_study
    >>> res = run_study(["addition"], p_values=[0, 2], seeds=[0, 1], quick=True)
    >>> path = write_report(res, os.path.join(tempfile.mkdtemp(), "study.html"))
    >>> "addition" in path.read_text()
    True
    """
    from neuroalrnn.study.plot import plot_mechanism_fractions, plot_study_scores
    from neuroalrnn.utils import atomic_write

    summary = summarize_study(results)
    criteria = json.loads(results.attrs["criterion"])
    seeds = np.atleast_1d(results.attrs["seeds"]).tolist()
    p_head = [f"P = {int(p)}" for p in summary["n_relu"].values]
    crit_rows = [[t, html.escape(c["scorer"]), ("&le; " if c["solved_below"] else "&ge; ") + f"{c['threshold']:g}",
                  _fmt(c.get("chance")), html.escape(c["why"])] for t, c in criteria.items()]
    wall = results["wall_time"].values
    time_rows = [[t, f"{w:.0f}"] for t, w in zip(results["task"].values.tolist(), wall)]
    time_rows.append(["<b>all tasks</b>", f"<b>{wall.sum():.0f}</b>"])
    quick = bool(int(results.attrs.get("quick", 0)))
    body = f"""
<h1>The nonlinearity study</h1>
<p>{len(criteria)} tasks &times; {summary.sizes['model']} numbers of ReLU units &times; {len(seeds)} seeds
(&times; {results.sizes['fold']} folds, cv = {html.escape(str(results.attrs.get('cv')))}); every score is held out.
{'<b>Quick mode: tiny data and training, the numbers mean nothing.</b>' if quick else ''}</p>
<h2>Criteria</h2>{_table(['task', 'score', 'solved when', 'chance / baseline', 'why'], crit_rows)}
<h2>Scores against P</h2>
<p>Mean &plusmn; SEM over folds &times; seeds; solved: fraction of fits meeting the criterion; difference to
P = 0 with its corrected 95% interval, the corrected resampled t-test's p-value (Nadeau&ndash;Bengio, Holm over the
task's model pairs) and Cohen's d<sub>z</sub>.</p>
{_png(plot_study_scores(summary))}
{_table(['task', 'P', 'criterion score', 'solved', 'difference to P = 0 [95% CI]', 'p (corrected, Holm)', 'd'],
        score_table(summary))}
<h2>Mechanisms</h2>
<p>Fraction of fitted models (folds &times; seeds) that show each mechanism, and in brackets among the fits that
solve the task. A mechanism is counted per model, so a story that holds for some seeds only shows as a fraction.</p>
{_png(plot_mechanism_fractions(summary))}
{_table(['task', 'mechanism'] + p_head, mechanism_table(summary))}
<h2>Wall time</h2>{_table(['task', 'seconds'], time_rows)}
"""
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>neuroalrnn study</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px}}
img{{max-width:100%}}</style></head><body>{body}</body></html>"""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(page)
    return path
