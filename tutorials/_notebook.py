"""Shared by the ``_make_0N.py`` scripts: write a notebook from (kind, source) cells, outputs cleared."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(cells, path: Path) -> None:
    """Write ``cells`` (pairs of "md"/"code" and source text) as a notebook at ``path``."""
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    print(f"wrote {path}")
