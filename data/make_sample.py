"""Make the embedded sample recording from a known ground-truth AL-RNN.

Run from the repository root: ``python data/make_sample.py``. It writes, next to
this script:

- ``sample_recording.nc``: a TrialDataset of a synthetic stimulus-selection
  experiment: 3 sessions x 80 trials (stimulus epoch jittered, so trials are
  ragged), 60 Poisson units whose log-rates read the network state, the task
  inputs and targets, and per-trial context, coherences, choice, correct, rt
  (s after the go cue) and session.
- ``sample_lfp.nc``: one LFP-like channel per trial at 500 Hz (neurodsp's
  aperiodic 1/f + bursty 20 Hz beta simulators, plus a slow component that
  follows the network's mean activity).
- ``sample_ground_truth.safetensors``: the network (``neuroalrnn.load_model``).
- ``sample_observation.npz``: its observation model, rate = exp(offset + gain @ z)
  in spikes/s, and the latent states of every trial (``latent``, NaN-padded).

Everything is seeded; the ground-truth network is an AL-RNN with M = 16 units,
P = 2 ReLU units, trained on the task for 600 Adam steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuroalrnn import ALRNN
from neuroalrnn.fit.task import fit_task, model_choices, task_outputs
from neuroalrnn.schema import validate
from neuroalrnn.tasks import stimulus_selection
from neuroalrnn.utils import atomic_write

HERE = Path(__file__).resolve().parent
SEED = 2024
N_UNITS, N_RELU = 16, 2
N_NEURONS = 60
SESSIONS, TRIALS_PER_SESSION = 3, 80
DT = 0.05
LFP_FS = 500.0
TIMING = {"stimulus": (0.8, 1.2)}


def train_ground_truth(seed: int = SEED) -> ALRNN:
    """The network that generates the recording: a trained P = 2 AL-RNN."""
    torch.manual_seed(seed)
    train = stimulus_selection(2000, dt=DT, timing=TIMING, seed=seed)
    model = ALRNN(N_UNITS, N_RELU, n_inputs=5, n_outputs=1, seed=seed)
    fit_task(model, train, n_steps=600, batch_size=64, lr=1e-2, lr_decay=0.999, eval_every=100,
             select_metric="val_accuracy", seed=seed, progress=False)
    return model


def latent_states(model: ALRNN, ds) -> np.ndarray:
    """States (trial, time, latent) of ``model`` on the dataset's inputs, NaN-padded."""
    inputs = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        states, _ = model(inputs)
    return np.where(ds["mask"].values[:, :, None], states.double().numpy(), np.nan)


def observation_model(states: np.ndarray, rng: np.random.Generator) -> dict:
    """Random log-linear read-out of the state: baseline 2-20 Hz, modulation ~0.6 log units."""
    flat = states[np.isfinite(states[..., 0])]
    center, scale = flat.mean(0), flat.std(0) + 1e-6
    gain = rng.normal(size=(N_NEURONS, N_UNITS)) * 0.6 / np.sqrt(N_UNITS) / scale
    offset = np.log(rng.uniform(2.0, 20.0, size=N_NEURONS)) - gain @ center
    return {"gain": gain, "offset": offset}


def spike_counts(states, obs, rng):
    rates = np.exp(np.clip(obs["offset"] + states @ obs["gain"].T, None, np.log(200.0)))
    counts = rng.poisson(np.nan_to_num(rates) * DT).astype(float)
    return np.where(np.isfinite(states[..., :1]), counts, np.nan), rates


def reaction_times(outputs, ds, rng):
    """RT after the go cue: faster for a stronger output (evidence), with gamma noise."""
    resp = ds["response_onset"].values
    time = ds["time"].values
    strength = np.array([np.nanmean(np.abs(outputs[i, time >= resp[i] - 1e-9, 0])) for i in range(len(resp))])
    return 0.18 + 0.3 * np.exp(-strength) + rng.gamma(2.0, 0.02, size=len(resp))


def lfp(ds, states, rng):
    """One LFP-like channel per trial: 1/f + bursty beta + a slow copy of the mean state."""
    from neurodsp.sim import sim_bursty_oscillation, sim_powerlaw

    n_trials, n_bins = ds["mask"].shape
    per_bin = int(round(DT * LFP_FS))
    out = np.full((n_trials, n_bins * per_bin), np.nan)
    with np.errstate(invalid="ignore"):
        drive = np.nanmean(states, axis=2)  # NaN on padding, never read
    drive = (drive - np.nanmean(drive)) / np.nanstd(drive)
    for i, length in enumerate(ds["mask"].sum("time").values):
        n = int(length) * per_bin
        seconds = n / LFP_FS
        np.random.seed(int(rng.integers(2**31)))  # neurodsp draws from numpy's global state
        signal = sim_powerlaw(seconds, LFP_FS, exponent=-2.0) \
            + 0.5 * sim_bursty_oscillation(seconds, LFP_FS, freq=20, burst_params={"enter_burst": 0.2,
                                                                                   "leave_burst": 0.3})
        out[i, :n] = signal + 0.5 * np.repeat(drive[i, :length], per_bin)
    return out


def make_sample(out_dir: Path = HERE, seed: int = SEED) -> None:
    rng = np.random.default_rng(seed)
    model = train_ground_truth(seed)
    n_trials = SESSIONS * TRIALS_PER_SESSION
    task = stimulus_selection(n_trials, dt=DT, timing=TIMING, seed=seed + 1)
    states = latent_states(model, task)
    obs = observation_model(states, rng)
    counts, _ = spike_counts(states, obs, rng)
    choice = model_choices(model, task).values.astype(int)
    rts = reaction_times(task_outputs(model, task).values, task, rng)
    session = np.repeat([f"session{i + 1}" for i in range(SESSIONS)], TRIALS_PER_SESSION)
    area = np.where(np.arange(N_NEURONS) < N_NEURONS // 2, "PFC", "FEF")
    recording = task.assign(activity=(("trial", "time", "unit"), counts)).assign_coords(
        unit=np.arange(N_NEURONS), area=("unit", area), choice=("trial", choice),
        correct=("trial", choice == task["correct_choice"].values), rt=("trial", rts),
        session=("trial", session))
    recording["activity"] = recording["activity"].where(recording["mask"])
    recording = recording.assign_attrs(
        source="neuroalrnn data/make_sample.py (synthetic; ground truth in sample_ground_truth.safetensors)",
        activity_units="spikes/bin", align_event="trial_start", seed=seed)
    validate(recording)

    signal = lfp(task, states, rng)
    from neuroalrnn.schema import from_arrays
    lens = task["mask"].sum("time").values * int(round(DT * LFP_FS))
    field = from_arrays(activity=[signal[i, :n, None] for i, n in enumerate(lens)], dt=1.0 / LFP_FS,
                        align_event="trial_start", unit=["lfp"],
                        trial_coords={k: recording[k].values for k in ("context", "coh_motion", "coh_color",
                                                                         "choice", "session")},
                        attrs={"source": "neuroalrnn data/make_sample.py (neurodsp simulators)",
                               "activity_units": "a.u."})

    encoding = {name: {"zlib": True, "complevel": 6, "dtype": "float32"}
                for name in ("activity", "inputs", "targets", "loss_weight")}
    with atomic_write(out_dir / "sample_recording.nc") as tmp:
        recording.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    with atomic_write(out_dir / "sample_lfp.nc") as tmp:
        field.to_netcdf(tmp, engine="h5netcdf", encoding={"activity": {"zlib": True, "dtype": "float32"}})
    with atomic_write(out_dir / "sample_ground_truth.safetensors") as tmp:
        model.save(tmp)
    with atomic_write(out_dir / "sample_observation.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, gain=obs["gain"], offset=obs["offset"], latent=states.astype(np.float32))
    acc = float((choice == task["correct_choice"].values).mean())
    print(f"wrote sample data to {out_dir}: {n_trials} trials, {N_NEURONS} units, ground-truth accuracy {acc:.3f}")


if __name__ == "__main__":
    make_sample()
