"""The ``"rnn"`` backend of :func:`neuroalrnn.model.recurrence.alrnn_scan`: an AL-RNN as a 2M-unit ReLU RNN.

With ``z = relu(z) - relu(-z)`` and hidden ``u = [relu(z); relu(-z)]``, the AL-RNN step is
``u_t = relu(w_hh u_{t-1} + w_ih x_t)``, ``w_hh = [[K], [-K]]``, ``w_ih = [[I], [-I]]``, ``x_t`` the
drive, so one fused ``nn.RNN(nonlinearity="relu")`` call (cuDNN on GPU, oneDNN on CPU) runs the
whole time loop. The first step of each call is done with plain torch ops, so the gradient with
respect to the initial state is exact. Forcing:

* constant alpha on linear units (N <= M - P) folds into ``K`` and an extra input term;
* sparse forcing (few steps with alpha != 0; any alpha values, per trial) restarts the recurrence
  at each such step, mixing each trial with its own alpha: one fused call per interval;
* anything else is not handled here (``plan`` returns None and the caller uses another backend).

Because relu'(0) = 0 in both halves, a state that is exactly 0 would lose its gradient. When
gradients are needed and such a state occurs (z0 = 0, h = 0 and zero inputs at initialisation do
this), ``rnn_scan`` returns None and the caller redoes the call with an exact backend. It does the
same when a state is NaN or infinite, so that NaN and inf follow the exact backends' (torch's)
rules whatever cuDNN or oneDNN do with them.

Ensembles (K models): one fused call per model (a block-diagonal RNN of 2KM units would be one call
but cost K times the FLOPs of K calls, K^2 in all; ``"auto"`` sends K > 1 to the Triton kernels,
one launch for all models, where they fit).
"""

from __future__ import annotations

import warnings

import torch

from neuroalrnn.model.recurrence import _phi


def rnn_identity_weights(A: torch.Tensor, W: torch.Tensor, n_relu: int, n_force: int = 0,
                         alpha=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(w_ih, w_hh)`` of the 2M-unit ReLU RNN equivalent to the AL-RNN.

    ``u_t = relu(w_ih x_t + w_hh u_{t-1})`` and ``z_t = u_t[:M] - u_t[M:]``. With constant-alpha
    forcing of the first ``n_force`` (linear) units, ``K`` uses the forced previous state and the
    caller adds ``alpha * (diag(A) + W)[:, :n_force] f_t`` to the drive.

    Examples
    --------
    >>> import torch
    >>> w_ih, w_hh = rnn_identity_weights(torch.full((2,), 0.5), torch.zeros(2, 2), 1)
    >>> tuple(w_ih.shape), tuple(w_hh.shape)
    ((4, 2), (4, 4))
    """
    M = A.shape[0]
    lin = torch.zeros(M, dtype=A.dtype, device=A.device)
    lin[:M - n_relu] = 1
    G = torch.diag(A) + W * lin  # acts on z itself: A and the linear units' columns of W
    Wr = W * (1 - lin)           # acts on relu(z) of the ReLU units
    if n_force:
        a = torch.as_tensor(alpha, dtype=A.dtype, device=A.device).reshape(())
        keep = torch.cat([(1 - a).expand(n_force), torch.ones(M - n_force, dtype=A.dtype, device=A.device)])
        G = G * keep
    K = torch.cat([G + Wr, -G], dim=1)
    eye = torch.eye(M, dtype=A.dtype, device=A.device)
    return torch.cat([eye, -eye], dim=0), torch.cat([K, -K], dim=0)


def plan(force, const_alpha, alpha_bt, n_relu: int, M: int) -> str | None:
    """'plain', 'const' or 'sparse' when this backend can run one model's case well, else None.

    ``const_alpha`` is the model's alpha when it is one value for all trials and steps (else None),
    ``alpha_bt`` its (B, T) alpha. 'sparse' restarts the fused call at every step where any trial
    is forced (alpha != 0), mixing each trial with its own alpha there: exact for any alpha,
    worthwhile when those steps are few (at most a quarter of them).
    """
    if force is None:
        return "plain"
    if const_alpha is not None and force.shape[-1] <= M - n_relu:
        return "const"
    if alpha_bt.requires_grad:
        return None  # d/dalpha is not 0 where alpha is 0: every step would need the mixing
    n_on = int((alpha_bt.detach() != 0).any(0).sum())
    return "sparse" if n_on <= alpha_bt.shape[1] // 4 else None


def _first_step(z0, drive0, A, W, n_lin, force0=None, alpha=None):
    prev = z0
    if force0 is not None:
        N = force0.shape[1]
        prev = torch.cat([(1 - alpha) * prev[:, :N] + alpha * force0, prev[:, N:]], dim=1)
    return A * prev + _phi(prev, n_lin) @ W.T + drive0


def _segment(z0, drive, A, W, n_relu, force=None, alpha=None):
    """Const-alpha (or unforced) run: explicit first step, then one fused ReLU-RNN call."""
    M = A.shape[0]
    n_lin = M - n_relu
    n_force = 0 if force is None else force.shape[2]
    if n_force:
        alpha = torch.as_tensor(1.0 if alpha is None else alpha, dtype=A.dtype, device=A.device).reshape(())
    z1 = _first_step(z0, drive[:, 0], A, W, n_lin, force[:, 0] if n_force else None, alpha)
    if drive.shape[1] == 1:
        return z1[:, None]
    rest = drive[:, 1:]
    if n_force:
        G = torch.diag(A)[:, :n_force] + W[:, :n_force]  # forced units are linear units
        rest = rest + alpha * (force[:, 1:] @ G.T)
    w_ih, w_hh = rnn_identity_weights(A, W, n_relu, n_force, alpha)
    hx = torch.cat([torch.relu(z1), torch.relu(-z1)], dim=1).unsqueeze(0)
    with warnings.catch_warnings():  # cuDNN: "weights are not part of single contiguous chunk"
        warnings.simplefilter("ignore", UserWarning)
        out, _ = torch._VF.rnn_relu(rest.contiguous(), hx.contiguous(), [w_ih, w_hh], False, 1, 0.0,
                                    torch.is_grad_enabled(), False, True)
    return torch.cat([z1[:, None], out[..., :M] - out[..., M:]], dim=1)


def _model_scan(z0, drive, A, W, n_relu, force, const_alpha, alpha_bt, how: str):
    """One model's states (B, T, M) by the plan ``how``."""
    if how != "sparse":
        return _segment(z0, drive, A, W, n_relu, force if how == "const" else None, const_alpha)
    T, N = drive.shape[1], force.shape[2]
    on = (alpha_bt.detach() != 0).any(0).cpu().tolist()
    starts = [0] + [t for t in range(1, T) if on[t]] + [T]
    prev, pieces = z0, []
    for s, e in zip(starts[:-1], starts[1:]):
        if on[s]:
            a = alpha_bt[:, s, None]
            prev = torch.cat([(1 - a) * prev[:, :N] + a * force[:, s], prev[:, N:]], dim=1)
        seg = _segment(prev, drive[:, s:e], A, W, n_relu)
        pieces.append(seg)
        prev = seg[:, -1]
    return torch.cat(pieces, dim=1)


def rnn_scan(z0, drive, A, W, n_relu, force=None, const_alpha=None, alpha=None):
    """Run the identity on ensemble-form tensors (K leading; one fused call per model, or per forcing
    interval); None when a model's case is not representable or an exact redo is needed.

    ``const_alpha`` (K,) holds each model's alpha when it is constant per model (else None),
    ``alpha`` is (K, B, T).
    """
    M = drive.shape[-1]
    states = []
    for k, p in enumerate(n_relu):
        f, a_bt = (None, None) if force is None else (force[k], alpha[k])
        a_k = None if const_alpha is None else const_alpha[k]
        how = plan(f, a_k, a_bt, p, M)
        if how is None:
            return None
        states.append(_model_scan(z0[k], drive[k], A[k], W[k], p, f, a_k, a_bt, how))
    states = torch.stack(states)
    bad = [~torch.isfinite(states).all()]  # NaN/inf: relu(+-NaN) and inf - inf as the exact backends
    if torch.is_grad_enabled() and states.requires_grad:
        bad.append((states[:, :, :-1].detach() == 0).any())  # an exactly-zero state would lose its gradient
    return None if bool(torch.stack(bad).any()) else states
