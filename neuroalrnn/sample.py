"""The embedded sample recording (``data/`` at the repository root).

``data/make_sample.py`` writes it from a known ground-truth AL-RNN that performs
the stimulus-selection task; the ground-truth parameters are saved beside it.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data"
FILES = {
    "recording": "sample_recording.nc",
    "lfp": "sample_lfp.nc",
}
GROUND_TRUTH = "sample_ground_truth.safetensors"
OBSERVATION = "sample_observation.npz"


def sample_path(name: str = "recording") -> Path:
    """Path of an embedded sample file (``"recording"`` or ``"lfp"``).

    Examples
    --------
    >>> sample_path("lfp").name
    'sample_lfp.nc'
    """
    if name not in FILES:
        raise ValueError(f"name: expected one of {sorted(FILES)}, got {name!r}")
    path = SAMPLE_DIR / FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"sample data {path} is missing; run `python data/make_sample.py` "
                                "from the repository root (an editable install keeps data/ beside the package)")
    return path


def load_sample(name: str = "recording") -> xr.Dataset:
    """Load an embedded sample TrialDataset.

    Parameters
    ----------
    name : {"recording", "lfp"}
        ``"recording"``: binned spike counts of 60 units with the task inputs,
        targets and per-trial variables; ``"lfp"``: one LFP-like channel at 500 Hz
        for the same trials.

    Examples
    --------
    >>> ds = load_sample()
    >>> ds["activity"].dims, ds.sizes["unit"]
    (('trial', 'time', 'unit'), 60)
    """
    from neuroalrnn.io import load

    return load(sample_path(name))


def load_ground_truth():
    """The ground-truth network of the sample recording and its observation model.

    Returns
    -------
    model : neuroalrnn.ALRNN
        The network that generated the recording.
    readout : dict of numpy arrays
        ``gain`` (unit, latent) and ``offset`` (unit,): each unit's rate is
        ``exp(offset + gain @ z)`` spikes per second; ``latent`` (trial, time,
        latent) holds the network's states on every trial (NaN-padded).

    Examples
    --------
    >>> model, readout = load_ground_truth()
    >>> readout["gain"].shape
    (60, 16)
    """
    import numpy as np

    from neuroalrnn.model import load_model

    model = load_model(SAMPLE_DIR / GROUND_TRUTH)
    with np.load(SAMPLE_DIR / OBSERVATION, allow_pickle=False) as arrays:
        readout = {key: arrays[key] for key in arrays.files}
    return model, readout
