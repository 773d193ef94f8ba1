"""Figures. Every function only draws what an analysis function returned.

Each function takes an optional ``ax`` (or ``fig``) and returns the Axes (or
Figure) it drew on, so figures can be composed and tested.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import xarray as xr

__all__ = ["plot_region_raster", "region_label", "plot_fixed_points", "plot_tdr_trajectories",
           "plot_psychometric", "plot_score_vs_p"]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot()


def plot_region_raster(codes: xr.DataArray, *, n_relu: int | None = None, ax=None):
    """Raster of linear-subregion codes (from ``analysis.region_codes``).

    A 1-D (time,) code array (one trial) is drawn as its P bits (ReLU unit x
    time: dark = unit active); a 2-D (trial, time) array as one row of region
    codes per trial, with a categorical key naming each region's active ReLU units
    (a colour bar beyond 16 regions). Codes of -1 (masked) are left blank. Time is in
    seconds (the TrialDataset convention) when the codes carry a ``time`` coord.

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
        cmap = plt.get_cmap("tab10" if n_codes <= 10 else "tab20", n_codes) if n_codes <= 20 else plt.get_cmap("viridis")
        im = ax.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=n_codes - 0.5,
                       extent=(*t_extent, codes.shape[0] - 0.5, -0.5))
        if n_codes <= 16 and P is not None:  # a categorical key: one swatch per region, named by its bits
            from matplotlib.patches import Patch

            handles = [Patch(color=cmap(c), label=region_label(c, int(P))) for c in range(n_codes)]
            ax.legend(handles=handles, title="linear subregion", fontsize="x-small", title_fontsize="small",
                      loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        else:
            ax.figure.colorbar(im, ax=ax, label="region code")
        ax.set_ylabel(codes.dims[0])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are ReLU units or trials
    ax.set_xlabel(f"time ({codes['time'].attrs.get('units', 's')})" if "time" in codes.coords else "time step")
    return ax


def region_label(code: int, n_relu: int) -> str:
    """A region code spelled out: which of the P ReLU units are positive there.

    Bit i of a region code is set when ReLU unit i (counted from 0 among the P ReLU
    units, as in ``analysis.region_codes``) is positive.

    Examples
    --------
    >>> region_label(2, 2)
    '2: ReLU 1 on'
    >>> region_label(0, 2), region_label(3, 2)
    ('0: all ReLU off', '3: ReLU 0, 1 on')
    """
    on = [str(i) for i in range(int(n_relu)) if (int(code) >> i) & 1]
    return f"{int(code)}: " + (f"ReLU {', '.join(on)} on" if on else "all ReLU off")


def plot_fixed_points(fixed_points: xr.Dataset, *, states: xr.DataArray | None = None,
                      dims: Sequence[int] | xr.DataArray = (0, 1), only_real: bool = True, ax=None):
    """State space (two latent dims or a 2-D projection) with fixed points by stability.

    ``fixed_points`` is the Dataset of ``analysis.fixed_points`` (``z`` (point,
    latent), ``real``, ``stable``). Stable points are filled, unstable ones
    hollow; virtual points (``real`` False) are drawn as grey crosses unless
    ``only_real``; a legend names them. ``states`` (trial, time, latent) add one
    line per trial. ``dims`` is a pair of latent indices or a (2, latent)
    projection; a DataArray projection such as ``tdr_axes(...).sel(axis=[...])``
    names the plot's axes after its labels.

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
        labels = ["projection 1", "projection 2"]
        if isinstance(dims, xr.DataArray) and dims.dims[0] in dims.coords:  # e.g. TDR axes: name them
            labels = [f"{name} axis" for name in dims[dims.dims[0]].values]
    else:
        if len(dims) != 2:
            raise ValueError(f"dims: expected two latent indices, got {dims}")
        proj = np.eye(z.shape[1])[list(dims)]
        labels = [f"latent unit {int(d)}" for d in dims]
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
    for sel, kw in (((real & stable), dict(facecolors="k", edgecolors="k", label="stable fixed point")),
                    ((real & ~stable), dict(facecolors="white", edgecolors="k", linewidths=1.5,
                                            label="unstable fixed point"))):
        if sel.any():
            ax.scatter(p[sel, 0], p[sel, 1], s=60, zorder=4, **kw)
    if not only_real and (~real).any():
        ax.scatter(p[~real, 0], p[~real, 1], marker="x", color="0.5", zorder=3, label="virtual (outside its region)")
    ax.set_xlabel(labels[0]), ax.set_ylabel(labels[1])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def plot_tdr_trajectories(trajectories: xr.DataArray, x: str, y: str, *, by: str = "context",
                          color: str | None = None, fixed_points: Mapping | None = None,
                          axes_of_states: xr.DataArray | None = None, fig=None, axes=None):
    """Condition-averaged trajectories on two TDR axes, one panel per ``by`` value.

    ``trajectories`` is ``analysis.tdr_trajectories(...)`` (condition, time,
    axis); ``x``/``y`` name two axes. With ``color`` (a numeric condition coord,
    e.g. ``'coh_motion'``) lines are coloured by it on a diverging scale with a
    colour bar; otherwise each line is labelled by its condition in a legend. A
    dot marks where each trajectory starts.

    ``fixed_points`` maps a ``by`` value to its ``analysis.fixed_points`` Dataset
    (e.g. one per context's input); they are projected on the same axes, which
    needs ``axes_of_states``, the (axis, latent) ``tdr_axes`` the trajectories
    were projected on, and drawn with :func:`plot_fixed_points` (stable filled,
    unstable hollow). ``axes`` (one Axes per ``by`` value) draws into existing
    panels; otherwise a row of panels is made in ``fig`` (or a new figure).
    Returns the figure.

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

    if trajectories.ndim != 3 or trajectories.dims[:2] != ("condition", "time"):
        raise ValueError(f"trajectories: expected dims ('condition', 'time', axis), got {trajectories.dims}")
    adim = trajectories.dims[2]
    for name in (x, y):
        if name not in trajectories[adim].values:
            raise ValueError(f"x, y: axis {name!r} not among {trajectories[adim].values.tolist()}")
    per_condition = [c for c in trajectories.coords if trajectories[c].dims == ("condition",)]
    for arg, name in (("by", by), ("color", color)):
        if name is not None and name not in per_condition:
            raise ValueError(f"{arg}: {name!r} is not a condition coord of the trajectories (available: {per_condition})")
    groups = np.unique(trajectories[by].values)
    if fixed_points is not None:
        if axes_of_states is None:
            raise ValueError("axes_of_states: needed to project fixed_points on the trajectories' axes")
        if adim not in axes_of_states.dims:
            raise ValueError(f"axes_of_states: expected an {adim!r} dim like the trajectories, got {axes_of_states.dims}")
    if axes is None:
        fig = fig or plt.figure(figsize=(4 * len(groups), 4))
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
    elif len(axes) != len(groups):
        raise ValueError(f"axes: expected {len(groups)} Axes (one per {by} value), got {len(axes)}")
    fig = axes[0].figure
    cvals = trajectories[color].values.astype(float) if color else None
    lim = float(np.nanmax(np.abs(cvals))) if color else None
    norm = plt.Normalize(-lim, lim) if color else None  # diverging: 0 (no evidence) in the middle
    others = [c for c in per_condition if c not in (by, color, "condition", "n_trials")]  # what defines a line
    for ax, g in zip(axes, groups):
        sub = trajectories.isel(condition=np.flatnonzero(trajectories[by].values == g))
        for i in range(sub.sizes["condition"]):
            c = plt.cm.coolwarm(norm(sub[color].values[i])) if color else None
            label = None if color else ", ".join(f"{o} = {sub[o].values[i]}" for o in others) or None
            xs, ys = sub.sel({adim: x}).values[i], sub.sel({adim: y}).values[i]
            line, = ax.plot(xs, ys, color=c, label=label)
            ok = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
            if ok.size:
                ax.scatter(xs[ok[0]], ys[ok[0]], s=12, color=line.get_color(), zorder=2)
        if fixed_points is not None and g in fixed_points:
            _fixed_points_beside(ax, fixed_points[g], axes_of_states.sel({adim: [x, y]}),
                                 sub.sel({adim: [x, y]}).values.reshape(-1, 2))
        ax.set_title(f"{by} = {g}"), ax.set_xlabel(f"{x} axis"), ax.set_ylabel(f"{y} axis")
        if not color and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if color:
        sm = plt.cm.ScalarMappable(norm=norm, cmap="coolwarm")
        fig.colorbar(sm, ax=list(axes), label=color, shrink=0.8)
    return fig


def _fixed_points_beside(ax, fp, proj, traj_xy):
    """Fixed points on trajectory axes; points far outside the trajectories are marked at the edge.

    A far fixed point (e.g. an unstable one 10x beyond the data) would squeeze the trajectories
    into a corner, so the view keeps to the trajectories (and the points near them) and each far
    point gets an arrowhead at the edge, in its stability's style, with its coordinates.
    """
    real = fp["real"].values.astype(bool)
    if not real.any():  # said in a legend box, which finds the emptiest corner
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], ls="none")], labels=["no real fixed point under this input"],
                  loc="best", handlelength=0, handletextpad=0, fontsize="small")
        return
    plot_fixed_points(fp, dims=proj, ax=ax)
    traj_xy = traj_xy[np.isfinite(traj_xy).all(1)]
    if not len(traj_xy):
        return
    lo, hi = traj_xy.min(0), traj_xy.max(0)
    span = np.maximum(hi - lo, 1e-9)
    z = np.asarray(fp["z"].transpose("point", "latent").values)[real] @ np.asarray(proj.values, float).T
    stable = fp["stable"].values.astype(bool)[real]
    near = np.all((z >= lo - 2 * span) & (z <= hi + 2 * span), axis=1)  # within two data spans: as is
    view_lo = np.minimum(lo, z[near].min(0, initial=np.inf)) - 0.08 * span
    view_hi = np.maximum(hi, z[near].max(0, initial=-np.inf)) + 0.08 * span
    if near.all():
        return
    ax.set_xlim(view_lo[0], view_hi[0]), ax.set_ylim(view_lo[1], view_hi[1])
    for point, is_stable in zip(z[~near], stable[~near]):
        inset = 0.03 * (view_hi - view_lo)  # the arrowhead just inside the frame
        edge = np.clip(point, view_lo + inset, view_hi - inset)
        direction = point - (lo + hi) / 2
        marker = (">" if direction[0] > 0 else "<") if abs(direction[0]) / span[0] >= abs(direction[1]) / span[1] \
            else ("^" if direction[1] > 0 else "v")
        ax.scatter(*edge, marker=marker, s=90, zorder=5, edgecolors="k", linewidths=1.5,
                   facecolors="k" if is_stable else "white")
        ax.annotate(f"{'stable' if is_stable else 'unstable'} point\nat ({point[0]:.3g}, {point[1]:.3g})", edge,
                    xytext=(-6 if marker == ">" else 6, -6 if marker == "^" else 6), textcoords="offset points",
                    ha="right" if marker == ">" else "left", va="top" if marker == "^" else "bottom",
                    fontsize="x-small", annotation_clip=False)


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


def plot_score_vs_p(results_summary: xr.Dataset, *, results: xr.Dataset | None = None, ax=None,
                    label: str = "held-out score"):
    """Mean held-out score (+- SEM) against the number of ReLU units P, P on a categorical axis.

    ``results_summary`` from ``neuroalrnn.compare.summarize``. Models with an ``n_relu``
    coord are drawn as error bars at evenly spaced positions labelled by their P (P = 0, 2
    and 16 are three categories, not a numeric scale), joined by a line; models without
    one (NaN, e.g. a GRU baseline) as horizontal lines with their SEM band. With
    ``results`` (``compare.compare`` output, dims (model, fold, seed)) every fold's score,
    averaged over seeds, is drawn as a faint line across the models, so one can see
    whether a difference holds fold by fold.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xarray as xr
    >>> s = xr.Dataset({"mean": ("model", [0.6, 0.8, 0.8, 0.7]), "sem": ("model", [0.02, 0.01, 0.01, 0.02])},
    ...                coords={"model": ["P=0", "P=2", "P=8", "gru"], "n_relu": ("model", [0, 2, 8, float("nan")])})
    >>> ax = plot_score_vs_p(s)
    >>> len(ax.containers), ax.get_xlabel(), [t.get_text() for t in ax.get_xticklabels()]
    (1, 'P (ReLU units)', ['0', '2', '8'])
    """
    for name in ("mean", "sem"):
        if name not in results_summary:
            raise ValueError(f"results_summary: missing variable {name!r} (expected compare.summarize output)")
    if "n_relu" not in results_summary.coords:
        raise ValueError("results_summary: missing the 'n_relu' coord on 'model'")
    if results is not None and ("score" not in results or "fold" not in results["score"].dims):
        raise ValueError("results: expected compare.compare output with a 'score' (model, fold, seed) variable")
    ax = _axes(ax)
    p = results_summary["n_relu"].values.astype(float)
    mean, sem = results_summary["mean"].values, results_summary["sem"].values
    has_p = np.flatnonzero(np.isfinite(p))
    order = has_p[np.argsort(p[has_p], kind="stable")]
    pos = np.arange(order.size)
    if results is not None and order.size:
        names = results_summary["model"].values[order]
        folds = results["score"].sel(model=names)
        folds = folds.mean("seed") if "seed" in folds.dims else folds
        for f in range(folds.sizes["fold"]):
            ax.plot(pos, folds.isel(fold=f).values, "-o", color="0.6", lw=0.8, ms=3, zorder=1,
                    label="one fold" if f == 0 else None)
    if order.size:
        ax.errorbar(pos, mean[order], yerr=np.nan_to_num(sem[order]), fmt="o-", color="C0", capsize=3, zorder=3,
                    label="AL-RNN, mean ± SEM")
        ax.set_xticks(pos, [f"{v:g}" for v in p[order]])
        ax.set_xlim(-0.5, order.size - 0.5)
    for i, j in enumerate(np.flatnonzero(~np.isfinite(p))):
        color = f"C{i + 1}"
        ax.axhline(mean[j], color=color, ls="--", label=str(results_summary["model"].values[j]))
        if np.isfinite(sem[j]):
            ax.axhspan(mean[j] - sem[j], mean[j] + sem[j], color=color, alpha=0.15)
    ax.set_xlabel("P (ReLU units)"), ax.set_ylabel(label)
    ax.legend(fontsize=8)
    return ax
