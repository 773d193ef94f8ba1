"""Small shared helpers: atomic file writes and seeding."""

from __future__ import annotations

import contextlib
import os
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
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
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
