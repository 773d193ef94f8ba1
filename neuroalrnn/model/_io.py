"""Safe saving and loading of :class:`neuroalrnn.model.ALRNN` (safetensors, no pickle).

The file holds the six parameter tensors; its metadata holds a format tag, the hyper-parameters
and a SHA-256 checksum of the tensors and (from version 2 on) the hyper-parameters, so that a file
of another architecture or an edited file is refused with a ``ValueError`` instead of loading
silently wrong weights or a wrong number of ReLU units. Version 1 files (checksum of the tensors
only) still load.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

FORMAT = "neuroalrnn.ALRNN"
VERSION = "2"
_READABLE = ("1", "2")
_PARAMS = ("A", "W", "h", "C", "B", "b")


def _checksum(tensors: dict, hyper_params: str | None = None) -> str:
    digest = hashlib.sha256()
    if hyper_params is not None:  # version 2: the stored hyper-parameters (JSON text) are covered too
        digest.update(b"hyper_params:" + hyper_params.encode())
    for name in _PARAMS:
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{str(t.dtype)}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_model(model, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically."""
    from safetensors.torch import save_file

    from neuroalrnn.utils import atomic_write

    tensors = {n: getattr(model, n).detach().cpu().contiguous().clone() for n in _PARAMS}
    hp = json.dumps(model.hyper_params())
    meta = {"format": FORMAT, "version": VERSION, "hyper_params": hp,
            "dtype": str(model.A.dtype).replace("torch.", ""), "sha256": _checksum(tensors, hp)}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_model(path: str | os.PathLike, *, device="cpu", dtype=None):
    """Read a model written by :func:`save_model`; see :func:`neuroalrnn.model.load_model`."""
    from safetensors import safe_open

    from neuroalrnn.model import ALRNN

    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no model file at {os.fspath(path)!r}")
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise ValueError(f"path: {os.fspath(path)!r} is not a readable safetensors file "
                         f"(corrupt or tampered): {err}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"path: {os.fspath(path)!r} is not an ALRNN file "
                         f"(metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("version") not in _READABLE:
        raise ValueError(f"path: unsupported ALRNN file version {meta.get('version')!r} (expected one of {_READABLE})")
    if sorted(tensors) != sorted(_PARAMS):
        raise ValueError(f"path: expected tensors {sorted(_PARAMS)}, found {sorted(tensors)} (another architecture?)")
    try:
        hp = json.loads(meta["hyper_params"])
        M, P, K, O = (int(hp[k]) for k in ("n_units", "n_relu", "n_inputs", "n_outputs"))
    except Exception:
        raise ValueError("path: the metadata 'hyper_params' is missing or malformed (tampered file?)") from None
    shapes = dict(A=(M,), W=(M, M), h=(M,), C=(M, K), B=(O, M), b=(O,))
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"path: tensor {name!r} has shape {tuple(tensors[name].shape)}, but the stored "
                             f"hyper-parameters {hp} need {shape} (another architecture or a tampered file)")
    covered = meta["hyper_params"] if meta["version"] != "1" else None
    if meta.get("sha256") != _checksum(tensors, covered):
        raise ValueError(f"path: checksum mismatch in {os.fspath(path)!r}: the weights or hyper-parameters "
                         "were modified after saving")
    if dtype is None:
        dtype = tensors["A"].dtype
    model = ALRNN.from_params(**tensors, n_relu=P, device=device, dtype=dtype)
    model.init = hp.get("init", model.init)
    return model
