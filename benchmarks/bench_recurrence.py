"""Forward+backward time of the AL-RNN recurrence backends against two baselines.

Baselines, run in the same process with the same B, T, M:
  loop    the plain per-step Python loop of torch ops (``alrnn_scan_reference``: what reference code does)
  nn.RNN  ``torch.nn.RNN(M, M, nonlinearity="relu", batch_first=True)`` with M units (a different model:
          the speed a user expects from a recurrent layer)
Candidates: ``numba`` (fused compiled loop + hand-written adjoint, CPU), ``rnn`` (the exact 2M-unit
ReLU-RNN identity, one oneDNN/cuDNN call) and, on CUDA, ``triton`` (persistent kernels with a
hand-written adjoint; ``--triton-sweep`` also times other block sizes, warps and the tf32x3 dot).

Usage: python benchmarks/bench_recurrence.py [--threads 1] [--repeats 15] [--device cpu|cuda]
                                            [--triton-sweep] [--sizes B,T,M,P ...]
(with TRITON_INTERPRET=1 and tiny --sizes, the Triton candidates run interpreted on CPU: a dry run
of this script, not a timing). Prints median milliseconds per forward+backward, the ratio to
nn.RNN and the speed-up over the loop, both wall-clock and process CPU time (with one thread
everywhere, CPU time is robust to other jobs sharing the machine; wall time is what a user waits
for on an idle one). On CUDA only wall time is meaningful.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from neuroalrnn.model.recurrence import alrnn_scan, alrnn_scan_reference

SIZES = [(16, 200, 20, 2), (64, 200, 64, 8), (16, 1000, 32, 4)]
CUDA_SIZES = SIZES + [(256, 500, 128, 16)]  # the GPU goal: <= 1.5x of cuDNN nn.RNN here


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


TRITON_SWEEP = [dict(num_warps=w, BLOCK_B=b) for b in (16, 32) for w in (2, 4, 8)] + [dict(precision="tf32x3")]


def bench_size(B, T, M, P, device, repeats, dtype=torch.float32, triton_sweep=False):
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(B, M, generator=gen, dtype=dtype).to(device).requires_grad_()
    drive = (0.1 * torch.randn(B, T, M, generator=gen, dtype=dtype)).to(device).requires_grad_()
    A = (0.5 + 0.4 * torch.rand(M, generator=gen, dtype=dtype)).to(device).requires_grad_()
    W = (0.3 / M ** 0.5 * torch.randn(M, M, generator=gen, dtype=dtype)).to(device).requires_grad_()
    g = torch.randn(B, T, M, generator=gen, dtype=dtype).to(device)

    def run(f):
        def fn():
            out = f()
            out.backward(g)
        return fn

    rnn = torch.nn.RNN(M, M, nonlinearity="relu", batch_first=True).to(device=device, dtype=dtype)
    hx = z0.detach().unsqueeze(0).requires_grad_()
    res = {}
    loop_repeats = max(3, repeats // 3)
    res["loop"] = _time(run(lambda: alrnn_scan_reference(z0, drive, A, W, P)), device, loop_repeats, 1)
    res["nn.RNN"] = _time(run(lambda: rnn(drive, hx)[0]), device, repeats)
    if device.type == "cpu":
        res["numba"] = _time(run(lambda: alrnn_scan(z0, drive, A, W, P, backend="numba")), device, repeats)
    res["rnn-2M"] = _time(run(lambda: alrnn_scan(z0, drive, A, W, P, backend="rnn")), device, repeats)
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":  # interpreted: a dry run
        from neuroalrnn.model import _triton as ts

        ref = alrnn_scan(z0, drive, A, W, P, backend="loop").detach()
        triton_fn = run(lambda: alrnn_scan(z0, drive, A, W, P, backend="triton"))
        res["triton"] = _time(triton_fn, device, repeats)
        for cfg in TRITON_SWEEP if triton_sweep else []:
            cfg = dict(cfg)
            ts.PRECISION = cfg.pop("precision", "ieee")
            ts.CONFIG.clear()
            ts.CONFIG.update(cfg)
            name = "triton[" + ",".join(f"{k}={v}" for k, v in cfg.items()) + (
                "" if ts.PRECISION == "ieee" else f"{ts.PRECISION}") + "]"
            try:
                res[name] = _time(triton_fn, device, repeats)
                diff = (alrnn_scan(z0, drive, A, W, P, backend="triton").detach() - ref).abs().max().item()
                print(f"  {name}: max |states - loop| = {diff:.2e}")
            except Exception as err:  # a config the GPU cannot run: report it, keep going
                print(f"  {name} failed: {type(err).__name__}: {str(err)[:200]}")
        ts.PRECISION = "ieee"
        ts.CONFIG.clear()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (rerun on a GPU machine for the CUDA goals)")
    ap.add_argument("--triton-sweep", action="store_true", help="CUDA: also time other Triton configurations")
    ap.add_argument("--sizes", nargs="+", help="B,T,M,P tuples instead of the defaults, e.g. 16,200,20,2")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device={name} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"repeats={args.repeats} float32, forward+backward, median ms")
    # compile the numba kernels outside the timings
    if device.type == "cpu":
        z = torch.zeros(1, 2, requires_grad=True)
        alrnn_scan(z, torch.zeros(1, 2, 2), torch.zeros(2), torch.zeros(2, 2), 1, backend="numba").sum().backward()
    sizes = [tuple(int(v) for v in x.split(",")) for x in args.sizes] if args.sizes else (
        CUDA_SIZES if device.type == "cuda" else SIZES)
    for B, T, M, P in sizes:
        both = bench_size(B, T, M, P, device, args.repeats, triton_sweep=args.triton_sweep)
        print(f"(B,T,M,P)=({B},{T},{M},{P})")
        kinds = (("wall", 0),) if device.type == "cuda" else (("wall", 0), ("cpu", 1))  # GPU: wall only
        for which, idx in kinds:
            res = {k: v[idx] for k, v in both.items()}
            for k, v in res.items():
                print(f"  {which:4s} {k:32s} {v:9.3f} ms  {v / res['nn.RNN']:6.2f}x nn.RNN  "
                      f"loop/this {res['loop'] / v:6.1f}x")


if __name__ == "__main__":
    main()
