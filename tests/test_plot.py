"""Tests for neuroalrnn.plot: each figure runs on synthetic analysis output and draws what it should."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from neuroalrnn import plot  # noqa: E402
from neuroalrnn.analysis import behavior, geometry  # noqa: E402
from neuroalrnn.schema import from_arrays  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_region_raster_single_trial_bits_and_trials():
    codes = xr.DataArray(np.array([[0, 1, 3, 2, -1], [2, 2, 2, -1, -1]]), dims=("trial", "time"),
                         coords={"time": np.arange(5) * 0.1}, attrs={"n_relu": 2})
    ax = plot.plot_region_raster(codes.isel(trial=0))
    image = ax.images[0].get_array()
    assert image.shape == (2, 5)
    np.testing.assert_array_equal(image[:, :4], [[0, 1, 1, 0], [0, 0, 1, 1]])  # bit i of each code
    assert np.ma.getmaskarray(image)[:, 4].all()  # masked step left blank (NaN -> masked)
    ticks = [t for t in ax.get_yticks() if -0.5 <= t <= 1.5]
    assert ticks == [0.0, 1.0]  # one integer tick per ReLU unit, no fractional rows
    np.testing.assert_allclose(ax.images[0].get_extent()[:2], [-0.05, 0.45])  # pixels centred on time points
    ax = plot.plot_region_raster(codes)
    assert ax.images[0].get_array().shape == (2, 5)
    assert all(float(t).is_integer() for t in ax.get_yticks())
    ax = plot.plot_region_raster(codes.isel(time=[0]))  # one time step: a finite, non-empty extent
    left, right = ax.images[0].get_extent()[:2]
    assert right - left == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_relu"):
        plot.plot_region_raster(xr.DataArray([0, 1], dims="time"))
    with pytest.raises(TypeError, match="integer"):
        plot.plot_region_raster(xr.DataArray([0.5, 1.0], dims="time"), n_relu=1)


def test_fixed_points_by_stability_with_trajectories():
    fp = xr.Dataset({"z": (("point", "latent"), [[0.0, 1, 0], [1, 0, 0], [2, 2, 2], [3, 0, 1]]),
                     "real": ("point", [True, True, True, False]),
                     "stable": ("point", [True, False, True, True]),
                     "region": ("point", [0, 1, 1, 2])})
    states = xr.DataArray(np.random.default_rng(0).normal(size=(3, 10, 3)), dims=("trial", "time", "latent"))
    ax = plot.plot_fixed_points(fp, states=states)
    assert len(ax.lines) == 3
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [1, 2]  # one unstable, two stable real points; the virtual one hidden
    ax = plot.plot_fixed_points(fp, only_real=False, dims=np.array([[1.0, 0, 0], [0, 0, 1.0]]))
    assert sorted(len(c.get_offsets()) for c in ax.collections) == [1, 1, 2]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0, 0], [2, 2]])  # stable ones, projected
    with pytest.raises(ValueError, match="'stable'"):
        plot.plot_fixed_points(fp.drop_vars("stable"))


def test_tdr_trajectories_one_line_per_condition_and_panel_per_context():
    rng = np.random.default_rng(0)
    n = 60
    ctx = np.resize(["motion", "color"], n)
    coh = np.resize([-0.5, -0.5, 0.5, 0.5, 0.15, 0.15], n)
    ds = from_arrays(activity=rng.normal(size=(n, 6, 4)), dt=0.1,
                     trial_coords={"context": ctx, "coh_motion": coh, "choice": np.sign(coh)})
    axes = geometry.tdr_axes(ds, ["choice", "coh_motion"])
    traj = geometry.tdr_trajectories(ds, axes, ["context", "coh_motion"])
    fig = plot.plot_tdr_trajectories(traj, "choice", "coh_motion", color="coh_motion")
    panels = fig.axes[:2]  # the third is the colour bar of coh_motion
    assert [len(a.lines) for a in panels] == [3, 3]
    assert [a.get_title() for a in panels] == ["context = color", "context = motion"]
    assert fig.axes[2].get_ylabel() == "coh_motion"
    np.testing.assert_allclose(panels[0].lines[0].get_xdata(), traj.sel(axis="choice").values[0])
    assert panels[0].get_xlabel() == "choice axis"
    # without a colour coord, a legend names each line's condition
    fig = plot.plot_tdr_trajectories(traj, "choice", "coh_motion")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["coh_motion = -0.5", "coh_motion = 0.15", "coh_motion = 0.5"]
    with pytest.raises(ValueError, match="'nope'"):
        plot.plot_tdr_trajectories(traj, "choice", "nope")
    with pytest.raises(ValueError, match="color: 'coh_color' is not a condition coord"):
        plot.plot_tdr_trajectories(traj, "choice", "coh_motion", color="coh_color")
    with pytest.raises(ValueError, match="by: 'block'"):
        plot.plot_tdr_trajectories(traj, "choice", "coh_motion", by="block")


def test_psychometric_points_and_fitted_curves():
    rng = np.random.default_rng(0)
    x = rng.choice([-1, -0.25, 0, 0.25, 1], 600)
    ctx = rng.choice(["a", "b", "c"], 600)
    y = np.where(rng.uniform(size=600) < behavior.psychometric_function(x, 0, 5), 1, -1)
    ds = from_arrays(trial_coords={"s": x, "choice": y, "context": ctx})
    cur = behavior.psychometric(ds, "s")
    fit = behavior.fit_psychometric(ds, "s", lapses=False)
    ax = plot.plot_psychometric(cur, fit)
    assert len(ax.containers) == 3  # one errorbar series per context
    fitted = [ln for ln in ax.lines if len(ln.get_xdata()) == 200]
    assert len(fitted) == 3
    ax2 = plot.plot_psychometric(cur)
    assert not [ln for ln in ax2.lines if len(ln.get_xdata()) == 200]
    with pytest.raises(ValueError, match="'p'"):
        plot.plot_psychometric(cur.drop_vars("p"))


def test_plots_take_real_fixed_points_and_region_codes():
    from neuroalrnn.analysis import fixed_points, region_codes

    # 1-D linear unit + ReLU unit: a stable point at z = (2, -2) in region 0, others virtual
    fp = fixed_points({"A": [0.5, 0.5], "W": [[0.0, 0.0], [0.0, 0.0]], "h": [1.0, -1.0], "n_relu": 1},
                      include_virtual=True)
    ax = plot.plot_fixed_points(fp, only_real=False)
    offsets = [c.get_offsets() for c in ax.collections]
    assert sum(len(o) for o in offsets) == fp.sizes["point"]
    np.testing.assert_allclose(offsets[0], [[2.0, -2.0]])
    z = xr.DataArray(np.random.default_rng(0).normal(size=(2, 7, 3)), dims=("trial", "time", "latent"))
    codes = region_codes(z, 2)
    ax = plot.plot_region_raster(codes.isel(trial=1))
    assert ax.images[0].get_array().shape == (2, 7)


def test_region_raster_names_each_region_in_a_categorical_key():
    codes = xr.DataArray(np.array([[0, 1, 3, 2], [2, 2, 1, -1]]), dims=("trial", "time"),
                         coords={"time": np.arange(4) * 0.05}, attrs={"n_relu": 2})
    ax = plot.plot_region_raster(codes)
    key = [t.get_text() for t in ax.get_legend().get_texts()]
    assert key == ["0: all ReLU off", "1: ReLU 0 on", "2: ReLU 1 on", "3: ReLU 0, 1 on"]
    swatches = [h.get_facecolor() for h in ax.get_legend().legend_handles]
    cmap = ax.images[0].get_cmap()
    np.testing.assert_allclose(swatches, [cmap(ax.images[0].norm(c)) for c in range(4)])  # key matches the image
    assert ax.get_xlabel() == "time (s)"
    assert len(ax.figure.axes) == 1  # no continuous colour bar for a categorical code
    assert plot.plot_region_raster(codes.drop_vars("time")).get_xlabel() == "time step"


def test_fixed_points_on_named_axes_with_a_legend():
    fp = xr.Dataset({"z": (("point", "latent"), [[1.0, 0, 0], [0, 2, 0]]), "real": ("point", [True, True]),
                     "stable": ("point", [True, False])})
    tdr = xr.DataArray([[1.0, 0, 0], [0, 1.0, 0]], dims=("axis", "latent"), coords={"axis": ["choice", "motion"]})
    ax = plot.plot_fixed_points(fp, dims=tdr)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("choice axis", "motion axis")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["stable fixed point", "unstable fixed point"]
    assert plot.plot_fixed_points(fp, dims=(0, 2)).get_xlabel() == "latent unit 0"


def test_tdr_trajectories_with_each_groups_fixed_points_in_its_panel():
    tdr = xr.DataArray(np.eye(3)[:2], dims=("axis", "latent"), coords={"axis": ["choice", "motion"]})
    traj = xr.DataArray(np.zeros((2, 3, 2)), dims=("condition", "time", "axis"),
                        coords={"axis": ["choice", "motion"], "context": ("condition", ["color", "motion"])})
    fps = {"motion": xr.Dataset({"z": (("point", "latent"), [[3.0, 4.0, 9.0]]), "real": ("point", [True]),
                                 "stable": ("point", [True])})}
    fig = plot.plot_tdr_trajectories(traj, "choice", "motion", fixed_points=fps, axes_of_states=tdr)
    color_panel, motion_panel = fig.axes
    points = [c.get_offsets() for c in motion_panel.collections if len(c.get_offsets()) and c.get_sizes()[0] == 60]
    np.testing.assert_allclose(points, [[[3.0, 4.0]]])  # projected on the choice and motion axes
    assert not [c for c in color_panel.collections if c.get_sizes()[0] == 60]
    with pytest.raises(ValueError, match="axes_of_states"):
        plot.plot_tdr_trajectories(traj, "choice", "motion", fixed_points=fps)
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="axes: expected 2 Axes"):
        plot.plot_tdr_trajectories(traj, "choice", "motion", axes=axes)


def test_score_vs_p_categorical_with_every_fold():
    res = xr.Dataset({"score": (("model", "fold", "seed"), [[[0.6], [0.7]], [[0.8], [0.75]], [[0.78], [0.8]]])},
                     coords={"model": ["P=16", "P=0", "P=2"], "n_relu": ("model", [16.0, 0.0, 2.0])})
    summary = xr.Dataset({"mean": res["score"].mean(("fold", "seed")), "sem": res["score"].std(("fold", "seed"))})
    ax = plot.plot_score_vs_p(summary, results=res)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "16"]
    np.testing.assert_allclose(ax.containers[0].lines[0].get_xdata(), [0, 1, 2])  # evenly spaced categories
    folds = [ln for ln in ax.lines if ln.get_color() == "0.6"]
    np.testing.assert_allclose([ln.get_ydata() for ln in folds], [[0.8, 0.78, 0.6], [0.75, 0.8, 0.7]])
    with pytest.raises(ValueError, match="results"):
        plot.plot_score_vs_p(summary, results=summary)


def test_far_fixed_points_are_marked_at_the_edge_and_missing_ones_said():
    tdr = xr.DataArray(np.eye(3)[:2], dims=("axis", "latent"), coords={"axis": ["choice", "motion"]})
    traj = xr.DataArray(np.random.default_rng(0).uniform(-1, 1, size=(2, 6, 2)), dims=("condition", "time", "axis"),
                        coords={"axis": ["choice", "motion"], "context": ("condition", ["color", "motion"])})
    far = xr.Dataset({"z": (("point", "latent"), [[0.2, 0.1, 0.0], [60.0, 0.5, 0.0]]),
                      "real": ("point", [True, True]), "stable": ("point", [True, False])})
    none = far.assign(real=("point", [False, False]))
    fig = plot.plot_tdr_trajectories(traj, "choice", "motion", fixed_points={"motion": far, "color": none},
                                     axes_of_states=tdr)
    color_panel, motion_panel = fig.axes
    assert motion_panel.get_xlim()[1] < 5  # the view keeps to the trajectories, not the far point
    texts = [t.get_text() for t in motion_panel.texts]
    assert texts == ["unstable point\nat (60, 0.5)"]
    right = motion_panel.get_xlim()[1]
    edge = [c for c in motion_panel.collections if len(c.get_offsets()) == 1
            and right - 0.05 * np.ptp(motion_panel.get_xlim()) < c.get_offsets()[0][0] < right]
    assert len(edge) == 1  # an arrowhead just inside the right edge
    assert [t.get_text() for t in color_panel.get_legend().get_texts()] == ["no real fixed point under this input"]
