"""Write the outputs of ``benchmarks/gpu_check.sh`` into RESULTS.md and the CUDA route table.

Reads ``gpu.txt``, ``cuda_tests.txt``, ``bench_cuda.txt`` and ``fit_cuda.txt`` from a folder (the
check's ``$OUT``, or where its files were fetched to), then

* rewrites the section of ``benchmarks/RESULTS.md`` between the ``gpu-check`` markers (appended when
  absent): the device, the CUDA test summary, the recurrence timings against cuDNN ``nn.RNN(relu)``
  with the faster exact route per shape, and the public fit paths (PASS/FAIL, seconds);
* rewrites ``DEVICE`` and ``MEASURED`` in ``neuroalrnn/model/_cuda_routes.py``, which
  ``backend="auto"`` reads to pick the faster exact route on CUDA.

A missing file leaves its part of the section saying so. Shapes only timed on CPU (a dry run) are
not written into the route table.

Usage: python benchmarks/gpu_results.py FOLDER [--results benchmarks/RESULTS.md]
                                              [--routes neuroalrnn/model/_cuda_routes.py]
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gpu-check: begin -->", "<!-- gpu-check: end -->"
ROUTES = ("rnn-2M", "triton")


def _read(folder: Path, name: str) -> str | None:
    path = folder / name
    return path.read_text(errors="replace") if path.is_file() else None


def parse_bench(text: str) -> tuple[str, dict]:
    """(device line, {(B, T, M, P): {candidate: wall ms}}) from bench_recurrence.py's output."""
    head = next((line for line in text.splitlines() if line.startswith("device=")), "device=?")
    table, shape = {}, None
    for line in text.splitlines():
        m = re.match(r"\(B,T,M,P\)=\((\d+),(\d+),(\d+),(\d+)\)", line.strip())
        if m:
            shape = tuple(int(v) for v in m.groups())
            table[shape] = {}
            continue
        m = re.match(r"\s+wall\s+(\S+)\s+([\d.]+) ms", line)
        if m and shape is not None:
            table[shape][m.group(1)] = float(m.group(2))
    return head, table


def bench_rows(table: dict) -> list[str]:
    rows = ["| (B, T, M, P) | nn.RNN (cuDNN) ms | rnn-2M ms | triton ms | loop ms | rnn-2M / nn.RNN | "
            "triton / nn.RNN | faster exact route |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for shape, t in table.items():
        ref = t.get("nn.RNN")
        cell = lambda k: f"{t[k]:.3f}" if k in t else "-"
        ratio = lambda k: f"{t[k] / ref:.2f}x" if k in t and ref else "-"
        timed = [k for k in ROUTES if k in t]
        best = min(timed, key=t.get) if timed else "-"
        rows.append(f"| {shape} | {cell('nn.RNN')} | {cell('rnn-2M')} | {cell('triton')} | {cell('loop')} | "
                    f"{ratio('rnn-2M')} | {ratio('triton')} | {best} |")
    return rows


def fit_rows(text: str) -> list[str]:
    rows = ["| public fit path | result | seconds |", "| --- | --- | --- |"]
    for line in text.splitlines():
        m = re.match(r"PASS (.+) ([\d.]+) s$", line)
        if m:
            rows.append(f"| {m.group(1)} | PASS | {m.group(2)} |")
            continue
        m = re.match(r"FAIL (.+?): (.*)$", line)
        if m:
            rows.append(f"| {m.group(1)} | FAIL: {m.group(2)[:120].replace('|', '/')} | - |")
    timing = [line.strip() for line in text.splitlines()
              if "task fit:" in line or "teacher forcing:" in line or line.startswith("ideal observer")]
    return rows + ([""] + [f"    {line}" for line in timing] if timing else [])


def section(folder: Path) -> tuple[str, dict, bool]:
    gpu, tests = _read(folder, "gpu.txt"), _read(folder, "cuda_tests.txt")
    bench, fits = _read(folder, "bench_cuda.txt"), _read(folder, "fit_cuda.txt")
    head, table = parse_bench(bench) if bench else ("", {})
    on_cuda = "device=CPU" not in head and bool(table)
    out = [BEGIN, "## GPU check (`benchmarks/gpu_check.sh`, written by `benchmarks/gpu_results.py`)", "",
           f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
           + ("" if on_cuda else " **Dry run on CPU: these are not GPU numbers.**"), ""]
    out += ["Device:", "", *[f"    {line}" for line in (gpu or "gpu.txt missing").strip().splitlines()], ""]
    summary = [line for line in (tests or "").splitlines()
               if re.search(r"\d+ (passed|failed|errors?|skipped|deselected)\b.* in [\d.]+s", line)]
    out += [f"CUDA tests of every backend (states and gradients against the loop, float32 and float64, TF32 "
            f"allowed globally): {summary[-1].strip('= ') if summary else 'cuda_tests.txt missing or without a summary'}",
            ""]
    out += [f"Recurrence forward + backward, float32, median wall ms ({head.strip()}):", ""]
    out += bench_rows(table) if table else ["bench_cuda.txt missing"]
    out += ["", "Public fit paths on the device (`benchmarks/gpu_fit_check.py`):", ""]
    out += fit_rows(fits) if fits else ["fit_cuda.txt missing"]
    out += ["", END]
    return "\n".join(out), table, on_cuda


def write_results(path: Path, text: str) -> None:
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


def write_routes(path: Path, device: str, table: dict) -> None:
    measured = {shape: {"rnn": t["rnn-2M"], "triton": t["triton"], "nn.RNN": t.get("nn.RNN")}
                for shape, t in table.items() if "rnn-2M" in t and "triton" in t}
    text = path.read_text()
    block = f"# --- written by benchmarks/gpu_results.py ---\nDEVICE = {device!r}\nMEASURED = {measured!r}\n# --- end ---"
    new = re.sub(r"# --- written by benchmarks/gpu_results.py ---\n.*?# --- end ---", lambda _: block, text,
                 flags=re.S)
    path.write_text(new)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    ap.add_argument("--routes", type=Path, default=ROOT / "neuroalrnn" / "model" / "_cuda_routes.py")
    args = ap.parse_args(argv)
    text, table, on_cuda = section(args.folder)
    write_results(args.results, text)
    print(f"wrote the GPU section of {args.results}")
    if on_cuda:
        gpu = (_read(args.folder, "gpu.txt") or "").splitlines()
        device = gpu[1].split(",")[0].strip() if len(gpu) > 1 else "CUDA"
        write_routes(args.routes, device, table)
        print(f"wrote the measured routes into {args.routes}")
    else:
        print("no CUDA timings (dry run or missing bench): the route table is left as it is")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
