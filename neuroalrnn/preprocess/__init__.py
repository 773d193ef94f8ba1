"""Preprocessing of TrialDatasets: spike binning, smoothing, z-scoring, averages, LFP.

Every dataset-level function takes a TrialDataset (or a (trial, time, ...)
DataArray where noted) and returns a new one with coords and attrs kept and
``mask`` updated consistently; nothing is modified in place.

=================== ==========================================================
spikes              bin_spike_times, spikes_to_dataset
signals             gaussian_smooth, zscore, resample
trials              select_trials, condition_average, align
lfp                 filter_signal, band_power (neurodsp)
=================== ==========================================================
"""

from .lfp import band_power, filter_signal
from .signals import gaussian_smooth, resample, zscore
from .spikes import bin_spike_times, spikes_to_dataset
from .trials import align, condition_average, select_trials

__all__ = ["bin_spike_times", "spikes_to_dataset", "gaussian_smooth", "zscore", "resample",
           "select_trials", "condition_average", "align", "filter_signal", "band_power"]
