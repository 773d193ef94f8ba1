"""neuroalrnn: almost-linear RNNs for context-dependent stimulus selection.

The public entry points are imported lazily so that ``import neuroalrnn`` stays
fast and a reader or analysis module is only loaded when it is used.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "validate": "neuroalrnn.schema",
    "from_arrays": "neuroalrnn.schema",
    "to_arrays": "neuroalrnn.schema",
    "load": "neuroalrnn.io",
    "ALRNN": "neuroalrnn.model",
    "load_model": "neuroalrnn.model",
    "load_sample": "neuroalrnn.sample",
    "set_num_threads": "neuroalrnn._threads",
}
_SUBMODULES = {"schema", "io", "preprocess", "tasks", "model", "fit", "analysis",
               "estimators", "compare", "plot", "cli", "sample"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return import_module(f"neuroalrnn.{name}")
    raise AttributeError(f"module 'neuroalrnn' has no attribute {name!r}")


def __dir__():
    return __all__
