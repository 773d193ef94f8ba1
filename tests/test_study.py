"""Tests of neuroalrnn.study (quick mode: tiny data and training) and the recommended task settings."""

import json

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.study import run_study, study_config, summarize_study, write_report
from neuroalrnn.study.mechanisms import SHOWN, MechanismScorer, mechanism_scorers
from neuroalrnn.tasks import SUITE, is_solved, make_task, recommended


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    where = tmp_path_factory.mktemp("study")
    res = run_study(["stimulus_selection", "addition", "flipflop", "multitask"], p_values=[0, 2, "M"], seeds=[0, 1],
                    quick=True, results_dir=where / "fits", out=where / "study.nc")
    return res, where


def test_recommended_settings_cover_the_suite():
    assert SUITE == ("stimulus_selection", "addition", "copy", "flipflop", "delayed_match", "multitask", "digits")
    for task in SUITE:
        cfg = recommended(task)
        assert {"data", "params", "scoring", "criterion"} <= set(cfg)
        assert cfg["criterion"]["scorer"] in cfg["scoring"] and cfg["criterion"]["why"]
        assert cfg["params"]["n_units"] == 32
        ds = make_task(task, 6, seed=0)
        assert ds.sizes["trial"] == 6 and "loss_weight" in ds
    assert recommended("addition")["params"]["init"] == "normal"
    cfg = recommended("addition")
    cfg["params"]["lr"] = 1.0  # a copy: the table is not changed
    assert recommended("addition")["params"]["lr"] != 1.0
    np.testing.assert_array_equal(is_solved("stimulus_selection", [0.01, 0.02, 0.05]), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(is_solved("digits", [0.95, 0.5]), [1.0, 0.0])
    with pytest.raises(ValueError, match="task: expected one of"):
        recommended("xor")


def test_quick_study_layout_and_file(quick):
    res, where = quick
    assert res["score"].dims == ("task", "model", "fold", "seed")
    assert res["task"].values.tolist() == ["stimulus_selection", "addition", "flipflop", "multitask"]
    assert res["model"].values.tolist() == ["P=0", "P=2", "P=6"] and res["n_relu"].values.tolist() == [0, 2, 6]
    # each task's own scores are filled, the others' NaN
    assert np.isfinite(res["accuracy[incongruent]"].sel(task="stimulus_selection")).all()
    assert np.isnan(res["accuracy[incongruent]"].sel(task="addition")).all()
    assert np.isfinite(res["mse[task=addition]"].sel(task="multitask")).all()
    # solved follows the criterion score
    mse = res["mse"].sel(task="addition").values
    np.testing.assert_array_equal(res["solved"].sel(task="addition").values, (mse <= 0.01).astype(float))
    # mechanisms: gating is measured on addition fits only; P = 0 has no gate
    gating = res["gating.gating"]
    assert np.isfinite(gating.sel(task="addition")).all() and np.isnan(gating.sel(task="flipflop")).all()
    assert (gating.sel(task="addition", model="P=0") == 0).all()
    assert np.isnan(res["sharing.shared"].sel(task="multitask", model="P=0")).all()
    assert set(json.loads(res.attrs["config"])) == set(res["task"].values.tolist())
    assert res["mse"].attrs["greater_is_better"] == 0 and res["accuracy"].attrs["greater_is_better"] == 1
    back = xr.open_dataset(where / "study.nc")
    xr.testing.assert_allclose(back["score"], res["score"])
    assert (where / "fits" / "addition").is_dir()


def test_quick_study_resumes_from_its_results(quick, monkeypatch):
    res, where = quick
    import neuroalrnn.compare as cmp

    calls = []
    monkeypatch.setattr(cmp, "_run_task", lambda task, shared: calls.append(task) or {})
    again = run_study(["addition"], p_values=[0, 2, "M"], seeds=[0, 1], quick=True, results_dir=where / "fits")
    assert not calls  # every fit was read back
    np.testing.assert_array_equal(again["mse"].sel(task="addition").values, res["mse"].sel(task="addition").values)


def test_summary_report_and_figures(quick, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    res, _ = quick
    s = summarize_study(res)
    assert s["criterion"].values.tolist() == ["ideal_gap", "mse", "mse", "mse"]
    mean = res["mse"].sel(task="addition").mean(["fold", "seed"]).values
    np.testing.assert_allclose(s["criterion_mean"].sel(task="addition").values, mean)
    assert np.isnan(s["p_corrected"].sel(model="P=0")).all()  # the reference against itself
    gating = res["gating.gating"].sel(task="addition").mean(["fold", "seed"]).values
    np.testing.assert_allclose(s["fraction:gating.gating"].sel(task="addition").values, gating)
    assert "fraction:attractors.rule_based_integration" in s and "accuracy[incongruent].sem" in s
    path = write_report(res, tmp_path / "study.html")
    text = path.read_text()
    assert text.count("<img") == 2 and "Nadeau" in text and "stimulus_selection" in text
    assert "Quick mode" in text
    with pytest.raises(ValueError, match="reference"):
        summarize_study(res, reference="P=99")


def test_study_arguments_and_mechanism_scorers():
    assert study_config("flipflop", quick=True, n_units=5)["params"]["n_units"] == 5
    with pytest.raises(ValueError, match="tasks: expected distinct names"):
        run_study(["addition", "addition"], quick=True)
    with pytest.raises(ValueError, match="p_values"):
        run_study(["addition"], p_values=[0, 99], quick=True)
    with pytest.raises(ValueError, match="no mechanism"):
        MechanismScorer("copy", "gating")
    assert mechanism_scorers("copy") == {} and set(mechanism_scorers("stimulus_selection")) == {"attractors"}
    for name in SHOWN:
        assert name.split(".")[0] in {"gating", "attractors", "memory", "sharing"}


def test_cli_study_writes_results_and_report(tmp_path, capsys):
    from neuroalrnn.cli import main

    out, report = tmp_path / "s.nc", tmp_path / "s.html"
    rc = main(["study", "--quick", "--tasks", "digits", "--p", "0,M", "--seeds", "0,1", "--quiet",
               "--out", str(out), "--report", str(report)])
    assert rc == 0 and out.exists() and report.exists()
    res = xr.open_dataset(out)
    assert res["task"].values.tolist() == ["digits"] and res["model"].values.tolist() == ["P=0", "P=6"]
    assert "wall time" in capsys.readouterr().out
    assert main(["study", "--quick", "--p", "0,x"]) == 2
    assert "--p: expected comma-separated integers" in capsys.readouterr().err
    assert main(["study", "--quick", "--tasks", "nope"]) == 2
