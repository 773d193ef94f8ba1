"""Tests for neuroalrnn.model (the ALRNN module, save/load, bad input)."""
import numpy as np
import pytest
import torch

from neuroalrnn.model import ALRNN, load_model
from neuroalrnn.recurrence import alrnn_scan_reference


def test_forward_matches_step_loop():
    m = ALRNN(6, 2, 3, 2, seed=1, dtype=torch.float64)
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    states, out = m(x)
    z = torch.zeros(4, 6, dtype=torch.float64)
    for t in range(9):
        z = m.step(z, x[:, t])
        torch.testing.assert_close(states[:, t], z)
    torch.testing.assert_close(out, states @ m.B.T + m.b)
