"""``neuroalrnn demo``: the whole flow on the embedded sample, written to a report folder."""

from __future__ import annotations

import json
from pathlib import Path

from neuroalrnn.utils import atomic_write


def run_demo(out: str | Path = "neuroalrnn_report", quiet: bool = False, seed: int = 0) -> dict:
    """Load the embedded sample, validate it and write ``summary.json`` into ``out``."""
    from neuroalrnn.cli import summarize
    from neuroalrnn.sample import load_sample, sample_path

    out = Path(out)
    say = (lambda *a: None) if quiet else print
    ds = load_sample()
    say(summarize(ds))
    summary = {"data": {"path": str(sample_path()), "n_trials": int(ds.sizes["trial"]),
                        "n_units": int(ds.sizes.get("unit", 0)), "dt": float(ds.attrs["dt"])}}
    with atomic_write(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    say(f"report written to {out.resolve()}")
    return summary
