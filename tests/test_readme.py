"""The README's Python examples run (with shorter training budgets)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    for code in blocks:
        code = re.sub(r"n_steps=\d+", "n_steps=20", code)
        exec(compile(code, str(README), "exec"), {})


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)[:2]
    assert commands[0].endswith("neuroalrnn demo")
    assert commands[1].endswith("python -m pytest -q")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci
