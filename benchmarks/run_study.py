"""The nonlinearity study (issue 15), end to end; prints the tables of benchmarks/RESULTS_study.md.

Parts:

* ``suite`` (default): all 7 tasks x P in {0, 1, 2, 4, M} x 3 seeds, 2-fold cross-validated, with each
  task's recommended settings and every mechanism; the wall time is the "<= 30 minutes on 2 cores" goal.
* ``acceptance``: stimulus selection over 10 seeds with P in {0, 1, 2, 4, M} (P = 0 at chance on
  incongruent trials, P >= 1 within 2 points of the ideal observer) and the addition problem over 10 seeds
  with P in {0, 2} (P = 0 fails, P = 2 below MSE 0.01 for at least 8 of 10 seeds).

Every fit is stored under ``--results-dir`` as it finishes, so an interrupted run resumes. The results
(netCDF) and the HTML report are written to ``--out-dir``. ``--quick`` runs the same code with tiny
data and training (a smoke test; the numbers mean nothing).

Usage: python benchmarks/run_study.py [--part suite|acceptance] [--quick] [--seeds 0,1,2] [--n-jobs 2]
       [--tasks addition,copy] [--results-dir DIR] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import ShuffleSplit

from neuroalrnn.study import run_study, summarize_study, write_report


def markdown_scores(results, summary) -> str:
    """Criterion score (mean +- SEM), solved fits, difference to P = 0 [CI] and Holm-corrected p per task and P."""
    criteria = json.loads(results.attrs["criterion"])
    lines = ["| task | criterion | P | mean +- SEM | solved fits | vs P = 0 [95% CI] | p (corrected, Holm) |",
             "|---|---|---|---|---|---|---|"]
    for task in summary["task"].values.tolist():
        c = criteria[task]
        rule = f"{c['scorer']} {'<=' if c['solved_below'] else '>='} {c['threshold']:g}"
        for model in summary["model"].values.tolist():
            r = summary.sel(task=task, model=model)
            solved = results["solved"].sel(task=task, model=model).values
            tested = np.isfinite(float(r["diff_ci_low"]))  # not P = 0 itself, nor a difference without variance
            versus = (f"{float(r['diff']):+.4f} [{float(r['diff_ci_low']):+.4f}, {float(r['diff_ci_high']):+.4f}] "
                      f"| {float(r['p_corrected_holm']):.2g}" if tested else
                      (f"{float(r['diff']):+.4f} (no variance) | " if np.isfinite(float(r["diff"])) else " | "))
            lines.append(f"| {task} | {rule} | {int(r['n_relu'])} | {float(r['criterion_mean']):.4f} +- "
                         f"{float(r['criterion_sem']):.4f} | {int(np.nansum(solved))}/{int(np.isfinite(solved).sum())} "
                         f"| {versus} |")
    return "\n".join(lines)


def markdown_mechanisms(summary) -> str:
    """Fraction of fits showing each mechanism per P (among solved fits in brackets)."""
    shown = json.loads(summary.attrs["shown"])
    ps = [str(int(p)) for p in summary["n_relu"].values]
    lines = ["| task | mechanism | " + " | ".join(f"P = {p}" for p in ps) + " |", "|---|---|" + "---|" * len(ps)]
    for task in summary["task"].values.tolist():
        for name, (_, words) in shown.items():
            key = f"fraction:{name}"
            if key not in summary or not np.isfinite(summary[key].sel(task=task).values).any():
                continue
            cells = [f"{a:.2f} ({b:.2f})" if np.isfinite(a) else "-" for a, b in
                     zip(summary[key].sel(task=task).values, summary[f"fraction_solved:{name}"].sel(task=task).values)]
            lines.append(f"| {task} | {words} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_conditions(results, task, names) -> str:
    """Several scores of one task (e.g. per condition), mean +- SEM per P."""
    part = results.sel(task=task)
    lines = ["| P | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for model in part["model"].values.tolist():
        cells = []
        for name in names:
            x = part[name].sel(model=model).values.ravel()
            x = x[np.isfinite(x)]
            cells.append(f"{x.mean():.3f} +- {x.std(ddof=1) / np.sqrt(len(x)):.3f}" if len(x) > 1 else "-")
        lines.append(f"| {int(part['n_relu'].sel(model=model))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results, out_dir: Path, name: str, wall: float, cpu: float | None = None) -> None:
    summary = summarize_study(results)
    results.to_netcdf(out_dir / f"{name}.nc")
    write_report(results, out_dir / f"{name}.html")
    print(f"\n## {name}: wall time {wall:.0f} s ({wall / 60:.1f} min); load average after {os.getloadavg()}")
    if cpu is not None:  # in-process runs: the CPU time is what 2 idle cores would share
        print(f"CPU time of this process: {cpu:.0f} s ({cpu / 60:.1f} min; / 2 cores = {cpu / 120:.1f} min)")
    print("per task (s):", {t: round(float(w)) for t, w in zip(results["task"].values, results["wall_time"].values)})
    print("\n" + markdown_scores(results, summary))
    print("\n" + markdown_mechanisms(summary))
    if "stimulus_selection" in results["task"].values:
        print("\nstimulus selection, per condition:\n" + markdown_conditions(
            results, "stimulus_selection", ["accuracy", "accuracy[congruent]", "accuracy[incongruent]",
                                            "ideal_gap", "ideal_gap[incongruent]"]))
    if "multitask" in results["task"].values:
        print("\nmulti-task, per task:\n" + markdown_conditions(
            results, "multitask", ["mse[task=addition]", "class_accuracy[task=copy]", "mse[task=flipflop]",
                                   "sign_accuracy[task=delayed_match]"]))
    for task in results["task"].values.tolist():
        solved = results["solved"].sel(task=task)
        per_seed = (solved == 1).all("fold").sum("seed").values
        print(f"{task}: seeds solved on every fold, per P: "
              + ", ".join(f"P={int(p)}: {int(k)}/{results.sizes['seed']}" for p, k in zip(results["n_relu"].values,
                                                                                          per_seed)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="suite", choices=["suite", "acceptance"])
    parser.add_argument("--quick", action="store_true", help="tiny data and training (a smoke test)")
    parser.add_argument("--tasks", help="comma-separated tasks (suite part; default all)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: 0,1,2 for the suite, 0..9 for acceptance)")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--folds", type=int, default=2,
                        help="cross-validation folds; 1: one 50/50 split of the trials (default 2)")
    parser.add_argument("--results-dir", default="study_fits", help="per-fit results, for resuming")
    parser.add_argument("--out-dir", default="study_out", help="netCDF results and HTML reports")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs, n_jobs={args.n_jobs}, quick={args.quick}")
    cv = args.folds if args.folds > 1 else ShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
    common = dict(quick=args.quick, n_jobs=args.n_jobs, cv=cv, progress=False)
    if args.part == "suite":
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [0, 1, 2]
        tasks = args.tasks.split(",") if args.tasks else None
        start, cpu = time.perf_counter(), time.process_time()
        res = run_study(**({"tasks": tasks} if tasks else {}), seeds=seeds,
                        results_dir=Path(args.results_dir) / "suite", **common)
        report(res, out_dir, "suite", time.perf_counter() - start,
               time.process_time() - cpu if args.n_jobs == 1 else None)
    else:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(10))
        for task, p_values in (("stimulus_selection", [0, 1, 2, 4, "M"]), ("addition", [0, 2])):
            start = time.perf_counter()
            res = run_study([task], p_values=p_values, seeds=seeds,
                            results_dir=Path(args.results_dir) / "acceptance", **common)
            report(res, out_dir, f"acceptance_{task}", time.perf_counter() - start)


if __name__ == "__main__":
    main()
