"""Tests of neuroalrnn.analysis.mechanisms on hand-built AL-RNNs whose mechanism is known."""

import numpy as np
import pytest
import torch

from neuroalrnn import ALRNN
from neuroalrnn.analysis.mechanisms import (context_attractors, marker_gating, memory_attractors, model_states,
                                            region_sharing)
from neuroalrnn.tasks import addition, delayed_match, flipflop, multitask, stimulus_selection


def _adder(n_relu):
    """relu(value + marker - 1) = value * marker gates the marked values into a linear integrator."""
    return ALRNN.from_params(A=[1.0, 0.0], W=[[0.0, 1.0], [0.0, 0.0]], h=[0.0, -1.0], C=[[0.0, 0.0], [1.0, 1.0]],
                             B=[[1.0, 0.0]], n_relu=n_relu, dtype=torch.float64)


def test_marker_gating_of_the_exact_adder():
    ds = addition(30, T=20, seed=0)
    g = marker_gating(_adder(1), ds)
    assert g["selectivity"].values.tolist() == [1.0] and int(g["n_gates"]) == 1 and bool(g["gating"])
    assert float(g["switches_at_markers"]) == 1.0  # on at each marker step, off the step after
    # into and out of the gate at each marker; a marker at step 0 opens it before the first state
    assert g["n_switches"].values.tolist() == (4 - (ds["marker_1"].values == 0)).tolist()
    first = ds["marker_1"].values[0]
    assert g["region"].values[0, first] == 1 and g["region"].values[0, first - 1 if first else first + 1] == 0
    linear = marker_gating(_adder(0), ds)
    assert np.isnan(float(linear["max_selectivity"])) and not bool(linear["gating"])
    assert (linear["region"].values == 0).all()


def _selector(slope_motion):
    """Unit 1 (ReLU) is pushed up by the motion cue and down by the colour cue; unit 0 leaks motion in (0.9).

    With ``slope_motion`` = A1 + W11 > 1 the motion context has no real fixed point (the state diverges).
    Inputs: fixation, ctx_motion, ctx_color, motion, color.
    """
    C = np.zeros((2, 5))
    C[0, 3], C[1, [1, 2, 4]] = 1.0, [1.0, -1.0, 1.0]
    return ALRNN.from_params(A=[0.9, 0.5], W=[[0.0, 0.0], [0.0, slope_motion - 0.5]], h=[0.0, 0.0], C=C,
                             B=[[1.0, 0.0]], n_relu=1, dtype=torch.float64)


def test_context_attractors_regions_alignment_and_divergence():
    ds = stimulus_selection(40, seed=0)
    out = context_attractors(_selector(0.5), ds)
    # motion: z1* = 2 (region 1); colour: z1* = -2 (region 0); slow mode (0.9) reads unit 0 = the motion input
    assert out["region"].values.tolist() == [1, 0] and out["n_attractors"].values.tolist() == [1, 1]
    np.testing.assert_allclose(out["slowest_abs"], [0.9, 0.9])
    np.testing.assert_allclose(out["align_relevant"], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(out["align_irrelevant"], [0.0, 1.0], atol=1e-12)
    assert bool(out["own_subregions"]) and not bool(out["selective_modes"]) and not bool(out["rule_based_integration"])
    assert not bool(out["missing_attractor"]) and out["diverging"].values.tolist() == [0.0, 0.0]
    bad = context_attractors(_selector(1.5), ds)  # the motion context's map expands in region 1
    assert bad["n_attractors"].values.tolist() == [0, 1] and bool(bad["missing_attractor"])
    assert not bool(bad["own_subregions"]) and bad["diverging"].values.tolist() == [1.0, 0.0]
    no_onsets = context_attractors(_selector(1.5), ds.drop_vars("stim_onset"))  # run on from the trials' ends
    assert float(no_onsets["diverging"].sel(ctx="motion")) == 1.0


def _flipflop_pair():
    """Two ReLU units inhibiting each other: stable points (1, -1) and (-1, 1); readout (z0 - z1) / 2."""
    return ALRNN.from_params(A=[0.5, 0.5], W=[[0.0, -1.0], [-1.0, 0.0]], h=[0.5, 0.5], C=[[5.0], [-5.0]],
                             B=[[0.5, -0.5]], n_relu=2, dtype=torch.float64)


def _spaced_flipflop(n_trials=20, seed=0):
    """One-bit flip-flop trials with a pulse of random sign every 15 steps (the pair needs a few steps)."""
    ds = flipflop(n_trials, n_bits=1, T=60, p_flip=0.0, seed=seed)
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_trials, 4))
    x, y = np.zeros((n_trials, 60, 1)), np.zeros((n_trials, 60, 1))
    for k, t in enumerate(range(0, 60, 15)):
        x[:, t, 0] = signs[:, k]
        y[:, t:, 0] = signs[:, k, None]
    return ds.assign(inputs=(ds["inputs"].dims, x), targets=(ds["targets"].dims, y))


def test_memory_attractors_of_a_bistable_pair_and_a_line_attractor():
    ds = _spaced_flipflop()
    model = _flipflop_pair()
    with torch.no_grad():
        out = model(torch.as_tensor(np.nan_to_num(ds["inputs"].values)))[1].numpy()
    set_ = ds["targets"].values != 0
    assert np.all(np.sign(out[set_]) == np.sign(ds["targets"].values[set_]))  # it does solve the task
    m = memory_attractors(model, ds)
    assert int(m["n_memories"]) == 2 and float(m["fixed_point_memory"]) == 1.0 and int(m["n_attractors"]) == 2
    assert m["memory"].values.tolist() == ["(-1,)", "(1,)"]
    # an integrator holds the pulse sum on a line: no memory state has a fixed point of its own
    line = ALRNN.from_params(A=[1.0], W=[[0.0]], h=[0.0], C=[[1.0]], B=[[1.0]], n_relu=0, dtype=torch.float64)
    m0 = memory_attractors(line, ds)
    assert float(m0["fixed_point_memory"]) == 0.0 and float(m0["transient_memory"]) == 1.0
    assert int(m0["n_stable_cycles"]) == 0


def test_memory_attractors_delayed_match_holds_the_sample():
    ds = delayed_match(30, n_stimuli=2, seed=0)
    # unit k integrates stimulus k with no leak: each sample is held at its own point (until the test)
    C = np.zeros((2, 3))
    C[0, 1], C[1, 2] = 1.0, 1.0
    model = ALRNN.from_params(A=[0.0, 0.0], W=[[1.0, 0.0], [0.0, 1.0]], h=[0.0, 0.0], C=C, B=[[1.0, 0.0]],
                              n_relu=2, dtype=torch.float64)
    m = memory_attractors(model, ds, task="delayed_match")
    assert int(m["n_memories"]) == 2 and m["n_trials"].values.sum() == 30
    assert float(m["fixed_point_memory"]) == 1.0  # (1, 0) and (0, 1), each the end of its sample's trials
    with pytest.raises(ValueError, match="task: expected"):
        memory_attractors(model, ds.assign_attrs(task="addition"))


def test_region_sharing_separate_and_shared():
    ds = multitask(30, tasks=("addition", "flipflop"), task_kwargs={"addition": {"T": 8}, "flipflop": {"T": 8}}, seed=0)
    names = ds["input"].values.tolist()
    C = np.zeros((1, len(names)))
    C[0, names.index("rule_addition")], C[0, names.index("rule_flipflop")] = 1.0, -1.0
    split = ALRNN.from_params(A=[0.0], W=[[0.0]], h=[0.0], C=C, B=np.zeros((ds.sizes["output"], 1)), n_relu=1)
    out = region_sharing(split, ds)
    assert out["group"].values.tolist() == ["addition", "flipflop"] and int(out["n_regions"]) == 2
    assert float(out["overlap"]) == 0.0 and float(out["shared_fraction"]) == 0.0 and float(out["shared"]) == 0.0
    one = ALRNN.from_params(A=[0.0], W=[[0.0]], h=[1.0], C=0 * C, B=np.zeros((ds.sizes["output"], 1)), n_relu=1)
    both = region_sharing(one, ds)
    assert float(both["overlap"]) == 1.0 and float(both["shared"]) == 1.0
    assert np.isnan(float(region_sharing(ALRNN(3, 0, len(names), ds.sizes["output"], seed=0), ds)["shared"]))
    states = model_states(one, ds)
    assert np.isnan(states[~ds["mask"].values]).all() and np.isfinite(states[ds["mask"].values]).all()


def test_memory_attractors_needs_a_delay():
    ds = delayed_match(4, n_stimuli=2, delay=0, seed=0)
    with pytest.raises(ValueError, match="delay of at least 1 step"):
        memory_attractors(ALRNN(4, 2, 3, 1, seed=0), ds)
