"""utils.atomic_write gives every output the same mode; utils.progress_bar stays quiet in logs."""

import io
import os
import stat

import pytest

from neuroalrnn.utils import atomic_write, progress_bar


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_writer_that_replaces_the_file_still_gives_the_usual_mode(tmp_path, umask_022):
    with atomic_write(tmp_path / "plain.txt") as tmp:
        tmp.write_text("x")
    with atomic_write(tmp_path / "replaced.txt") as tmp:
        os.unlink(tmp)  # what safetensors does: a new file in place of the temporary one
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)
    assert _mode(tmp_path / "plain.txt") == _mode(tmp_path / "replaced.txt") == 0o644


def test_saved_model_has_the_mode_of_the_other_outputs(tmp_path, umask_022):
    from neuroalrnn import ALRNN

    ALRNN(4, 1, n_inputs=2, seed=0).save(tmp_path / "model.safetensors")
    with atomic_write(tmp_path / "summary.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "model.safetensors") == _mode(tmp_path / "summary.json") == 0o644


class _Clock:
    """A stand-in for time.time inside tqdm: each call advances one second."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_progress_bar_in_a_log_writes_a_few_lines_not_one_per_update(monkeypatch):
    import tqdm.std

    clock = _Clock()
    monkeypatch.setattr(tqdm.std, "time", clock)
    log = io.StringIO()
    with progress_bar(600, desc="fit", file=log) as bar:  # 600 updates, one per (fake) second
        for _ in range(600):
            bar.update(1)
    updates = log.getvalue().count("\r")
    assert 0 < updates <= 600 / 30 + 3  # about one line per LOG_INTERVAL (30 s), plus the close


def test_progress_bar_on_a_terminal_redraws_and_can_be_disabled():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    with progress_bar(5, desc="fit", file=term, mininterval=0) as bar:
        for _ in range(5):
            bar.update(1)
    assert term.getvalue().count("fit") >= 5
    quiet = Terminal()
    with progress_bar(5, file=quiet, enabled=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""


def test_a_thread_cleaning_the_folder_never_takes_a_live_temporary_file(tmp_path, monkeypatch):
    import tempfile
    import threading
    import time

    from neuroalrnn.utils import remove_stale_temps

    removed, real = [], tempfile.mkstemp

    def slow_mkstemp(*args, **kwargs):  # another thread of the sweep cleans the folder right after creation
        out = real(*args, **kwargs)
        cleaner = threading.Thread(target=lambda: removed.extend(remove_stale_temps(tmp_path)))
        cleaner.start()
        time.sleep(0.2)
        threads.append(cleaner)
        return out

    threads = []
    monkeypatch.setattr(tempfile, "mkstemp", slow_mkstemp)
    with atomic_write(tmp_path / "x.txt") as tmp:
        assert tmp.exists()  # still there: it was live before the cleaner looked
        tmp.write_text("done")
    for cleaner in threads:
        cleaner.join()
    assert removed == [] and (tmp_path / "x.txt").read_text() == "done"
