"""Safe saving and loading of :class:`neuroalrnn.model.ALRNN` (safetensors, no pickle).

The file holds the six parameter tensors; its metadata holds a format tag, the hyper-parameters
and a SHA-256 checksum of the tensors, so that a file of another architecture or a tampered file
is refused with a ``ValueError`` instead of loading silently wrong weights.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

FORMAT = "neuroalrnn.ALRNN"
VERSION = "1"
_PARAMS = ("A", "W", "h", "C", "B", "b")


def _checksum(tensors: dict) -> str:
    digest = hashlib.sha256()
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
    meta = {"format": FORMAT, "version": VERSION, "hyper_params": json.dumps(model.hyper_params()),
            "dtype": str(model.A.dtype).replace("torch.", ""), "sha256": _checksum(tensors)}
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
    if meta.get("version") != VERSION:
        raise ValueError(f"path: unsupported ALRNN file version {meta.get('version')!r} (expected {VERSION!r})")
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
    if meta.get("sha256") != _checksum(tensors):
        raise ValueError(f"path: checksum mismatch in {os.fspath(path)!r}: the weights were modified after saving")
    if dtype is None:
        dtype = tensors["A"].dtype
    model = ALRNN.from_params(**tensors, n_relu=P, device=device, dtype=dtype)
    model.init = hp.get("init", model.init)
    return model
