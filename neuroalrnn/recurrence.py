"""The AL-RNN time loop: one definition, several exact backends.

``alrnn_scan`` runs, for t = 0..T-1 (``prev`` is ``z0`` at t = 0, else the last state)::

    prev[:, :N] = (1 - alpha_t) * prev[:, :N] + alpha_t * force_t     # only when force is given
    z_t = A * prev + W @ phi(prev) + drive_t                           # phi: identity, ReLU on last P

Backends (all differentiable w.r.t. ``z0``, ``drive``, ``A``, ``W``, ``force`` and ``alpha``):

``"loop"``
    ``alrnn_scan_reference``, a plain per-step loop of torch ops: the definition.
``"numba"``
    a fused compiled loop (CPU, float32/float64) with a hand-written reverse-time adjoint
    (``neuroalrnn._numba_scan``).
``"rnn"``
    the exact 2M-unit ReLU-RNN identity ``z = relu(z) - relu(-z)``: hidden
    ``u = [relu(z); relu(-z)]``, one ``torch.nn.RNN(nonlinearity="relu")``-style call (cuDNN on GPU,
    oneDNN on CPU). Constant-alpha forcing of linear units folds into it; per-step alpha or forcing of
    ReLU units falls back to ``"loop"``. Because relu'(0) = 0 in both halves, a state that is exactly 0
    would lose its gradient: when grads are needed and a state (or a ``z0`` that requires grad) is
    exactly 0, the call is redone with an exact backend (``"numba"`` on CPU, ``"loop"`` elsewhere).
``"auto"``
    ``"numba"`` on CPU, ``"rnn"`` on CUDA (``"loop"`` when the case does not fit).
"""

from __future__ import annotations

import torch

BACKENDS = ("auto", "numba", "rnn", "loop")


def _phi(z: torch.Tensor, n_lin: int) -> torch.Tensor:
    """Identity on the first ``n_lin`` units, ReLU on the rest (none at all when P = 0)."""
    if n_lin == z.shape[-1]:
        return z
    if n_lin == 0:
        return torch.relu(z)
    return torch.cat([z[..., :n_lin], torch.relu(z[..., n_lin:])], dim=-1)


def _broadcast_alpha(alpha, force: torch.Tensor, batch: int, n_steps: int) -> torch.Tensor:
    """Return ``alpha`` as a (B, T) tensor of ``force``'s dtype (``None`` means 1: full forcing)."""
    if alpha is None:
        alpha = 1.0
    alpha = torch.as_tensor(alpha, dtype=force.dtype, device=force.device)
    try:
        return torch.broadcast_to(alpha, (batch, n_steps))
    except RuntimeError:
        raise ValueError(f"alpha: expected a shape broadcastable to (batch, time) = ({batch}, {n_steps}), "
                         f"got {tuple(alpha.shape)}") from None


def _check(z0, drive, A, W, n_relu, force, alpha):
    for name, x in (("z0", z0), ("drive", drive), ("A", A), ("W", W)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if drive.ndim != 3:
        raise ValueError(f"drive: expected shape (batch, time, units), got {tuple(drive.shape)}")
    B, T, M = drive.shape
    if tuple(z0.shape) != (B, M):
        raise ValueError(f"z0: expected shape (batch, units) = ({B}, {M}), got {tuple(z0.shape)}")
    if tuple(A.shape) != (M,):
        raise ValueError(f"A: expected a vector of length {M}, got shape {tuple(A.shape)}")
    if tuple(W.shape) != (M, M):
        raise ValueError(f"W: expected shape ({M}, {M}), got {tuple(W.shape)}")
    if isinstance(n_relu, bool) or not isinstance(n_relu, int) or not 0 <= n_relu <= M:
        raise ValueError(f"n_relu: expected an int in [0, {M}], got {n_relu!r}")
    dtypes = {x.dtype for x in (z0, drive, A, W)}
    if len(dtypes) != 1 or not drive.dtype.is_floating_point:
        raise TypeError(f"z0, drive, A, W: expected one floating dtype, got {sorted(map(str, dtypes))}")
    if force is None:
        if alpha is not None:
            raise ValueError("alpha: given without force")
        return None
    if not isinstance(force, torch.Tensor):
        raise TypeError(f"force: expected a torch.Tensor, got {type(force).__name__}")
    if force.ndim != 3 or force.shape[:2] != (B, T) or force.shape[2] > M:
        raise ValueError(f"force: expected shape (batch, time, N) = ({B}, {T}, N<={M}), got {tuple(force.shape)}")
    if force.dtype != drive.dtype:
        raise TypeError(f"force: expected dtype {drive.dtype}, got {force.dtype}")
    if not bool(torch.isfinite(force).all()):
        raise ValueError("force: contains NaN or inf (set alpha to 0 where there is no data, and fill force)")
    return _broadcast_alpha(alpha, force, B, T)


def alrnn_scan_reference(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor,
                         n_relu: int, force: torch.Tensor | None = None, alpha=None) -> torch.Tensor:
    """Plain per-step loop of torch ops: the definition the fast backends are tested against.

    Same arguments and result as :func:`alrnn_scan`.

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan_reference(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 0].tolist()
    [1.0, 1.5, 1.75]
    """
    B, T, M = drive.shape
    n_lin = M - n_relu
    drives = drive.unbind(1)  # unbind once: indexing drive[:, t] in the loop makes backward O(T^2)
    if force is not None:
        alpha = _broadcast_alpha(alpha, force, B, T)
        forces, alphas = force.unbind(1), alpha.unbind(1)
        n_force = force.shape[2]
    prev, out = z0, []
    for t in range(T):
        if force is not None:
            a = alphas[t][:, None]
            head = (1 - a) * prev[:, :n_force] + a * forces[t]
            prev = torch.cat([head, prev[:, n_force:]], dim=1)
        prev = A * prev + _phi(prev, n_lin) @ W.T + drives[t]
        out.append(prev)
    if not out:
        return drive.new_zeros((B, 0, M))
    return torch.stack(out, dim=1)


def rnn_identity_weights(A: torch.Tensor, W: torch.Tensor, n_relu: int, n_force: int = 0,
                         alpha=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of the 2M-unit ReLU RNN equivalent to the AL-RNN (see :func:`alrnn_scan`).

    Returns ``(w_ih, w_hh)``: with hidden ``u = [relu(z); relu(-z)]`` and input ``x_t``,
    ``u_t = relu(w_ih x_t + w_hh u_{t-1})`` and ``z_t = u_t[:M] - u_t[M:]``; ``x_t`` is the drive
    (plus ``alpha * L f_t`` under constant-alpha forcing of the first ``n_force`` linear units,
    ``L = (diag(A) + W_lin)[:, :n_force]``, see ``_rnn_scan``).
    """
    M = A.shape[0]
    n_lin = M - n_relu
    lin = torch.zeros(M, dtype=A.dtype, device=A.device)
    lin[:n_lin] = 1
    G = torch.diag(A) + W * lin  # acts on z through the linear units and A
    Wr = W * (1 - lin)           # acts on relu(z) of the ReLU units
    if n_force:
        keep = torch.ones(M, dtype=A.dtype, device=A.device)
        keep = torch.cat([(1 - torch.as_tensor(alpha, dtype=A.dtype, device=A.device)).expand(n_force),
                          keep[n_force:]])
        G = G * keep
    K = torch.cat([G + Wr, -G], dim=1)  # z_t = K u_{t-1} + x_t
    w_hh = torch.cat([K, -K], dim=0)
    eye = torch.eye(M, dtype=A.dtype, device=A.device)
    w_ih = torch.cat([eye, -eye], dim=0)
    return w_ih, w_hh


def _rnn_scan(z0, drive, A, W, n_relu, force=None, alpha=None):
    """The 2M-unit ReLU-RNN identity (one fused recurrent call)."""
    M = A.shape[0]
    n_force = 0 if force is None else force.shape[2]
    if n_force:
        alpha = torch.as_tensor(alpha, dtype=A.dtype, device=A.device).reshape(())
        n_lin = M - n_relu
        G = torch.diag(A)[:, :n_force] + W[:, :n_force] * (torch.arange(n_force, device=A.device) < n_lin)
        drive = drive + alpha * (force @ G.T)
    w_ih, w_hh = rnn_identity_weights(A, W, n_relu, n_force, alpha)
    hx = torch.cat([torch.relu(z0), torch.relu(-z0)], dim=1).unsqueeze(0)
    grad = torch.is_grad_enabled()
    out, _ = torch._VF.rnn_relu(drive.contiguous(), hx, [w_ih, w_hh], False, 1, 0.0, grad, False, True)
    states = out[..., :M] - out[..., M:]
    if grad and states.requires_grad:
        # relu'(0) = 0 in both halves: a state (or z0) that is exactly 0 would lose its gradient
        # (common at initialisation: z0 = 0, h = 0, zero inputs). Exactness first: redo those calls.
        zero = (states.detach() == 0).any()
        if z0.requires_grad:
            zero = zero | (z0.detach() == 0).any()
        if bool(zero):
            return None
    return states


def _rnn_fits(force, alpha, n_relu, M) -> bool:
    if force is None:
        return True
    if force.shape[2] > M - n_relu:
        return False  # forcing a ReLU unit is not linear in the hidden state
    return alpha is None or torch.as_tensor(alpha).numel() == 1


def alrnn_scan(z0: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W: torch.Tensor, n_relu: int,
               force: torch.Tensor | None = None, alpha=None, *, backend: str = "auto") -> torch.Tensor:
    """Run the AL-RNN recurrence over T steps and return the states (batch, T, M) for steps 1..T.

    Parameters
    ----------
    z0 : Tensor (batch, M)
        Initial states.
    drive : Tensor (batch, T, M)
        ``h + C s_t``, precomputed.
    A : Tensor (M,)
        Diagonal of the linear auto-regression.
    W : Tensor (M, M)
        Connectivity, applied to ``phi(z)`` (identity on the first M - P units, ReLU on the last P).
    n_relu : int
        P, the number of ReLU units (0 = linear RNN, M = classic PLRNN).
    force : Tensor (batch, T, N), optional
        Finite teacher signal for the first N units, mixed into the previous state before each step.
    alpha : float or Tensor broadcastable to (batch, T), optional
        Forcing weight (0 = no forcing, 1 = replace; default 1 when ``force`` is given). Sparse
        teacher forcing is alpha 1 at forced steps, 0 elsewhere; generalized forcing a constant.
    backend : {"auto", "numba", "rnn", "loop"}
        See the module docstring. All give the same result to float tolerance.

    Returns
    -------
    Tensor (batch, T, M)

    Examples
    --------
    >>> import torch
    >>> z0, drive = torch.zeros(1, 2), torch.ones(1, 3, 2)
    >>> alrnn_scan(z0, drive, torch.full((2,), 0.5), torch.zeros(2, 2), 1)[0, :, 1].tolist()
    [1.0, 1.5, 1.75]
    """
    alpha_bt = _check(z0, drive, A, W, n_relu, force, alpha)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    M = A.shape[0]
    if drive.shape[1] == 0:
        return drive.new_zeros(drive.shape) + 0 * z0[:, None, :]  # keeps the autograd graph
    if backend == "auto":
        if drive.device.type == "cpu":
            backend = "numba" if drive.dtype in (torch.float32, torch.float64) else "loop"
        else:
            backend = "rnn" if _rnn_fits(force, alpha, n_relu, M) else "loop"
    if backend == "numba":
        if drive.device.type != "cpu":
            raise ValueError(f"backend: 'numba' runs on CPU tensors only, got device {drive.device}")
        from neuroalrnn._numba_scan import numba_scan

        return numba_scan(z0, drive, A, W, n_relu, force, alpha_bt)
    if backend == "rnn" and _rnn_fits(force, alpha, n_relu, M):
        states = _rnn_scan(z0, drive, A, W, n_relu, force, alpha)
        if states is not None:
            return states
        if drive.device.type == "cpu" and drive.dtype in (torch.float32, torch.float64):
            from neuroalrnn._numba_scan import numba_scan

            return numba_scan(z0, drive, A, W, n_relu, force, alpha_bt)
    return alrnn_scan_reference(z0, drive, A, W, n_relu, force, alpha_bt)
