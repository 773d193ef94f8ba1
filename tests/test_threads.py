"""The thread policy: small fits use one torch thread unless the user chose a count."""

import pytest
import torch

from neuroalrnn import _threads
from neuroalrnn._threads import CROSSOVER, fit_threads, set_num_threads, threads_for
from neuroalrnn.fit.trainer import train


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in _threads._ENV:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(_threads, "_seen", before)
    set_num_threads(None)
    yield
    set_num_threads(None)
    torch.set_num_threads(before)


def test_small_work_one_thread_large_work_keeps_torch_count():
    assert fit_threads(1e5) == 1
    assert fit_threads(10 * CROSSOVER) == torch.get_num_threads()


def test_user_choices_are_respected(monkeypatch):
    set_num_threads(3)
    assert fit_threads(1e5) == 3
    set_num_threads(None)
    monkeypatch.setenv("NEUROALRNN_NUM_THREADS", "2")
    assert fit_threads(1e5) == 2
    monkeypatch.setenv("NEUROALRNN_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="NEUROALRNN_NUM_THREADS"):
        fit_threads(1e5)
    monkeypatch.delenv("NEUROALRNN_NUM_THREADS")
    torch.set_num_threads(_threads._seen + 1)  # the user changed torch's count after neuroalrnn looked
    assert fit_threads(1e5) == _threads._seen + 1
    with pytest.raises(ValueError, match="n: expected"):
        set_num_threads(0)


def test_threads_for_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with threads_for(1e5):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_blas_follows_the_torch_count_and_is_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    blas = lambda: [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    before = blas()
    with threads_for(1e5):
        assert set(blas()) == {1}
    assert blas() == before


def test_train_runs_small_models_on_one_thread():
    seen = []
    net = torch.nn.Linear(3, 1)

    def objective(model, batch):
        seen.append(torch.get_num_threads())
        return ((model(batch["x"]) - batch["y"]) ** 2).mean()

    before = torch.get_num_threads()
    train(net, objective, {"x": torch.randn(16, 3), "y": torch.randn(16, 1)}, n_steps=3, progress=False)
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == before


def test_numba_blas_is_limited_from_the_first_kernel_call():
    # numba loads scipy's OpenBLAS only when a kernel first runs; the thread limits must still reach it
    code = """
    import threadpoolctl
    import torch
    from neuroalrnn.model.recurrence import alrnn_scan

    def openblas():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["internal_api"] == "openblas"}

    def scan():
        z = torch.zeros(2, 3, requires_grad=True)
        alrnn_scan(z, torch.ones(2, 4, 3), torch.full((3,), 0.5), torch.zeros(3, 3), 1, backend="numba").sum().backward()

    if sys.argv[1] == "fit":  # a fit's thread policy, entered before any kernel ran
        from neuroalrnn._threads import threads_for
        with threads_for(1):
            scan()
            print(sorted(set(openblas().values())))
    else:  # alrnn_scan called directly, one torch thread
        from neuroalrnn.model import _numba
        torch.set_num_threads(1)
        scan()  # every OpenBLAS now loaded must be one that the kernels' limit (_numba._blas_threads) controls
        print(sorted(set(openblas()) - {c.filepath for c in _numba._BLAS[:-1]}))
    """
    import subprocess
    import sys
    import textwrap

    for case, expected in (("fit", "[1]"), ("scan", "[]")):
        out = subprocess.run([sys.executable, "-c", "import sys\n" + textwrap.dedent(code), case],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected, f"{case}: OpenBLAS outside the thread limit: {out.stdout}"


def test_sweep_threads_from_the_crossover_the_cores_and_the_user(monkeypatch):
    monkeypatch.setattr(_threads, "available_cores", lambda: 8)
    assert _threads.sweep_threads(_threads.SWEEP_CROSSOVER / 2) == 1  # small models: one at a time
    assert _threads.sweep_threads(_threads.SWEEP_CROSSOVER) == _threads.MAX_SWEEP_THREADS
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    assert _threads.sweep_threads(_threads.SWEEP_CROSSOVER) == 2
    assert _threads.sweep_threads(10 * CROSSOVER) == 1  # such fits use every core themselves
    set_num_threads(1)  # the user's count: their fits use it, one at a time
    assert _threads.sweep_threads(_threads.SWEEP_CROSSOVER) == 1


def test_a_cancelled_sweep_stops_only_its_own_threads():
    import threading

    stop, seen = threading.Event(), []

    def other():  # a thread outside the sweep is never cancelled
        _threads.check_cancelled()
        seen.append("ran")

    with _threads.cancellable(stop):
        stop.set()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        with pytest.raises(_threads.SweepCancelled):
            _threads.check_cancelled()
    _threads.check_cancelled()  # out of the block: no sweep
    assert seen == ["ran"]
