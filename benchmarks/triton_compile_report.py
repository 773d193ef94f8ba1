"""Compile the Triton recurrence kernels for an NVIDIA target offline and report their resources.

The kernels are the ones every call launches, one program per (block of trials, model) of an
ensemble (a single model is K = 1). No GPU is needed: Triton lowers the kernels to PTX and ptxas
(bundled with triton) assembles them for the target architecture, so this checks that the
compiled path (not only the interpreter the CPU tests use) accepts the kernels, and shows
registers, spill stack and shared memory (a launch fails above the GPU's per-block limit: 99 KiB
on sm_86/89, 163 KiB on A100, 227 KiB on H100; see ``neuroalrnn.model._triton.fits``) per
configuration that ``neuroalrnn.model._triton._config`` picks, and whether a float32 dot was
lowered to TF32 tensor-core instructions (it must not be: ``PRECISION = "ieee"``). Registers that
spill to local memory slow the serial time loop; the speed itself can only be measured on a GPU
(``benchmarks/gpu_check.sh``).

Usage: python benchmarks/triton_compile_report.py [--arch 90] [--units 20 64 128] [--dtype fp32]
(run without TRITON_INTERPRET set: the interpreter replaces the compiler).
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from neuroalrnn.model import _triton as ts

CONSTEXPRS = ("HAS_FORCE", "BLOCK_B", "BLOCK_M", "PRECISION")


def compile_kernel(kernel, dtype: str, has_force: bool, n_units: int, arch: int):
    """Compile one kernel as ``_config`` would launch it; return (config, cubin bytes, shared memory bytes)."""
    if not isinstance(kernel, triton.runtime.jit.JITFunction):
        raise RuntimeError("the kernels are interpreted: unset TRITON_INTERPRET to compile them")
    cfg = ts._config(n_units, has_force)
    names = list(inspect.signature(kernel.fn).parameters)
    n_ptr = names.index("B")  # pointers come first, then the int sizes, then the constexprs
    pointee = {"n_lin": "i32"}  # each model's count of linear units; every other pointer is to data
    sig = {n: (f"*{pointee.get(n, dtype)}" if i < n_ptr else "constexpr" if n in CONSTEXPRS else "i32")
           for i, n in enumerate(names)}
    values = dict(HAS_FORCE=has_force, BLOCK_B=cfg["BLOCK_B"], BLOCK_M=cfg["BLOCK_M"], PRECISION=ts.PRECISION)
    src = ASTSource(kernel, sig, {(names.index(k),): v for k, v in values.items()})
    options = dict(num_warps=cfg["num_warps"], enable_fp_fusion=True)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    return cfg, compiled.asm["cubin"], compiled.metadata.shared, compiled.asm["ptx"]


def uses_tf32(ptx: str) -> bool:
    """Whether the PTX multiplies float32 in TF32 (``mma``/``wgmma`` with .tf32 operands): not exact."""
    return bool(re.search(r"\b(w?gmma|mma)\S*\.tf32", ptx))


def resources(cubin: bytes) -> dict:
    """Registers and stack (spill) bytes per thread, read by cuobjdump from the cubin."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in re.findall(r"(REG|STACK|LOCAL):(\d+)", text)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10: 80 = A100, 90 = H100/H200")
    ap.add_argument("--units", type=int, nargs="+", default=[20, 64, 128])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp64"])
    args = ap.parse_args(argv)
    print(f"triton {triton.__version__}, sm_{args.arch}, {args.dtype}, precision={ts.PRECISION}")
    for M in args.units:
        for kernel in (ts._fwd_kernel, ts._bwd_kernel):
            for has_force in (False, True):
                cfg, cubin, shared, ptx = compile_kernel(kernel, args.dtype, has_force, M, args.arch)
                res = resources(cubin)
                print(f"M={M:4d} {kernel.fn.__name__:12s} force={has_force!s:5s} BLOCK_M={cfg['BLOCK_M']:4d} "
                      f"warps={cfg['num_warps']:2d} registers={res.get('REG')} spill_stack={res.get('STACK')}B "
                      f"tf32={uses_tf32(ptx)} shared={shared}B")


if __name__ == "__main__":
    main()
