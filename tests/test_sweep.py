"""The sweep engine: in-process, LocalCluster, result store, resume and worker death."""

import json
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from neuroalrnn._sweep import connect, run_tasks


def make_fit(marker_dir, sleep=0.0):
    """A cheap deterministic 'fit' that records one marker file per call (pickled by value)."""

    def fit(task, shared):
        import os as _os
        import time as _time

        import numpy as _np

        _os.makedirs(marker_dir, exist_ok=True)
        with open(_os.path.join(marker_dir, f"{task['key']}.{_os.getpid()}.{_time.time_ns()}"), "w"):
            pass
        _time.sleep(sleep)
        rng = _np.random.default_rng([task["seed"], task["fold"]])
        return {"score": float(rng.normal() + shared["offset"]), "pid": _os.getpid()}

    return fit


def calls(marker_dir):
    names = os.listdir(marker_dir) if os.path.isdir(marker_dir) else []
    return sorted(name.split(".")[0] for name in names)


def tasks(n_folds=3, n_seeds=2):
    return [{"key": f"m-f{f}-s{s}", "fold": f, "seed": s} for f in range(n_folds) for s in range(n_seeds)]


def expected(task):
    return float(np.random.default_rng([task["seed"], task["fold"]]).normal() + 10.0)


def test_serial_results_in_task_order(tmp_path):
    out = run_tasks(make_fit(str(tmp_path / "m")), tasks(), shared={"offset": 10.0})
    assert [r["score"] for r in out] == [expected(t) for t in tasks()]
    assert len(calls(tmp_path / "m")) == 6


def test_resume_recomputes_only_missing(tmp_path):
    store, markers = tmp_path / "results", tmp_path / "m"
    first = run_tasks(make_fit(str(markers)), tasks(), shared={"offset": 10.0}, results_dir=store)
    assert len(calls(markers)) == 6
    files = sorted(p.name for p in store.iterdir())
    assert files == sorted(f"{t['key']}.json" for t in tasks())
    record = json.loads((store / "m-f1-s0.json").read_text())
    assert record["task"] == {"key": "m-f1-s0", "fold": 1, "seed": 0}
    (store / "m-f1-s0.json").unlink()
    second = run_tasks(make_fit(str(markers)), tasks(), shared={"offset": 10.0}, results_dir=store)
    assert calls(markers).count("m-f1-s0") == 2 and len(calls(markers)) == 7
    assert [r["score"] for r in second] == [r["score"] for r in first]
    # a stored result whose task differs is recomputed, not trusted
    changed = [dict(t, seed=t["seed"] + 5) if t["key"] == "m-f0-s0" else t for t in tasks()]
    run_tasks(make_fit(str(markers)), changed, shared={"offset": 10.0}, results_dir=store)
    assert calls(markers).count("m-f0-s0") == 2 and len(calls(markers)) == 8
    # no temp files left behind
    assert not [p for p in store.iterdir() if p.name.startswith(".")]


def test_damaged_records_are_recomputed_with_one_warning(tmp_path):
    store, markers = tmp_path / "results", tmp_path / "m"
    first = run_tasks(make_fit(str(markers)), tasks(), shared={"offset": 10.0}, results_dir=store)
    edited = json.loads((store / "m-f0-s0.json").read_text())
    edited["result"]["score"] = 99.0  # a hand edit: valid JSON, wrong checksum
    (store / "m-f0-s0.json").write_text(json.dumps(edited))
    text = (store / "m-f1-s1.json").read_text()
    (store / "m-f1-s1.json").write_text(text[: len(text) // 2])  # truncated by a full disk
    (store / "m-f2-s0.json").write_bytes(b"\xff\xfe binary")
    with pytest.warns(RuntimeWarning) as caught:
        again = run_tasks(make_fit(str(markers)), tasks(), shared={"offset": 10.0}, results_dir=store)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 stored result(s)" in message and "recomputed" in message
    assert all(name in message for name in ("m-f0-s0.json", "m-f1-s1.json", "m-f2-s0.json"))
    assert [r["score"] for r in again] == [r["score"] for r in first]
    assert sorted(calls(markers)) == sorted([t["key"] for t in tasks()] + ["m-f0-s0", "m-f1-s1", "m-f2-s0"])
    # the rewritten records pass their check: a third run computes nothing and says nothing
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_tasks(make_fit(str(markers)), tasks(), shared={"offset": 10.0}, results_dir=store)
    assert len(calls(markers)) == 9


def test_scheduler_addresses_are_checked_before_connecting():
    import time

    from neuroalrnn._sweep import check_address

    assert check_address("tcp://[::1]:8786") == "tcp://[::1]:8786"
    for bad in ("foo", "tcp://host", "host:0", "http://host:80", "host:99999"):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="scheduler: expected a Dask scheduler address"):
            connect(bad)
        assert time.perf_counter() - start < 2
    with pytest.raises(ValueError, match="no TLS credentials"):
        connect("tls://127.0.0.1:8786")


def test_the_local_cluster_accepts_only_this_process(monkeypatch):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("cryptography")
    from distributed.security import Security

    from neuroalrnn._memory import worker_environ

    for name in worker_environ():  # what an earlier Dask cluster of this process left (it takes precedence)
        monkeypatch.delenv(name, raising=False)
    client, owned = connect(None, n_jobs=1)
    try:
        address = client.scheduler.address
        assert owned and address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result() == 3
        # the workers start with the package's malloc settings, not Dask's trim threshold of 64 KB
        started = client.run(lambda: {name: os.environ.get(name) for name in worker_environ()})
        assert list(started.values()) == [worker_environ()]
        for outsider in ({"address": address}, {"address": address.replace("tls://", "tcp://")},
                         {"address": address, "security": Security.temporary()}):  # another user's own certificate
            with pytest.raises(Exception):  # noqa: B017 - each transport refuses in its own way
                distributed.Client(**outsider, timeout=3, set_as_default=False).close()
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def test_keys_that_sanitise_alike_get_their_own_files(tmp_path):
    store, markers = tmp_path / "results", tmp_path / "m"
    alike = [{"key": "m f0", "fold": 0, "seed": 0}, {"key": "m_f0", "fold": 0, "seed": 1}]  # " " -> "_"
    run_tasks(make_fit(str(markers)), alike, shared={"offset": 10.0}, results_dir=store)
    assert len(list(store.glob("*.json"))) == 2 and len(calls(markers)) == 2
    again = run_tasks(make_fit(str(markers)), alike, shared={"offset": 10.0}, results_dir=store)
    assert len(calls(markers)) == 2  # both resumed from their files
    assert [r["score"] for r in again] == [expected(t) for t in alike]


def test_bad_input(tmp_path):
    fit = make_fit(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="unique 'key'"):
        run_tasks(fit, [{"key": "a"}, {"key": "a"}])
    with pytest.raises(ValueError, match="'key'"):
        run_tasks(fit, [{"fold": 1}])
    with pytest.raises(ValueError, match="n_jobs"):
        run_tasks(fit, tasks(), n_jobs=0)
    with pytest.raises(TypeError, match="scheduler"):
        run_tasks(fit, tasks(), scheduler=3.0, shared={"offset": 0.0})
    with pytest.raises(TypeError, match="JSON"):
        run_tasks(fit, [{"key": "a", "x": object()}])


def test_unreachable_scheduler_fails_fast():
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionError, match="no Dask scheduler answered"):
        connect(f"tcp://127.0.0.1:{port}", connect_timeout=1.0)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                                       silence_logs=40)
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def test_local_cluster_matches_serial_and_survives_worker_death(tmp_path, client):
    todo = tasks(n_folds=4, n_seeds=3)
    serial = run_tasks(make_fit(str(tmp_path / "serial")), todo, shared={"offset": 10.0})
    pids = list(client.run(os.getpid).values())
    assert len(set(pids)) == 2
    store, markers = tmp_path / "results", tmp_path / "m"
    killed = {}

    def killer():  # kill one worker as soon as the first result has been written
        deadline = time.time() + 30
        while time.time() < deadline:
            if store.is_dir() and any(p.suffix == ".json" for p in store.iterdir()):
                os.kill(pids[0], signal.SIGKILL)
                killed["pid"] = pids[0]
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    out = run_tasks(make_fit(str(markers), sleep=0.4), todo, shared={"offset": 10.0},
                    scheduler=client, results_dir=store)
    thread.join()
    assert killed, "the worker was not killed during the sweep"
    client.wait_for_workers(2, timeout=30)
    assert killed["pid"] not in client.run(os.getpid).values()  # the nanny replaced it
    assert [r["score"] for r in out] == [r["score"] for r in serial]
    assert len(list(store.glob("*.json"))) == len(todo)
    # the killed worker held a task in flight: it was started there and redone elsewhere
    started = calls(markers)
    assert set(started) == {t["key"] for t in todo} and len(started) > len(todo)
    assert {r["pid"] for r in out} - {killed["pid"]}


def test_threads_run_tasks_side_by_side_in_task_order(tmp_path):
    barrier = threading.Barrier(2, timeout=20)  # one at a time would time out here
    names = set()

    def fit(task, shared):
        barrier.wait()
        names.add(threading.current_thread().name)
        return {"score": expected(task) - 10.0 + shared["offset"]}

    out = run_tasks(fit, tasks(n_folds=2, n_seeds=1), shared={"offset": 10.0}, threads=2, results_dir=tmp_path)
    assert [r["score"] for r in out] == [expected(t) for t in tasks(n_folds=2, n_seeds=1)]
    assert len(names) == 2 and all(name.startswith("neuroalrnn-sweep") for name in names)
    assert len(list(tmp_path.glob("*.json"))) == 2
    with pytest.raises(ValueError, match="threads"):
        run_tasks(fit, tasks(), threads=0)


def _stoppable(log, fail=None, interrupt=False):
    """A task that trains 'forever' (checking for cancellation each step) unless it is ``fail``."""
    from neuroalrnn._threads import check_cancelled

    def fit(task, shared):
        if task["key"] == fail:
            time.sleep(0.2)
            if interrupt:  # Ctrl-C reaches the main thread, which waits for results
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                time.sleep(5)
                return {"score": 0.0}
            raise ZeroDivisionError("boom")
        try:
            for _ in range(2000):
                check_cancelled()
                time.sleep(0.01)
        finally:
            log.append(task["key"])
        return {"score": 1.0}

    return fit


@pytest.mark.parametrize("interrupt", [False, True])
def test_a_failing_or_interrupted_threaded_sweep_stops_the_other_tasks(tmp_path, interrupt):
    # Python's Ctrl-C handling, as in a terminal: a process started in the background by a
    # non-interactive shell (`cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    log = []
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt if interrupt else ZeroDivisionError):
            run_tasks(_stoppable(log, "m-f0-s0", interrupt), tasks(n_folds=2, n_seeds=2), threads=2,
                      results_dir=tmp_path)
    finally:
        signal.signal(signal.SIGINT, before)
    assert time.perf_counter() - start < 10  # not the 20 s each running task would take
    assert len(log) == 1  # the one other running task stopped; the queued ones never started
    assert not list(tmp_path.glob("*.json"))
