"""Fixed points of an AL-RNN, exactly, region by region.

In the linear subregion with ReLU sign pattern ``d`` (``D = diag(1 for linear units, d for ReLU
units)``) the map is affine, ``z -> (diag(A) + W D) z + h + C s``, so its fixed point solves
``(I - diag(A) - W D) z* = h + C s``. The point is *real* when its own sign pattern equals ``d``
(a zero ReLU unit agrees with either sign), and *virtual* otherwise.

All ``2**P`` regions are solved in batches up to ``max_exhaustive_p``. The batch solve uses a
reduction to ``P x P`` systems: with a well-conditioned base region ``K0 = I - diag(A) - W D0``,
``U = K0^-1 W_R``, ``g = K0^-1 b`` and ``delta = d - d0``, the ReLU part solves
``(I_P - U_RR diag(delta)) z_R = g_R`` and ``z = g + U diag(delta) z_R`` (exact, by the Woodbury
identity; ``K_D`` is singular exactly when the ``P x P`` system is). Real points are then polished
with a full ``M x M`` solve. Above ``max_exhaustive_p`` a SCYFI-style search (Eisenmann et al.
2023) is used: solve in a region, jump to the region of the solution, repeat until
self-consistent, with restarts from random regions and from regions the model visits.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

from neuroalrnn.analysis.regions import _check_n_relu, codes_to_bits

_CHUNK = 32768
_MAX_SINGULAR = 1024  # singular regions examined for a continuum of fixed points
_MAX_EXHAUSTIVE = 30  # 2**30 regions: hours of work, the ceiling even when max_exhaustive_p is raised


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


def fixed_points(model, inputs=None, *, regions="auto", max_exhaustive_p: int = 20,
                 include_virtual: bool | None = None, states=None, n_restarts: int = 200,
                 max_iter: int = 50, slow_tol: float = 0.01, seed=0) -> xr.Dataset:
    """All fixed points of an AL-RNN under a constant input, with their stability and slow modes.

    Parameters
    ----------
    model : ALRNN or mapping
        The model, or arrays ``A, W, h, C, n_relu`` (see :func:`model_params`).
    inputs : array-like (K,), optional
        A constant input ``s``; None means no input.
    regions : "auto", "exhaustive", "search" or array of int codes
        "auto" is exhaustive for ``P <= max_exhaustive_p`` and the search above it; an array
        solves exactly those regions.
    max_exhaustive_p : int
        Largest P solved exhaustively (2**P regions, batched); "exhaustive" above it is an error.
    include_virtual : bool, optional
        Keep virtual (and singular) regions' points with ``real=False``. Default: kept when at
        most 1024 regions are solved (P <= 10); the search keeps real points only.
    states : array-like (..., M), optional
        Visited states (e.g. a simulated trajectory) whose regions seed the search.
    n_restarts, max_iter : int
        Search: SCYFI's outer and inner loops; ``n_restarts * max_iter`` region solves in all
        (reset by each new find), no chain of region jumps longer than ``max_iter``.
    slow_tol : float
        A point's slowest mode is ``slow`` when ``abs(abs(lambda) - 1) <= slow_tol``.
    seed : int or Generator
        Random starts of the search.

    Returns
    -------
    xarray.Dataset with dims ``point``, ``latent``, ``mode`` and variables ``z``, ``region``,
    ``real``, ``singular``, ``eigenvalues`` (complex), ``spectral_radius``, ``stable``,
    ``n_unstable``, ``kind`` ("stable node"/"stable focus"/"saddle"/"saddle-focus"/
    "unstable node"/"unstable focus"), ``slowest_abs`` (the |lambda| nearest 1), ``slow``,
    ``timescale`` (steps, ``-1/log|lambda|``), ``slow_right``/``slow_left`` (eigenvectors of
    that mode, ``left @ right = 1``) and ``condition`` (of ``I - J``, for isolated real points).
    Read the flag as ``fp["real"]``: ``fp.real`` is xarray's real-part method. Real points come first. A ``singular`` region (``I - J`` not invertible) has ``z`` NaN, unless
    its system is consistent: then it holds a continuum of fixed points (a line attractor, say),
    ``z`` is its minimum-norm point and ``real`` says whether that point lies in the region.

    Examples
    --------
    >>> import numpy as np
    >>> fp = fixed_points({"A": [0.5, 0.5], "W": [[0.0, 0.0], [0.0, 0.0]], "h": [1.0, -1.0], "n_relu": 1})
    >>> fp["z"].sel(point=fp["real"]).values.round(3).tolist()
    [[2.0, -2.0]]
    """
    params = model_params(model)
    b = drive(params, inputs)
    P, M = params["n_relu"], params["A"].shape[0]
    tol = _tol(params, b)
    solver = _RegionSolver(params, b)
    if isinstance(regions, str):
        if regions not in ("auto", "exhaustive", "search"):
            raise ValueError(f"regions: expected 'auto', 'exhaustive', 'search' or an array of codes, got {regions!r}")
        limit = min(int(max_exhaustive_p), _MAX_EXHAUSTIVE)
        method = ("exhaustive" if P <= limit else "search") if regions == "auto" else regions
        if method == "exhaustive" and P > _MAX_EXHAUSTIVE:
            raise ValueError(f"regions: exhaustive search over 2**{P} regions is beyond the supported "
                             f"{_MAX_EXHAUSTIVE} ReLU units; use regions='search' (SCYFI-style)")
        if method == "exhaustive" and P > max_exhaustive_p:
            raise ValueError(f"regions: exhaustive search over 2**{P} regions exceeds max_exhaustive_p={max_exhaustive_p}; "
                             "use regions='search' (SCYFI-style) or raise the limit")
    else:
        method = "given"
        codes = np.unique(np.asarray(regions, dtype=np.int64).ravel())
        if codes.size and (codes.min() < 0 or codes.max() >= 2 ** P):
            raise ValueError(f"regions: codes must lie in [0, 2**{P}), got range [{codes.min()}, {codes.max()}]")
    n_tried = None
    if method == "search":
        from neuroalrnn.analysis._cycles import search_sequences  # _cycles.py builds on this module

        found = search_sequences(params, b, 1, states=states, n_restarts=n_restarts, max_iter=max_iter,
                                 n_chains=256, exhaustive_limit=0, seed=seed, tol=tol)
        codes = np.array(sorted(key[0] for key in found), dtype=np.int64)
        n_tried = codes.size
        include_virtual = False
    elif method == "exhaustive":
        codes = None
    n_regions = 2 ** P if codes is None else codes.size
    if include_virtual is None:
        include_virtual = n_regions <= 1024
    n_solved = int(n_tried if n_tried is not None else n_regions)
    codes, z, singular, real, n_virtual, n_singular = _solve_codes(solver, params, b, codes, tol, include_virtual)
    n_stats = {"n_regions_solved": n_solved, "n_real": int(real.sum()), "n_virtual": n_virtual, "n_singular": n_singular}
    order = np.lexsort((codes, ~real))
    codes, z, singular, real = codes[order], z[order], singular[order], real[order]
    ds = _assemble(params, b, codes, z, singular, real, slow_tol)
    ds.attrs.update({"n_relu": P, "method": method, "slow_tol": float(slow_tol), **n_stats})
    return ds


def _solve_codes(solver, params, b, codes, tol, include_virtual):
    """Solve the regions ``codes`` (None: all 2**P, in code order) and flag the real points."""
    P, M = params["n_relu"], params["A"].shape[0]
    if codes is None:
        blocks = solver.exhaustive(full=include_virtual)
    else:
        blocks = ((codes[i:i + _CHUNK], *solver.solve(codes_to_bits(codes[i:i + _CHUNK], P), include_virtual))
                  for i in range(0, codes.size, _CHUNK))
    out_codes, out_z, out_sing, out_real = [], [], [], []
    n_singular = n_solved = 0
    loose = 1e4 * tol  # candidates for the exact recheck: the P x P reduction can be slightly off
    for cc, zc, sc in blocks:
        rc = ~sc & consistent(zc[:, zc.shape[1] - P:], codes_to_bits(cc, P), loose)
        n_singular += int(sc.sum())
        n_solved += cc.size
        # without virtual points, singular regions are kept only while few enough to examine
        keep = slice(None) if include_virtual else (rc | (sc & (n_singular <= _MAX_SINGULAR)))
        out_codes.append(cc[keep]), out_z.append(zc[keep]), out_sing.append(sc[keep]), out_real.append(rc[keep])
    codes = np.concatenate(out_codes) if out_codes else np.empty(0, np.int64)
    singular = np.concatenate(out_sing) if out_sing else np.empty(0, bool)
    real = np.concatenate(out_real) if out_real else np.empty(0, bool)
    z = np.concatenate(out_z) if include_virtual and out_z else np.full((codes.size, M), np.nan)
    if not include_virtual and n_singular > _MAX_SINGULAR:  # too many singular regions: counts only
        keep = ~singular
        codes, z, singular, real = codes[keep], z[keep], singular[keep], real[keep]
    idx = np.flatnonzero(real)  # solve the candidates with the full system and check them exactly
    if idx.size:
        bits = codes_to_bits(codes[idx], P)
        K = np.eye(M) - region_jacobian(bits, params)
        zp, sing = _safe_solve(K, np.broadcast_to(b, (idx.size, M)))
        good = ~sing
        z[idx[good]] = zp[good]
        real[idx] = good & consistent(z[idx, M - P:], bits, tol)
    _continua(params, b, codes, z, singular, real, tol)
    idx = np.flatnonzero(real)
    real[idx] &= _unique_mask(z[idx], P, tol)  # a boundary point is found in every region it touches
    if not include_virtual:
        codes, z, singular, real = codes[real], z[real], singular[real], real[real]
    n_virtual = n_solved - n_singular - int((real & ~singular).sum())
    return codes, z, singular, real, n_virtual, n_singular


def _continua(params, b, codes, z, singular, real, tol) -> None:
    """Singular regions whose system is still consistent hold a continuum of fixed points (e.g. a
    line attractor): fill in its minimum-norm point (in place) and mark it real when it lies in
    its own region. Skipped when there are more than ``_MAX_SINGULAR`` singular regions."""
    idx = np.flatnonzero(singular)
    if not idx.size or idx.size > _MAX_SINGULAR:
        return
    P, M = params["n_relu"], params["A"].shape[0]
    bits = codes_to_bits(codes[idx], P)
    K = np.eye(M) - region_jacobian(bits, params)
    zs = np.einsum("nij,j->ni", np.linalg.pinv(K, rcond=1e-10), b)
    resid = np.abs(np.einsum("nij,nj->ni", K, zs) - b).max(axis=1)
    ok = resid <= 1e-8 * (1.0 + np.abs(b).max()) * (1.0 + np.abs(zs).max(axis=1))
    z[idx[ok]] = zs[ok]
    real[idx] = ok & consistent(zs[:, M - P:], bits, tol)


def _unique_mask(z, n_relu, tol) -> np.ndarray:
    """False for points equal (within tol) to an earlier one: a point on a region boundary (a
    ReLU coordinate ~ 0) is the fixed point of every region it touches. Only such points are
    compared, so many real points stay cheap."""
    keep = np.ones(z.shape[0], dtype=bool)
    atol = 1e3 * tol
    zR = z[:, z.shape[1] - n_relu:]
    boundary = np.flatnonzero((np.abs(zR) <= atol).any(axis=1))
    for n, i in enumerate(boundary[1:], start=1):
        earlier = boundary[:n][keep[boundary[:n]]]
        if earlier.size and np.any(np.abs(z[earlier] - z[i]).max(axis=1) <= atol):
            keep[i] = False
    return keep


def classify(eigenvalues, tol: float = 1e-9) -> str:
    """Name a fixed point (or cycle) by its Jacobian's eigenvalues (discrete time)."""
    eig = np.asarray(eigenvalues)
    if eig.size == 0 or not np.all(np.isfinite(eig)):
        return ""
    mag = np.abs(eig)
    complex_ = np.abs(eig.imag) > tol * (1 + mag)
    unstable = mag > 1 + tol
    if not unstable.any():
        return "stable focus" if complex_[np.argmax(mag)] else "stable node"
    if unstable.all():
        return "unstable focus" if complex_[np.argmin(mag)] else "unstable node"
    return "saddle-focus" if complex_[unstable].any() else "saddle"


def spectra(J: np.ndarray, slow_tol: float) -> dict:
    """Eigen-quantities of a batch of Jacobians (n, M, M): eigenvalues sorted by decreasing
    modulus, the slowest mode (|lambda| nearest 1) with its right and left eigenvectors
    (``left @ right = 1``), spectral radius, stability and a kind name."""
    n, M = J.shape[0], J.shape[-1]
    eig, V = np.linalg.eig(J)
    order = np.argsort(-np.abs(eig), axis=1, kind="stable")
    eig = np.take_along_axis(eig, order, axis=1)
    V = np.take_along_axis(V, order[:, None, :], axis=2)
    mag = np.abs(eig)
    k = np.argmin(np.abs(mag - 1), axis=1)
    rows = np.arange(n)
    right = V[rows, :, k]
    try:  # row k of V^-1 is the left eigenvector with left @ right = 1
        left = np.linalg.inv(V)[rows, k]
    except np.linalg.LinAlgError:  # a defective Jacobian somewhere: invert one by one
        left = np.full_like(right, np.nan)
        for i in range(n):
            try:
                left[i] = np.linalg.inv(V[i])[k[i]]
            except np.linalg.LinAlgError:
                pass
    slowest = mag[rows, k]
    timescale = np.full(n, np.inf)
    decaying = slowest < 1
    timescale[decaying] = 0.0
    positive = decaying & (slowest > 0)
    timescale[positive] = -1.0 / np.log(slowest[positive])
    radius = mag.max(axis=1) if M else np.zeros(n)
    return {"eigenvalues": eig, "spectral_radius": radius, "stable": radius < 1,
            "n_unstable": (mag > 1).sum(axis=1), "kind": np.array([classify(e) for e in eig], dtype=object),
            "slowest_abs": slowest, "slow": np.abs(slowest - 1) <= slow_tol, "timescale": timescale,
            "slow_right": right, "slow_left": left}


def _assemble(params, b, codes, z, singular, real, slow_tol) -> xr.Dataset:
    M, P = params["A"].shape[0], params["n_relu"]
    n = codes.size
    eig = np.full((n, M), np.nan + 0j)
    scal = {k: np.full(n, np.nan) for k in ("spectral_radius", "slowest_abs", "timescale", "condition")}
    flags = {k: np.zeros(n, bool) for k in ("stable", "slow")}
    n_unstable = np.full(n, -1)
    kind = np.full(n, "", dtype=object)
    right, left = np.full((n, M), np.nan + 0j), np.full((n, M), np.nan + 0j)
    idx = np.arange(n)  # a region's Jacobian is defined even where I - J is singular
    if idx.size and M:
        J = region_jacobian(codes_to_bits(codes[idx], P), params)
        s = spectra(J, slow_tol)
        eig[idx], right[idx], left[idx] = s["eigenvalues"], s["slow_right"], s["slow_left"]
        for key in ("spectral_radius", "slowest_abs", "timescale"):
            scal[key][idx] = s[key]
        flags["stable"][idx], flags["slow"][idx] = s["stable"], s["slow"]
        n_unstable[idx], kind[idx] = s["n_unstable"], s["kind"]
        ridx = np.flatnonzero(real[idx] & ~singular[idx])
        if ridx.size:
            scal["condition"][idx[ridx]] = np.linalg.cond(np.eye(M) - J[ridx])
    pt, lat = ("point",), ("point", "latent")
    return xr.Dataset(
        {"z": (lat, z), "region": (pt, codes), "real": (pt, real), "singular": (pt, singular),
         "eigenvalues": (("point", "mode"), eig), "spectral_radius": (pt, scal["spectral_radius"]),
         "stable": (pt, flags["stable"]), "n_unstable": (pt, n_unstable), "kind": (pt, kind.astype(str)),
         "slowest_abs": (pt, scal["slowest_abs"]), "slow": (pt, flags["slow"]),
         "timescale": (pt, scal["timescale"]), "slow_right": (lat, right), "slow_left": (lat, left),
         "condition": (pt, scal["condition"])},
        coords={"point": np.arange(n), "latent": np.arange(M), "mode": np.arange(M)},
        attrs={"drive": b.tolist()})
