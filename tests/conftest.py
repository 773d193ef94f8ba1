"""Shared fixtures: the external data folder and a small TrialDataset."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data, or skip when this clone has no such folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"external data folder {SHARED_DATA} is absent (only CI and dev boxes have it)")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)
