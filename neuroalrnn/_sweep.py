"""The sweep engine: run one function call per task, locally or on Dask, with a result store.

A *task* is a small JSON-serialisable dict with a unique ``"key"``; ``fn(task, shared)``
returns a JSON-serialisable dict of results. ``shared`` is one (possibly large) object
every call reads, e.g. the dataset; on Dask it is scattered to the workers once.

With a ``results_dir``, each finished task is written as it arrives to
``<results_dir>/<key>.json`` (atomically; a key with characters other than letters, digits and
``_.=+-`` gets them replaced and a short hash of the key appended), holding the task and its result. A rerun
reads those files and only computes the tasks that are missing (or whose stored task
differs), so an interrupted sweep resumes where it stopped. Only JSON is read back:
nothing is unpickled. Each record carries a checksum of its task and result: a record
that fails it (truncated by a full disk, edited by hand) is recomputed, with one
warning naming the files. The checksum guards against accidents, not against someone
who can write the folder (they could recompute it).

Worker death on Dask is handled by the scheduler, which reschedules the tasks a dead
worker held (``distributed.scheduler.allowed-failures`` times).

Security: the ``LocalCluster`` of ``n_jobs > 1`` listens on loopback with TLS and
temporary credentials that only this process holds, so other local users cannot
connect to it (a Dask worker runs whatever code it is sent). A scheduler address
given by the user is trusted as given: whoever runs that scheduler or can connect to
it can run code on its workers and see the data. ``tls://`` addresses use the TLS
credentials of the Dask configuration (``distributed.comm.tls.*``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ._memory import worker_environ
from ._threads import SweepCancelled, cancellable, check_cancelled
from .utils import atomic_write, progress_bar

CONNECT_TIMEOUT = 5.0  # seconds to wait for a scheduler address to answer
_FORMAT = "neuroalrnn.sweep/2"  # /2: records carry a checksum


def run_tasks(fn: Callable[[dict, Any], dict], tasks: Sequence[dict], *, shared: Any = None,
              scheduler=None, n_jobs: int = 1, results_dir: str | os.PathLike | None = None,
              retries: int = 0, progress: bool = False,
              connect_timeout: float = CONNECT_TIMEOUT, stored: dict | None = None, threads: int = 1) -> list[dict]:
    """Run ``fn(task, shared)`` for every task and return the results in task order.

    Parameters
    ----------
    fn : callable
        ``fn(task, shared) -> dict`` of JSON-serialisable values. Must be importable by
        Dask workers (a module-level function) when a scheduler or ``n_jobs > 1`` is used.
    tasks : sequence of dict
        JSON-serialisable task descriptions, each with a unique string ``"key"``.
    shared : object, optional
        Passed to every call (scattered once to Dask workers).
    scheduler : None, str or distributed.Client
        ``None`` runs in this process (``n_jobs == 1``) or on a fresh
        ``LocalCluster`` of ``n_jobs`` worker processes on loopback; a string is a
        Dask scheduler address; a ``Client`` is used as is (and left open).
    n_jobs : int
        Worker processes of the local cluster when ``scheduler`` is None.
    results_dir : path, optional
        Folder of per-task JSON results; finished tasks found there are not redone.
    retries : int
        Dask retries of a task that raised (worker death is retried by the scheduler
        regardless).
    progress : bool
        Show a progress bar (``neuroalrnn.utils.progress_bar``).
    connect_timeout : float
        Seconds to wait for a scheduler address before raising ``ConnectionError``.
    stored : dict, optional
        The tasks' results the caller already read from ``results_dir`` (:func:`read_stored`),
        so that records are read, and damaged ones reported, once; None reads them here.
    threads : int
        In this process (no scheduler, ``n_jobs == 1``): run this many tasks at once, each in its
        own thread (``fn`` must be thread-safe and release the GIL for its heavy work). When a task
        raises or the caller is interrupted, the others stop at their next training step
        (``neuroalrnn._threads.check_cancelled``) and the error is raised.

    Returns
    -------
    list of dict
        One result dict per task, in the order of ``tasks``.

    Examples
    --------
    >>> def square(task, shared):
    ...     return {"y": task["x"] ** 2 + shared}
    >>> [r["y"] for r in run_tasks(square, [{"key": f"x{i}", "x": i} for i in range(3)], shared=1)]
    [1, 2, 5]
    """
    tasks = [_normalise(task, i) for i, task in enumerate(tasks)]
    keys = [task["key"] for task in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("tasks: every task needs a unique 'key'")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ValueError(f"n_jobs: expected a positive int, got {n_jobs!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads: expected a positive int, got {threads!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries: expected a non-negative int, got {retries!r}")
    store = Path(results_dir) if results_dir is not None else None
    results: dict[str, dict] = {}
    if store is not None:
        if store.exists() and not store.is_dir():
            raise ValueError(f"results_dir: {str(store)!r} exists and is not a folder")
        store.mkdir(parents=True, exist_ok=True)
        results = dict(stored) if stored is not None else read_stored(store, tasks, stacklevel=2)
    todo = [task for task in tasks if task["key"] not in results]
    bar = progress_bar(len(tasks), desc="fits", unit="fit", enabled=progress, initial=len(tasks) - len(todo))

    def finish(task, result):
        if not isinstance(result, dict):
            raise TypeError(f"fn: expected a dict of results, got {type(result).__name__} "
                            f"for task {task['key']!r}")
        result = _jsonable(result, f"result of task {task['key']!r}")
        if store is not None:
            _write(store, task, result)
        results[task["key"]] = result
        bar.update(1)

    try:
        if todo and scheduler is None and n_jobs == 1 and threads > 1 and len(todo) > 1:
            _run_threads(fn, todo, shared, threads, finish)
        elif todo and scheduler is None and n_jobs == 1:
            for task in todo:
                finish(task, fn(task, shared))
        elif todo:
            _run_dask(fn, todo, shared, scheduler, n_jobs, retries, connect_timeout, finish)
    finally:
        bar.close()
    return [results[key] for key in keys]


def _run_threads(fn, todo, shared, threads, finish):
    """``fn`` over ``todo`` in ``threads`` threads of this process; ``finish`` runs here, as tasks end."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    stop = threading.Event()

    def call(task):
        with cancellable(stop):
            check_cancelled()  # a queued task does not start once the sweep stopped
            try:
                return fn(task, shared)
            except BaseException:
                stop.set()  # at once, before this thread takes the next task
                raise

    pool = ThreadPoolExecutor(min(threads, len(todo)), thread_name_prefix="neuroalrnn-sweep")
    futures = {pool.submit(call, task): task for task in todo}
    try:
        for future in as_completed(futures):
            finish(futures[future], future.result())
    except BaseException as error:  # a task failed or Ctrl-C: the running fits stop at their next step
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(error, SweepCancelled):  # stopped by another task's failure: raise that one
            failures = [f.exception() for f in futures if f.done() and not f.cancelled()]
            raise next((e for e in failures if e is not None and not isinstance(e, SweepCancelled)), error)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(fn, todo, shared, scheduler, n_jobs, retries, connect_timeout, finish):
    from distributed import as_completed

    client, owned = connect(scheduler, n_jobs=n_jobs, connect_timeout=connect_timeout)
    futures = []
    try:
        shared_future = client.scatter(shared, broadcast=True, hash=False) if shared is not None else None
        by_future = {}
        for task in todo:
            future = client.submit(fn, task, shared_future, pure=False, retries=retries,
                                   key=f"neuroalrnn-{task['key']}-{os.urandom(4).hex()}")
            by_future[future] = task
            futures.append(future)
        for future in as_completed(futures, loop=client.loop):
            task = by_future[future]
            try:
                result = future.result()
            except Exception as error:
                raise RuntimeError(f"task {task['key']!r} failed: {type(error).__name__}: {error}") from error
            finish(task, result)
    finally:
        for future in futures:
            future.cancel()
        if owned:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()


def connect(scheduler=None, *, n_jobs: int = 1, connect_timeout: float = CONNECT_TIMEOUT):
    """Return ``(client, owned)`` for a scheduler argument.

    ``None`` starts a ``LocalCluster`` of ``n_jobs`` single-threaded worker processes on
    127.0.0.1 without a dashboard, secured with TLS and temporary credentials so that only
    this process can connect (``owned`` is True: the caller closes it); a string connects
    to that scheduler address (checked by :func:`check_address`, trusted as given),
    raising ``ConnectionError`` when nothing answers within ``connect_timeout`` seconds; a
    ``distributed.Client`` is returned as is.

    Examples
    --------
    >>> connect(3.0)
    Traceback (most recent call last):
    ...
    TypeError: scheduler: expected None, a Dask scheduler address (str) or a distributed.Client, got float
    """
    if scheduler is not None and not isinstance(scheduler, str) and not _is_client(scheduler):
        raise TypeError("scheduler: expected None, a Dask scheduler address (str) or a "
                        f"distributed.Client, got {type(scheduler).__name__}")
    from distributed import Client, LocalCluster

    if _is_client(scheduler):
        return scheduler, False
    if isinstance(scheduler, str):
        address = check_address(scheduler)
        try:
            return Client(address, timeout=connect_timeout, set_as_default=False), True
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"scheduler: no Dask scheduler answered at {scheduler!r} within "
                                  f"{connect_timeout:g} s ({error})") from None
    try:
        from distributed.security import Security

        security = Security.temporary()  # a certificate made now, held by this process and its workers only
    except ImportError as error:
        raise ImportError("n_jobs: the local Dask cluster is secured with TLS, which needs the 'cryptography' "
                          f"package (pip install cryptography): {error}") from None
    import dask

    # no dashboard; the scheduler's small HTTP server (health/metrics, read-only) on a free loopback port;
    # the workers keep freed memory as this process does (neuroalrnn._memory), not Dask's trim of 64 KB
    spawn = {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in worker_environ().items()}
    with dask.config.set(spawn):
        cluster = LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                               silence_logs=40, security=security)
    return Client(cluster, set_as_default=False), True


_ADDRESS = re.compile(r"^(?:(?P<protocol>[a-z]+)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})/?$")


def check_address(address: str) -> str:
    """A Dask scheduler address with its protocol (``tcp://`` by default), or a ValueError naming it.

    A ``tls://`` address needs TLS credentials in the Dask configuration
    (``distributed.comm.tls.ca-file``, ``.client.cert``, ``.client.key``).

    Examples
    --------
    >>> check_address("127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    >>> check_address("localhost")
    Traceback (most recent call last):
    ...
    ValueError: scheduler: expected a Dask scheduler address such as tcp://HOST:PORT or tls://HOST:PORT, got 'localhost'
    """
    match = _ADDRESS.match(address.strip())
    protocol = (match["protocol"] or "tcp") if match else None
    if match is None or protocol not in ("tcp", "tls", "ws", "wss", "ucx") or not 0 < int(match["port"]) < 65536:
        raise ValueError("scheduler: expected a Dask scheduler address such as tcp://HOST:PORT or tls://HOST:PORT, "
                         f"got {address!r}")
    if protocol == "tls":
        from distributed.security import Security

        if Security().get_connection_args("client").get("ssl_context") is None:
            raise ValueError(f"scheduler: {address!r} is a TLS address, but the Dask configuration has no TLS "
                             "credentials (distributed.comm.tls.ca-file, .client.cert, .client.key)")
    return f"{protocol}://{match['host']}:{match['port']}"


def _is_client(obj):
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Client)


def _normalise(task, index):
    if not isinstance(task, dict):
        raise TypeError(f"tasks[{index}]: expected a dict, got {type(task).__name__}")
    key = task.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"tasks[{index}]: expected a non-empty string 'key', got {key!r}")
    return _jsonable(task, f"tasks[{index}]")


def _jsonable(obj, what):
    try:
        return json.loads(json.dumps(obj, allow_nan=True, default=_default))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: expected JSON-serialisable values ({error})") from None


def _default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _path(store, key):
    safe = re.sub(r"[^A-Za-z0-9_.=+-]", "_", key)
    if safe != key:  # keep distinct keys apart ("a/b" and "a_b" would share a file and never resume)
        safe += "-" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return store / f"{safe}.json"


def _checksum(task, result):
    canonical = json.dumps([task, result], sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_stored(store, tasks, *, stacklevel: int = 2) -> dict:
    """The stored results of ``tasks`` in ``store`` by key; damaged records are named in one warning.

    A record failing its check (truncated, edited, from another version) is left out, so its task
    is recomputed and the record overwritten.
    """
    found, damaged = {}, []
    for task in tasks:
        result = _read(store, task, damaged)
        if result is not None:
            found[task["key"]] = result
    if damaged:
        warnings.warn(f"results_dir: {len(damaged)} stored result(s) in {str(store)!r} failed their check "
                      f"(truncated, edited or from another version) and are recomputed: "
                      f"{', '.join(damaged[:5])}{' ...' if len(damaged) > 5 else ''}", RuntimeWarning,
                      stacklevel=stacklevel + 1)
    return found


def _read(store, task, damaged: list | None = None):
    """The stored result of ``task``, or None: no record, another task's, or one failing its check.

    The names of records failing their check (truncated, edited, another format) go to ``damaged``.
    """
    path = _path(store, task["key"])
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # unreadable, not UTF-8, truncated JSON
        record = None
    if isinstance(record, dict) and record.get("format") == _FORMAT and record.get("task") != task:
        return None  # written for a different task: recompute and overwrite
    result = record.get("result") if isinstance(record, dict) and record.get("format") == _FORMAT else None
    if not isinstance(result, dict) or record.get("checksum") != _checksum(task, result):
        if damaged is not None:
            damaged.append(path.name)
        return None
    return result


def _write(store, task, result):
    record = {"format": _FORMAT, "task": task, "result": result, "checksum": _checksum(task, result)}
    with atomic_write(_path(store, task["key"])) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
