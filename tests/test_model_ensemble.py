"""ALRNNEnsemble: K models stacked on a model dim equal the single models they stack."""

import numpy as np
import pytest
import torch

from neuroalrnn.model import ALRNN, ALRNNEnsemble

P_VALUES, SEEDS = [0, 2, 6], [3, 4, 5]


@pytest.fixture()
def ens():
    return ALRNNEnsemble(6, P_VALUES, n_inputs=3, n_outputs=2, seeds=SEEDS, dtype=torch.float64)


def test_members_start_as_the_seeded_single_models(ens):
    inits = ["reference", "identity", "normal"]
    mixed = ALRNNEnsemble(6, P_VALUES, 3, 2, init=inits, seeds=SEEDS)
    for k, (p, s) in enumerate(zip(P_VALUES, SEEDS)):
        for model, init in ((ens, "reference"), (mixed, inits[k])):
            single = ALRNN(6, p, 3, 2, init=init, seed=s, dtype=model.A.dtype)
            member = model.member(k)
            assert member.n_relu == p and member.hyper_params() == single.hyper_params()
            for name in "AWhCBb":
                assert torch.equal(getattr(member, name), getattr(single, name)), name
    assert ens.relu_mask.sum(1).tolist() == [float(p) for p in P_VALUES]


def test_forward_and_gradients_equal_each_member(ens):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 7, 3, generator=g, dtype=torch.float64)
    z0 = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    force = torch.randn(3, 4, 7, 2, generator=g, dtype=torch.float64)
    alpha = (torch.arange(7) % 3 == 0).to(torch.float64)
    states, outputs = ens(x, z0, force=force, alpha=alpha)
    (states.sum() + outputs.square().sum()).backward()
    for k in range(3):
        member = ens.member(k)
        member.requires_grad_(True)
        s, y = member(x[k], z0[k], force=force[k], alpha=alpha)
        torch.testing.assert_close(s, states[k].detach())
        torch.testing.assert_close(y, outputs[k].detach())
        (s.sum() + y.square().sum()).backward()
        for name in "AWhCBb":
            torch.testing.assert_close(getattr(member, name).grad, getattr(ens, name).grad[k])
    runs = ens.simulate(z0, inputs=x)
    torch.testing.assert_close(runs[1], ens.member(1).simulate(z0[1], inputs=x[1]))


def test_from_models_round_trip_and_mismatches():
    models = [ALRNN(5, p, 2, 1, seed=s) for p, s in ((0, 0), (5, 1))]
    ens = ALRNNEnsemble.from_models(models)
    assert ens.n_models == 2 and ens.n_relu == (0, 5)
    for model, member in zip(models, ens.members()):
        assert all(torch.equal(getattr(model, n), getattr(member, n)) for n in "AWhCBb")
    with torch.no_grad():  # copied, not shared
        ens.W.zero_()
    assert models[0].W.abs().sum() > 0
    with pytest.raises(ValueError, match=r"models\[1\]: n_inputs"):
        ALRNNEnsemble.from_models([ALRNN(5, 1, 2, 1), ALRNN(5, 1, 3, 1)])
    with pytest.raises(TypeError, match="models"):
        ALRNNEnsemble.from_models([])


def test_bad_input_is_named(ens):
    with pytest.raises(TypeError, match="n_relu"):
        ALRNNEnsemble(4, 2)
    with pytest.raises(ValueError, match="seeds"):
        ALRNNEnsemble(4, [1, 2], seeds=[0])
    with pytest.raises(ValueError, match="n_relu"):
        ALRNNEnsemble(4, [1, 5])
    with pytest.raises(ValueError, match="inputs"):
        ens(torch.zeros(2, 4, 7, 3))
    with pytest.raises(ValueError, match="z0"):
        ens(torch.zeros(3, 4, 7, 3), torch.zeros(3, 5, 6))
    assert ens.member(-1).n_relu == P_VALUES[-1]
    with pytest.raises(ValueError, match="k"):
        ens.member(3)
    assert np.isfinite(ens.simulate(torch.zeros(3, 1, 6), n_steps=3).numpy()).all()


@pytest.mark.parametrize("n_in, n_out", [(5, 16), (16, 1), (20, 3), (4, 4)])
def test_stacked_linear_equals_bmm_forward_and_backward(n_in, n_out):
    """Each operand order the backward picks gives bmm's values and gradients (float64)."""
    from neuroalrnn.model._stacked_linear import stacked_linear

    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
               for shape in ((3, 50, n_in), (3, n_out, n_in), (3, n_out)))
    g = torch.randn(3, 50, n_out, generator=gen, dtype=torch.float64)
    y = stacked_linear(x, w, b)
    assert y.is_contiguous()
    grads = torch.autograd.grad(y, (x, w, b), g)
    ref = torch.bmm(x, w.transpose(1, 2)) + b[:, None, :]
    ref_grads = torch.autograd.grad(ref, (x, w, b), g)
    torch.testing.assert_close(y, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(stacked_linear, (x[:, :4], w, b))
