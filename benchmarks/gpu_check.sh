#!/usr/bin/env bash
# The CUDA checks of the recurrence and of training, in ONE device-machine call (for a session that
# is lent a GPU). The device image (Python 3.12, torch with CUDA, triton, numba, numpy, xarray,
# h5py, safetensors, pytest) lacks a netCDF reader for the sample recording: carry h5netcdf as a wheel.
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl h5netcdf==1.8.2
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# Writes gpu.txt, cuda_tests.txt, bench_cuda.txt and fit_cuda.txt into $OUT; record the figures in
# benchmarks/RESULTS.md, and let "auto" pick the faster GPU route (rnn or triton) in recurrence.py.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
out="${OUT:-.}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_model_recurrence.py tests/test_model.py \
    2>&1 | tee "$out/cuda_tests.txt"
timeout 240 python3 benchmarks/bench_recurrence.py --device cuda --repeats 21 --triton-sweep 2>&1 | tee "$out/bench_cuda.txt"
timeout 130 python3 benchmarks/gpu_fit_check.py --device cuda 2>&1 | tee "$out/fit_cuda.txt"
