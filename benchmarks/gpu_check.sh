#!/usr/bin/env bash
# Every CUDA check in ONE device-machine call (for a session that is lent a GPU), under 8 minutes
# (the steps' timeouts add up to 460 s):
#   1. the CUDA tests of every backend (tests/test_model_recurrence.py: states and gradients against the
#      loop, float32 and float64) and tests/test_model.py, with TF32 allowed globally;
#   2. bench_recurrence.py --device cuda against cuDNN nn.RNN(relu) at (16,200,20,2), (64,200,64,8),
#      (256,500,128,16) and (1024,200,64,8);
#   3. gpu_fit_check.py --device cuda: every public fit path (task training, teacher forcing with identity
#      and linear observation, sparse and generalized forcing with fixed and adaptive alpha, resume from a
#      checkpoint, the estimators, compare in process and on a Dask worker holding the GPU, save/load),
#      then task and teacher-forcing fits timed per GPU route;
#   4. bench_ensemble.py --device cuda: 256 task models of M = 32 trained as one ensemble against
#      sequential GPU fits (issue 12's goal: >= 50x the fits per minute);
#   5. gpu_results.py: the device and the figures into the GPU section of benchmarks/RESULTS.md and the
#      measured route table neuroalrnn/model/_cuda_routes.py (which backend="auto" reads on CUDA).
# The device image (Python 3.12, torch with CUDA, triton, numba, numpy, pandas, scipy, scikit-learn, xarray,
# h5py, safetensors, pytest) lacks h5netcdf (the sample recording) and dask/distributed: carry them as wheels.
# Once, here, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
#     h5netcdf==1.8.2 dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 \
#     tornado==6.6.1 zict==3.0.0
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# Its $OUT brings back gpu.txt, cuda_tests.txt, bench_cuda.txt, fit_cuda.txt, ensemble_cuda.txt and the rewritten RESULTS.md and
# _cuda_routes.py; apply them here with `python benchmarks/gpu_results.py <files_at>` (same script, this tree).
# CPU dry run of every step with tiny sizes (writes nothing into the tree): bash benchmarks/gpu_check.sh --dry-run
set -uo pipefail
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
py=python3
command -v "$py" > /dev/null || py=python
if [ -d .whl ] && [ "$dry" = 0 ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
start=$SECONDS
step() { echo "== $1 ($((SECONDS - start)) s)"; }

step "device"
if [ "$dry" = 1 ]; then
    echo "name, driver_version, memory.total [MiB]" > "$out/gpu.txt"
    echo "CPU dry run, -, -" >> "$out/gpu.txt"
    export TRITON_INTERPRET=1
    device=cpu
    tests_k=(-k "cuda")    # the CUDA tests skip on CPU: checks the command, not the kernels
    sizes=(2,5,4,1 3,4,6,2)
    fit_args=(--device cpu --dry-run --backends numba)
    repeats=3
else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
    device=cuda
    tests_k=()
    sizes=(16,200,20,2 64,200,64,8 256,500,128,16 1024,200,64,8)
    fit_args=(--device cuda --backends rnn triton)
    repeats=21
fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())
try:
    import triton; print('triton', triton.__version__)
except ImportError:
    print('triton missing')" >> "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

step "CUDA tests, TF32 allowed globally"
timeout 140 "$py" - "${tests_k[@]}" <<'EOF' 2>&1 | tee "$out/cuda_tests.txt"
import sys
import pytest
import torch

torch.backends.cuda.matmul.allow_tf32 = True  # what a user may switch on; the backends must stay exact
torch.backends.cudnn.allow_tf32 = True
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", *sys.argv[1:],
                      "tests/test_model_recurrence.py", "tests/test_model.py"]))
EOF

step "recurrence against cuDNN nn.RNN(relu)"
timeout 130 "$py" benchmarks/bench_recurrence.py --device "$device" --repeats "$repeats" --sizes "${sizes[@]}" \
    2>&1 | tee "$out/bench_cuda.txt"

step "public fit paths and route timings"
timeout 130 "$py" benchmarks/gpu_fit_check.py "${fit_args[@]}" 2>&1 | tee "$out/fit_cuda.txt"

step "ensembles: 256 task models of M = 32 in one computation against sequential GPU fits"
if [ "$dry" = 1 ]; then ens_args=(--dry-run); else ens_args=(--device cuda); fi
timeout 60 "$py" benchmarks/bench_ensemble.py "${ens_args[@]}" 2>&1 | tee "$out/ensemble_cuda.txt"

step "RESULTS.md and the route table"
cp benchmarks/RESULTS.md neuroalrnn/model/_cuda_routes.py "$out/"
"$py" benchmarks/gpu_results.py "$out" --results "$out/RESULTS.md" --routes "$out/_cuda_routes.py"
step "done"
