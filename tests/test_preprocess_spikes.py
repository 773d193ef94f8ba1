"""Tests for neuroalrnn.preprocess.spikes: binning against numpy.histogram."""

import numpy as np
import pytest

from neuroalrnn.preprocess import bin_spike_times, spikes_to_dataset
from neuroalrnn.schema import validate


def _histogram_reference(spike_times, align, window, bin_size):
    n_bins = int(np.floor((window[1] - window[0]) / bin_size + 1e-9))
    rel = window[0] + bin_size * np.arange(n_bins + 1)
    out = np.zeros((len(align), n_bins, len(spike_times)))
    for i, a in enumerate(align):
        edges = a + rel
        for u, s in enumerate(spike_times):
            # np.histogram closes the last bin; our bins are half-open, so drop spikes on the right edge
            out[i, :, u] = np.histogram(s[s < edges[-1]], bins=edges)[0]
    return out


@pytest.mark.parametrize("window,bin_size", [((-0.5, 1.0), 0.05), ((0.0, 0.3), 0.1), ((-0.2, 0.77), 0.013)])
def test_matches_histogram_loop_exactly(rng, window, bin_size):
    spikes = [np.sort(rng.uniform(0, 40, rng.integers(0, 400))) for _ in range(7)]
    spikes.append(np.array([]))  # an empty unit
    align = np.sort(rng.uniform(1, 38, 25))  # overlapping windows are allowed
    counts, starts = bin_spike_times(spikes, align, window, bin_size)
    ref = _histogram_reference(spikes, align, window, bin_size)
    assert counts.dtype == np.float64 and counts.shape == ref.shape
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_allclose(starts, window[0] + bin_size * np.arange(ref.shape[1]))


def test_spikes_on_edges_are_half_open():
    align = np.array([1.0])
    edges = 1.0 + (0.0 + 0.1 * np.arange(4))  # the exact float edges the binner uses
    counts, _ = bin_spike_times([edges.copy()], align, (0.0, 0.3), 0.1)
    # each edge goes to the bin it opens; the right window edge is outside
    assert counts[0, :, 0].tolist() == [1.0, 1.0, 1.0]


def test_unsorted_align_times_and_trial_order(rng):
    spikes = [np.sort(rng.uniform(0, 10, 200))]
    align = np.array([5.0, 1.0, 3.0])
    counts, _ = bin_spike_times(spikes, align, (0, 1), 0.25)
    for i, a in enumerate(align):
        assert counts[i, :, 0].sum() == np.sum((spikes[0] >= a) & (spikes[0] < a + 1))


def test_nan_past_stop_times():
    spikes = [np.arange(0.0, 10.0, 0.01) + 0.005]
    align = np.array([1.0, 4.0])
    stop = np.array([1.25, 10.0])  # trial 0 ends after 2.5 bins of 0.1 s
    counts, _ = bin_spike_times(spikes, align, (0.0, 0.5), 0.1, stop_times=stop)
    assert np.isnan(counts[0, 2:, 0]).all() and np.isfinite(counts[0, :2, 0]).all()
    assert counts[0, :2, 0].tolist() == [10.0, 10.0]
    assert np.isfinite(counts[1]).all()


def test_spikes_to_dataset_rates_and_mask(rng):
    spikes = [np.sort(rng.uniform(0, 20, 300)) for _ in range(3)]
    align = np.array([2.0, 6.0, 11.0])
    stop = np.array([2.6, 7.0, 12.0])
    ds = spikes_to_dataset(spikes, align, (-0.2, 0.8), 0.1, stop, output="rates",
                           align_event="stim_on", trial_coords={"context": ["a", "b", "a"]},
                           unit={"unit": [10, 11, 12], "area": ["V1", "V1", "PFC"]})
    validate(ds)
    counts, starts = bin_spike_times(spikes, align, (-0.2, 0.8), 0.1, stop)
    np.testing.assert_allclose(ds["activity"].values, counts / 0.1)
    assert ds["activity"].attrs["units"] == "Hz" and ds.attrs["dt"] == 0.1
    assert ds.attrs["align_event"] == "stim_on"
    assert ds["mask"].sum("time").values.tolist() == [8, 10, 10]
    np.testing.assert_allclose(ds["time"].values, starts)
    assert ds["area"].values.tolist() == ["V1", "V1", "PFC"]


def test_inputs_not_modified(rng):
    spikes = [np.sort(rng.uniform(0, 5, 50))]
    copy = spikes[0].copy()
    align = np.array([1.0, 2.0])
    bin_spike_times(spikes, align, (0, 1), 0.1)
    np.testing.assert_array_equal(spikes[0], copy)


@pytest.mark.parametrize("spikes,match", [
    ([np.array([0.1, 0.3, 0.2])], r"spike_times\[0\].*not sorted"),
    ([np.array([0.1]), np.array([-0.5, 0.2])], r"spike_times\[1\].*negative"),
    ([np.array([0.1, np.nan])], r"spike_times\[0\].*NaN"),
    ([np.zeros((2, 2))], r"spike_times\[0\].*1-D"),
])
def test_bad_spike_times(spikes, match):
    with pytest.raises(ValueError, match=match):
        bin_spike_times(spikes, np.array([0.0]), (0, 1), 0.1)


def test_bad_spike_container():
    with pytest.raises(TypeError, match="spike_times"):
        bin_spike_times(np.zeros(10), np.array([0.0]), (0, 1), 0.1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(window=(1.0, 0.5)), "window"),
    (dict(window=(0.0, 0.05)), "window"),
    (dict(bin_size=0.0), "bin_size"),
    (dict(bin_size=-0.1), "bin_size"),
    (dict(align_times=np.array([0.0, np.nan])), "align_times"),
    (dict(stop_times=np.array([0.5, -1.0])), "stop_times.*trial 1"),
    (dict(stop_times=np.array([1.0])), "stop_times.*shape"),
])
def test_bad_grid(kwargs, match):
    args = dict(spike_times=[np.array([0.1, 0.2])], align_times=np.array([0.0, 1.0]), window=(0.0, 1.0),
                bin_size=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bin_spike_times(**args)


def test_spikes_to_dataset_bad_output():
    with pytest.raises(ValueError, match="output"):
        spikes_to_dataset([np.array([0.1])], np.array([0.0]), (0, 1), 0.1, output="hz")


def test_a_grid_larger_than_memory_is_refused_before_allocating():
    # 1,000 trials of 1,000 s in 1 ns bins: PiB of counts; numpy used to fail on a 7 TiB arange
    with pytest.raises(ValueError, match=r"bin_size: 1e-09 s gives 1000 trials x \d+ bins x 2 units, "
                                         r"[\d.]+ PiB of float64 counts, more than this machine's memory"):
        bin_spike_times([np.array([1.0]), np.array([2.0])], np.arange(1000.0), (0.0, 1000.0), 1e-9)


def test_spike_times_as_timedeltas_are_refused():
    with pytest.raises(TypeError, match=r"spike_times\[0\] \(unit 0\): expected numbers, got dtype timedelta64"):
        bin_spike_times([np.array([1, 2], dtype="m8[s]")], np.array([0.0]), (0.0, 3.0), 1.0)


def test_binned_spikes_carry_cf_units():
    counts = spikes_to_dataset([np.array([0.05, 0.15])], np.array([0.0]), (0.0, 0.2), 0.1)
    assert counts["activity"].attrs == {"units": "count", "long_name": "spike count per 0.1 s bin"}
    rates = spikes_to_dataset([np.array([0.05, 0.15])], np.array([0.0]), (0.0, 0.2), 0.1, output="rates")
    assert rates["activity"].attrs == {"units": "Hz", "long_name": "firing rate"}
