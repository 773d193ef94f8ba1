"""Acceptance runs for reading the fitted dynamics (issue 5, "What it must show"); prints the numbers.

1. Stimulus selection, P = 2: train an AL-RNN (M units, seeded) to near the ideal observer, then under
   each context's constant stimulus-epoch input (fixation = 1 and that context's cue, no evidence):
   the real fixed point(s) and their linear subregion, the slowest mode's |lambda|, and the |cosine|
   of that mode's left eigenvector with the two stimulus input directions (columns of C for
   ``motion`` and ``color``) and with two choice axes: the readout row B and the TDR choice axis of the
   model's own states (its right eigenvector against that axis too). Also: where the stimulus-epoch
   states of each context actually sit (fraction of steps in the fixed point's region).
2. The embedded recording: cross-validated CKA / Procrustes / CCA between the ground-truth network's
   states and the smoothed recorded units, against a shuffled-trial baseline.

Usage: python benchmarks/acceptance_dynamics.py [--quick] [--seeds 0 1 2] [--units 32] [--steps 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import xarray as xr

from neuroalrnn import ALRNN
from neuroalrnn.analysis import (cosine_table, cv_similarity, fixed_points, map_directions, region_codes,
                                 regions_by_group, ridge_map, shuffled_baseline, tdr_axes)
from neuroalrnn.fit import fit_task, task_accuracy
from neuroalrnn.tasks import ideal_observer, stimulus_selection

CONTEXTS = ("motion", "color")


def context_input(names, context: str) -> np.ndarray:
    """Constant stimulus-epoch input of a context: fixation and the cue on, no evidence."""
    names = list(names)
    s = np.zeros(len(names))
    s[names.index("fixation")] = 1.0
    s[names.index(f"ctx_{context}")] = 1.0
    return s


def model_states(model, ds: xr.Dataset, choice=None) -> xr.DataArray:
    """Latent states (trial, time, latent), NaN outside the mask, with the trial coords (and model choice)."""
    x = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        z, _ = model(x)
    coords = {k: v.variable for k, v in ds.coords.items() if v.dims == ("trial",)}
    coords["time"] = ds["time"].values
    states = xr.DataArray(np.where(ds["mask"].values[..., None], z.numpy().astype(float), np.nan),
                          dims=("trial", "time", "latent"), coords=coords)
    if choice is not None:
        states = states.assign_coords(choice=("trial", np.asarray(choice)))
    return states


def stimulus_epoch(ds: xr.Dataset) -> np.ndarray:
    """(trial, time) True inside each trial's stimulus epoch."""
    t = ds["time"].values[None, :]
    return (t >= ds["stim_onset"].values[:, None] - 1e-9) & (t < ds["stim_offset"].values[:, None] - 1e-9) \
        & ds["mask"].values


def dynamics_report(model, test: xr.Dataset) -> list[dict]:
    """Per context: real fixed points, region, slowest |lambda| and the slow mode's alignments."""
    test = test.drop_vars(["choice", "correct"], errors="ignore")  # a recording's animal choices
    acc = task_accuracy(model, test)
    states = model_states(model, test, acc["choice"].values)
    axes = tdr_axes(states, ["choice", "coh_motion", "coh_color", "context"])
    p = model.params_numpy()
    names = list(test["input"].values)
    directions = np.stack([p["C"][:, names.index("motion")], p["C"][:, names.index("color")], p["B"][0],
                           axes.sel(axis="choice").values if "axis" in axes.dims else axes[0].values])
    labels = ["C_motion", "C_color", "B_readout", "TDR_choice"]
    codes = region_codes(states, model.n_relu).where(xr.DataArray(stimulus_epoch(test), dims=("trial", "time")), -1)
    occupancy = regions_by_group(codes.astype(int), "context", normalize=True)
    rows = []
    for ctx in CONTEXTS:
        fp = fixed_points(model, context_input(names, ctx))
        real = fp.sel(point=fp["real"].values)
        for i in range(real.sizes["point"]):
            pt = real.isel(point=i)
            left = cosine_table(pt["slow_left"].values[None], directions).values[0]
            right = cosine_table(pt["slow_right"].values[None], directions).values[0]
            region = int(pt["region"])
            occ = float(occupancy.sel(context=ctx).sel(region=region)) if region in occupancy["region"].values else 0.0
            rows.append({"context": ctx, "region": region, "kind": str(pt["kind"].values),
                         "slowest_abs": float(pt["slowest_abs"]), "n_real": int(real.sizes["point"]),
                         "occupancy": occ, **{f"left_{k}": float(v) for k, v in zip(labels, left)},
                         "right_TDR_choice": float(right[3])})
    return rows, acc


def task_part(seeds, M, n_steps, n_train, n_test):
    results = []
    for seed in seeds:
        torch.manual_seed(seed)
        train, test = stimulus_selection(n_train, seed=seed), stimulus_selection(n_test, seed=seed + 100)
        io = ideal_observer(test)
        model = ALRNN(M, 2, n_inputs=5, n_outputs=1, seed=seed)
        t0, c0 = time.perf_counter(), time.process_time()
        fit_task(model, train, n_steps=n_steps, batch_size=64, lr=1e-2, lr_decay=0.998,
                 eval_every=max(n_steps // 10, 1), select_metric="val_accuracy", seed=seed, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows, acc = dynamics_report(model, test)
        print(f"\nseed {seed}: M={M}, P=2, {n_steps} Adam steps in {wall:.1f} s wall / {cpu:.1f} s CPU; held-out "
              f"accuracy {float(acc['overall']):.3f} (incongruent {float(acc['incongruent_accuracy']):.3f}), "
              f"ideal observer {float(io['overall']):.3f} (incongruent {float(io['incongruent_accuracy']):.3f})")
        _print_rows(rows)
        results.append({"seed": seed, "accuracy": float(acc["overall"]), "ideal": float(io["overall"]),
                        "incongruent": float(acc["incongruent_accuracy"]), "wall": wall, "rows": rows,
                        "model": model})
    print(f"\n(random unit vectors in {M} dims have mean |cos| ~ {np.sqrt(2 / (np.pi * M)):.2f})")
    print("summary per seed: for each context its stable real fixed points whose slow left mode reads the "
          "relevant input more than the irrelevant one ('selective')")
    for r in results:
        print(f"  seed {r['seed']}: {verdict(r['rows'])}")
    return results


def verdict(rows) -> str:
    """One line: per context the selective stable real points, and whether the contexts use different regions."""
    parts, regions = [], {}
    for ctx, other in (("motion", "color"), ("color", "motion")):
        mine = [r for r in rows if r["context"] == ctx]
        sel = [r for r in mine if r["kind"].startswith("stable") and r[f"left_C_{ctx}"] > r[f"left_C_{other}"]]
        regions[ctx] = {r["region"] for r in sel}
        extra = len(mine) - len(sel)
        parts.append(f"{ctx}: " + (", ".join(f"region {r['region']} |lambda| {r['slowest_abs']:.3f}" for r in sel)
                                   or "none") + (f" (+{extra} other real point(s))" if extra else ""))
    ok = all(regions.values()) and regions["motion"].isdisjoint(regions["color"])
    return "; ".join(parts) + f" -> {'each context its own region' if ok else 'NOT the predicted picture'}"


def _print_rows(rows):
    print("  context  region  kind         |lambda|  stim-epoch occ.  |cos| left with C_motion C_color "
          "B  TDR_choice | right with TDR_choice")
    for r in rows:
        print(f"  {r['context']:7s}  {r['region']:6d}  {r['kind']:12s} {r['slowest_abs']:.4f}   "
              f"{r['occupancy']:.2f}             {r['left_C_motion']:.2f}  {r['left_C_color']:.2f}  "
              f"{r['left_B_readout']:.2f}  {r['left_TDR_choice']:.2f}  | {r['right_TDR_choice']:.2f}")


def recording_part(models=(), seed=0, n_shuffles=10, n_components=5):
    from neuroalrnn.preprocess import gaussian_smooth
    from neuroalrnn.sample import load_ground_truth, load_sample

    rec = load_sample()
    truth, obs = load_ground_truth()
    rows, acc = dynamics_report(truth, rec)
    print(f"\nground-truth network of the embedded recording (M={truth.n_units}, P={truth.n_relu}) on the "
          f"recording's {rec.sizes['trial']} trials: accuracy {float(acc['overall']):.3f}")
    _print_rows(rows)
    print(f"  {verdict(rows)}")
    states = xr.DataArray(obs["latent"], dims=("trial", "time", "latent"),
                          coords={"trial": rec["trial"].values, "time": rec["time"].values})
    smooth = gaussian_smooth(rec, 0.1)
    t0 = time.perf_counter()
    sim = cv_similarity(states, smooth, n_splits=5, n_components=n_components, seed=seed)
    base = shuffled_baseline(states, smooth, n_shuffles=n_shuffles, n_splits=5, n_components=n_components, seed=seed)
    print(f"\nembedded recording ({rec.sizes['trial']} trials, {rec.sizes['unit']} units, smoothed 100 ms) vs the "
          f"ground-truth network's states, 5-fold CV over trials, PCA to {n_components} dims "
          f"({time.perf_counter() - t0:.1f} s):")
    for name in ("cka", "procrustes"):
        print(f"  {name:10s}: true pairing {float(sim[name].mean()):.3f} +- {float(sim[name].std()):.3f} (folds); "
              f"shuffled trials {float(base[name].mean()):.3f} +- {float(base[name].std()):.3f} "
              f"({n_shuffles} shuffles x 5 folds)")
    print(f"  cca (1st): true {float(sim['cca'].isel(cc=0).mean()):.3f}, shuffled {float(base['cca'].isel(cc=0).mean()):.3f}")
    for name, model in models:
        z = model_states(model, rec).drop_vars([c for c in rec.coords if rec[c].dims == ("trial",) and c != "trial"])
        s = cv_similarity(z, smooth, n_splits=5, n_components=n_components, seed=seed)
        b = shuffled_baseline(z, smooth, n_shuffles=n_shuffles, n_splits=5, n_components=n_components, seed=seed)
        print(f"  trained task model {name} driven by the recording's inputs vs the recorded units: CKA "
              f"{float(s['cka'].mean()):.3f} (shuffled {float(b['cka'].mean()):.3f}), Procrustes "
              f"{float(s['procrustes'].mean()):.3f} (shuffled {float(b['procrustes'].mean()):.3f})")
    axes = tdr_axes(smooth, ["choice", "coh_motion", "coh_color", "context"], n_pcs=10)
    print(f"\nmodel directions carried into the recorded space by a ridge map vs the recording's TDR axes "
          f"(random level {np.sqrt(2 / (np.pi * rec.sizes['unit'])):.2f}): slow right mode of each real point "
          "vs TDR choice; C motion / C color vs TDR coh_motion / coh_color")
    names = list(rec["input"].values)
    for name, model in [("ground truth", truth)] + list(models):
        z = model_states(model, rec).drop_vars([c for c in rec.coords if rec[c].dims == ("trial",) and c != "trial"])
        L = ridge_map(z, smooth)
        C = model.params_numpy()["C"][:, [names.index("motion"), names.index("color")]].T
        cin = cosine_table(map_directions(C, L), axes.sel(axis=["coh_motion", "coh_color"]).values).values
        slow = []
        for ctx in CONTEXTS:
            fp = fixed_points(model, context_input(names, ctx))
            real = fp.sel(point=fp["real"].values)
            for i in range(real.sizes["point"]):
                v = map_directions(real["slow_right"].values[i:i + 1], L)
                slow.append(f"{ctx} r{int(real['region'][i])} {cosine_table(v, axes.sel(axis=['choice']).values).item():.2f}")
        print(f"  {name:22s} slow right vs choice: {', '.join(slow)}; C motion vs coh_motion {cin[0, 0]:.2f} "
              f"(vs coh_color {cin[0, 1]:.2f}), C color vs coh_color {cin[1, 1]:.2f} (vs coh_motion {cin[1, 0]:.2f})")
    return sim, base


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run (a smoke test of the script)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    if args.quick:
        res = task_part([0], 16, 100, 500, 300)
        recording_part([(f"seed {r['seed']}", r["model"]) for r in res], n_shuffles=2)
    else:
        res = task_part(args.seeds, args.units, args.steps, 4000, 2000)
        recording_part([(f"M={args.units} seed {r['seed']}", r["model"]) for r in res])


if __name__ == "__main__":
    main()
