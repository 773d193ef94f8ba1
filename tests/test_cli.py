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
