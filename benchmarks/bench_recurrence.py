"""Forward+backward time of the AL-RNN recurrence backends against two baselines.

Baselines, run in the same process with the same B, T, M:
  loop    the plain per-step Python loop of torch ops (``alrnn_scan_reference``: what reference code does)
  nn.RNN  ``torch.nn.RNN(M, M, nonlinearity="relu", batch_first=True)`` with M units (a different model:
          the speed a user expects from a recurrent layer)
Candidates: ``numba`` (fused compiled loop + hand-written adjoint, CPU), ``rnn`` (the exact 2M-unit
ReLU-RNN identity, one oneDNN/cuDNN call) and, on CUDA, ``triton`` (persistent kernels with a
hand-written adjoint; ``--triton-sweep`` also times other block sizes, warps and the tf32x3 dot).

``--ensemble K`` times instead K models in one call (the model dim of ``alrnn_scan``) against the
same K models as K sequential single-model calls (what K separate fits do), forward and backward
apart, per model: numba on CPU; on CUDA triton's one launch against sequential triton and rnn calls.

Usage: python benchmarks/bench_recurrence.py [--threads 1] [--repeats 15] [--device cpu|cuda]
                                            [--triton-sweep] [--sizes B,T,M,P ...] [--ensemble K]
                                            [--json results.jsonl]
(with TRITON_INTERPRET=1 and tiny --sizes, the Triton candidates run interpreted on CPU: a dry run
of this script, not a timing). Prints median milliseconds per forward+backward, the ratio to
nn.RNN and the speed-up over the loop, both wall-clock and process CPU time (with one thread
everywhere, CPU time is robust to other jobs sharing the machine; wall time is what a user waits
for on an idle one). On CUDA only wall time is meaningful. Every size also prints one ``json {...}``
line (and appends it to ``--json``): the device, the size, each candidate's median wall and CPU ms
and, on CUDA, its largest state difference to the loop (the routes are exact: ~1e-6 in float32).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from neuroalrnn.model.recurrence import alrnn_scan, alrnn_scan_reference

SIZES = [(16, 200, 20, 2), (64, 200, 64, 8), (16, 1000, 32, 4)]
# the GPU goals: <= 1.0x of cuDNN nn.RNN for M <= 64, <= 1.5x at (256, 500, 128, 16)
CUDA_SIZES = [(16, 200, 20, 2), (64, 200, 64, 8), (256, 500, 128, 16), (1024, 200, 64, 8)]
# ensembles: the stimulus-selection fits (M = 16 and 64; batch 64, 37 steps) on CPU, M = 32 models on CUDA
ENSEMBLE_SIZES = [(64, 37, 16, 4), (64, 37, 64, 8)]
CUDA_ENSEMBLE_SIZES = [(64, 200, 32, 4)]


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


def _data(shape, M, device, dtype, seed=0):
    """z0, drive, A, W (leading ``shape``: () for one model, (K,) for K) requiring grad, and a gradient g."""
    gen = torch.Generator().manual_seed(seed)
    B, T = shape[-2:]
    lead = tuple(shape[:-2])

    def rand(*s, scale=1.0, offset=0.0):
        return (offset + scale * torch.randn(*s, generator=gen, dtype=dtype)).to(device).requires_grad_()

    z0 = rand(*lead, B, M)
    drive = rand(*lead, B, T, M, scale=0.1)
    A = (0.5 + 0.4 * torch.rand(*lead, M, generator=gen, dtype=dtype)).to(device).requires_grad_()
    W = rand(*lead, M, M, scale=0.3 / M ** 0.5)
    g = torch.randn(*lead, B, T, M, generator=gen, dtype=dtype).to(device)
    return z0, drive, A, W, g


TRITON_SWEEP = [dict(num_warps=w, BLOCK_B=b) for b in (16, 32) for w in (2, 4, 8)] + [dict(precision="tf32x3")]


def bench_size(B, T, M, P, device, repeats, dtype=torch.float32, triton_sweep=False):
    """{candidate: (wall ms, cpu ms)} and {candidate: max |states - loop|} (CUDA only) at one size."""
    z0, drive, A, W, g = _data((B, T), M, device, dtype)

    def run(f):
        def fn():
            out = f()
            out.backward(g)
        return fn

    rnn = torch.nn.RNN(M, M, nonlinearity="relu", batch_first=True).to(device=device, dtype=dtype)
    hx = z0.detach().unsqueeze(0).requires_grad_()
    res, diff = {}, {}
    loop_repeats = max(3, repeats // 3)
    res["loop"] = _time(run(lambda: alrnn_scan_reference(z0, drive, A, W, P)), device, loop_repeats, 1)
    res["nn.RNN"] = _time(run(lambda: rnn(drive, hx)[0]), device, repeats)
    if device.type == "cpu":
        res["numba"] = _time(run(lambda: alrnn_scan(z0, drive, A, W, P, backend="numba")), device, repeats)
    res["rnn-2M"] = _time(run(lambda: alrnn_scan(z0, drive, A, W, P, backend="rnn")), device, repeats)
    on_gpu = device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"  # interpreted: a dry run
    ref = alrnn_scan(z0, drive, A, W, P, backend="loop").detach() if on_gpu else None
    if on_gpu:
        res["triton"] = _time(run(lambda: alrnn_scan(z0, drive, A, W, P, backend="triton")), device, repeats)
    if device.type == "cuda":
        for name, backend in (("rnn-2M", "rnn"), ("triton", "triton")):
            diff[name] = (alrnn_scan(z0, drive, A, W, P, backend=backend).detach() - ref).abs().max().item()
    if on_gpu and triton_sweep:
        _triton_sweep(res, run(lambda: alrnn_scan(z0, drive, A, W, P, backend="triton")), device, repeats,
                      lambda: alrnn_scan(z0, drive, A, W, P, backend="triton").detach(), ref)
    return res, diff


def _triton_sweep(res, fn, device, repeats, states, ref):
    from neuroalrnn.model import _triton as ts

    for cfg in TRITON_SWEEP:
        cfg = dict(cfg)
        ts.PRECISION = cfg.pop("precision", "ieee")
        ts.CONFIG.clear()
        ts.CONFIG.update(cfg)
        name = "triton[" + ",".join(f"{k}={v}" for k, v in cfg.items()) + (
            "" if ts.PRECISION == "ieee" else f"{ts.PRECISION}") + "]"
        try:
            res[name] = _time(fn, device, repeats)
            print(f"  {name}: max |states - loop| = {(states() - ref).abs().max().item():.2e}")
        except Exception as err:  # a config the GPU cannot run: report it, keep going
            print(f"  {name} failed: {type(err).__name__}: {str(err)[:200]}")
    ts.PRECISION = "ieee"
    ts.CONFIG.clear()


def bench_ensemble(K, B, T, M, P, device, repeats, dtype=torch.float32):
    """K models in one call against K sequential single-model calls: {candidate: {fwd/bwd: (wall, cpu)}}."""
    z0, drive, A, W, g = _data((K, B, T), M, device, dtype)
    single = [[x[k].detach().clone().requires_grad_() for x in (z0, drive, A, W)] for k in range(K)]
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        plan = [("triton[K models, one launch]", "triton", True), ("triton[K sequential calls]", "triton", False),
                ("rnn-2M[K sequential calls]", "rnn", False)]
    else:
        plan = [("numba[K models, one call]", "numba", True), ("numba[K sequential calls]", "numba", False)]

    def forward(backend, together):
        if together:
            return [alrnn_scan(z0, drive, A, W, P, backend=backend)]
        return [alrnn_scan(*leaves, P, backend=backend) for leaves in single]

    def backward(outs):
        for out, grad in zip(outs, [g] if len(outs) == 1 else g.unbind(0)):
            out.backward(grad)

    times = {name: {"fwd": ([], []), "bwd": ([], [])} for name, _, _ in plan}
    for rep in range(repeats + 2):  # candidates interleaved, so that the machine's load hits all alike
        for name, backend, together in plan:
            t0, c0 = time.perf_counter(), time.process_time()
            outs = forward(backend, together)
            _sync(device)
            t1, c1 = time.perf_counter(), time.process_time()
            backward(outs)
            _sync(device)
            t2, c2 = time.perf_counter(), time.process_time()
            if rep >= 2:  # two warm-up rounds (compilation, caches)
                times[name]["fwd"][0].append(t1 - t0)
                times[name]["fwd"][1].append(c1 - c0)
                times[name]["bwd"][0].append(t2 - t1)
                times[name]["bwd"][1].append(c2 - c1)
    together = torch.stack([s.detach() for s in forward(plan[0][1], False)])
    diff = (forward(plan[0][1], True)[0].detach() - together).abs().max().item()
    med = {name: {part: tuple(1e3 * statistics.median(v) for v in pair) for part, pair in parts.items()}
           for name, parts in times.items()}
    return med, diff


def _report(record, path):
    line = json.dumps(record)
    print("json " + line)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (rerun on a GPU machine for the CUDA goals)")
    ap.add_argument("--triton-sweep", action="store_true", help="CUDA: also time other Triton configurations")
    ap.add_argument("--sizes", "--shapes", nargs="+", help="B,T,M,P tuples instead of the defaults, e.g. 16,200,20,2")
    ap.add_argument("--ensemble", type=int, metavar="K", help="time K models in one call against K sequential calls")
    ap.add_argument("--json", help="append one JSON line per size to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    load = f" load={os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"device={name} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"repeats={args.repeats}{load} float32, forward+backward, median ms")
    # compile the numba kernels outside the timings
    if device.type == "cpu":
        z = torch.zeros(1, 2, requires_grad=True)
        alrnn_scan(z, torch.zeros(1, 2, 2), torch.zeros(2), torch.zeros(2, 2), 1, backend="numba").sum().backward()
    cuda = device.type == "cuda"
    default = (CUDA_ENSEMBLE_SIZES if cuda else ENSEMBLE_SIZES) if args.ensemble else (CUDA_SIZES if cuda else SIZES)
    sizes = [tuple(int(v) for v in x.split(",")) for x in args.sizes] if args.sizes else default
    meta = dict(device=name, torch=torch.__version__, threads=torch.get_num_threads())
    for B, T, M, P in sizes:
        if args.ensemble:
            K = args.ensemble
            med, diff = bench_ensemble(K, B, T, M, P, device, args.repeats)
            print(f"K={K} models, (B,T,M,P)=({B},{T},{M},{P}) each; per model, median ms; "
                  f"max |one call - sequential| = {diff:.1e}")
            base = next(n for n in med if "sequential" in n)
            for which, idx in ((("wall", 0),) if cuda else (("wall", 0), ("cpu", 1))):
                for cand, parts in med.items():
                    fwd, bwd = parts["fwd"][idx] / K, parts["bwd"][idx] / K
                    ref = (med[base]["fwd"][idx] + med[base]["bwd"][idx]) / K
                    print(f"  {which:4s} {cand:30s} fwd {fwd:8.4f}  bwd {bwd:8.4f}  total {fwd + bwd:8.4f} ms/model"
                          f"  {ref / (fwd + bwd):6.2f}x vs {base}")
            _report(dict(meta, mode="ensemble", K=K, B=B, T=T, M=M, P=P, max_abs_diff=diff,
                         ms=med), args.json)
            continue
        both, diff = bench_size(B, T, M, P, device, args.repeats, triton_sweep=args.triton_sweep)
        print(f"(B,T,M,P)=({B},{T},{M},{P})")
        kinds = (("wall", 0),) if cuda else (("wall", 0), ("cpu", 1))  # GPU: wall only
        for which, idx in kinds:
            res = {k: v[idx] for k, v in both.items()}
            for k, v in res.items():
                print(f"  {which:4s} {k:32s} {v:9.3f} ms  {v / res['nn.RNN']:6.2f}x nn.RNN  "
                      f"loop/this {res['loop'] / v:6.1f}x")
        _report(dict(meta, mode="single", B=B, T=T, M=M, P=P, wall_ms={k: v[0] for k, v in both.items()},
                     cpu_ms={k: v[1] for k, v in both.items()}, max_abs_diff_to_loop=diff), args.json)


if __name__ == "__main__":
    main()
