"""End-to-end training on a device: the task fit and a teacher-forcing fit, per GPU route.

For the session that is lent a GPU (``benchmarks/gpu_check.sh`` runs it): trains the issue's
stimulus-selection model (M = 32, P = 2, 600 Adam steps, as in ``acceptance_tasks.py``) and a
sparse teacher-forcing fit on the embedded sample, once per recurrence backend, and prints the
wall time, the held-out accuracy against the ideal observer, and the teacher-forcing metric, so
the routes can be compared with each other and with the CPU numbers in ``RESULTS.md``.

Usage: python benchmarks/gpu_fit_check.py [--device cuda] [--backends rnn triton] [--steps 600]
"""
from __future__ import annotations

import argparse
import time

import torch

import neuroalrnn
from neuroalrnn import ALRNN
from neuroalrnn.fit.task import fit_task, task_accuracy
from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
from neuroalrnn.tasks import ideal_observer, stimulus_selection


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backends", nargs="+", default=["rnn", "triton"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--tf-steps", type=int, default=300)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device={name} torch={torch.__version__}")
    train, test = stimulus_selection(4000, seed=0), stimulus_selection(4000, seed=1)
    print(f"ideal observer on the held-out trials: {float(ideal_observer(test)['overall']):.3f}")
    rec = neuroalrnn.load_sample()
    for backend in args.backends:
        model = ALRNN(32, 2, n_inputs=5, n_outputs=1, seed=0, device=device, backend=backend)
        t0 = time.perf_counter()
        fit_task(model, train, n_steps=args.steps, lr=0.01, lr_decay=0.998, batch_size=128, eval_every=100,
                 select_metric="val_accuracy", seed=0, progress=False)
        _sync(device)
        spent = time.perf_counter() - t0
        acc = float(task_accuracy(model, test)["overall"])
        print(f"  {backend:7s} task fit: {args.steps} steps in {spent:6.1f} s, held-out accuracy {acc:.3f}")
        model = ALRNN(16, 2, n_inputs=rec.sizes["input"], seed=0, device=device, backend=backend)
        t0 = time.perf_counter()
        res = fit_teacher_forcing(model, rec, observation="linear", tau=5, n_steps=args.tf_steps, seed=0).train_result_
        _sync(device)
        spent = time.perf_counter() - t0
        last = {k: float(f"{v:.4g}") for k, v in res.history.iloc[-1].items()}
        print(f"  {backend:7s} teacher forcing: {args.tf_steps} steps in {spent:6.1f} s, best step {res.best_step}, "
              f"last evaluation {last}")


if __name__ == "__main__":
    main()
