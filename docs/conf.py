"""Sphinx configuration: getting started, the executed tutorial gallery and the API reference.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``. With
``NEUROALRNN_TUTORIAL_SMALL=1`` the tutorials run with small sizes (CI does this).
"""

import inspect
import re
import sys
from importlib import import_module
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import neuroalrnn  # noqa: E402

project = "neuroalrnn"
author = "the neuroalrnn authors"
copyright = "2026, the neuroalrnn authors"
release = version = neuroalrnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
exclude_patterns = ["_build", "tutorials/*.ipynb", "tutorials/*.py", "tutorials/*.md5", "tutorials/*.codeobj.json",
                    "tutorials/*.zip"]
templates_path = []

html_theme = "pydata_sphinx_theme"
html_title = f"neuroalrnn {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc lists the types in the docstrings
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# the tutorials: ../tutorials/NN_*.py, executed into the gallery docs/tutorials/
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "tutorials"),
    "gallery_dirs": str(HERE / "tutorials"),
    "filename_pattern": r"/\d\d_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "min_reported_time": 10**9,  # no timing table (it changes from build to build)
    "write_computation_times": False,
}

# The API reference lists every public name of each module (its __all__, or what it imports from the
# package), so a function added to a module appears without editing these pages.
TOP_LEVEL = ["load", "validate", "from_arrays", "to_arrays", "load_sample", "ALRNN", "load_model", "set_num_threads"]
MODULES = {
    "neuroalrnn.schema": "The TrialDataset: build, validate, convert",
    "neuroalrnn.io": "Readers: NWB, MATLAB, tables, netCDF, neurogym",
    "neuroalrnn.preprocess": "Preprocessing: binning, smoothing, alignment, z-scoring, LFP",
    "neuroalrnn.tasks": "Task generators",
    "neuroalrnn.model": "The AL-RNN model and its recurrence",
    "neuroalrnn.fit": "Fitting: task training and teacher forcing",
    "neuroalrnn.analysis": "Analysis: subregions, fixed points, cycles, DSR metrics, geometry, behaviour",
    "neuroalrnn.estimators": "scikit-learn estimators",
    "neuroalrnn.compare": "Cross-validated comparisons",
    "neuroalrnn.scoring": "Scores for comparisons: per-condition accuracy, per-task error, DSR measures, scikit-learn scorers",
    "neuroalrnn.stats": "Summaries and paired statistics of cross-validated scores",
    "neuroalrnn.study": "The nonlinearity study: task suite x numbers of ReLU units x seeds",
    "neuroalrnn.plot": "Figures",
    "neuroalrnn.sample": "The embedded sample data",
}


def _public(module_name):
    module = import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # what the module defines, or imports from its own submodules
        names = [n for n, obj in vars(module).items() if not n.startswith("_") and callable(obj)
                 and (getattr(obj, "__module__", "") + ".").startswith(module_name + ".")]
    names = [n for n in names if not n.isupper()]  # constants (presets, registries) are described in the text
    documented = {id(getattr(neuroalrnn, n)) for n in TOP_LEVEL}
    return [n for n in names if id(getattr(module, n)) not in documented
            and (inspect.isclass(getattr(module, n)) or callable(getattr(module, n)))]


def _write_api(path):
    pages = {f"neuroalrnn.{n}" for n in TOP_LEVEL}
    pages |= {f"{m}.{n}" for m in MODULES for n in _public(m)}
    for stale in (path.parent / "generated").glob("*.rst"):  # pages of names that no longer exist
        if stale.stem not in pages:
            stale.unlink()
    lines = ["API reference", "=============", "",
             "Every public function and class, grouped by module; each page has its parameters and a "
             "runnable example.", "", "neuroalrnn", "----------", "", ".. currentmodule:: neuroalrnn", "",
             ".. autosummary::", "   :toctree: generated", "", *(f"   {n}" for n in TOP_LEVEL), ""]
    for module_name, title in MODULES.items():
        lines += [module_name, "-" * len(module_name), "", title + ".", "", f".. currentmodule:: {module_name}", "",
                  ".. autosummary::", "   :toctree: generated", "", *(f"   {n}" for n in _public(module_name)), ""]
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:  # unchanged text keeps incremental builds incremental
        path.write_text(text)


_write_api(HERE / "api.rst")


# The docstrings are written to read well as plain text (help(), IPython's ?), where |lambda| is an
# absolute value and a dim may be named ``condition_``; in reStructuredText those would be a
# substitution and a link target. Escape them outside code, doctests and directives.
_PLAIN = [(re.compile(r"(?<![\\`|])\|(\w+)\|(?![`|])"), r"\\|\1\\|"),
          (re.compile(r"(?<=\w)_(?=[\s,.;:)\]]|$)"), r"\\_")]


def _escape_plain_text(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if line.lstrip().startswith((">>>", "...", "..")):
            continue
        parts = re.split(r"(``.*?``|`[^`]*`)", line)  # leave code and roles alone
        for k in range(0, len(parts), 2):
            for pattern, repl in _PLAIN:
                parts[k] = pattern.sub(repl, parts[k])
        lines[i] = "".join(parts)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_plain_text)
