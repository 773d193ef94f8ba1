"""The demo: its plan and progress, its report (numbers in context, figures), the report in a browser."""

import html
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from neuroalrnn import __version__
from neuroalrnn._report import mechanism_sentence
from neuroalrnn.cli import main
from neuroalrnn.demo import run_demo

FIGURES = {"task_accuracy", "mechanism", "regions", "teacher_forcing", "psychometric", "tdr", "compare"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One small demo run (tiny budgets) shared by the tests: its folder, summary and printed output."""
    out = tmp_path_factory.mktemp("demo") / "report"
    capture = pytest.MonkeyPatch()
    printed, bars = io.StringIO(), io.StringIO()  # not terminals, as when output goes to a log file
    capture.setattr(sys, "stdout", printed)
    capture.setattr(sys, "stderr", bars)
    try:
        summary = run_demo(out=out, small=True, seed=0)
    finally:
        capture.undo()
    return out, summary, printed.getvalue(), bars.getvalue()


def test_demo_says_what_it_does_how_long_and_where(report):
    out, _, printed, bars = report
    head = printed.split("[1/6]")[0]
    assert "six steps" in head and "About 15 s" in head
    assert str((out / "index.html").resolve()) in head
    for k in range(1, 7):  # every step announces itself and its duration, the comparison included
        assert f"[{k}/6]" in printed
    assert printed.count("done in") == 7  # the six steps and the report's writing
    assert "writing the report" in printed
    assert "cross-validated comparison of P" in printed
    # progress bars do not flood a log (one redirected run once wrote 160 KB of carriage returns)
    assert len(bars) < 2000, bars[:500]


def test_demo_writes_a_complete_report(report):
    out, summary, _, _ = report
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert set(summary["task"]["accuracy"]) == {"P=0", "P=2", "P=16"}
    for acc in summary["task"]["accuracy"].values():
        assert 0 <= acc["overall"] <= 1
    task = summary["task"]
    assert task["n_congruent"] + task["n_incongruent"] == task["n_test_trials"] == 80
    assert 0.5 <= task["chance"] < 1
    assert summary["package"]["version"] == __version__ and summary["settings"]["seed"] == 0
    assert set(summary["mechanism"]["fixed_points"]) == {"motion", "color"}
    for points in summary["mechanism"]["fixed_points"].values():
        for p in points:
            assert p["region_label"].startswith(f"{p['region']}: ")
            assert p["time_constant_s"] is None or p["time_constant_s"] > 0
    assert summary["geometry"]["cka"] > summary["geometry"]["cka_shuffled"]  # ground truth vs shuffled trials
    models = summary["comparison"]["models"]
    assert all(len(m["folds"]) == summary["comparison"]["cv"] == 3 for m in models.values())
    page = (out / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert set(images) == {f"{name}.png" for name in FIGURES}
    for name in images:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    modes = {stat.S_IMODE(os.stat(out / f).st_mode) for f in os.listdir(out)}
    assert len(modes) == 1  # every output gets the same permissions


def test_report_puts_every_number_in_context(report):
    out, summary, _, _ = report
    page = (out / "index.html").read_text()
    assert '<a href="summary.json">' in page
    assert f"neuroalrnn {__version__}" in page and "seed 0" in page
    assert "chance" in page and "ideal observer" in page
    assert "(count)^2" in page and "persistence" in page and "training trials' mean" in page
    assert "time constant" in page and "dt = 50 ms" in page
    assert "region code = the sum of 2<sup>i</sup>" in page
    assert html.escape(summary["mechanism"]["sentence"]) in page
    for model, scores in summary["comparison"]["models"].items():  # every fold beside mean +- SEM
        row = re.search(rf"<tr><td>{re.escape(model)}</td>(.*?)</tr>", page.split("Cross-validated comparison")[1])
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        assert cells[:-1] == [f"{x:.3f}" for x in scores["folds"]]
        assert f"{scores['mean']:.3f} &plusmn; {scores['sem']:.3f}" in cells[-1]


def test_mechanism_sentence_is_computed_from_the_fixed_points():
    def pt(region, stable=True, tau=1.0):
        return {"region": region, "stable": stable, "time_constant_s": tau, "grows": False}

    apart = mechanism_sentence({"motion": [pt(1)], "color": [pt(2), pt(0, stable=False)]}, 0.5)
    assert "different linear subregions (motion: region 1, color: region 2)" in apart
    assert "outlasts the 0.5 s stimulus" in apart
    shared = mechanism_sentence({"motion": [pt(3, tau=0.1)], "color": [pt(3, tau=0.2)]}, 0.5)
    assert "share linear subregion 3" in shared and "decays before the 0.5 s stimulus ends" in shared
    one = mechanism_sentence({"motion": [pt(1)], "color": [pt(2, stable=False)]}, 0.5)
    assert one.startswith("Only under the motion cue") and "under the color cue it has none" in one
    none = mechanism_sentence({"motion": [], "color": [pt(2, stable=False)]}, 0.5)
    assert none.startswith("Under neither context's input")


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


PROBE = ("<script>window.addEventListener('load', () => {for (const img of document.images) "
         "{img.setAttribute('data-loaded', String(img.complete && img.naturalWidth > 0));} "
         "document.body.setAttribute('data-checked', 'yes');});</script>")


def _loaded_images(browser, page):
    """Load ``page`` in headless Chromium (no network) and read which images decoded."""
    probe = page.with_name("_probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    assert 'data-checked="yes"' in dom, "the page's load event never fired"
    return re.findall(r'<img src="([^"]+)"[^>]*data-loaded="(true|false)"', dom)


def test_report_opens_in_a_browser_with_every_image(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    out, _, _, _ = report
    loaded = _loaded_images(browser, out / "index.html")
    assert sorted(src for src, _ in loaded) == sorted(f"{n}.png" for n in FIGURES)
    assert all(ok == "true" for _, ok in loaded)
    broken = tmp_path / "broken"  # the check itself catches a missing figure
    shutil.copytree(out, broken)
    (broken / "mechanism.png").unlink()
    assert dict(_loaded_images(browser, broken / "index.html"))["mechanism.png"] == "false"
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,3000", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, cwd=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_cli_rejects_unknown_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--nope"])
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
