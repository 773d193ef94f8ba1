"""Command line: ``neuroalrnn demo | fit | compare | study | info``.

Errors a user can fix (bad options, files that fail validation, outputs that
cannot be written, a full or read-only disk) end the program with exit status 2
and one line on stderr naming the option or file (``NEUROALRNN_DEBUG=1`` shows
the full traceback instead). Outputs are checked before any fitting. A fit whose
loss becomes NaN or inf also ends with status 2, after writing what it has: the
best validated parameters, the history and a ``fit.json`` whose ``status`` says
where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from neuroalrnn._cli_io import UsageError, check_output, option_for, reason, write_fit
from neuroalrnn.utils import available_cores


def summarize(ds) -> str:
    """A short human-readable summary of a TrialDataset."""
    from neuroalrnn.schema import trial_lengths, validate

    validate(ds)
    lines = [f"TrialDataset: {ds.sizes['trial']} trials"]
    if "time" in ds.dims:
        lens = trial_lengths(ds).values
        spread = f"trial lengths {lens.min()}-{lens.max()} bins" if lens.size else "no trials"
        lines.append(f"  time: {ds.sizes['time']} bins of {ds.attrs['dt'] * 1e3:g} ms aligned to "
                     f"'{ds.attrs['align_event']}' ({spread})")
    for name, dim in (("activity", "unit"), ("inputs", "input"), ("targets", "output")):
        if name in ds.data_vars:
            labels = ", ".join(map(str, ds[dim].values[:6])) + (" ..." if ds.sizes[dim] > 6 else "")
            lines.append(f"  {name}: {ds.sizes[dim]} {dim}s ({labels})")
    coords = [name for name, c in ds.coords.items() if c.dims == ("trial",) and name != "trial"]
    if coords:
        lines.append(f"  trial coords: {', '.join(coords)}")
    if "source" in ds.attrs:
        lines.append(f"  source: {ds.attrs['source']}")
    for name in ("activity", "inputs", "targets"):  # CF units, where the reader knew them
        if name in ds.data_vars and "units" in ds[name].attrs:
            lines.append(f"  {name} units: {ds[name].attrs['units']}")
    return "\n".join(lines)


def cmd_info(args) -> int:
    from neuroalrnn.io import load

    print(summarize(load(args.path)))
    return 0


def cmd_demo(args) -> int:
    from neuroalrnn.demo import run_demo

    check_output(args.out, "--out", folder=True)
    run_demo(out=Path(args.out), quiet=args.quiet, seed=args.seed, small=args.small)
    return 0


def read_config(path) -> dict:
    """A TOML config: top-level keys are the command's options; ``[params]`` the model's,
    ``[models.NAME]`` one model of a comparison each."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--config: {path} is a folder, not a TOML file")
    if not path.is_file():
        raise UsageError(f"--config: no such file {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"--config: {path} is not a text (UTF-8) TOML file") from None
    except OSError as err:
        raise UsageError(f"--config: cannot read {path}: {reason(err)}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--config: {path} is not valid TOML ({err})") from None


def parse_assignments(items) -> dict:
    """``["n_relu=2", "lr=1e-3", "forcing=sparse"]`` -> dict with numbers/bools/None parsed."""
    import json

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _options(args, config: dict, allowed) -> dict:
    """Command options: config file values overridden by the command line."""
    unknown = sorted(set(config) - set(allowed) - {"params", "models"})
    if unknown:
        raise UsageError(f"--config: unknown keys {unknown}; expected some of {sorted(allowed)}, [params], [models]")
    opts = {key: config[key] for key in allowed if key in config}
    opts.update({key: getattr(args, key) for key in allowed if getattr(args, key, None) is not None})
    return opts


def _load_trials(path):
    from neuroalrnn.io import load

    ds = load(path)
    if ds.sizes.get("trial", 0) == 0:
        raise UsageError(f"{path}: has no trials")
    return ds


def cmd_fit(args) -> int:
    from neuroalrnn.compare import make_estimator
    from neuroalrnn.fit import NonFiniteLossError

    config = read_config(args.config) if args.config else {}
    opts = _options(args, config, ("family",))
    params = {**config.get("params", {}), **parse_assignments(args.set)}
    out = check_output(args.out, "--out", folder=True)
    ds = _load_trials(args.path)
    if "family" in opts:
        params["family"] = opts["family"]
    recommended = _recommended_params(ds, params)
    params = {**recommended, **params}
    params.setdefault("progress", not args.quiet)
    estimator = make_estimator(params, ds, name="fit")
    if not args.quiet:
        print(summarize(ds))
        if recommended:
            print(f"{ds.attrs['task']}: the task's recommended training (neuroalrnn.tasks.recommended) for "
                  f"what --set / --config leave open: {', '.join(sorted(recommended))}")
        print(f"fitting {type(estimator).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})")
    report = {"data": str(args.path), "estimator": type(estimator).__name__,
              "params": {k: v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, bool))
                         or v is None}}
    try:
        estimator.fit(ds)
    except NonFiniteLossError as err:
        if err.model is None or err.result is None:
            raise
        return _write_diverged(out, err, report)
    result = estimator.train_result_
    report.update(status="complete", steps=int(result.n_steps), best_step=result.best_step,
                  training_score=float(estimator.score(ds)))
    write_fit(out, estimator.model_, getattr(estimator, "observed_", None), result.history, report)
    print(f"model written to {out / 'model.safetensors'} (training-set score {report['training_score']:.4f})")
    return 0


def _recommended_params(ds, params: dict) -> dict:
    """A generated task's recommended AL-RNN training (its ``task`` attribute), for task-trained AL-RNN fits.

    The package-wide defaults leave some tasks untrained (the addition problem needs the "normal"
    initialisation and 12,000 steps), so a fit of a suite task starts from what solves it.
    """
    from neuroalrnn.tasks import SUITE, recommended

    task = ds.attrs.get("task")
    family = params.get("family", "alrnn" if "targets" in ds.data_vars else "teacher_forcing")
    if task not in SUITE or family != "alrnn":
        return {}
    return {k: v for k, v in recommended(task)["params"].items() if k not in params}


def _write_diverged(out, err, report) -> int:
    """A fit whose loss became non-finite: write the best parameters it had and say so in one line."""
    from neuroalrnn.fit.observation import ObservedALRNN

    result, model = err.result, err.model
    stopped = str(err).split(";")[0]  # "the loss is nan at step 37"
    held = (f"the best validated parameters (step {result.best_step})" if result.best_step is not None
            else f"the parameters of the last finite loss (step {result.n_steps})")
    report.update(status=f"stopped: {stopped}", steps=int(result.n_steps), best_step=result.best_step,
                  parameters=held, training_score=None)
    observed = model if isinstance(model, ObservedALRNN) else None
    write_fit(out, model.model if observed is not None else model, observed, result.history, report)
    raise UsageError(f"training stopped: {stopped} (try a lower lr or clip_grad_norm); {held}, the history "
                     f"and fit.json are in {out}")


def _int_list(value, option):
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated integers, got {value!r}") from None


def cmd_compare(args) -> int:
    from neuroalrnn._sweep import check_address
    from neuroalrnn.compare import compare, summarize as summarize_results, table
    from neuroalrnn.utils import atomic_write

    config = read_config(args.config) if args.config else {}
    opts = _options(args, config, ("p", "family", "cv", "groups", "seeds", "scheduler", "n_jobs", "results_dir"))
    shared = {**config.get("params", {}), **parse_assignments(args.set)}
    if "family" in opts:
        shared["family"] = opts["family"]
    models = {name: {**shared, **spec} for name, spec in config.get("models", {}).items()}
    p_values = opts.get("p")
    if isinstance(p_values, str):
        p_values = _int_list(p_values, "--p")
    for p in p_values or ():
        models[f"P={p}"] = {**shared, "n_relu": p}
    if not models:
        raise UsageError("give the models to compare: --p 0,2,16 or [models.NAME] tables in --config")
    seeds = opts.get("seeds", [0])
    if isinstance(seeds, str):
        seeds = _int_list(seeds, "--seeds")
    if isinstance(opts.get("scheduler"), str):
        check_address(opts["scheduler"])
    check_output(args.out, "--out", folder=False)
    if opts.get("results_dir") is not None:
        check_output(opts["results_dir"], "--results-dir", folder=True)
    ds = _load_trials(args.path)
    results = compare(ds, models, cv=opts.get("cv", 5), groups=opts.get("groups"), seeds=seeds,
                      scheduler=opts.get("scheduler"), n_jobs=opts.get("n_jobs", 1),
                      results_dir=opts.get("results_dir"), progress=not args.quiet)
    try:
        with atomic_write(Path(args.out)) as tmp:
            results.to_netcdf(tmp)
    except OSError as err:
        kept = "; the fits are kept in --results-dir: rerun to write the scores" if opts.get("results_dir") else ""
        raise UsageError(f"--out: cannot write {args.out}: {reason(err)}{kept}") from None
    print(table(summarize_results(results)).to_string())
    print(f"scores written to {args.out}")
    return 0


def cmd_study(args) -> int:
    from neuroalrnn.study import run_study, summarize_study, write_report

    def ints(name, text):
        try:
            return [v.strip() if v.strip() == "M" else int(v) for v in text.split(",")]
        except ValueError:
            raise UsageError(f"--{name}: expected comma-separated integers, got {text!r}") from None

    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    results = run_study(**({"tasks": tasks} if tasks else {}), p_values=ints("p", args.p),
                        seeds=ints("seeds", args.seeds), cv=args.cv, n_units=args.n_units, quick=args.quick,
                        mechanisms=not args.no_mechanisms, scheduler=args.scheduler,
                        n_jobs=1 if args.scheduler else args.n_jobs,
                        device=args.device, results_dir=args.results_dir, out=args.out, progress=not args.quiet)
    summary = summarize_study(results)
    table = summary[["criterion_mean", "criterion_sem", "solved", "p_corrected_holm"]].to_dataframe()
    print(table.drop(columns=[c for c in ("family",) if c in table]).to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"wall time {float(results['wall_time'].sum()):.0f} s; results written to {args.out}, report to "
          f"{write_report(results, args.report)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuroalrnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser("demo", help="run the whole flow on the embedded sample and write a report")
    demo.add_argument("--out", default="neuroalrnn_report", help="report folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--small", action="store_true", help="tiny training budgets (a quick smoke run)")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="load a data file, validate it and print its summary")
    info.add_argument("path")
    info.set_defaults(func=cmd_info)
    fit = sub.add_parser("fit", help="fit an AL-RNN to a data file (task training or teacher forcing)")
    fit.add_argument("path", help="a data file neuroalrnn.load reads (.nc, .nwb, .mat, .csv, .npz)")
    fit.add_argument("--config", help="TOML file: family = ..., [params] n_units = ..., n_relu = ...")
    fit.add_argument("--family", choices=("alrnn", "gru", "teacher_forcing"),
                     help="alrnn: task training (needs targets); teacher_forcing: fit the activity")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE", help="an estimator parameter (repeatable)")
    fit.add_argument("--out", default="neuroalrnn_fit", help="output folder (default: %(default)s)")
    fit.add_argument("--quiet", action="store_true")
    fit.set_defaults(func=cmd_fit)
    cmp_ = sub.add_parser("compare", help="cross-validated comparison of models (e.g. over P) on a data file")
    cmp_.add_argument("path")
    cmp_.add_argument("--config", help="TOML file: cv, groups, seeds, scheduler, n_jobs, [params], [models.NAME]")
    cmp_.add_argument("--p", help="comma-separated numbers of ReLU units, e.g. 0,2,16")
    cmp_.add_argument("--family", choices=("alrnn", "gru", "teacher_forcing"))
    cmp_.add_argument("--cv", type=int, help="number of folds (default 5)")
    cmp_.add_argument("--groups", help="trial coord to group folds by, e.g. session")
    cmp_.add_argument("--seeds", help="comma-separated seeds (default 0)")
    cmp_.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://HOST:PORT (default: run locally). "
                      "It is trusted: whoever can connect to it can run code on its workers; tls:// addresses "
                      "use the TLS credentials of the Dask configuration")
    cmp_.add_argument("--n-jobs", dest="n_jobs", type=int,
                      help="local worker processes, on a loopback cluster only this process can use (TLS) "
                      "(default 1)")
    cmp_.add_argument("--results-dir", dest="results_dir", help="per-fit results, kept for resuming")
    cmp_.add_argument("--set", action="append", metavar="KEY=VALUE", help="a parameter of every model")
    cmp_.add_argument("--out", default="comparison.nc", help="scores as netCDF (default: %(default)s)")
    cmp_.add_argument("--quiet", action="store_true")
    cmp_.set_defaults(func=cmd_compare)
    study = sub.add_parser("study", help="the nonlinearity study: task suite x numbers of ReLU units x seeds")
    study.add_argument("--tasks", help="comma-separated tasks (default: all of neuroalrnn.tasks.SUITE)")
    study.add_argument("--p", default="0,1,2,4,M", help="numbers of ReLU units, M = all (default: %(default)s)")
    study.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    study.add_argument("--cv", type=int, default=2, help="folds (default: %(default)s)")
    study.add_argument("--n-units", dest="n_units", type=int, help="M for every task (default: recommended)")
    study.add_argument("--quick", action="store_true", help="tiny data and training (a smoke run)")
    study.add_argument("--no-mechanisms", dest="no_mechanisms", action="store_true")
    study.add_argument("--scheduler", help="Dask scheduler address (default: run locally)")
    study.add_argument("--n-jobs", dest="n_jobs", type=int, default=available_cores(),
                       help="local worker processes, one thread each (default: the usable CPU cores, %(default)s)")
    study.add_argument("--device", help="cpu, cuda or auto (a GPU where there is one); default: each model's")
    study.add_argument("--results-dir", dest="results_dir", help="per-fit results, kept for resuming")
    study.add_argument("--out", default="study.nc", help="results as netCDF (default: %(default)s)")
    study.add_argument("--report", default="study.html", help="HTML report (default: %(default)s)")
    study.add_argument("--quiet", action="store_true")
    study.set_defaults(func=cmd_study)
    return parser


# library errors that start with a parameter's name, and the option that sets it
_OPTIONS = {"scheduler": "--scheduler", "n_jobs": "--n-jobs", "results_dir": "--results-dir", "seeds": "--seeds",
            "cv": "--cv", "groups": "--groups"}


def _message(err, args) -> str:
    """One line naming the option or file at fault."""
    if isinstance(err, OSError) and err.filename and not isinstance(err, ConnectionError):
        option = option_for(err.filename, args)
        verb = "cannot write" if option in ("--out", "--results-dir") else "cannot read"
        message = f"{option + ': ' if option else ''}{verb} {err.filename}: {reason(err)}"
    else:
        message = str(err) or type(err).__name__
        name, sep, rest = message.partition(":")
        if sep and name in _OPTIONS and not isinstance(err, UsageError):
            from_config = getattr(args, name, None) is None and getattr(args, "config", None)
            message = f"{name + ' in --config' if from_config else _OPTIONS[name]}:{rest}"
    return " ".join(message.split())


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def one_line(message, category, *_args, **_kwargs):  # warnings too: one line each
        print(f"neuroalrnn {args.command}: warning: {_message(Warning(str(message)), args)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        try:
            return args.func(args)
        except (UsageError, ValueError, TypeError, OSError, ImportError) as err:
            if os.environ.get("NEUROALRNN_DEBUG"):
                raise
            print(f"neuroalrnn {args.command}: error: {_message(err, args)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
