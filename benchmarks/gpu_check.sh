#!/usr/bin/env bash
# The CUDA checks of the recurrence in ONE device-machine call (for a session that is lent a GPU):
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
# The device image has torch (CUDA build, with triton), numba, numpy, safetensors and pytest; the
# package runs from the tree. Writes gpu.txt, cuda_tests.txt and bench_cuda.txt into $OUT; record
# the figures in RESULTS.md, and let "auto" pick the faster GPU route (rnn or triton) in recurrence.py.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
out="${OUT:-.}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/gpu.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_recurrence.py tests/test_model.py \
    2>&1 | tee "$out/cuda_tests.txt"
timeout 300 python3 benchmarks/bench_recurrence.py --device cuda --repeats 21 --triton-sweep 2>&1 | tee "$out/bench_cuda.txt"
