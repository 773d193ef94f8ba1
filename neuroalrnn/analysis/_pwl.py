"""An AL-RNN as a piecewise-linear map: its parameters, drive, region Jacobians and per-region solves.

In the linear subregion with ReLU sign pattern ``d`` (``D = diag(1 for linear units, d for ReLU
units)``) the map is affine, ``z -> (diag(A) + W D) z + h + C s``. These helpers are shared by the
fixed-point search (``_fixed_points``) and the cycle search (``_cycles``): the model's parameters as
arrays, the constant drive ``h + C s``, the Jacobian of a region, a batched solver of
``(I - diag(A) - W D) z = b`` over many regions (a Woodbury reduction to ``P x P`` systems), and the
test of whether a point lies in the region it was solved in.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from neuroalrnn.analysis.regions import _check_n_relu, codes_to_bits

_CHUNK = 32768


def model_params(model) -> dict:
    """Return ``dict(A, W, h, C, n_relu)`` (float64 numpy) from an ALRNN or a mapping of arrays.

    A mapping needs ``A`` (M,) (or a diagonal (M, M)), ``W`` (M, M), ``h`` (M,), optional ``C``
    (M, K), and ``n_relu`` (``P`` is accepted too, as in the authors' npz files).

    Examples
    --------
    >>> import numpy as np
    >>> p = model_params({"A": [0.5], "W": [[0.0]], "h": [1.0], "n_relu": 0})
    >>> p["A"].tolist(), p["C"].shape
    ([0.5], (1, 0))
    """
    if hasattr(model, "params_numpy") and hasattr(model, "n_relu"):
        raw, n_relu = dict(model.params_numpy()), model.n_relu
    elif isinstance(model, Mapping) or hasattr(model, "files"):  # dict or NpzFile
        raw = {k: model[k] for k in ("A", "W", "h", "C", "n_relu", "P") if k in model}
        if "n_relu" in raw:
            n_relu = raw["n_relu"]
        elif "P" in raw:
            n_relu = raw["P"]
        else:
            raise ValueError("model: a mapping needs 'n_relu' (the number of ReLU units P)")
    else:
        raise TypeError(f"model: expected an ALRNN or a mapping with A, W, h, n_relu; got {type(model).__name__}")
    n_relu = int(np.asarray(n_relu)) if np.ndim(n_relu) == 0 else n_relu
    out = {}
    for key in ("A", "W", "h"):
        if key not in raw or raw[key] is None:
            raise ValueError(f"model: missing parameter {key!r}")
        val = raw[key]
        out[key] = np.asarray(val.detach().cpu().numpy() if hasattr(val, "detach") else val, dtype=np.float64)
    A, W, h = out["A"], out["W"], out["h"]
    if A.ndim == 2:
        if A.shape[0] != A.shape[1] or np.any(A - np.diag(np.diag(A))):
            raise ValueError(f"A: expected a vector (M,) or a diagonal matrix, got shape {A.shape} with off-diagonal entries")
        A = np.diag(A).copy()
    if A.ndim != 1:
        raise ValueError(f"A: expected shape (M,), got {A.shape}")
    M = A.shape[0]
    if W.shape != (M, M):
        raise ValueError(f"W: expected shape ({M}, {M}), got {W.shape}")
    if h.shape != (M,):
        raise ValueError(f"h: expected shape ({M},), got {h.shape}")
    C = raw.get("C")
    C = np.zeros((M, 0)) if C is None else np.asarray(C.detach().cpu().numpy() if hasattr(C, "detach") else C, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != M:
        raise ValueError(f"C: expected shape ({M}, K), got {C.shape}")
    for key, val in (("A", A), ("W", W), ("h", h), ("C", C)):
        if not np.all(np.isfinite(val)):
            raise ValueError(f"{key}: contains NaN or inf")
    return {"A": A, "W": W, "h": h, "C": C, "n_relu": _check_n_relu(n_relu, M)}


def drive(params: dict, inputs=None) -> np.ndarray:
    """Constant drive ``h + C s`` for a constant input ``s`` (K,) (None: no input)."""
    C = params["C"]
    if inputs is None:
        return params["h"].copy()
    s = np.asarray(inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else inputs, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] != C.shape[1]:
        raise ValueError(f"inputs: expected one constant input of shape ({C.shape[1]},), got shape {s.shape}")
    return params["h"] + C @ s


def full_diag(bits, params: dict) -> np.ndarray:
    """Diagonal of D (..., M): 1 for linear units, the sign bits for ReLU units."""
    bits = np.asarray(bits, dtype=np.float64)
    M, P = params["A"].shape[0], params["n_relu"]
    return np.concatenate([np.ones(bits.shape[:-1] + (M - P,)), bits], axis=-1)


def region_jacobian(bits, params: dict) -> np.ndarray:
    """Jacobian ``diag(A) + W D`` of the map in each linear subregion.

    Parameters
    ----------
    bits : array-like of bool, shape (..., P)
        Sign patterns of the ReLU units (bit ``i`` is latent unit ``M - P + i``), e.g. from
        :func:`~neuroalrnn.analysis.codes_to_bits`.
    params : dict
        Model arrays as returned by :func:`model_params`.

    Returns
    -------
    numpy.ndarray, shape (..., M, M)
        ``D`` is 1 on the linear units and the bit on each ReLU unit.

    Examples
    --------
    >>> p = model_params({"A": [0.5, 0.5], "W": [[0.0, 1.0], [0.0, 2.0]], "h": [0.0, 0.0], "n_relu": 1})
    >>> region_jacobian([[False], [True]], p).tolist()
    [[[0.5, 0.0], [0.0, 0.5]], [[0.5, 1.0], [0.0, 2.5]]]
    """
    d = full_diag(bits, params)
    return np.diag(params["A"]) + params["W"] * d[..., None, :]


class _RegionSolver:
    """Solve ``(I - diag(A) - W D) z = b`` for many regions at once via P x P systems."""

    def __init__(self, params: dict, b: np.ndarray):
        A, W, P = params["A"], params["W"], params["n_relu"]
        M = A.shape[0]
        self.M, self.P, self.b = M, P, b
        self.params = params
        best = None
        candidates = [np.zeros(P), np.ones(P)] + [r.astype(float) for r in np.random.default_rng(0).integers(0, 2, (4, P))]
        for d0 in candidates:
            K0 = np.eye(M) - region_jacobian(d0, params)
            cond = np.linalg.cond(K0)
            if best is None or cond < best[0]:
                best = (cond, d0, K0)
            if cond < 1e6:
                break
        cond, self.d0, K0 = best
        if not np.isfinite(cond) or cond > 1e10:  # every base tried is (nearly) singular: solve each region fully
            self.U = None
            return
        self.U = np.linalg.solve(K0, W[:, M - P:])  # (M, P)
        self.g = np.linalg.solve(K0, b)             # (M,)
        self.U_R, self.g_R = self.U[M - P:], self.g[M - P:]

    def solve(self, bits, full: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Return z (R, M) (only the ReLU part (R, P) when not ``full``) and singular (R,)."""
        bits = np.asarray(bits, dtype=np.float64)
        R = bits.shape[0]
        z = np.empty((R, self.M if full else self.P))
        singular = np.zeros(R, dtype=bool)
        for start in range(0, R, _CHUNK):
            sl = slice(start, start + _CHUNK)
            z[sl], singular[sl] = self._solve_chunk(bits[sl], full)
        return z, singular

    def _solve_chunk(self, bits, full):
        n, P = bits.shape[0], self.P
        if self.U is None:
            K = np.eye(self.M) - region_jacobian(bits, self.params)
            z, singular = _safe_solve(K, np.broadcast_to(self.b, (n, self.M)))
            return (z if full else z[:, self.M - P:]), singular
        if P == 0:
            return np.broadcast_to(self.g if full else self.g_R, (n, self.M if full else 0)).copy(), np.zeros(n, bool)
        delta = bits - self.d0
        S = np.eye(P) - self.U_R * delta[:, None, :]
        zR, singular = _safe_solve(S, np.broadcast_to(self.g_R, (n, P)))
        scale = 1.0 + np.abs(self.g).max()
        singular |= np.abs(zR).max(axis=1) > 1e12 * scale
        if not full:
            zR[singular] = np.nan
            return zR, singular
        z = self.g + (delta * zR) @ self.U.T
        singular |= ~np.isfinite(z).all(axis=1)
        z[singular] = np.nan
        return z, singular


    def exhaustive(self, full: bool = True, low_bits: int = 5):
        """Yield ``(codes, z, singular)`` blocks covering all ``2**P`` regions in code order.

        The ReLU bits split into ``low_bits`` low bits that vary inside a block and high bits
        fixed per group; eliminating the high units (a Schur complement per group) leaves
        ``low_bits x low_bits`` systems, several times cheaper than ``P x P`` ones.
        """
        P = self.P
        pl = min(P, low_bits)
        ph = P - pl
        if self.U is None or ph == 0:
            for start in range(0, 2 ** P, _CHUNK):
                codes = np.arange(start, min(start + _CHUNK, 2 ** P), dtype=np.int64)
                yield (codes, *self.solve(codes_to_bits(codes, P), full))
            return
        nL = 2 ** pl
        d0L, d0H = self.d0[:pl], self.d0[pl:]
        deltaL = codes_to_bits(np.arange(nL), pl) - d0L                  # (nL, pl)
        U, UR = self.U, self.U_R
        U_LL, U_LH, U_HL, U_HH = UR[:pl, :pl], UR[:pl, pl:], UR[pl:, :pl], UR[pl:, pl:]
        rhs_H = np.concatenate([U_HL, self.g_R[pl:, None]], axis=1)       # (ph, pl + 1)
        n_groups = max(1, _CHUNK // nL)
        scale = 1e12 * (1.0 + np.abs(self.g).max())
        for hstart in range(0, 2 ** ph, n_groups):
            hv = np.arange(hstart, min(hstart + n_groups, 2 ** ph), dtype=np.int64)
            g = hv.size
            codes = (hv[:, None] * nL + np.arange(nL)).ravel()
            dH = codes_to_bits(hv, ph) - d0H                                 # (g, ph)
            T = np.eye(ph) - U_HH * dH[:, None, :]
            QR, badT = _safe_solve_matrix(T, np.broadcast_to(rhs_H, (g, ph, pl + 1)))
            # a near-singular elimination shows as a huge solution: solve those groups directly
            badT |= ~(np.abs(QR).max(axis=(1, 2)) <= 1e8 * (1.0 + np.abs(rhs_H).max()))
            QU, Qg = QR[..., :pl], QR[..., pl]                               # (g, ph, pl), (g, ph)
            ULHd = U_LH * dH[:, None, :]                                     # (g, pl, ph)
            Ut = U_LL + ULHd @ QU                                            # (g, pl, pl)
            gt = self.g_R[:pl] + (ULHd @ Qg[..., None])[..., 0]              # (g, pl)
            S = np.eye(pl) - Ut[:, None] * deltaL[None, :, None, :]         # (g, nL, pl, pl)
            zL, sing = _safe_solve(S.reshape(-1, pl, pl), np.repeat(gt, nL, axis=0))
            zL = zL.reshape(g, nL, pl)
            zH = Qg[:, None, :] + np.einsum("ghl,gnl->gnh", QU, deltaL[None] * zL)
            zR = np.concatenate([zL, zH], axis=-1).reshape(-1, P)
            singular = sing | np.repeat(badT, nL) | ~(np.abs(zR).max(axis=1) <= scale)
            if badT.any():  # the Schur step failed for these groups: solve them directly
                redo = np.repeat(badT, nL)
                zR[redo], singular[redo] = self.solve(codes_to_bits(codes[redo], P), full=False)
            zR[singular] = np.nan
            if full:
                delta = codes_to_bits(codes, P) - self.d0
                z = self.g + (delta * zR) @ U.T
                z[singular] = np.nan
                yield codes, z, singular
            else:
                yield codes, zR, singular


def _safe_solve_matrix(K, rhs):
    """Batched solve with a matrix right-hand side; singular systems give NaN and a flag."""
    singular = np.zeros(K.shape[0], dtype=bool)
    try:
        x = np.linalg.solve(K, rhs)
    except np.linalg.LinAlgError:
        sign, _ = np.linalg.slogdet(K)
        singular = sign == 0
        K = K.copy()
        K[singular] = np.eye(K.shape[-1])
        x = np.linalg.solve(K, rhs)
    singular |= ~np.isfinite(x).all(axis=(-2, -1))
    x[singular] = np.nan
    return x, singular


def _safe_solve(K, rhs):
    """Batched solve that marks (exactly) singular systems instead of raising."""
    singular = np.zeros(K.shape[0], dtype=bool)
    try:
        x = np.linalg.solve(K, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        sign, _ = np.linalg.slogdet(K)
        singular = sign == 0
        K = K.copy()
        K[singular] = np.eye(K.shape[-1])
        x = np.linalg.solve(K, rhs[..., None])[..., 0]
    singular |= ~np.isfinite(x).all(axis=-1)
    x[singular] = np.nan
    return x, singular


def consistent(z_relu, bits, tol) -> np.ndarray:
    """True where every ReLU coordinate's sign agrees with its bit (|z| <= tol agrees with both)."""
    bits = np.asarray(bits, dtype=bool)
    ok = np.where(bits, z_relu >= -tol, z_relu <= tol)
    return ok.all(axis=-1) & np.isfinite(z_relu).all(axis=-1)


def _tol(params, b):
    return 1e-9 * (1.0 + np.abs(b).max() + np.abs(params["W"]).max())
