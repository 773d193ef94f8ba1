"""Training throughput of teacher forcing: fused recurrence vs a plain per-step Python loop.

For sparse (tau = 16, alpha = 1) and generalized (alpha = 0.2) forcing at (B, T, M, P) =
(16, 200, 20, 2) with N = 3 observed channels and (16, 100, 133, 60) with N = 20, one training
step (loss, backward, RAdam update) of ``TeacherForcingObjective`` (alrnn_scan, default backend)
is timed against the same objective written as the tutorial's per-step loop of torch ops, in the
same run. Goals (CPU): >= 20x at the small size, >= 4x at the large one.

Usage: python benchmarks/bench_teacher_forcing.py [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def plain_loss(module, batch, tau, alpha):
    """The objective as a per-step loop (the reference tutorial's way)."""
    model, obs = module.model, module.observation
    x, mask = batch["x"], batch["mask"]
    B, T, N = x.shape
    z = obs.init_state(x[:, 0])
    w_all = mask.to(x.dtype)
    num = 0.0
    for k in range(T - 1):
        if k > 0 and k % tau == 0:
            a = alpha * w_all[:, k, None]
            z = torch.cat([(1 - a) * z[:, :N] + a * x[:, k], z[:, N:]], dim=1)
        z = model.step(z)
        num = num + (((z[:, :N] - x[:, k + 1]) ** 2).mean(1) * w_all[:, k + 1]).sum()
    return num / w_all[:, 1:].sum()


def time_steps(fn, module, repeats):
    opt = torch.optim.RAdam(module.parameters(), lr=1e-4)
    for _ in range(3):  # warm-up (numba compilation, allocator)
        opt.zero_grad()
        fn().backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        opt.zero_grad()
        fn().backward()
        opt.step()
    return (time.perf_counter() - t0) / repeats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from neuroalrnn.fit.observation import IdentityObservation, ObservedALRNN
    from neuroalrnn.fit.teacher_forcing import TeacherForcingObjective
    from neuroalrnn.model import ALRNN

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    print(f"{'B':>3} {'T':>4} {'M':>4} {'P':>3} {'N':>3} {'forcing':>12} {'fused steps/s':>14} "
          f"{'loop steps/s':>13} {'speed-up':>9} {'goal':>5}")
    for (B, T, M, P, N), goal in (((16, 200, 20, 2, 3), 20), ((16, 100, 133, 60, 20), 4)):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(B, T, N, generator=gen)
        batch = {"x": x, "mask": torch.ones(B, T, dtype=torch.bool)}
        for forcing, tau, alpha in (("sparse", 16, 1.0), ("generalized", 1, 0.2)):
            model = ALRNN(M, P, seed=0)
            module = ObservedALRNN(model, IdentityObservation(N, M, P, seed=0), np.zeros(N), np.ones(N))
            obj = TeacherForcingObjective(forcing, tau=tau, alpha=alpha)
            with torch.no_grad():  # same objective, same value
                a, b = float(obj(module, batch)), float(plain_loss(module, batch, tau, alpha))
            assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), (a, b)
            fused = time_steps(lambda: obj(module, batch), module, args.repeats)
            loop = time_steps(lambda: plain_loss(module, batch, tau, alpha), module, max(3, args.repeats // 4))
            n = B * (T - 1)
            print(f"{B:>3} {T:>4} {M:>4} {P:>3} {N:>3} {forcing:>12} {n / fused:>14.0f} {n / loop:>13.0f} "
                  f"{loop / fused:>8.1f}x {goal:>4}x")


if __name__ == "__main__":
    main()
