"""Tests for neuroalrnn.analysis.cycles: k-cycles by region sequences (SCYFI)."""

import json
import re

import numpy as np
import pytest

from neuroalrnn.analysis import cycles
from neuroalrnn.analysis.regions import region_codes

# z -> 1 + 0.5 z (z <= 0), 1 - 3 z (z > 0): fixed point 0.25 (slope -3), the 2-cycle
# z1 = -0.8, z2 = 0.6 (z2 = 1 + 0.5 z1, z1 = 1 - 3 z2) with multiplier 0.5 * -3 = -1.5, and one
# 3-cycle -2 -> 0 -> 1 -> -2 through the boundary (regions L L R; L R R gives the same points)
TENT = {"A": [0.5], "W": [[-3.5]], "h": [1.0], "n_relu": 1}

# (outer, inner) loop sizes of the original Julia tests, by the case's k
JULIA_LOOPS = {1: (10, 20), 16: (10, 50), 27: (10, 50), 31: (10, 50), 40: (10, 50), 53: (10, 50),
               65: (20, 60), 80: (20, 100), 83: (20, 100)}


def _check_cycle(c, params):
    """Each point maps to the next under the true map, and the regions match."""
    A, W, h = (np.asarray(params[k], float) for k in ("A", "W", "h"))
    P = params["n_relu"]
    z = c.z.values
    M = z.shape[1]
    for j in range(c.attrs["order"]):
        phi = z[j].copy()
        phi[M - P:] = np.maximum(phi[M - P:], 0)
        np.testing.assert_allclose(A * z[j] + W @ phi + h, z[(j + 1) % len(z)], atol=1e-8, rtol=1e-8)
    np.testing.assert_array_equal(region_codes(z, P), c.region.values)


@pytest.mark.parametrize("exhaustive_limit", [4096, 0])
def test_tent_map_known_cycles(exhaustive_limit):
    found = cycles(TENT, 3, exhaustive_limit=exhaustive_limit, n_restarts=20, max_iter=20)
    assert [c.attrs["order"] for c in found] == [1, 2, 3]  # one of each; shifts and twins deduped
    fp, two, three = found
    np.testing.assert_allclose(three.z.values.ravel(), [-2.0, 0.0, 1.0], atol=1e-12)
    assert three.region.values.tolist() == [0, 0, 1]
    np.testing.assert_allclose(three.eigenvalues.values, [-0.75])
    np.testing.assert_allclose(fp.z.values, [[0.25]])
    np.testing.assert_allclose(fp.eigenvalues.values, [-3.0])
    np.testing.assert_allclose(sorted(two.z.values.ravel()), [-0.8, 0.6])
    np.testing.assert_allclose(two.eigenvalues.values, [-1.5])
    assert not bool(two.stable) and float(two.spectral_radius) == pytest.approx(1.5)
    assert two.region.values.tolist() == [0, 1]  # starts at the smallest rotation
    for c in found:
        _check_cycle(c, TENT)


def test_through_alrnn_and_inputs():
    from neuroalrnn.model import ALRNN

    model = ALRNN.from_params(A=np.array([0.5]), W=np.array([[-3.5]]), h=np.array([0.0]),
                              C=np.array([[2.0]]), n_relu=1)
    found = cycles(model, 2, inputs=[0.5], min_order=2)  # h + C s = 1: the tent map again
    assert len(found) == 1 and found[0].attrs["order"] == 2
    np.testing.assert_allclose(sorted(found[0].z.values.ravel()), [-0.8, 0.6], atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="max_order"):
        cycles(TENT, 0)
    with pytest.raises(ValueError, match="min_order"):
        cycles(TENT, 2, min_order=3)
    with pytest.raises(ValueError, match="inputs"):
        cycles(TENT, 2, inputs=[1.0])


def _load_cases(shared_data):
    with open(shared_data / "scyfi_cycles" / "scyfi_plrnn_cycle_cases.json") as f:
        return json.load(f)


CASE_NAMES = [f"test_finding_{k}_cycle_2D{suffix}" for k in (16, 27, 31, 40, 53, 65, 80, 83)
              for suffix in ("", "_nothing")]
CASE_NAMES = ["test_finding_1_cycle_2D_for_holes", "test_finding_1_cycle_2D", "test_finding_1_cycle_2D_val"] + CASE_NAMES


def test_every_case_is_covered(shared_data):
    assert sorted(c["name"] for c in _load_cases(shared_data)["cases_2d"]) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_scyfi_2d_cases(shared_data, name):
    """Every 2-D case of the SCYFI test-suite: its Julia assertion and the independent re-check."""
    data = _load_cases(shared_data)
    case = next(c for c in data["cases_2d"] if c["name"] == name)
    params = {"A": case["a"], "W": [[0.0, case["w1"]], [case["w2"], 0.0]], "h": case["h"], "n_relu": 2}
    k = case["k"]
    asserted = int(re.search(r"FPs\[(\d+)\]", case["julia_assert"]).group(1))
    outer, inner = JULIA_LOOPS[k]
    found = cycles(params, asserted, min_order=asserted, n_restarts=outer, max_iter=inner, seed=0)
    if asserted != k:  # "nothing": no cycle of this exact period
        assert found == []
        return
    check = case["independent_numpy_check"]
    assert len(found) == check["n_cycles_of_exact_period_k"]
    for ref in check["cycles"]:
        point = np.asarray(ref["first_point"])
        hits = [c for c in found if np.abs(c.z.values - point).max(axis=1).min() < 1e-6]
        assert len(hits) == 1
        assert float(hits[0].spectral_radius) == pytest.approx(ref["max_abs_eig_of_k_step_jacobian"], rel=1e-6)
        assert hits[0].attrs["order"] == k
    for c in found:
        _check_cycle(c, params)
    if "round." in case["julia_assert"]:  # round.(FPs[1][1][1], digits=2) == [0.36, -22.26]
        np.testing.assert_array_equal(np.round(found[0].z.values[0], 2), [0.36, -22.26])


@pytest.mark.parametrize("order, expected", [(10, 2), (9, 0)])
def test_scyfi_10d_case(shared_data, order, expected):
    case = _load_cases(shared_data)["case_10d"]
    assert f"length(FPs[{order}]) == {expected}" in case["julia_asserts"]
    params = {"A": np.full(10, case["A_diag"]), "W": case["W"], "h": case["h"], "n_relu": 10}
    found = cycles(params, order, min_order=order, n_restarts=20, max_iter=80, seed=0)
    assert len(found) == expected
    for c in found:
        _check_cycle(c, params)


def test_states_seed_the_cycle_search(shared_data):
    """A trajectory on the stable 16-cycle seeds a search too small to find it at random."""
    case = next(c for c in _load_cases(shared_data)["cases_2d"] if c["name"] == "test_finding_16_cycle_2D")
    params = {"A": case["a"], "W": [[0.0, case["w1"]], [case["w2"], 0.0]], "h": case["h"], "n_relu": 2}
    stable = [c for c in case["independent_numpy_check"]["cycles"] if c["max_abs_eig_of_k_step_jacobian"] < 1][0]
    A, W, h = (np.asarray(params[k], float) for k in ("A", "W", "h"))
    z, traj = np.asarray(stable["first_point"]) + 1e-6, []
    for _ in range(64):
        z = A * z + W @ np.maximum(z, 0) + h
        traj.append(z)
    seeded = cycles(params, 16, min_order=16, states=np.array(traj), n_restarts=1, max_iter=1, n_chains=1)
    assert len(seeded) == 1 and bool(seeded[0].stable)
    np.testing.assert_allclose(np.abs(seeded[0].z.values - stable["first_point"]).max(axis=1).min(), 0, atol=1e-6)
    assert cycles(params, 16, min_order=16, n_restarts=1, max_iter=1, n_chains=1) == []
