"""Execute the tutorials (``tutorials/*.py``, percent scripts) as notebooks, in their small mode.

Each tutorial is a ``# %%`` script: jupytext reads it as a notebook, a fresh Jupyter kernel runs
it from the tutorials folder with ``NEUROALRNN_TUTORIAL_SMALL=1`` (small sizes), and the test
reads the printed text and counts the figures. The documentation (``docs/``) executes the same
scripts with sphinx-gallery.
"""

from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


@pytest.fixture(autouse=True)
def small_mode(monkeypatch):
    monkeypatch.setenv("NEUROALRNN_TUTORIAL_SMALL", "1")


def run_tutorial(name: str, timeout: int = 300):
    """Execute ``tutorials/<name>.py`` in a fresh kernel from its own folder; return the executed notebook."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    path = TUTORIALS / f"{name}.py"
    nb = jupytext.read(path, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
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


def test_tutorials_are_percent_scripts_with_a_title_and_text_cells():
    jupytext = pytest.importorskip("jupytext")
    scripts = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert [p.stem[:2] for p in scripts] == ["01", "02", "03", "04", "05", "06"]
    assert not list(TUTORIALS.glob("*.ipynb"))  # notebooks are made from the scripts, not committed
    for path in scripts:
        text = path.read_text()
        assert text.startswith('"""\n0'), f"{path.name}: sphinx-gallery needs the title docstring first"
        title, underline = text.split("\n")[1:3]
        assert set(underline) == {"="} and len(underline) >= len(title), f"{path.name}: title underline too short"
        nb = jupytext.read(path, fmt="py:percent")
        kinds = [c.cell_type for c in nb.cells]
        assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3, path.name
        # one cell per marker (plus the title): no text cell swallowed the cells after it (a "~~~"
        # underline, for one, opens a Markdown code fence)
        assert len(nb.cells) == text.count("\n# %%") + 1, path.name


def test_01_loading_data():
    nb = run_tutorial("01_loading_data")
    text = _outputs(nb)
    assert "round trip identical" in text
    assert _images(nb) >= 1  # the PSTH figure was drawn


@pytest.mark.slow
def test_02_stimulus_selection():
    nb = run_tutorial("02_stimulus_selection")
    text = _outputs(nb)
    assert "ideal observer: overall" in text and "held-out accuracy per P" in text
    assert _images(nb) >= 3  # a trial, accuracy against P, psychometric curves


@pytest.mark.slow  # ~20 s: two small teacher-forcing fits
def test_03_teacher_forcing():
    nb = run_tutorial("03_teacher_forcing")
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
def test_04_dynamics_and_geometry():
    nb = run_tutorial("04_dynamics_and_geometry")
    text = _outputs(nb)
    # the mechanism is computed and printed for both contexts, for the trained and the ground-truth network
    for ctx in ("motion", "color"):
        assert f"{ctx} context:" in text.replace("color  context", "color context")
        assert f"ground truth, {ctx}" in text
    assert "slowest |lambda|" in text and "real fixed point(s) in region(s)" in text
    assert "cross-validated similarity with the recorded units" in text
    assert "P(choice=+1) at the strongest" in text
    assert _images(nb) >= 6  # region raster, fixed points, TDR (model x2, recording), psychometric curves


@pytest.mark.slow  # starts a LocalCluster of 2 worker processes
def test_05_cross_validated_comparison():
    nb = run_tutorial("05_cross_validated_comparison")
    text = _outputs(nb)
    assert "held-out accuracy per model" in text and "P=2 - P=0" in text
    assert "rerun identical: True" in text
    assert "Dask results identical to the local run: True" in text
    assert _images(nb) >= 1  # accuracy against P


@pytest.mark.slow  # ~40 s: a quick study of 4 tasks and three single small fits
def test_06_nonlinearity_study():
    nb = run_tutorial("06_nonlinearity_study")
    text = _outputs(nb)
    assert "study: 4 tasks x 5 P x 2 seeds x 2 folds" in text and "held-out criterion score per task and P" in text
    assert "accuracy[incongruent]" in text and "fraction of fits showing each mechanism" in text
    assert "gating shown:" in text and "own subregions:" in text and "held at their own fixed point:" in text
    assert _images(nb) >= 3  # scores against P, mechanism fractions, the gating raster
