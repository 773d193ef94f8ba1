"""benchmarks/acceptance_lorenz_sweep.py (issue 12's reconstruction sweep) takes 15 minutes; its quick mode keeps
it working: the same path (ensembles of mixed P and seeds on Lorenz-63, free runs scored by D_stsp and D_H,
checkpoints in --out) with 6 models and 300 steps, in seconds."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _sweep(data, out):
    done = subprocess.run([sys.executable, "benchmarks/acceptance_lorenz_sweep.py", "--quick", "--jobs", "1",
                           "--out", str(out), "--data", str(data)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    log = done.stdout + done.stderr
    # quick mode cannot reach the goal's success rate: it reports FAIL (exit 1), not a crash
    assert done.returncode in (0, 1) and "Traceback" not in log, log[-3000:]
    assert "acceptance: " in log
    return json.loads((out / "summary.json").read_text())


def test_quick_sweep_scores_every_model_and_a_rerun_resumes_to_the_same_result(shared_data, tmp_path):
    data = shared_data / "alrnn_reference" / "lorenz63_test.npy"
    first = _sweep(data, tmp_path)
    rows = first["rows"]
    assert sorted((r["P"], r["seed"]) for r in rows) == [(p, s) for p in (0, 2, 5) for s in (0, 1)]
    for r in rows:
        assert r["error"] is None and r["regions"] >= 1
        assert np.isfinite(r["d_h"]) and r["d_stsp"] > 0  # inf would mean a diverged free run
        assert 0 <= r["best_step"] <= first["settings"]["n_steps"]
    (ckpt,) = tmp_path.glob("*.ckpt")  # the ensemble's checkpoint, from which a rerun resumes: at the last step
    assert torch.load(ckpt, weights_only=True)["step"] == first["settings"]["n_steps"]
    written = ckpt.stat().st_mtime_ns  # training writes it at every evaluation; a resumed, finished run does not
    again = _sweep(data, tmp_path)
    assert ckpt.stat().st_mtime_ns == written  # the rerun trained no step again
    assert again["rows"] == rows  # and scored the restored models alike
