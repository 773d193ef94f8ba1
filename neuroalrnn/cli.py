"""Command line: ``neuroalrnn demo | fit | compare | info``.

Errors a user can fix (bad options, files that fail validation) end the
program with exit status 2 and one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(Exception):
    """A problem with what the user asked for, reported in one line."""


def summarize(ds) -> str:
    """A short human-readable summary of a TrialDataset."""
    from neuroalrnn.schema import trial_lengths, validate

    validate(ds)
    lines = [f"TrialDataset: {ds.sizes['trial']} trials"]
    if "time" in ds.dims:
        lens = trial_lengths(ds).values
        lines.append(f"  time: {ds.sizes['time']} bins of {ds.attrs['dt'] * 1e3:g} ms aligned to "
                     f"'{ds.attrs['align_event']}' (trial lengths {lens.min()}-{lens.max()} bins)")
    for name, dim in (("activity", "unit"), ("inputs", "input"), ("targets", "output")):
        if name in ds.data_vars:
            labels = ", ".join(map(str, ds[dim].values[:6])) + (" ..." if ds.sizes[dim] > 6 else "")
            lines.append(f"  {name}: {ds.sizes[dim]} {dim}s ({labels})")
    coords = [name for name, c in ds.coords.items() if c.dims == ("trial",) and name != "trial"]
    if coords:
        lines.append(f"  trial coords: {', '.join(coords)}")
    for key in ("source", "activity_units"):
        if key in ds.attrs:
            lines.append(f"  {key}: {ds.attrs[key]}")
    return "\n".join(lines)


def cmd_info(args) -> int:
    from neuroalrnn.io import load

    print(summarize(load(args.path)))
    return 0


def cmd_demo(args) -> int:
    from neuroalrnn.demo import run_demo

    run_demo(out=Path(args.out), quiet=args.quiet, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroalrnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole flow on the embedded sample and write a report")
    demo.add_argument("--out", default="neuroalrnn_report", help="report folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="load a data file, validate it and print its summary")
    info.add_argument("path")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"neuroalrnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
