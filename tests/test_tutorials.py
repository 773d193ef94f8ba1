"""Execute the tutorial notebooks (each helper adds one test function per notebook)."""

from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def run_notebook(path: Path, timeout: int = 300):
    """Execute a notebook in a fresh kernel from its own folder; return the executed notebook."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def _images(nb) -> int:
    """Number of PNG figures among the executed notebook's outputs."""
    return sum(bool(out.get("data", {}).get("image/png")) for cell in nb.cells for out in cell.get("outputs", []))


def _outputs(nb):
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))


def test_01_loading_data():
    nb = run_notebook(TUTORIALS / "01_loading_data.ipynb")
    text = _outputs(nb)
    assert "round trip identical" in text
    assert _images(nb) >= 1  # the PSTH figure was drawn


@pytest.mark.slow
def test_02_stimulus_selection(monkeypatch):
    monkeypatch.setenv("NEUROALRNN_TUTORIAL_SMALL", "1")
    nb = run_notebook(TUTORIALS / "02_stimulus_selection.ipynb")
    text = _outputs(nb)
    assert "ideal observer: overall" in text and "held-out accuracy per P" in text
    images = _images(nb)
    assert images >= 3  # a trial, accuracy against P, psychometric curves


@pytest.mark.slow  # starts a LocalCluster of 2 worker processes
def test_05_cross_validated_comparison(monkeypatch):
    monkeypatch.setenv("NEUROALRNN_TUTORIAL_SMALL", "1")
    nb = run_notebook(TUTORIALS / "05_cross_validated_comparison.ipynb")
    text = _outputs(nb)
    assert "held-out accuracy per model" in text and "P=2 - P=0" in text
    assert "rerun identical: True" in text
    assert "Dask results identical to the local run: True" in text
    assert _images(nb) >= 1  # accuracy against P


@pytest.mark.slow  # ~20 s: two small teacher-forcing fits
def test_03_teacher_forcing(monkeypatch):
    monkeypatch.setenv("NEUROALRNN_TUTORIAL_SMALL", "1")
    nb = run_notebook(TUTORIALS / "03_teacher_forcing.ipynb")
    text = _outputs(nb)
    assert "20-step prediction error on test trials: fitted" in text and "ground truth" in text
    assert "D_stsp (3 PCs)" in text
    shared = TUTORIALS.parents[1] / "shared" / "data" / "koppe2014_fmri" / "NBKO_PLRNN_dataset.mat"
    images = _images(nb)
    if shared.exists():
        assert "subject 6, held-out segment: 5-step prediction error" in text
        assert images >= 2  # sample free runs, fMRI free run
    else:
        assert "skipping the real-data part" in text
        assert images >= 1


@pytest.mark.slow
def test_04_dynamics_and_geometry(monkeypatch):
    monkeypatch.setenv("NEUROALRNN_TUTORIAL_SMALL", "1")
    nb = run_notebook(TUTORIALS / "04_dynamics_and_geometry.ipynb")
    text = _outputs(nb)
    # the mechanism is computed and printed for both contexts, for the trained and the ground-truth network
    for ctx in ("motion", "color"):
        assert f"{ctx} context:" in text.replace("color  context", "color context")
        assert f"ground truth, {ctx}" in text
    assert "slowest |lambda|" in text and "real fixed point(s) in region(s)" in text
    assert "cross-validated similarity with the recorded units" in text
    assert "P(choice=+1) at the strongest" in text
    images = _images(nb)
    assert images >= 6  # region raster, fixed points, TDR (model x2, recording), psychometric curves
