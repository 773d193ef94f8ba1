"""Shared helpers: atomic writes and seeding."""

import numpy as np
import pytest

from neuroalrnn.utils import atomic_write, check_random_state, torch_generator


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.npy"
    np.save(target, np.arange(3))
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as tmp:
            np.save(tmp, np.arange(10))
            raise RuntimeError("boom")
    assert np.load(target).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no temporary file left
    with atomic_write(target) as tmp:
        np.save(tmp, np.arange(4))
    assert np.load(target).tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_check_random_state():
    gen = np.random.default_rng(3)
    assert check_random_state(gen) is gen
    assert check_random_state(np.int64(5)).integers(1000) == np.random.default_rng(5).integers(1000)
    for bad in (True, 1.5, "0"):
        with pytest.raises(TypeError, match="seed: expected None, an int or a numpy Generator"):
            check_random_state(bad)


def test_torch_generator_is_reproducible():
    import torch

    a = torch.rand(3, generator=torch_generator(7))
    assert torch.equal(a, torch.rand(3, generator=torch_generator(7)))
    assert not torch.equal(a, torch.rand(3, generator=torch_generator(8)))
    b = torch.rand(3, generator=torch_generator(np.random.default_rng(1)))
    assert torch.equal(b, torch.rand(3, generator=torch_generator(np.random.default_rng(1))))


def test_check_number_types_bounds_and_messages():
    from neuroalrnn.utils import check_number

    assert check_number("x", np.float32(0.5), 0, 1) == 0.5
    assert check_number("x", np.array(3), 0) == 3.0  # a 0-d array is a number
    assert check_number("x", None, optional=True) is None
    assert check_number("x", 0, 0) == 0.0  # closed lower bound
    for bad in ("1", None, True, [1.0], np.array([1.0])):
        with pytest.raises(TypeError, match="x: expected a number"):
            check_number("x", bad)
    for bad, kwargs in ((0, dict(low=0, open_low=True)), (1.5, dict(low=0, high=1)), (float("nan"), {}),
                        (float("inf"), {}), (-1, dict(low=0))):
        with pytest.raises(ValueError, match="x: expected a finite number"):
            check_number("x", bad, **kwargs)
    with pytest.raises(TypeError, match="dt: expected seconds, got str"):
        check_number("dt", "a", expected="seconds")
