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

import numpy as np
import xarray as xr

from neuroalrnn.analysis._pwl import (_CHUNK, _RegionSolver, _safe_solve, _tol, consistent, drive, model_params,
                                      region_jacobian)
from neuroalrnn.analysis.regions import codes_to_bits

_MAX_SINGULAR = 1024  # singular regions examined for a continuum of fixed points
_MAX_EXHAUSTIVE = 30  # 2**30 regions: hours of work, the ceiling even when max_exhaustive_p is raised


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
