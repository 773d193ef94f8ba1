"""k-cycles of an AL-RNN by the region-sequence logic of SCYFI (Eisenmann et al., NeurIPS 2023).

Along a sequence of linear subregions ``D_1 .. D_k`` the k-step map is affine,
``z -> J_k ... J_1 z + c`` with ``J_j = diag(A) + W D_j``, so a candidate k-cycle solves
``(I - J_k ... J_1) z = c``. The candidate is real when the true map's orbit from it visits exactly
``D_1 .. D_k``. SCYFI starts from random region sequences (and here also from windows of visited
regions), replaces a sequence by the one the candidate's orbit visits, and repeats until the
sequence is self-consistent, with restarts. For tiny ``2**(P*k)`` all sequences are solved.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neuroalrnn.analysis._fixed_points import classify
from neuroalrnn.analysis._pwl import _safe_solve, consistent, drive, full_diag, model_params
from neuroalrnn.analysis.regions import bits_to_codes, codes_to_bits, region_codes
from neuroalrnn.utils import check_random_state


def _loop_defaults(order: int) -> tuple[int, int]:
    """SCYFI's default outer (restarts) and inner (iterations) loop sizes, tuned for 2-D."""
    outer = 10 if order < 8 else 40 if order < 30 else 100
    inner = 20 if order < 3 else 60 if order < 6 else 300 if order < 8 else 1080 if order < 20 else 1115
    return outer, inner


def _k_step_solve(params, b, bits):
    """Candidate cycle starts z0 (B, M) and k-step Jacobians (B, M, M) for bits (B, k, P)."""
    A, W = params["A"], params["W"]
    B, k = bits.shape[:2]
    M = A.shape[0]
    d = full_diag(bits, params)                                   # (B, k, M)
    Jprod = np.broadcast_to(np.eye(M), (B, M, M)).copy()
    c = np.zeros((B, M))
    for j in range(k):
        Jj = np.diag(A) + W * d[:, j, None, :]
        Jprod = Jj @ Jprod
        c = np.einsum("bij,bj->bi", Jj, c) + b
    z0, singular = _safe_solve(np.eye(M) - Jprod, c)
    return z0, Jprod, singular


def _orbit(params, b, z0, k):
    """True-map orbit z_0 .. z_k (B, k + 1, M)."""
    A, W, P = params["A"], params["W"], params["n_relu"]
    M = A.shape[0]
    out = np.empty(z0.shape[:1] + (k + 1, M))
    z = z0
    out[:, 0] = z
    for j in range(k):
        phi = z.copy()
        phi[:, M - P:] = np.maximum(phi[:, M - P:], 0)
        z = A * z + phi @ W.T + b
        out[:, j + 1] = z
    return out


def _canonical(seq: tuple) -> tuple:
    """Lexicographically smallest rotation of a code sequence (dedupes cyclic shifts)."""
    k = len(seq)
    return min(tuple(seq[i:] + seq[:i]) for i in range(k))


def _min_period(seq: tuple) -> int:
    k = len(seq)
    for p in range(1, k):
        if k % p == 0 and seq[p:] + seq[:p] == seq:
            return p
    return k


def _seed_windows(states, P, k, rng):
    """Windows of k consecutive visited region codes (as bits) from trajectories (..., T, M)."""
    if states is None:
        return []
    codes = np.asarray(region_codes(states, P))
    codes = codes.reshape(-1, codes.shape[-1]) if codes.ndim > 1 else codes[None]
    wins = set()
    for row in codes:
        row = row[row >= 0]
        for t in range(0, max(0, row.size - k + 1)):
            wins.add(tuple(row[t:t + k].tolist()))
    wins = [w for w in wins]
    rng.shuffle(wins)
    return [codes_to_bits(np.array(w), P) for w in wins]


def search_sequences(params, b, order, *, states=None, n_restarts=None, max_iter=None, n_chains=64,
                     exhaustive_limit=4096, seed=0, tol=None):
    """Return the self-consistent region sequences of exact period ``order`` (dict key -> z0)."""
    P, M = params["n_relu"], params["A"].shape[0]
    tol = 1e-9 * (1.0 + np.abs(b).max() + np.abs(params["W"]).max()) if tol is None else tol
    found: dict[tuple, np.ndarray] = {}
    strictly_found: dict[tuple, bool] = {}
    points: dict[tuple, np.ndarray] = {}

    def _same_cycle(found, pts, atol):
        for key in found:
            other = points[key]
            j = np.flatnonzero(np.abs(other - pts[0]).max(axis=1) <= atol)
            if j.size and np.abs(np.roll(other, -int(j[0]), axis=0) - pts).max() <= atol:
                return key
        return None

    def check(bits, z0):
        """Keep self-consistent candidates; return the regions the orbits actually visit."""
        orbit = _orbit(params, b, z0, order)
        zR = orbit[:, :order, M - P:]
        visited = np.where(np.isnan(zR), False, zR > 0)
        ok = consistent(zR, bits, tol).all(axis=1)
        scale = 1.0 + np.abs(orbit[:, 0]).max(axis=1)
        ok &= np.abs(orbit[:, order] - orbit[:, 0]).max(axis=1) <= 1e-6 * scale
        strict = (visited == bits).all(axis=(1, 2))
        n_new = 0
        for i in np.flatnonzero(ok):
            seq = tuple(bits_to_codes(bits[i]).tolist())
            if _min_period(seq) < order:
                continue
            pts = orbit[i, :order]
            if any(np.abs(pts[p] - pts[0]).max() <= 1e-8 * scale[i] for p in range(1, order) if order % p == 0):
                continue
            key = _canonical(seq)
            if key in found:
                continue
            shift = next(s for s in range(order) if tuple(seq[s:] + seq[:s]) == key)
            pts = np.roll(pts, -shift, axis=0)
            twin = _same_cycle(found, pts, 1e-7 * scale[i])  # a cycle through a region boundary
            if twin is not None:
                if strict[i] and not strictly_found.get(twin, False):
                    del found[twin]  # prefer the region sequence that region_codes reports
                else:
                    continue
            found[key] = pts[0]
            strictly_found[key] = bool(strict[i])
            points[key] = pts
            n_new += twin is None
        return visited, ok, n_new

    if 2 ** (P * order) <= exhaustive_limit:
        allc = np.arange(2 ** (P * order), dtype=np.int64)
        seqs = (allc[:, None] >> (P * np.arange(order))) & (2 ** P - 1)
        bits = codes_to_bits(seqs, P)
        z0, _, singular = _k_step_solve(params, b, bits)
        good = ~singular
        if good.any():
            check(bits[good], z0[good])
        return found

    rng = check_random_state(seed)
    outer, inner = _loop_defaults(order)
    n_restarts = outer if n_restarts is None else int(n_restarts)
    max_iter = inner if max_iter is None else int(max_iter)
    queue = _seed_windows(states, P, order, rng)

    def draw(n):
        out = [queue.pop() for _ in range(min(n, len(queue)))]
        if len(out) < n:
            out += list(rng.integers(0, 2, (n - len(out), order, P)).astype(bool))
        return np.array(out, dtype=bool).reshape(n, order, P)

    # SCYFI's budget is outer x inner solves; a chain that converges (to a real or an already
    # found cycle) or stalls is replaced by a fresh one, and a new find resets the budget
    budget = max(1, n_restarts * max_iter)
    n_chains = max(1, min(int(n_chains), budget))
    bits, age = draw(n_chains), np.zeros(n_chains, dtype=int)
    spent, total, cap = 0, 0, 10 * budget
    while bits.shape[0]:
        z0, _, singular = _k_step_solve(params, b, bits)
        spent += bits.shape[0]
        total += bits.shape[0]
        visited = np.zeros_like(bits)
        ok = np.zeros(bits.shape[0], dtype=bool)
        good = np.flatnonzero(~singular)
        if good.size:
            visited[good], ok[good], n_new = check(bits[good], z0[good])
            if n_new:
                spent = 0
        age += 1
        restart = ok | singular | (age >= max_iter) | (visited == bits).all(axis=(1, 2))
        bits = np.where(restart[:, None, None], bits, visited)
        if spent >= budget or total >= cap:
            keep = ~restart  # let running chains finish, start no new ones
            bits, age = bits[keep], age[keep]
        elif restart.any():
            idx = np.flatnonzero(restart)
            bits[idx], age[idx] = draw(idx.size), 0
    return found


def cycles(model, max_order: int, inputs=None, *, min_order: int = 1, states=None,
           n_restarts: int | None = None, max_iter: int | None = None, n_chains: int = 64,
           exhaustive_limit: int = 4096, seed=0) -> list:
    """Find k-cycles (exact period k, ``min_order <= k <= max_order``) of an AL-RNN.

    Parameters
    ----------
    model : ALRNN or mapping
        The model, or arrays ``A, W, h, C, n_relu``.
    max_order, min_order : int
        Range of periods searched (a k-cycle is reported only for its exact period).
    inputs : array-like (K,), optional
        A constant input.
    states : array-like (..., T, M), optional
        Trajectories whose windows of visited regions seed the search.
    n_restarts, max_iter : int, optional
        SCYFI's outer and inner loop sizes (default: SCYFI's per-order table): the search spends
        ``n_restarts * max_iter`` solves (reset whenever a new cycle is found, at most 10x), no
        chain of region-sequence updates runs longer than ``max_iter``, and a chain that converges
        or stalls is replaced by a fresh random (or seeded) one.
    n_chains : int
        Chains run side by side (batched solves).
    exhaustive_limit : int
        Solve all ``2**(P*k)`` region sequences when there are at most this many.
    seed : int or Generator

    Returns
    -------
    list of xarray.Dataset, one per cycle, ordered by period: ``z`` (step, latent) the cycle's
    points, ``region`` (step), ``eigenvalues`` (mode) of the k-step Jacobian ``J_k ... J_1``,
    ``spectral_radius``, ``stable`` and ``kind``; ``attrs["order"] = k``. Cyclic shifts are one
    cycle, started at the lexicographically smallest rotation of its region codes.

    Examples
    --------
    >>> import numpy as np
    >>> model = {"A": [0.0], "W": [[-1.0]], "h": [1.0], "n_relu": 0}
    >>> [c.attrs["order"] for c in cycles(model, 2)]
    [1]
    """
    params = model_params(model)
    b = drive(params, inputs)
    for name, val in (("max_order", max_order), ("min_order", min_order)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name}: expected a positive int, got {val!r}")
    if min_order > max_order:
        raise ValueError(f"min_order: {min_order} is larger than max_order {max_order}")
    rng = check_random_state(seed)
    out = []
    for k in range(int(min_order), int(max_order) + 1):
        found = search_sequences(params, b, k, states=states, n_restarts=n_restarts, max_iter=max_iter,
                                 n_chains=n_chains, exhaustive_limit=exhaustive_limit, seed=rng)
        for key in sorted(found):
            out.append(_cycle_dataset(params, b, key, found[key]))
    return out


def _cycle_dataset(params, b, key, z0) -> xr.Dataset:
    P, M = params["n_relu"], params["A"].shape[0]
    k = len(key)
    bits = codes_to_bits(np.array(key), P)[None]
    z_refined, Jprod, singular = _k_step_solve(params, b, bits)
    if not singular[0]:
        z0 = z_refined[0]
    orbit = _orbit(params, b, z0[None], k)[0, :k]
    eig = np.linalg.eigvals(Jprod[0])
    eig = eig[np.argsort(-np.abs(eig), kind="stable")]
    radius = float(np.abs(eig).max())
    return xr.Dataset(
        {"z": (("step", "latent"), orbit), "region": (("step",), np.array(key, dtype=np.int64)),
         "eigenvalues": (("mode",), eig), "spectral_radius": radius, "stable": radius < 1,
         "kind": classify(eig)},
        coords={"step": np.arange(k), "latent": np.arange(M), "mode": np.arange(M)},
        attrs={"order": k, "n_relu": P})
