"""What the command line writes, and the checks that make its failures one line before any work is lost.

Outputs are checked before any fitting (a folder that cannot be made, a read-only or
full disk); a fit's files are written as one set (``utils.atomic_writes``): the model,
the observation model, the history and ``fit.json`` last, so a failed write leaves the
previous set (or nothing) and never a model without its ``fit.json``.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from neuroalrnn.utils import FULL_BELOW, atomic_writes


class UsageError(Exception):
    """A problem with what the user asked for, reported in one line."""


_REASONS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder", errno.ENOENT: "no such file or folder"}


def reason(err: OSError) -> str:
    """A short lower-case reason for an OSError (its errno's, else its text)."""
    return _REASONS.get(err.errno) or (err.strerror or str(err)).lower()


def _free_bytes(folder) -> int | None:
    try:
        disk = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) * disk.f_frsize


def check_output(path, option: str, *, folder: bool) -> Path:
    """``path`` if an output can be written there (a folder or a file), else a UsageError naming ``option``.

    Nothing is created: the nearest existing folder on the way must be a writable folder
    with at least ``utils.FULL_BELOW`` bytes free.
    """
    path = Path(path)
    if path.exists() and folder and not path.is_dir():
        raise UsageError(f"{option}: {path} exists and is not a folder")
    if path.is_dir() and not folder:
        raise UsageError(f"{option}: {path} is a folder; expected a file name")
    existing = path if path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option}: cannot create {path}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".neuroalrnn-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{option}: cannot write in {existing}: {reason(err)}") from None
    free = _free_bytes(existing)
    if free is not None and free < FULL_BELOW:
        raise UsageError(f"{option}: no space left on the device of {existing} ({free // 1024} KiB free)")
    return path


def option_for(filename, args) -> str | None:
    """The command-line option whose path ``filename`` is or lies in (``--out``, ``--results-dir``, ...)."""
    if not filename:
        return None
    target = Path(os.path.abspath(filename))
    for option, value in (("--out", getattr(args, "out", None)), ("--results-dir", getattr(args, "results_dir", None)),
                          ("--config", getattr(args, "config", None))):
        if value is not None:
            value = Path(os.path.abspath(value))
            if target == value or value in target.parents:
                return option
    return None


def _save_model(model, path):
    if hasattr(model, "save"):
        model.save(path)
        return
    from safetensors.torch import save_file  # a model without its own format (the GRU): its state dict

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": f"torch.state_dict/{type(model).__name__}"})


def write_fit(out: Path, model, observed, history, report: dict) -> list[str]:
    """Write a fit's files into ``out`` as one set; returns their names (``fit.json`` last).

    ``observed`` is the teacher-forcing module (observation model, z-scoring) or None.
    """
    names = ["model.safetensors"] + (["observation.safetensors"] if observed is not None else [])
    names += ["history.csv", "fit.json"]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_writes(*(out / name for name in names)) as tmps:
        files = dict(zip(names, tmps))
        _save_model(model, files["model.safetensors"])
        if observed is not None:
            from safetensors.torch import save_file

            state = {k: v.detach().cpu().contiguous() for k, v in observed.state_dict().items()
                     if not k.startswith("model.")}
            save_file(state, str(files["observation.safetensors"]))
        history.to_csv(files["history.csv"])
        files["fit.json"].write_text(json.dumps({**report, "files": names[:-1]}, indent=2))
        # the new set is complete: an old fit.json must not vouch for the files being replaced
        for stale in ["fit.json"] + ([] if observed is not None else ["observation.safetensors"]):
            (out / stale).unlink(missing_ok=True)
    return names
