"""Root pytest setup, loaded before any test or doctest module is imported.

Without a GPU, Triton's kernels can only run in its interpreter, which must be switched on before
triton is first imported; without triton at all, its backend module is left out of the doctests.
"""
import importlib.util
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

collect_ignore = [] if importlib.util.find_spec("triton") else ["neuroalrnn/model/_triton.py"]
