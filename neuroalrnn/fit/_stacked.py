"""Elementwise optimisers and gradient clipping over parameters stacked on a leading model dim.

An ensemble's parameters are tensors (K, ...) whose slice k belongs to model k. Adam and RAdam are
elementwise, so one update over the stacked tensors with a per-model learning rate gives each model
exactly the update ``torch.optim.Adam`` / ``torch.optim.RAdam`` would give it alone (the same
formulas, in the same order: ``torch/optim/adam.py`` and ``radam.py``, single-tensor path, without
amsgrad); the exponential learning-rate decay is ``torch.optim.lr_scheduler.ExponentialLR``'s
(one multiplication per step, in float64). Clipping follows ``torch.nn.utils.clip_grad_norm_``
per model: the 2-norm of the norms of the model's slices of every gradient.
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("adam", "radam")
BETAS, EPS = (0.9, 0.999), 1e-8


def _view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) values shaped (K, 1, ..., 1) to broadcast against ``like`` (K, ...), in ``like``'s dtype."""
    return values.to(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def model_norms(tensors) -> torch.Tensor:
    """Per model, the 2-norm over every tensor's slice k (as ``clip_grad_norm_`` computes it): (K,).

    Examples
    --------
    >>> import torch
    >>> model_norms([torch.tensor([[3.0], [0.0]]), torch.tensor([[4.0, 0.0], [1.0, 0.0]])]).tolist()
    [5.0, 1.0]
    """
    norms = torch.stack([torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1) for t in tensors])
    return torch.linalg.vector_norm(norms, dim=0)


def clip_coefficients(norms: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """``min(max_norm / (norm + 1e-6), 1)`` per model (inf ``max_norm``: no clipping)."""
    return torch.clamp(max_norm.to(norms.dtype) / (norms + 1e-6), max=1.0)


class StackedOptimizer:
    """Adam or RAdam over stacked parameters, with a learning rate, decay and weight decay per model.

    Parameters
    ----------
    params : list of Tensor
        Parameters (K, ...), updated in place.
    kind : {"adam", "radam"}
    lr, lr_decay, weight_decay : Tensor (K,)
        float64; ``lr`` is multiplied by ``lr_decay`` after every update of that model.

    Examples
    --------
    >>> import torch
    >>> p = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = StackedOptimizer([p], "adam", torch.tensor([0.1, 0.0], dtype=torch.float64))
    >>> p.grad = torch.ones(2, 3)
    >>> opt.step(torch.tensor([True, True]))
    >>> [round(v, 6) for v in p[:, 0].tolist()]  # model 1 has lr 0: unchanged
    [0.9, 1.0]
    """

    def __init__(self, params, kind: str, lr: torch.Tensor, lr_decay: torch.Tensor | None = None,
                 weight_decay: torch.Tensor | None = None):
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {kind!r}")
        self.params, self.kind = list(params), kind
        K = self.params[0].shape[0]
        f64 = dict(dtype=torch.float64, device=self.params[0].device)
        self.lr = lr.to(**f64).clone()
        self.lr_decay = torch.ones(K, **f64) if lr_decay is None else lr_decay.to(**f64)
        self.weight_decay = None if weight_decay is None or not bool((weight_decay != 0).any()) \
            else weight_decay.to(**f64)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.n_updates = 0

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One update of the models where ``active`` (bool (K,)) is True; the others keep their values.

        Each parameter's ``.grad`` is read (it must be finite for the active models).
        """
        self.n_updates += 1
        beta1, beta2 = BETAS
        step = self.n_updates
        bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
        lr = self.lr if active is None else torch.where(active, self.lr, torch.zeros_like(self.lr))
        if self.kind == "adam":
            scale = lr / bias1
        else:
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * step * (beta2 ** step) / bias2
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5 \
                if rho_t > 5.0 else None
        # torch._foreach_* ops: the same elementwise kernels in the same order as one op per tensor
        # (so the same bits), with one Python dispatch per op for all parameters
        params, m, v = self.params, self.exp_avg, self.exp_avg_sq
        grads = [p.grad for p in params]
        if self.weight_decay is not None:
            grads = torch._foreach_add(grads, torch._foreach_mul(params, [_view(self.weight_decay, p) for p in params]))
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        if self.kind == "adam":
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bias2 ** 0.5)
            torch._foreach_add_(denom, EPS)
            update = torch._foreach_div(m, denom)
            torch._foreach_mul_(update, [_view(scale, p) for p in params])
        else:
            update = torch._foreach_div(m, bias1)
            torch._foreach_mul_(update, [_view(lr, p) for p in params])
            if rect is not None:  # RAdam, rectified (else its first steps: momentum SGD)
                adaptive = torch._foreach_sqrt(v)
                torch._foreach_add_(adaptive, EPS)
                adaptive = torch._foreach_reciprocal(adaptive)  # bias2 ** 0.5 / x, as torch computes it
                torch._foreach_mul_(adaptive, bias2 ** 0.5)
                torch._foreach_mul_(update, adaptive)
                torch._foreach_mul_(update, rect)
        torch._foreach_sub_(params, update)
        decay = self.lr_decay if active is None else torch.where(active, self.lr_decay, torch.ones_like(self.lr))
        self.lr.mul_(decay)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "lr": self.lr, "lr_decay": self.lr_decay, "n_updates": self.n_updates,
                "exp_avg": list(self.exp_avg), "exp_avg_sq": list(self.exp_avg_sq)}

    def load_state_dict(self, state: dict) -> None:
        if state["kind"] != self.kind or len(state["exp_avg"]) != len(self.params):
            raise ValueError("checkpoint: the optimizer state does not match this ensemble's optimizer")
        with torch.no_grad():
            self.lr.copy_(state["lr"])
            for mine, saved in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
                if mine.shape != saved.shape:
                    raise ValueError("checkpoint: the optimizer state does not match this ensemble's parameters")
                mine.copy_(saved)
        self.n_updates = int(state["n_updates"])
