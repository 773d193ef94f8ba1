"""Small shared helpers: atomic file writes, seeding, checking numeric parameters, progress bars."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it into place on success.

    If the block raises (or the process dies), ``path`` is left untouched and
    the temporary file is removed, so a reader never sees a half-written file.
    A write that failed because the disk is full or read-only raises an
    ``OSError`` saying so (see :func:`atomic_writes`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> with atomic_write(target) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(target).tolist()
    [0, 1, 2]
    """
    with atomic_writes(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_writes(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Write files that belong together: all of them are moved into place, or none.

    Yields one temporary path next to each of ``paths``; once the block has written
    every one they are moved into place in the order given (put the file that marks a
    complete set, e.g. a manifest, last). If the block raises or the process dies,
    nothing is moved and the temporary files are removed. Temporary files that a
    killed process left behind (``.<name>.*.tmp*`` beside a target) are removed by the
    next write into that folder. When a write fails because the disk is full or
    read-only, the error is an ``OSError`` with that ``errno`` and the file's name,
    whatever the writing library raised (netCDF4 says "permission denied" for a full
    disk, safetensors and torch raise their own errors).

    Examples
    --------
    >>> import json, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_writes(os.path.join(folder, "data.txt"), os.path.join(folder, "done.json")) as (data, done):
    ...     _ = data.write_text("1 2 3")
    ...     _ = done.write_text(json.dumps({"files": ["data.txt"]}))
    >>> sorted(os.listdir(folder))
    ['data.txt', 'done.json']
    """
    paths = [Path(p) for p in paths]
    umask = os.umask(0)
    os.umask(umask)
    tmps: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            if str(path.parent.resolve()) not in _CLEANED:
                remove_stale_temps(path.parent)
            with _TEMPS_LOCK:  # live before another thread's remove_stale_temps can see it
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_temp_tag()}", suffix=".tmp" + path.suffix,
                                           dir=path.parent)
                os.close(fd)
                tmps.append(Path(tmp))
                _LIVE.add(os.path.basename(tmp))
        try:
            yield tmps
            # mkstemp makes 0600; give the files the usual permissions. After the block: some writers
            # (safetensors) replace the file instead of writing into it, and theirs is 0600 again
            for tmp in tmps:
                os.chmod(tmp, 0o666 & ~umask)
        except Exception as err:
            problem = disk_error(err, paths[0] if len(paths) == 1 else paths[0].parent)
            if problem is not None:
                raise problem from err
            raise
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            _LIVE.discard(tmp.name)
            with contextlib.suppress(OSError):
                tmp.unlink()


# temporary files of atomic writes: ".<name>.nrtmp-<host>-<pid>-<random>.tmp<suffix>", so the next
# write can tell a dead writer's leftovers from a live one's
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:nrtmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-)?"
                   r"[A-Za-z0-9_]{8}\.tmp(?P<suffix>.*)$")
_LIVE: set[str] = set()  # names of the temporary files this process is writing now (unique: host, pid, random)
_CLEANED: set[str] = set()  # folders already cleaned by this process
_TEMPS_LOCK = threading.Lock()  # a sweep's threads write into one folder
# a temporary file another machine (a shared folder) or an older neuroalrnn left is stale after a day
STALE_AFTER = 24 * 3600.0
# free space below which a failed write is put down to a full disk
FULL_BELOW = 1 << 20


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _temp_tag() -> str:
    return f"nrtmp-{_host()}-{os.getpid()}-"


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``folder``; return them.

    A temporary file is stale when the process that wrote it (named in the file's name)
    is gone, or when it came from another machine or an older version over
    ``STALE_AFTER`` seconds ago. Files of live writers are kept.

    Examples
    --------
    >>> import tempfile
    >>> remove_stale_temps(tempfile.mkdtemp())
    []
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    _CLEANED.add(str(folder.resolve()))
    now = time.time()
    with _TEMPS_LOCK:
        return _remove_stale(entries, now)


def _remove_stale(entries, now) -> list[Path]:
    removed = []
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or not match["name"].endswith(match["suffix"]) or entry.name in _LIVE:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or not _stale(entry, match, now):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _stale(entry, match, now) -> bool:
    mtime = entry.stat(follow_symlinks=False).st_mtime
    if match["pid"] is None or match["host"] != _host():  # an older version's, or another machine's
        return now - mtime > STALE_AFTER
    pid = int(match["pid"])
    if pid == os.getpid():
        return True  # not among this process's live files (checked by the caller)
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    try:
        return psutil.Process(pid).create_time() > mtime + 1.0  # the pid now belongs to a younger process
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def disk_error(err: BaseException, path: str | os.PathLike) -> OSError | None:
    """The ``OSError`` behind a failed write of ``path`` when its disk is the cause, else None.

    Looks at the folder (read-only mount; less than ``FULL_BELOW`` bytes free) and at the
    error and its causes (an errno, or the "os error N" / "errno = N" text of Rust and HDF5
    writers): no space, quota exceeded, read-only file system, permission denied.

    Examples
    --------
    >>> import tempfile, os
    >>> disk_error(RuntimeError("boom"), os.path.join(tempfile.mkdtemp(), "x")) is None
    True
    >>> disk_error(RuntimeError("I/O error: No space left on device (os error 28)"), "x").strerror
    'No space left on device'
    """
    if isinstance(err, (TypeError, ValueError, KeyError, AttributeError)) and not isinstance(err, OSError):
        return None  # a program or data error, whatever the disk's state
    code = None
    with contextlib.suppress(OSError, AttributeError):  # no statvfs on Windows
        disk = os.statvfs(path if os.path.isdir(path) else Path(path).parent)
        if disk.f_flag & os.ST_RDONLY:
            code = errno.EROFS
        elif (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) * disk.f_frsize < FULL_BELOW:
            code = errno.ENOSPC  # netCDF4 reports a full disk as EACCES
    seen = set()
    while code is None and err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
            code = err.errno
        else:
            found = re.search(r"os error (\d+)|errno = (\d+)", str(err))
            if found and int(found[1] or found[2]) in _DISK_ERRNOS:
                code = int(found[1] or found[2])
        err = err.__cause__ or err.__context__
    return None if code is None else OSError(code, os.strerror(code), str(path))


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says; else all).

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_random_state(seed) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from ``None``, an int or a Generator.

    Examples
    --------
    >>> bool(check_random_state(0).integers(10) == check_random_state(0).integers(10))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected None, an int or a numpy Generator, got {type(seed).__name__}")


def torch_generator(seed, device="cpu"):
    """Return a seeded ``torch.Generator`` (``None`` seed gives a random one).

    ``seed`` is ``None``, an int, or a numpy Generator (which draws the torch seed).

    Examples
    --------
    >>> import torch
    >>> bool(torch.rand(2, generator=torch_generator(0)).equal(torch.rand(2, generator=torch_generator(0))))
    True
    """
    import torch

    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(check_random_state(seed).integers(2**62)) if isinstance(seed, np.random.Generator) else int(seed))
    return gen


def check_number(name: str, value, low=None, high=None, *, open_low: bool = False, optional: bool = False,
                 expected: str | None = None) -> float | None:
    """``value`` as a finite float in [low, high] ((low, high] with ``open_low``), else an error naming ``name``.

    A TypeError for what is not a number (bools included), a ValueError for a number out of range;
    ``None`` passes when ``optional``. ``expected`` replaces the generated description in messages.

    Examples
    --------
    >>> check_number("lr", 0.01, 0, open_low=True)
    0.01
    >>> check_number("lr", 0, 0, open_low=True)
    Traceback (most recent call last):
    ...
    ValueError: lr: expected a finite number > 0, got 0.0
    """
    if value is None and optional:
        return None
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        value = value.item()  # a 0-d numeric array is a number
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        what = expected or ("None or a number" if optional else "a number")
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (np.isfinite(value) and (low is None or value > low or (value == low and not open_low))
            and (high is None or value <= high)):
        bounds = [] if low is None else [f"{'>' if open_low else '>='} {low}"]
        bounds += [] if high is None else [f"<= {high}"]
        what = expected or f"a finite number {' and '.join(bounds)}".rstrip()
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return value


# seconds between two updates of a bar whose stream is not a terminal (a log file, CI output)
LOG_INTERVAL = 30.0


def _interactive(stream) -> bool:
    """True for a terminal or a Jupyter output stream (both redraw a bar in place)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(total: int | None = None, *, desc: str | None = None, unit: str = "it", enabled: bool = True,
                 leave: bool = False, file=None, **kwargs):
    """A tqdm progress bar that does not flood logs: the one place the package makes bars.

    On a terminal or in Jupyter the bar redraws in place as usual. Where the stream is
    anything else (output redirected to a file, CI), tqdm's carriage-return updates would
    pile up, so the bar waits ``LOG_INTERVAL`` seconds before its first line and redraws at
    most once per ``LOG_INTERVAL``: a short fit writes nothing, a long one a line every 30 s.

    Parameters
    ----------
    total : int, optional
        Number of updates expected.
    desc, unit : str
        Label and unit shown by the bar.
    enabled : bool
        False gives a disabled bar (its methods do nothing), so callers need no branches.
    leave : bool
        Keep the finished bar on screen.
    file : stream, optional
        Where to draw; default ``sys.stderr``.
    **kwargs
        Passed to ``tqdm.tqdm``.

    Examples
    --------
    >>> import io
    >>> log = io.StringIO()                   # not a terminal: quiet for short work
    >>> with progress_bar(100, desc="fit", file=log) as bar:
    ...     for _ in range(100):
    ...         bar.update(1)
    >>> log.getvalue()
    ''
    >>> progress_bar(10, enabled=False).disable
    True
    """
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if enabled and not _interactive(stream):
        kwargs = {"mininterval": LOG_INTERVAL, "maxinterval": LOG_INTERVAL, "delay": LOG_INTERVAL,
                  "ncols": 100, **kwargs}
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=leave, file=stream, **kwargs)
