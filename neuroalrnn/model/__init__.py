"""The AL-RNN and its time loop.

``ALRNN`` (:mod:`neuroalrnn.model.alrnn`) is the model users build, fit and analyse;
``alrnn_scan`` (:mod:`neuroalrnn.model.recurrence`) is its exact time loop with several backends:
a fused numba loop (``_numba``), the 2M-unit ReLU-RNN identity (``_rnn_identity``, cuDNN on GPU)
and persistent Triton kernels (``_triton``). Saving and loading (safetensors) live in ``_io``.
``ALRNNEnsemble`` (:mod:`neuroalrnn.model.ensemble`) stacks K models to train them as one computation.
"""

from neuroalrnn.model.alrnn import ALRNN, _resolve_device, load_model
from neuroalrnn.model.ensemble import ALRNNEnsemble
from neuroalrnn.model.recurrence import BACKENDS, alrnn_scan, alrnn_scan_reference

__all__ = ["ALRNN", "ALRNNEnsemble", "load_model", "alrnn_scan", "alrnn_scan_reference", "BACKENDS"]
