"""Preprocessing of TrialDatasets: spike binning, smoothing, z-scoring, averages, LFP.

Every dataset-level function takes a TrialDataset (or DataArray) and returns a
new one with the coords and attrs kept; nothing is modified in place.
"""

from .spikes import bin_spike_times, spikes_to_dataset

__all__ = ["bin_spike_times", "spikes_to_dataset"]
