"""Small shared helpers: atomic file writes, seeding, checking numeric parameters, progress bars."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it into place on success.

    If the block raises (or the process dies), ``path`` is left untouched and
    the temporary file is removed, so a reader never sees a half-written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> with atomic_write(target) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(target).tolist()
    [0, 1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkstemp makes 0600; give the file the usual permissions. After the block: some writers
        # (safetensors) replace the file instead of writing into it, and theirs is 0600 again
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
