"""benchmarks/gpu_check.sh is run only where a GPU is lent, rarely and once: its CPU dry run keeps it working.

The dry run goes through every step of the script (the CUDA tests' command, the recurrence benchmark, every
public fit path, the ensemble benchmark, the results writer) with tiny sizes on CPU and writes into $OUT
only, never into the tree.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_goes_through_every_step(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    steps = [line for line in log.splitlines() if line.startswith("== ")]
    assert len(steps) == 7 and steps[-1].startswith("== done"), steps
    assert "public fit paths: 0 failed" in log
    assert "gain:" in log  # the ensemble benchmark's comparison
    assert {"gpu.txt", "cuda_tests.txt", "bench_cuda.txt", "fit_cuda.txt", "ensemble_cuda.txt",
            "RESULTS.md"} <= {p.name for p in tmp_path.iterdir()}
