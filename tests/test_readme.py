"""The README's Python examples run (with shorter training budgets); CI runs its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    for code in blocks:
        code = re.sub(r"n_steps=\d+", "n_steps=20", code)
        exec(compile(code, str(README), "exec"), {})


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    text = README.read_text()
    first = text.split("\n## ")[0]
    commands = re.findall(r"```bash\n(.*?)\n```", first, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)  # two one-line commands, first thing
    assert text.startswith(f"# neuroalrnn\n\n```bash\n{commands[0]}\n```\n\n```bash\n{commands[1]}\n```")
    assert commands[0].startswith("pip install") and commands[0].endswith("neuroalrnn demo")
    assert commands[1].startswith("pip install") and commands[1].endswith("python -m pytest -q")
    assert "torch==" not in first.split("```")[1] + first.split("```")[3]  # no pin a user must not need
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci  # the same line, not a variant
    torch_first = [i for i, line in enumerate(ci) if line.startswith("pip install torch")]
    assert torch_first and torch_first[0] < ci.index(commands[1])  # CI's CPU torch goes in first
