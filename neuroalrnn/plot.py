"""Figures. Every function only draws what an analysis function returned.

Each function takes an optional ``ax`` (or ``fig``) and returns the Axes (or
Figure) it drew on, so figures can be composed and tested.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

__all__ = ["plot_region_raster", "plot_fixed_points", "plot_tdr_trajectories", "plot_psychometric",
           "plot_score_vs_p"]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot()


def plot_region_raster(codes: xr.DataArray, *, n_relu: int | None = None, ax=None):
    """Raster of linear-subregion codes (from ``analysis.region_codes``).

    A 1-D (time,) code array (one trial) is drawn as its P bits (ReLU unit x
    time: dark = unit active); a 2-D (trial, time) array as one row of region
    codes per trial. Codes of -1 (masked) are left blank.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xarray as xr
    >>> codes = xr.DataArray([0, 1, 3, 2, -1], dims="time", attrs={"n_relu": 2})
    >>> plot_region_raster(codes).images[0].get_array().shape
    (2, 5)
    """
    if not isinstance(codes, xr.DataArray):
        codes = xr.DataArray(np.asarray(codes), dims=("trial", "time")[-np.ndim(codes):])
    if "time" not in codes.dims or codes.ndim > 2:
        raise ValueError(f"codes: expected dims ('time',) or ('trial', 'time'), got {codes.dims}")
    values = np.asarray(codes.values)
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"codes: expected integer region codes, got dtype {values.dtype}")
    from matplotlib.ticker import MaxNLocator

    time = np.asarray(codes["time"].values if "time" in codes.coords else np.arange(codes.sizes["time"]), float)
    half = 0.5 * (np.median(np.diff(time)) if time.size > 1 else 1.0)
    t_extent = (time[0] - half, time[-1] + half)  # pixels centred on the time points
    ax = _axes(ax)
    if codes.ndim == 1:
        P = n_relu if n_relu is not None else codes.attrs.get("n_relu")
        if P is None:
            raise ValueError("n_relu: needed to draw the bits of a single trial (not in codes.attrs)")
        bits = ((values[None, :] >> np.arange(int(P))[:, None]) & 1).astype(float)
        image = np.where(values[None, :] < 0, np.nan, bits)
        ax.imshow(image, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0, vmax=1,
                  origin="lower", extent=(*t_extent, -0.5, int(P) - 0.5))
        ax.set_ylabel("ReLU unit")
    else:
        import matplotlib.pyplot as plt

        codes = codes.transpose(..., "time")
        image = np.where(codes.values < 0, np.nan, codes.values.astype(float))
        P = n_relu if n_relu is not None else codes.attrs.get("n_relu")
        n_codes = 2 ** int(P) if P is not None else int(np.nanmax(image, initial=0)) + 1
        cmap = plt.get_cmap("tab20", n_codes) if n_codes <= 20 else plt.get_cmap("viridis")
        im = ax.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=n_codes - 0.5,
                       extent=(*t_extent, codes.shape[0] - 0.5, -0.5))
        ax.figure.colorbar(im, ax=ax, label="region code")
        ax.set_ylabel(codes.dims[0])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are ReLU units or trials
    ax.set_xlabel("time")
    return ax


def plot_fixed_points(fixed_points: xr.Dataset, *, states: xr.DataArray | None = None,
                      dims: Sequence[int] | xr.DataArray = (0, 1), only_real: bool = True, ax=None):
    """State space (two latent dims or a 2-D projection) with fixed points by stability.

    ``fixed_points`` is the Dataset of ``analysis.fixed_points`` (``z`` (point,
    latent), ``real``, ``stable``). Stable points are filled, unstable ones
    hollow; virtual points (``real`` False) are drawn as grey crosses unless
    ``only_real``. ``states`` (trial, time, latent) add one line per trial.
    ``dims`` is a pair of latent indices or a (component, latent) projection.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> fp = xr.Dataset({"z": (("point", "latent"), [[0.0, 1.0], [1.0, 0.0]]),
    ...                  "real": ("point", [True, True]), "stable": ("point", [True, False])})
    >>> len(plot_fixed_points(fp).collections)
    2
    """
    for name in ("z", "real", "stable"):
        if name not in fixed_points:
            raise ValueError(f"fixed_points: missing variable {name!r} (expected the fixed_points Dataset)")
    z = np.asarray(fixed_points["z"].transpose("point", "latent").values)
    if isinstance(dims, xr.DataArray) or np.ndim(dims) == 2:
        proj = np.asarray(getattr(dims, "values", dims), float)
        if proj.shape != (2, z.shape[1]):
            raise ValueError(f"dims: a projection must have shape (2, {z.shape[1]}), got {proj.shape}")
    else:
        if len(dims) != 2:
            raise ValueError(f"dims: expected two latent indices, got {dims}")
        proj = np.eye(z.shape[1])[list(dims)]
    ax = _axes(ax)
    if states is not None:
        s = np.asarray(states.values if isinstance(states, xr.DataArray) else states, float)
        if s.ndim != 3 or s.shape[2] != z.shape[1]:
            raise ValueError(f"states: expected (trial, time, {z.shape[1]}), got shape {s.shape}")
        for traj in s @ proj.T:
            ax.plot(traj[:, 0], traj[:, 1], color="0.6", lw=0.8)
    real = fixed_points["real"].values.astype(bool)
    stable = fixed_points["stable"].values.astype(bool)
    p = z @ proj.T
    for sel, kw in (((real & stable), dict(facecolors="tab:blue", edgecolors="tab:blue", label="stable")),
                    ((real & ~stable), dict(facecolors="none", edgecolors="tab:red", label="unstable"))):
        if sel.any():
            ax.scatter(p[sel, 0], p[sel, 1], s=60, zorder=3, **kw)
    if not only_real and (~real).any():
        ax.scatter(p[~real, 0], p[~real, 1], marker="x", color="0.5", zorder=2, label="virtual")
    ax.set_xlabel("dim 1"), ax.set_ylabel("dim 2")
    return ax


def plot_tdr_trajectories(trajectories: xr.DataArray, x: str, y: str, *, by: str = "context",
                          color: str | None = None, fig=None):
    """Condition-averaged trajectories on two TDR axes, one panel per ``by`` value.

    ``trajectories`` is ``analysis.tdr_trajectories(...)`` (condition, time,
    axis); ``x``/``y`` name two axes; lines are coloured by the condition coord
    ``color`` (e.g. ``'coh_motion'``) when given.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, xarray as xr
    >>> tr = xr.DataArray(np.zeros((4, 5, 2)), dims=("condition", "time", "axis"),
    ...                   coords={"axis": ["choice", "motion"], "context": ("condition", list("aabb"))})
    >>> [len(a.lines) for a in plot_tdr_trajectories(tr, "choice", "motion").axes]
    [2, 2]
    """
    import matplotlib.pyplot as plt

    if trajectories.dims != ("condition", "time", trajectories.dims[2]) or trajectories.ndim != 3:
        raise ValueError(f"trajectories: expected dims ('condition', 'time', axis), got {trajectories.dims}")
    adim = trajectories.dims[2]
    for name in (x, y):
        if name not in trajectories[adim].values:
            raise ValueError(f"x, y: axis {name!r} not among {trajectories[adim].values.tolist()}")
    for arg, name in (("by", by), ("color", color)):
        if name is not None and (name not in trajectories.coords or trajectories[name].dims != ("condition",)):
            raise ValueError(f"{arg}: {name!r} is not a condition coord of the trajectories "
                             f"(available: {[c for c in trajectories.coords if trajectories[c].dims == ('condition',)]})")
    groups = np.unique(trajectories[by].values)
    fig = fig or plt.figure(figsize=(4 * len(groups), 4))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    cvals = trajectories[color].values.astype(float) if color else None
    norm = plt.Normalize(np.nanmin(cvals), np.nanmax(cvals)) if color else None
    for ax, g in zip(axes, groups):
        sub = trajectories.isel(condition=np.flatnonzero(trajectories[by].values == g))
        for i in range(sub.sizes["condition"]):
            c = plt.cm.coolwarm(norm(sub[color].values[i])) if color else None
            ax.plot(sub.sel({adim: x}).values[i], sub.sel({adim: y}).values[i], color=c)
        ax.set_title(f"{by} = {g}"), ax.set_xlabel(str(x)), ax.set_ylabel(str(y))
    return fig


def plot_psychometric(curves: xr.Dataset, fit: xr.Dataset | None = None, *, ax=None):
    """Choice fraction with binomial SEM per group, plus fitted curves.

    ``curves`` from ``analysis.psychometric``; ``fit`` from
    ``analysis.fit_psychometric`` on the same data. One errorbar series per
    group and, with ``fit``, one fitted line per group.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xarray as xr
    >>> cur = xr.Dataset({"p": (("context", "coh"), [[0.1, 0.9]]), "sem": (("context", "coh"), [[0.05, 0.05]])},
    ...                  coords={"context": ["a"], "coh": [-1.0, 1.0]}, attrs={"stimulus": "coh", "by": "context"})
    >>> len(plot_psychometric(cur).containers)
    1
    """
    from neuroalrnn.analysis.behavior import psychometric_function

    for name in ("p", "sem"):
        if name not in curves:
            raise ValueError(f"curves: missing variable {name!r} (expected analysis.psychometric output)")
    stim, by = curves.attrs.get("stimulus"), curves.attrs.get("by")
    if stim not in curves.dims or by not in curves.dims:
        raise ValueError("curves: attrs 'stimulus' and 'by' must name its two dims")
    ax = _axes(ax)
    xs = curves[stim].values.astype(float)
    grid = np.linspace(xs.min(), xs.max(), 200)
    for i, g in enumerate(curves[by].values):
        color = f"C{i}"
        row = curves.sel({by: g})
        ok = np.isfinite(row["p"].values)
        ax.errorbar(xs[ok], row["p"].values[ok], yerr=row["sem"].values[ok], fmt="o", color=color, label=str(g))
        if fit is not None:
            if g not in fit[by].values:
                raise ValueError(f"fit: group {g!r} is missing from the fit")
            f = fit.sel({by: g})
            ax.plot(grid, psychometric_function(grid, float(f["bias"]), float(f["slope"]), float(f["lapse_low"]),
                                                float(f["lapse_high"]), kind=fit.attrs.get("kind", "logistic")),
                    color=color)
    ax.set_xlabel(stim), ax.set_ylabel(f"P({curves.attrs.get('choice', 'choice')} = "
                                      f"{curves.attrs.get('positive', '')})")
    ax.set_ylim(-0.02, 1.02), ax.legend(title=by, fontsize="small")
    return ax


def plot_score_vs_p(results_summary: xr.Dataset, *, ax=None, label: str = "held-out score"):
    """Mean held-out score (+- SEM) against the number of ReLU units P.

    ``results_summary`` from ``neuroalrnn.compare.summarize``. Models with an ``n_relu``
    coord are drawn as error bars against P (joined by a line); models without one (NaN,
    e.g. a GRU baseline) as horizontal lines with their SEM band.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xarray as xr
    >>> s = xr.Dataset({"mean": ("model", [0.6, 0.8, 0.8, 0.7]), "sem": ("model", [0.02, 0.01, 0.01, 0.02])},
    ...                coords={"model": ["P=0", "P=2", "P=8", "gru"], "n_relu": ("model", [0, 2, 8, float("nan")])})
    >>> ax = plot_score_vs_p(s)
    >>> len(ax.containers), ax.get_xlabel()
    (1, 'P (ReLU units)')
    """
    for name in ("mean", "sem"):
        if name not in results_summary:
            raise ValueError(f"results_summary: missing variable {name!r} (expected compare.summarize output)")
    if "n_relu" not in results_summary.coords:
        raise ValueError("results_summary: missing the 'n_relu' coord on 'model'")
    ax = _axes(ax)
    p = results_summary["n_relu"].values.astype(float)
    mean, sem = results_summary["mean"].values, results_summary["sem"].values
    has_p = np.isfinite(p)
    order = np.argsort(p[has_p])
    if has_p.any():
        ax.errorbar(p[has_p][order], mean[has_p][order], yerr=np.nan_to_num(sem[has_p][order]), fmt="o-",
                    color="C0", capsize=3, label="AL-RNN")
    for i, j in enumerate(np.flatnonzero(~has_p)):
        color = f"C{i + 1}"
        ax.axhline(mean[j], color=color, ls="--", label=str(results_summary["model"].values[j]))
        if np.isfinite(sem[j]):
            ax.axhspan(mean[j] - sem[j], mean[j] + sem[j], color=color, alpha=0.15)
    ax.set_xlabel("P (ReLU units)"), ax.set_ylabel(label)
    ax.legend(fontsize=8)
    return ax
