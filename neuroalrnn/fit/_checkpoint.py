"""Training checkpoints: what they hold, and the check that a resume continues the same run.

A checkpoint (``torch.save`` of state dicts and plain values, read back with
``weights_only=True``) holds the model, optimizer, scheduler and RNG states, the
history and the best parameters so far, and a *fingerprint*: the settings of
``RESUME_SETTINGS``, a hash of the training and validation tensors and a hash of
the model's initial parameters. A resume whose fingerprint differs is refused
with a message naming every change: the saved optimizer state would otherwise
silently override a new learning rate, and a changed dataset or initialisation
would continue the old run under a new name.
"""

from __future__ import annotations

import hashlib

import torch

from neuroalrnn.utils import atomic_write

CHECKPOINT_VERSION = 2
# settings a resumed run must share with its checkpoint (n_steps may grow; patience and progress may change)
RESUME_SETTINGS = ("optimizer", "lr", "lr_decay", "weight_decay", "clip_grad_norm", "batch_size", "eval_every",
                   "select_metric", "select_mode", "seed")


def digest(*tensor_dicts) -> str:
    """A hash of tensors (names, dtypes, shapes and bytes): cheap next to training on them."""
    h = hashlib.blake2b(digest_size=16)
    for tensors in tensor_dicts:
        for name in sorted(tensors or {}):
            t = tensors[name].detach()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            if t.numel():
                h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        h.update(b"|")
    return h.hexdigest()


def fingerprint(settings, model, train, val) -> dict:
    """What a checkpoint was written for: settings, data and the model's initial parameters."""
    return {"settings": dict(settings), "train": digest(train), "val": digest(val) if val is not None else None,
            "init": digest(model.state_dict())}


def _cuda_rng() -> list:
    """The CUDA generators' states (empty where CUDA was never used in this process)."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []


def save_checkpoint(path, model, opt, sched, state, best_state, fp):
    blob = {"version": CHECKPOINT_VERSION, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(), "fingerprint": fp,
            "state": {k: v for k, v in state.items() if k != "history"},
            "history": {k: [row.get(k, float("nan")) for row in state["history"]]
                        for k in dict.fromkeys(k for row in state["history"] for k in row)},
            "best_model": best_state}
    with atomic_write(path) as tmp:
        torch.save(blob, tmp)


def _changes(blob, fp) -> list[str]:
    """What differs between the checkpoint's fingerprint and this run's ``fp``."""
    saved = blob["fingerprint"]
    changes = [f"{name} changed (saved {saved['settings'].get(name)!r}, now {value!r})"
               for name, value in fp["settings"].items() if saved["settings"].get(name) != value]
    if saved["train"] != fp["train"]:
        changes.append("the training data changed")
    if saved["val"] != fp["val"]:
        changes.append("the validation data changed" if saved["val"] and fp["val"]
                       else f"validation data {'added' if fp['val'] else 'removed'}")
    # the initial parameters, or those this checkpoint left the model with (training on in one session)
    if saved["init"] != fp["init"] and fp["init"] not in (
            digest(blob["model"]), digest(blob["best_model"]) if blob["best_model"] else None):
        changes.append("the model's initial parameters changed (another seed or init?)")
    return changes


def load_checkpoint(path, model, opt, sched, state, fp):
    """Restore the states of a checkpoint written for the fingerprint ``fp``; return its best parameters."""
    try:
        blob = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - a tampered or foreign file
        raise ValueError(f"checkpoint: could not read {str(path)!r} as a training checkpoint ({err})") from err
    if isinstance(blob, dict) and blob.get("version") == 1:
        raise ValueError(f"checkpoint: {str(path)!r} was written by an older neuroalrnn that did not record its "
                         "settings; delete it to train afresh")
    if not isinstance(blob, dict) or blob.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint: {str(path)!r} is not a neuroalrnn training checkpoint")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in blob["model"].items()}
    if shapes != saved:
        differ = sorted(k for k in shapes.keys() | saved.keys() if shapes.get(k) != saved.get(k))
        raise ValueError(f"checkpoint: {str(path)!r} was written for another model (parameters {differ[:4]} "
                         "differ); delete it or resume with the same model")
    changes = _changes(blob, fp)
    if changes:
        raise ValueError(f"checkpoint: {'; '.join(changes)}; delete {str(path)!r} or resume with the same "
                         "settings")
    fp["init"] = blob["fingerprint"]["init"]  # the same run: later checkpoints keep its start
    try:
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"checkpoint: {str(path)!r} does not match this model/optimizer ({err})") from err
    sched.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    cuda_rng = blob.get("cuda_rng") or []
    if cuda_rng and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_rng):
        torch.cuda.set_rng_state_all(cuda_rng)  # forcing noise and windows drawn on the GPU resume identically
    state.update(blob["state"])
    hist = blob["history"]
    n = len(next(iter(hist.values()))) if hist else 0
    state["history"] = [{k: v[i] for k, v in hist.items()} for i in range(n)]
    return blob["best_model"]


def ensemble_fingerprint(label, settings, tables, train_index, val_index, seeds) -> dict:
    """What an ensemble checkpoint was written for: the caller's label, settings, data tables, trials, seeds."""
    def indices(index):
        return None if index is None else digest({str(k): torch.as_tensor(list(map(int, i))) for k, i in
                                                  enumerate(index)})
    return {"label": str(label), "settings": {k: repr(v) for k, v in settings.items()}, "data": digest(*tables),
            "train": indices(train_index), "val": indices(val_index), "seeds": [int(s) for s in seeds]}


def ensemble_changes(saved, now) -> list[str]:
    """What differs between an ensemble checkpoint's fingerprint and this run's (see ensemble_fingerprint)."""
    if not isinstance(saved, dict):
        return ["it was written without a fingerprint of its data and settings"]
    changed = [name for name in now["settings"] if saved.get("settings", {}).get(name) != now["settings"][name]]
    changes = [f"{', '.join(changed)} changed"] if changed else []
    names = {"label": "the fingerprint label", "data": "the data", "train": "the training trials",
             "val": "the validation trials", "seeds": "the seeds"}
    return changes + [f"{text} changed" for key, text in names.items() if saved.get(key) != now[key]]
