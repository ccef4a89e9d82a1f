import math

import pytest
import torch
from torch import nn

from sdl.models.flows import (
    AffineCoupling,
    BentIdentity,
    FlowSequence,
    NormalizingFlow,
    Permutation,
    alternating_flow,
    realnvp,
)
from sdl.models.p4inv import P4InvLinear, P4InvScheduler


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters everywhere (zero-initialised layers would make tests vacuous)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        for layer in module.modules():
            if isinstance(layer, P4InvLinear):
                layer.u.mul_(0.5)
    return module


def _flows(dim):
    return {
        "realnvp-permutation": realnvp(dim, 3, 16, "permutation"),
        "realnvp-p4inv": realnvp(dim, 3, 16, "p4inv"),
        "realnvp-callable": realnvp(dim, 3, 16, lambda d: P4InvLinear(d, init="identity")),
        "alternating": alternating_flow(dim, 3),
    }


@pytest.mark.parametrize("bend", [0.5, -0.9, 0.99])
def test_bent_identity_inverse_and_log_derivative(bend):
    act = BentIdentity(bend)
    x = torch.linspace(-50, 50, 2001, dtype=torch.float64, requires_grad=True)
    y, logdet = act(x[:, None])
    (derivative,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(logdet, torch.log(derivative), rtol=0, atol=1e-13)
    x_back, logdet_inverse = act.inverse(y.detach())
    torch.testing.assert_close(x_back[:, 0], x.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(logdet_inverse, -logdet.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["realnvp-permutation", "realnvp-p4inv", "realnvp-callable", "alternating"])
def test_flow_logdet_equals_log_abs_det_of_the_jacobian_and_inverse_roundtrips(name):
    dim = 4
    flow = _randomize(_flows(dim)[name].double())
    x = torch.randn(6, dim, dtype=torch.float64)
    z, logdet = flow.transform(x)
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda row: flow.transform(row)[0], x[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jacobian)[1], rtol=0, atol=1e-11)
    x_back, logdet_inverse = flow.transform.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-11)
    torch.testing.assert_close(logdet_inverse, -logdet, rtol=0, atol=1e-11)
    flow.eval()  # merges the P4Inv perturbations: the density must not change
    torch.testing.assert_close(flow.transform(x)[1], logdet, rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", ["realnvp-p4inv", "alternating"])
def test_density_integrates_to_one_in_2d(name):
    flow = _randomize(_flows(2)[name].double(), seed=1)
    grid = torch.linspace(-60, 60, 801, dtype=torch.float64)  # the random flows have wide tails
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        density = flow.log_prob(torch.stack([xx, yy], -1)).exp()
    cell = (grid[1] - grid[0]) ** 2
    assert density.sum().item() * cell.item() == pytest.approx(1.0, abs=1e-3)


def test_log_prob_of_identity_flow_is_standard_normal_and_sample_follows_the_flow():
    flow = realnvp(3, 2, 8, "permutation")  # couplings start at the identity
    x = torch.randn(5, 3)
    expected = -0.5 * x.square().sum(-1) - 1.5 * math.log(2 * math.pi)
    torch.testing.assert_close(flow.log_prob(x), expected)
    samples = _randomize(flow).sample(7, generator=torch.Generator().manual_seed(0))
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (7, 3) and samples.dtype == torch.float32
    torch.testing.assert_close(samples, flow.transform.inverse(z)[0])


def test_training_a_p4inv_realnvp_with_the_scheduler_lowers_nll_and_keeps_exact_state():
    torch.manual_seed(0)
    target_mix = torch.tensor([[1.0, 0.9], [0.9, 1.0]])  # correlated Gaussian
    data = torch.randn(2048, 2) @ target_mix.T
    flow = realnvp(2, 2, 16, "p4inv")
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
    scheduler = P4InvScheduler(flow, optimizer, merge_every=10, refine_every=5)
    initial = -flow.log_prob(data).mean().item()
    for _ in range(300):
        loss = -flow.log_prob(data[torch.randint(len(data), (128,))]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    flow.eval()
    final = -flow.log_prob(data).mean().item()
    exact = 1.0 + math.log(2 * math.pi) + torch.linalg.slogdet(target_mix)[1].item()  # Gaussian entropy
    assert final < initial - 0.3 and final < exact + 0.15
    (layer,) = scheduler.layers
    torch.testing.assert_close(layer.weight @ layer.weight_inverse, torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("layer", [Permutation(3), AffineCoupling(3, hidden_features=4)], ids=["permutation", "coupling"])
@pytest.mark.parametrize("method", ["forward", "inverse"])
def test_wrong_feature_count_raises_naming_the_expected_dimension(layer, method):
    with pytest.raises(ValueError, match=r"expected inputs with last dimension 3, got shape \(2, 4\)"):
        getattr(layer, method)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"expected inputs with last dimension 3, got shape \(\)"):
        getattr(layer, method)(torch.zeros(()))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="'permutation', 'p4inv'"):
        realnvp(2, mixing="lu")
    with pytest.raises(ValueError, match="bend"):
        BentIdentity(1.0)
    with pytest.raises(ValueError, match="permutation of range"):
        Permutation(3, [0, 0, 1])
    with pytest.raises(ValueError, match="dim >= 2"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match="num_couplings"):
        realnvp(2, 0)
    with pytest.raises(ValueError, match="num_blocks"):
        alternating_flow(2, 0)


def test_an_empty_flow_sequence_is_the_identity_with_zero_log_determinant():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for method in ("forward", "inverse"):
        y, logdet = getattr(FlowSequence([]), method)(x)
        assert torch.equal(y, x)
        assert torch.equal(logdet, torch.zeros(2, 5, dtype=torch.float64))


def test_alternating_flow_alternates_p4inv_and_bent_identity():
    flow = alternating_flow(3, num_blocks=2, bend=-0.3)
    assert isinstance(flow, NormalizingFlow) and flow.dim == 3
    kinds = [type(layer).__name__ for layer in flow.transform.layers]
    assert kinds == ["P4InvLinear", "BentIdentity", "P4InvLinear", "BentIdentity", "P4InvLinear"]
    assert [layer.bend for layer in flow.transform.layers[1::2]] == [-0.3, -0.3]


def _layers():
    return {
        "permutation": Permutation(4, [2, 0, 3, 1]),
        "coupling": AffineCoupling(4, hidden_features=8),
        "bent-identity": BentIdentity(0.7),
        "p4inv": P4InvLinear(4, init="reverse"),
    }


@pytest.mark.parametrize("name", ["permutation", "coupling", "bent-identity", "p4inv"])
def test_each_layer_logdet_is_the_log_abs_det_of_its_jacobian_and_its_inverse_roundtrips(name):
    layer = _randomize(_layers()[name].double(), seed=2)
    x = 1.5 * torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y, logdet = layer(x)
    assert not torch.allclose(y, x)  # a non-trivial layer, so the checks below can fail
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda row: layer(row)[0], x[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jacobian)[1], rtol=0, atol=1e-12)
    x_back, logdet_inverse = layer.inverse(y)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(logdet_inverse, -logdet, rtol=0, atol=1e-12)


def test_permutation_moves_feature_i_to_the_given_place():
    x = torch.tensor([[10.0, 11.0, 12.0, 13.0]])
    y, logdet = Permutation(4, [2, 0, 3, 1])(x)
    assert y.tolist() == [[12.0, 10.0, 13.0, 11.0]] and logdet.tolist() == [0.0]
    assert Permutation(3)(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist() == [[3.0, 2.0, 1.0]]  # default: the reversal
