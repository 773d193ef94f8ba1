import numpy as np

from neuroalrnn.cli import main
from neuroalrnn.schema import from_arrays


def test_info_prints_summary(tmp_path, capsys):
    ds = from_arrays(activity=np.ones((3, 4, 2)), dt=0.01, trial_coords={"context": ["a", "b", "a"]})
    path = tmp_path / "ds.nc"
    ds.to_netcdf(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 trials" in out and "context" in out and "10 ms" in out


def test_bad_file_gives_one_line_error(tmp_path, capsys):
    path = tmp_path / "empty.nc"
    path.write_bytes(b"")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuroalrnn info: error:") and "\n" not in err


import json

import pytest
import xarray as xr

from neuroalrnn.tasks import stimulus_selection


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "task.nc"
    ds = stimulus_selection(60, seed=0)
    ds = ds.assign_coords(session=("trial", [f"s{i % 3}" for i in range(60)]))
    ds.to_netcdf(path)
    return path


def test_fit_task_writes_a_loadable_model(task_file, tmp_path, capsys):
    from neuroalrnn.model import load_model

    out = tmp_path / "fit"
    assert main(["fit", str(task_file), "--set", "n_units=6", "--set", "n_relu=2", "--set", "n_steps=5",
                 "--set", "eval_every=5", "--out", str(out), "--quiet"]) == 0
    model = load_model(out / "model.safetensors")
    assert (model.n_units, model.n_relu, model.n_inputs) == (6, 2, 5)
    report = json.loads((out / "fit.json").read_text())
    assert report["estimator"] == "ALRNNTaskEstimator" and 0 <= report["training_score"] <= 1


def test_fit_teacher_forcing_from_a_toml_config(tmp_path):
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(8, 30, 2)), axis=1) * 0.1
    data = tmp_path / "rec.nc"
    from_arrays(activity=x, dt=0.1).to_netcdf(data)
    config = tmp_path / "fit.toml"
    config.write_text('family = "teacher_forcing"\n[params]\nn_units = 4\nn_relu = 1\nn_steps = 5\n'
                      'eval_every = 5\ntau = 5\nn_ahead = 3\n')
    out = tmp_path / "tf"
    assert main(["fit", str(data), "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "observation.safetensors").is_file()


def test_compare_over_p(task_file, tmp_path, capsys):
    out = tmp_path / "cmp.nc"
    assert main(["compare", str(task_file), "--p", "0,2", "--cv", "3", "--groups", "session",
                 "--set", "n_units=4", "--set", "n_steps=3", "--set", "eval_every=3", "--out", str(out),
                 "--quiet"]) == 0
    results = xr.load_dataset(out)
    assert results["score"].dims == ("model", "fold", "seed")
    assert results.sizes["fold"] == 3 and list(results["model"].values) == ["P=0", "P=2"]
    assert "P=2" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["fit", "{data}", "--set", "n_relus=2"], "unknown parameters ['n_relus']"),
    (["compare", "{data}", "--p", "0,x"], "--p: expected comma-separated integers"),
    (["compare", "{data}", "--p", "0", "--cv", "4", "--groups", "session"], "only 3 distinct groups"),
    (["compare", "{data}"], "give the models to compare"),
    (["fit", "{data}", "--config", "{toml}"], "unknown keys ['epochs']"),
])
def test_bad_input_is_one_line(task_file, tmp_path, capsys, argv, expected):
    toml = tmp_path / "bad.toml"
    toml.write_text("epochs = 3\n")
    argv = [a.format(data=task_file, toml=toml) for a in argv]
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected in err


def test_unknown_option_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--fast"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--fast" in err


def test_unreachable_scheduler_fails_fast(task_file, tmp_path, capsys):
    import time

    start = time.perf_counter()
    assert main(["compare", str(task_file), "--p", "0", "--cv", "2", "--scheduler", "tcp://127.0.0.1:9",
                 "--set", "n_units=4", "--set", "n_steps=1", "--out", str(tmp_path / "x.nc"), "--quiet"]) == 2
    assert time.perf_counter() - start < 30
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_file_failing_validation_names_the_field(tmp_path, capsys):
    ds = from_arrays(activity=np.ones((2, 3, 1)), dt=0.1)
    ds["activity"].values[0, 1, 0] = np.nan  # NaN inside the mask
    path = tmp_path / "bad.nc"
    ds.to_netcdf(path)
    assert main(["compare", str(path), "--p", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "activity: NaN or inf inside the mask" in err


def test_fit_of_a_generated_task_starts_from_its_recommended_training(tmp_path, capsys):
    """The package-wide defaults leave the addition problem at its baseline; its recommended settings solve it."""
    from neuroalrnn.tasks import addition, recommended

    path = tmp_path / "addition.nc"
    addition(40, T=20, seed=0).to_netcdf(path)
    out = tmp_path / "fit"
    assert main(["fit", str(path), "--set", "n_steps=3", "--set", "n_units=8", "--out", str(out)]) == 0
    assert "addition: the task's recommended training" in capsys.readouterr().out
    params = json.loads((out / "fit.json").read_text())["params"]
    wanted = recommended("addition")["params"]
    assert (params["init"], params["lr"], params["lr_decay"]) == (wanted["init"], wanted["lr"], wanted["lr_decay"])
    assert (params["n_steps"], params["n_units"]) == (3, 8)  # what the user set wins
    gru = tmp_path / "gru"
    assert main(["fit", str(path), "--family", "gru", "--set", "n_steps=2", "--set", "n_units=4", "--out", str(gru),
                 "--quiet"]) == 0  # other families keep their own defaults
    assert json.loads((gru / "fit.json").read_text())["params"]["lr"] != wanted["lr"]
