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
this), ``rnn_scan`` returns None and the caller redoes the call with an exact backend.
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


def plan(force, alpha, alpha_bt, n_relu: int, M: int) -> str | None:
    """'plain', 'const' or 'sparse' when this backend can run the case well, else None.

    'sparse' restarts the fused call at every step where any trial is forced (alpha != 0), mixing
    each trial with its own alpha there: exact for any alpha, worthwhile when those steps are few
    (at most a quarter of them).
    """
    if force is None:
        return "plain"
    if (alpha is None or torch.as_tensor(alpha).numel() == 1) and force.shape[2] <= M - n_relu:
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


def rnn_scan(z0, drive, A, W, n_relu, force, alpha, alpha_bt, how: str):
    """Run the identity backend (``how`` from :func:`plan`); None when an exact redo is needed."""
    if how == "sparse":
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
        states = torch.cat(pieces, dim=1)
    else:
        states = _segment(z0, drive, A, W, n_relu, force if how == "const" else None, alpha)
    if torch.is_grad_enabled() and states.requires_grad and bool((states[:, :-1].detach() == 0).any()):
        return None  # an exactly-zero state fed to the fused call would lose its gradient
    return states
