"""The command line's promise: bad input ends with exit status 2 and one line naming the option or file,
found before any fitting, with nothing half-written. In-process (``main(argv)``) to stay fast; two cases
through a real process to see the real exit status and stderr."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from neuroalrnn.cli import main
from neuroalrnn.tasks import stimulus_selection

TINY = ["--set", "n_units=4", "--set", "n_relu=1", "--set", "n_steps=9", "--set", "eval_every=3", "--quiet"]


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_errors") / "task.nc"
    stimulus_selection(24, seed=0).to_netcdf(path)
    return path


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if any estimator starts fitting."""
    from neuroalrnn import estimators

    def refuse(self, *args, **kwargs):
        raise AssertionError("the fit started before the problem was found")

    for name in ("ALRNNTaskEstimator", "GRUTaskEstimator", "ALRNNTeacherForcingEstimator"):
        monkeypatch.setattr(getattr(estimators, name), "fit", refuse)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3, err
    return code, err


def error_line(argv, capsys):
    code, err = run(argv, capsys)
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_out_under_a_regular_file(task_file, tmp_path, capsys, no_fitting):
    (tmp_path / "afile").write_text("x")
    line = error_line(["fit", task_file, "--out", tmp_path / "afile" / "fit", *TINY], capsys)
    assert line == f"neuroalrnn fit: error: --out: cannot create {tmp_path / 'afile' / 'fit'}: {tmp_path / 'afile'} " \
                   "is a file, not a folder"
    line = error_line(["fit", task_file, "--out", tmp_path / "afile", *TINY], capsys)
    assert "--out:" in line and "exists and is not a folder" in line
    line = error_line(["compare", task_file, "--p", "0", "--out", tmp_path / "afile" / "s.nc", "--quiet"], capsys)
    assert "--out: cannot create" in line
    line = error_line(["compare", task_file, "--p", "0", "--out", tmp_path, "--quiet"], capsys)
    assert "--out:" in line and "is a folder; expected a file name" in line
    line = error_line(["compare", task_file, "--p", "0", "--results-dir", tmp_path / "afile", "--quiet"], capsys)
    assert "--results-dir:" in line
    line = error_line(["demo", "--out", tmp_path / "afile" / "report", "--small", "--quiet"], capsys)
    assert "--out: cannot create" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("argv, expected", [
    (["compare", "{data}", "--p", "0", "--seeds", "a,b"], "--seeds: expected comma-separated integers, got 'a,b'"),
    (["compare", "{data}", "--p", "0", "--scheduler", "foo"], "--scheduler: expected a Dask scheduler address"),
    (["compare", "{data}", "--p", "0", "--scheduler", "tcp://localhost:0"], "--scheduler: expected"),
    (["compare", "{data}", "--p", "0", "--n-jobs", "0"], "--n-jobs: expected a positive int"),
    (["compare", "{data}", "--p", "0", "--config", "{seeds_toml}"], "seeds in --config: "),
    (["fit", "{data}", "--config", "{binary}"], "--config: {binary} is not a text (UTF-8) TOML file"),
    (["fit", "{data}", "--config", "{folder}"], "--config: {folder} is a folder, not a TOML file"),
    (["fit", "{data}", "--config", "{folder}/none.toml"], "--config: no such file"),
    (["fit", "{zero}"], "{zero}: has no trials"),
    (["compare", "{zero}", "--p", "0"], "{zero}: has no trials"),
])
def test_bad_option_is_named_in_one_line(task_file, tmp_path, capsys, no_fitting, argv, expected):
    paths = {"data": task_file, "binary": tmp_path / "bin.toml", "folder": tmp_path,
             "seeds_toml": tmp_path / "seeds.toml", "zero": tmp_path / "zero.nc"}
    paths["binary"].write_bytes(bytes(range(256)))
    paths["seeds_toml"].write_text("seeds = [0.5]\n")
    stimulus_selection(4, seed=0).isel(trial=slice(0, 0)).to_netcdf(paths["zero"])
    argv = [a.format(**paths) for a in argv] + ["--out", str(tmp_path / "out"), "--quiet"]
    start = time.perf_counter()
    line = error_line(argv, capsys)
    assert time.perf_counter() - start < 10  # no connection attempt, no fit
    assert line.startswith(f"neuroalrnn {argv[0]}: error: ") and expected.format(**paths) in line, line
    assert not (tmp_path / "out").exists()


def test_non_integer_seed_is_named(task_file, tmp_path, capsys):
    line = error_line(["fit", task_file, "--out", tmp_path / "fit", *TINY, "--set", "seed=1.5"], capsys)
    assert line == "neuroalrnn fit: error: seed: expected an int, got float 1.5"
    line = error_line(["compare", task_file, "--p", "0", "--seeds", "1.5", "--out", tmp_path / "s.nc", *TINY], capsys)
    assert line.endswith("--seeds: expected comma-separated integers, got '1.5'")
    assert not (tmp_path / "fit").exists() and not (tmp_path / "s.nc").exists()


def test_info_on_a_file_without_trials(tmp_path, capsys):
    path = tmp_path / "zero.nc"
    stimulus_selection(4, seed=0).isel(trial=slice(0, 0)).to_netcdf(path)
    assert main(["info", str(path)]) == 0  # it failed inside numpy
    out = capsys.readouterr().out
    assert "TrialDataset: 0 trials" in out and "(no trials)" in out


def test_nan_loss_writes_the_best_validated_fit_and_says_so(task_file, tmp_path, capsys, monkeypatch):
    import torch

    import neuroalrnn.fit.task as task
    from neuroalrnn.model import load_model

    real, calls, checked = task.masked_loss, {"n": 0}, {}

    def diverging(outputs, *args, **kwargs):  # NaN from the 8th update on; validation (no grad) stays finite
        loss = real(outputs, *args, **kwargs)
        if torch.is_grad_enabled():
            calls["n"] += 1
            return loss * float("nan") if calls["n"] >= 8 else loss
        checked[calls["n"]] = loss
        return loss

    monkeypatch.setattr(task, "masked_loss", diverging)
    out = tmp_path / "fit"
    # selection by validation loss (stimulus selection's recommended training selects by accuracy)
    line = error_line(["fit", task_file, "--out", out, *TINY, "--set", "select_metric=val_loss"], capsys)
    assert line.startswith("neuroalrnn fit: error: training stopped: the loss is nan at step 7")
    assert f"the best validated parameters (step {3 if checked[3] <= checked[6] else 6})" in line
    assert str(out) in line
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "history.csv", "model.safetensors"]
    report = json.loads((out / "fit.json").read_text())
    assert report["status"] == "stopped: the loss is nan at step 7" and report["steps"] == 7
    assert report["best_step"] in (3, 6) and report["training_score"] is None
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,") and len(history) == 3  # evaluations at steps 3 and 6
    assert np.isfinite(load_model(out / "model.safetensors").W.detach().numpy()).all()


def test_a_successful_fit_writes_one_consistent_set(task_file, tmp_path, capsys):
    out = tmp_path / "fit"
    (out / "observation.safetensors").parent.mkdir()
    (out / "observation.safetensors").write_text("an older teacher-forcing fit's")
    assert main(["fit", str(task_file), "--out", str(out), *TINY]) == 0
    report = json.loads((out / "fit.json").read_text())
    assert report["status"] == "complete" and report["files"] == ["model.safetensors", "history.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "history.csv", "model.safetensors"]
    assert main(["fit", str(task_file), "--out", str(tmp_path / "gru"), "--family", "gru", "--set", "n_units=4",
                 "--set", "n_steps=3", "--quiet"]) == 0  # a model without save(): its state dict
    assert (tmp_path / "gru" / "model.safetensors").is_file()


def test_damaged_results_are_recomputed_with_a_one_line_warning(task_file, tmp_path, capsys):
    store = tmp_path / "store"
    argv = ["compare", task_file, "--p", "0", "--cv", "2", "--results-dir", store, "--out", tmp_path / "s.nc", *TINY]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    records = sorted(store.glob("*.json"))
    for record in records:  # truncated: a full disk, a killed copy
        record.write_text(record.read_text()[:40])
    code, err = run(argv, capsys)
    assert code == 0 and len(err) == 1, err
    assert err[0].startswith("neuroalrnn compare: warning: --results-dir: ") and "recomputed" in err[0]
    assert any(record.name in err[0] for record in records)


def _cli(*argv):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "neuroalrnn.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stderr.strip().splitlines(), time.perf_counter() - start


def test_real_process_bad_scheduler_is_one_line_without_a_stall(task_file, tmp_path):
    code, err, seconds = _cli("compare", task_file, "--p", "0", "--scheduler", "foo", "--out", tmp_path / "s.nc")
    assert code == 2 and len(err) == 1 and err[0].startswith("neuroalrnn compare: error: --scheduler:"), err
    assert seconds < 60  # it waited 10 s for a client to close, then printed a second traceback


def test_real_process_binary_config_is_one_line(task_file, tmp_path):
    (tmp_path / "c.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code, err, _ = _cli("fit", task_file, "--config", tmp_path / "c.toml", "--out", tmp_path / "fit")
    assert code == 2 and err == [f"neuroalrnn fit: error: --config: {tmp_path / 'c.toml'} is not a text (UTF-8) "
                                 "TOML file"]
    assert not (tmp_path / "fit").exists()
