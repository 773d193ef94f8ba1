"""Full float32 in the recurrence's torch ops: no TF32 (or bf16) behind the user's back.

PyTorch lets float32 GEMMs run in lower precision: cuDNN RNNs use TF32 on Ampere and Hopper GPUs
by default (``torch.backends.cudnn.rnn.fp32_precision == "tf32"``, the legacy
``torch.backends.cudnn.allow_tf32``), and cuBLAS matmuls or oneDNN on CPU do when the user asks
(``torch.set_float32_matmul_precision("high")``, ``torch.backends.cuda.matmul.allow_tf32``,
``torch.backends.mkldnn.*.fp32_precision``). TF32 keeps 10 mantissa bits: ~1e-3 relative error per
step, which breaks the backends' claim to compute the recurrence exactly. :func:`full_precision`
sets these to full precision ("ieee") for a block and restores the user's values after, also on
error; :func:`pinned` runs a differentiable function that way in its forward *and* its backward
(autograd runs the backward after the forward's block has been left).
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch.autograd.function import once_differentiable

_LOCK = threading.Lock()
_STATE = {"depth": 0, "saved": []}  # nested and concurrent blocks: the first saves, the last restores


def _settings():
    """(name, object, attribute, full value) of each setting that can lower float32 precision."""
    b = torch.backends
    if hasattr(getattr(b.cudnn, "rnn", None), "fp32_precision"):  # torch >= 2.9: per-operation settings
        found = [("cudnn.rnn", b.cudnn.rnn), ("cuda.matmul", b.cuda.matmul),
                 ("mkldnn.rnn", getattr(b.mkldnn, "rnn", None)), ("mkldnn.matmul", getattr(b.mkldnn, "matmul", None))]
        return [(name, obj, "fp32_precision", "ieee") for name, obj in found if obj is not None]
    return [("cudnn", b.cudnn, "allow_tf32", False), ("cuda.matmul", b.cuda.matmul, "allow_tf32", False)]


def lowered(device: torch.device) -> bool:
    """Whether float32 GEMMs on ``device`` may currently run below full precision."""
    prefixes = ("cudnn", "cuda") if device.type == "cuda" else ("mkldnn",)
    return any(name.startswith(prefixes) and getattr(obj, attr) not in (full, "none")
               for name, obj, attr, full in _settings())


@contextlib.contextmanager
def full_precision():
    """Within the block, float32 GEMMs (cuDNN, cuBLAS, oneDNN) run in full precision.

    Examples
    --------
    >>> import torch
    >>> with full_precision():
    ...     lowered(torch.device("cuda")) or lowered(torch.device("cpu"))
    False
    """
    with _LOCK:
        if _STATE["depth"] == 0:
            saved = []
            try:
                for _, obj, attr, full in _settings():
                    before = getattr(obj, attr)
                    if before not in (full, "none"):  # "none": inherits full precision
                        setattr(obj, attr, full)
                        saved.append((obj, attr, before))
            except BaseException:
                for obj, attr, before in reversed(saved):
                    setattr(obj, attr, before)
                raise
            _STATE["saved"] = saved
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                for obj, attr, before in reversed(_STATE["saved"]):
                    setattr(obj, attr, before)
                _STATE["saved"] = []


class _Replay(torch.autograd.Function):
    """Hands on a graph built in full precision, and runs its backward in full precision too."""

    @staticmethod
    def forward(ctx, graph, *inputs):
        ctx.graph = graph
        return graph[0].detach()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        out, leaves = ctx.graph
        del ctx.graph  # the inner graph's buffers are freed by its backward, as autograd does
        want = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
        with full_precision():
            got = iter(torch.autograd.grad(out, want, grad, allow_unused=True))
        return (None, *(next(got) if isinstance(x, torch.Tensor) and x.requires_grad else None for x in leaves))


def pinned(fn, *inputs):
    """``fn(*inputs)`` with full-precision GEMMs in its forward and its backward (first order only).

    ``fn`` returns a tensor or None. Without grad, or when nothing on the inputs' device can run
    below full precision, ``fn`` simply runs.
    """
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if not lowered(tensors[0].device):
        return fn(*inputs)
    if not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors)):
        with full_precision():
            return fn(*inputs)
    leaves = [x.detach().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x for x in inputs]
    with full_precision():
        out = fn(*leaves)
    if out is None or not out.requires_grad:
        return out
    return _Replay.apply((out, leaves), *inputs)
