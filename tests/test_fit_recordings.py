"""Tests of the held-out evaluation of teacher-forced fits: free runs from one or several starts."""

import numpy as np
import pytest
import torch

from neuroalrnn.analysis.dsr import power_spectrum_error, state_space_divergence
from neuroalrnn.fit.ensemble_tf import fit_teacher_forcing_ensemble
from neuroalrnn.fit.observation import IdentityObservation, ObservedALRNN
from neuroalrnn.fit.recordings import make_evaluate
from neuroalrnn.fit.teacher_forcing import fit_teacher_forcing
from neuroalrnn.model import ALRNN, ALRNNEnsemble

STEPS, TRANSIENT = 150, 20


def _module(M=6, P=2, N=2, seed=0, scale=0.4):
    model = ALRNN(M, P, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        model.W.normal_(0, scale, generator=torch.Generator().manual_seed(seed))
        model.h.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + 1))
    return ObservedALRNN(model, IdentityObservation(N, M, P, seed=seed, dtype=torch.float64), np.zeros(N), np.ones(N))


def _val(n_trials=10, T=40, N=2, seed=0):
    x = torch.as_tensor(np.random.default_rng(seed).normal(size=(n_trials, T, N)) * 2)
    return {"x": x, "mask": torch.ones(n_trials, T, dtype=torch.bool)}


def _by_hand(module, val, starts, steps=STEPS, transient=TRANSIENT):
    """D_stsp and D_H of each free run from the first observations of trials ``starts``, as the docs define."""
    data = val["x"].numpy().reshape(-1, val["x"].shape[-1])
    with torch.no_grad():
        gens = module.latent_free_run(val["x"][starts, 0].numpy(), steps + transient)[..., :2].numpy()[:, transient:]
    return ([state_space_divergence(data, g, 30, 1e-5, seed=0) for g in gens],
            [power_spectrum_error(data[: len(g)], g, 20.0) for g in gens])


def _evaluate(module, val, **kw):
    return make_evaluate(("d_stsp", "d_h"), free_run_steps=STEPS, transient=TRANSIENT, **kw)(module.eval(), val)


def test_one_start_is_the_first_trials_run():
    module, val = _module(), _val()
    (d,), (h,) = _by_hand(module, val, [0])
    assert _evaluate(module, val) == _evaluate(module, val, free_run_starts=1) == {"d_stsp": d, "d_h": h}


@pytest.mark.parametrize("n, starts", [(4, [0, 3, 6, 9]), (2, [0, 9]), (10, list(range(10)))])
def test_several_starts_score_the_worst_run(n, starts):
    module, val = _module(seed=5, scale=0.3), _val()
    d, h = _by_hand(module, val, starts)
    assert np.isfinite(d + h).all() and max(h) > min(h)  # the starts matter, so the max is a real choice
    assert n != 4 or max(d) > min(d)
    got = _evaluate(module, val, free_run_starts=n)
    np.testing.assert_allclose([got["d_stsp"], got["d_h"]], [max(d), max(h)], rtol=1e-12)


def test_median_of_several_starts():
    module, val = _module(seed=5, scale=0.3), _val()
    d, h = _by_hand(module, val, [0, 3, 6, 9])
    got = _evaluate(module, val, free_run_starts=4, free_run_combine="median")
    np.testing.assert_allclose([got["d_stsp"], got["d_h"]], [np.median(d), np.median(h)], rtol=1e-12)
    assert got["d_h"] < max(h)


def _one_relu_start(self_weight, out_weight):
    """A model whose ReLU unit is active only from trial 3's start; there it is scaled by
    0.5 + ``self_weight`` a step and drives the first channel with ``out_weight``."""
    module, val = _module(M=4, P=1), _val(n_trials=4)
    with torch.no_grad():
        module.model.A.fill_(0.5)
        module.model.W.zero_()
        module.model.W[3, 3], module.model.W[0, 3] = self_weight, out_weight
        module.model.h.zero_()
        module.observation.L.zero_()
        module.observation.L[1, 0] = 1.0
        val["x"][:, 0, 0] = torch.tensor([-1.0, -1.0, -1.0, 1.0])
    return module.eval(), val


def _diverging():
    """A model whose run diverges from trial 3 only (its ReLU unit starts positive and grows 2.5-fold a step)."""
    return _one_relu_start(2.0, 1.0)


def test_any_diverged_start_scores_inf():
    module, val = _diverging()
    one = make_evaluate(("d_stsp", "d_h"), free_run_steps=1000)(module, val)
    assert np.isfinite(list(one.values())).all()
    worst = make_evaluate(("d_stsp", "d_h"), free_run_steps=1000, free_run_starts=2)(module, val)
    assert worst == {"d_stsp": float("inf"), "d_h": float("inf")}
    # the median counts the diverged run as inf: the mean of the 2nd and 3rd of (d0, d1, d2, inf)
    median = make_evaluate(("d_stsp",), free_run_steps=1000, free_run_starts=4, free_run_combine="median")
    d, _ = _by_hand(module, val, [0, 1, 2], steps=1000, transient=0)
    assert median(module, val)["d_stsp"] == pytest.approx(np.median(d + [np.inf]), rel=1e-12)


def test_a_run_outside_the_data_scores_inf():
    # the ReLU unit keeps its start value while positive and drives the first channel to 200 times it:
    # the last trial's run leaves the data's range
    module, val = _one_relu_start(0.5, 100.0)
    one = make_evaluate(("d_stsp",), free_run_steps=500)(module, val)["d_stsp"]
    assert np.isfinite(one)  # the first start's run decays into the data
    assert make_evaluate(("d_stsp",), free_run_steps=500, free_run_starts=2)(module, val)["d_stsp"] == float("inf")


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("2", TypeError)])
def test_bad_free_run_starts(bad, error):
    with pytest.raises(error, match="free_run_starts"):
        make_evaluate(free_run_steps=100, free_run_starts=bad)


def test_bad_free_run_combine():
    with pytest.raises(ValueError, match="free_run_combine: expected 'worst' or 'median', got 'mean'"):
        make_evaluate(free_run_steps=100, free_run_starts=4, free_run_combine="mean")


def test_free_run_starts_needs_the_trials_and_free_run_steps():
    with pytest.raises(ValueError, match="free_run_starts: 2 starts need free_run_steps"):
        make_evaluate(free_run_starts=2)
    with pytest.raises(ValueError, match="free_run_starts: 11 free-run starts need as many validation trials"):
        _evaluate(_module(), _val(), free_run_starts=11)


def _sines():
    t = np.arange(60) * 0.3
    return np.stack([np.stack([np.sin(t + p), np.cos(t + p)], 1) for p in np.linspace(0, 3, 20)])


def test_fits_select_on_several_starts():
    x = _sines()  # val=0.2: 4 validation trials
    kw = dict(tau=5, n_steps=40, eval_every=20, metrics=("d_stsp",), select_metric="d_stsp", free_run_steps=60,
              free_run_starts=3, free_run_combine="median")
    fits = fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [0, 2], seeds=[0, 1]), x, seeds=[0, 1], **kw)
    single = fit_teacher_forcing(ALRNN(6, 2, seed=0), x, seed=0, **kw)
    for fitted in (*fits, single):
        history = fitted.train_result_.history["d_stsp"]
        assert len(history) == 2 and np.isfinite(history).all()
    # checked before training: too many starts for the 4 validation trials, or none
    with pytest.raises(ValueError, match="free_run_starts: 5 free-run starts need as many validation trials"):
        fit_teacher_forcing_ensemble(ALRNNEnsemble(6, [0, 2], seeds=[0, 1]), x, seeds=[0, 1],
                                     **{**kw, "free_run_starts": 5})
    with pytest.raises(ValueError, match="free_run_starts: expected an integer >= 1"):
        fit_teacher_forcing(ALRNN(6, 2, seed=0), x, **{**kw, "free_run_starts": 0})
