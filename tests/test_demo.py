import json
import re

from neuroalrnn.cli import main
from neuroalrnn.demo import run_demo


def test_demo_writes_a_complete_report(tmp_path):
    out = tmp_path / "report"
    summary = run_demo(out=out, quiet=True, small=True)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert set(summary["task"]["accuracy"]) == {"P=0", "P=2", "P=16"}
    for acc in summary["task"]["accuracy"].values():
        assert 0 <= acc["overall"] <= 1
    assert set(summary["fixed_points_P2"]) == {"motion", "color"}
    assert summary["geometry"]["cka"] > summary["geometry"]["cka_shuffled"]  # ground truth vs shuffled trials
    page = (out / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 7
    for name in images:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_cli_rejects_unknown_options(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["demo", "--nope"])
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
