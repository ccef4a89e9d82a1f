"""SympNets: exact symplecticity, exact inverses, the step h as input, and learning a rotation;
the MLP one-step map is the control that is not symplectic."""

import math

import pytest
import torch

from sdl.models import (
    ActivationShear,
    GradientShear,
    GSympNet,
    LASympNet,
    LinearShear,
    LinearSymplectic,
    MLPMap,
    SymplecticMap,
)
from sdl.stability import symplecticity_defect

F64 = torch.float64

# Random parameters of O(1), so every map is far from the identity and nonlinear (both checked
# below), as (constructor, std of the weights and biases, std of the activation scales a). The
# LA-SympNet's linear blocks multiply up, so their S stay smaller and its activation scales a larger.
# Over seeds 0–9 (n = 1, 2; h = 1, 0.37, -0.6) the largest |DΦ| entry was 91, the largest
# symplecticity defect 6e-14 and the largest inverse error 3e-14, against the 1e-12 asserted.
NETWORKS = {
    "LA-sigmoid": (lambda n: LASympNet(n, layers=3, sublayers=2), 0.4, 4.0),
    "LA-tanh": (lambda n: LASympNet(n, layers=4, sublayers=2, activation="tanh"), 0.3, 2.0),
    "G-sigmoid": (lambda n: GSympNet(n, layers=4, width=8), 1.2, 1.2),
    "G-tanh": (lambda n: GSympNet(n, layers=3, width=6, activation="tanh"), 0.7, 0.7),
}
SHEARS = {
    "linear": lambda n, mode: LinearShear(n, mode),
    "activation": lambda n, mode: ActivationShear(n, mode, "tanh"),
    "gradient": lambda n, mode: GradientShear(n, 5, mode),
}


def _randomised(module, scale=1.0, scale_of_a=None):
    """The module in float64 with every parameter redrawn from N(0, scale²), the activation scales a
    (parameters named ``scale``) from N(0, scale_of_a²) when given."""
    module = module.double()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            is_a = name.rsplit(".", 1)[-1] == "scale" and scale_of_a is not None
            parameter.normal_(0.0, scale_of_a if is_a else scale)
    return module


def _network(name, n):
    make, scale, scale_of_a = NETWORKS[name]
    return _randomised(make(n), scale, scale_of_a)


def _jacobians(step_map, x):
    """DΦ at each row of x (N, d): (N, d, d)."""
    return torch.func.vmap(torch.func.jacrev(step_map))(x)


def _defect(step_map, x, n):
    """max |DΦᵀ Ω DΦ - Ω| over the rows of x (N, 2n), for Φ acting on (..., 2n)."""
    return symplecticity_defect(lambda q, p: step_map(torch.cat([q, p], -1)).split(n, -1), x[:, :n], x[:, n:])


def _rotation(x, h):
    """Exact flow of H = (q² + p²)/2 over time h: q' = q cos h + p sin h, p' = -q sin h + p cos h."""
    q, p = x[..., :1], x[..., 1:]
    return torch.cat([q * math.cos(h) + p * math.sin(h), -q * math.sin(h) + p * math.cos(h)], -1)


# ------------------------------------------------------------------------------- structure
@pytest.mark.parametrize("h", [None, 0.37, "per sample"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_sympnet_is_symplectic_for_random_parameters(name, n, h):
    """DΦᵀ Ω DΦ = Ω to 1e-12 at 64 points, for a map that is far from the identity."""
    net = _network(name, n)
    x = torch.randn(64, 2 * n, dtype=F64)
    if h == "per sample":
        h = 0.2 + torch.rand(64, 1, dtype=F64)
    assert _defect(lambda z: net(z, h=h), x, n) <= 1e-12
    if not isinstance(h, torch.Tensor):  # the map is neither near the identity nor linear: the check has teeth
        jac = _jacobians(lambda z: net(z, h=h), x)
        assert (jac - torch.eye(2 * n, dtype=F64)).abs().max() > 0.1
        assert (jac - jac.mean(0)).abs().max() > 0.02


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("kind", list(SHEARS))
@pytest.mark.parametrize("mode", ["up", "low"])
def test_every_shear_and_linear_block_is_symplectic(kind, mode, n):
    x = torch.randn(32, 2 * n, dtype=F64)
    shear = _randomised(SHEARS[kind](n, mode))
    assert _defect(lambda z: shear(z, h=0.7), x, n) <= 1e-13
    block = _randomised(LinearSymplectic(n, sublayers=3))
    assert _defect(lambda z: block(z, h=0.7), x, n) <= 1e-13


@pytest.mark.parametrize("n", [1, 2])
def test_mlp_map_is_not_symplectic(n):
    """The control: the same check fails for the unstructured residual map."""
    mlp = _randomised(MLPMap(2 * n, hidden=16), 0.5)
    x = torch.randn(64, 2 * n, dtype=F64)
    assert _defect(lambda z: mlp(z, h=0.37), x, n) > 1e-3
    assert not hasattr(mlp, "inverse")


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_volume_is_preserved(name, n):
    """det DΦ = 1 to 1e-12, a consequence of symplecticity; not so for the MLP map."""
    net = _network(name, n)
    x = torch.randn(64, 2 * n, dtype=F64)
    det = torch.linalg.det(_jacobians(lambda z: net(z, h=0.8), x))
    assert (det - 1).abs().max() <= 1e-12
    mlp = _randomised(MLPMap(2 * n, hidden=16), 0.5)
    assert (torch.linalg.det(_jacobians(lambda z: mlp(z, h=0.8), x)) - 1).abs().max() > 1e-3


# -------------------------------------------------------------------------------- inverses
@pytest.mark.parametrize("h", [None, 0.37, -0.6, "per sample"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_inverse_is_exact_float64(name, n, h):
    net = _network(name, n)
    x = torch.randn(5, 64, 2 * n, dtype=F64)
    if h == "per sample":
        h = 0.2 + torch.rand(5, 64, 1, dtype=F64)
    y = net(x, h=h)
    assert (y - x).abs().max() > 0.5
    torch.testing.assert_close(net.inverse(y, h=h), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(net(net.inverse(x, h=h), h=h), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_float32_round_trip_follows_dtype_and_device(name, device):
    net = _network(name, 2).float().to(device)
    x = torch.randn(256, 4, device=device)
    y = net(x, h=0.5)
    assert y.dtype == torch.float32 and y.device.type == device
    assert (net.inverse(y, h=0.5) - x).abs().max() <= 1e-4
    assert (net(x, h=torch.full((256, 1), 0.5, device=device)) - y).abs().max() == 0


# ------------------------------------------------------------------------------ the step h
@pytest.mark.parametrize("kind", list(SHEARS))
@pytest.mark.parametrize("mode", ["up", "low"])
def test_a_shear_is_an_exact_flow_in_h(kind, mode):
    """Two half-steps make one full step, -h undoes h, and h = 0 is the identity: the increment is
    linear in h and depends only on the half that stays fixed."""
    shear = _randomised(SHEARS[kind](2, mode))
    x = torch.randn(64, 4, dtype=F64)
    torch.testing.assert_close(shear(shear(x, h=0.35), h=0.35), shear(x, h=0.7), rtol=0, atol=1e-14)
    torch.testing.assert_close(shear.inverse(x, h=0.7), shear(x, h=-0.7), rtol=0, atol=0)
    assert torch.equal(shear(x, h=0.0), x)
    assert (shear(x, h=0.7) - x).abs().max() > 0.1


def test_a_composition_is_not_a_flow_in_h():
    """The control for the half-step check: a linear block of alternating shears is no flow."""
    block = _randomised(LinearSymplectic(2, sublayers=2))
    x = torch.randn(64, 4, dtype=F64)
    assert (block(block(x, h=0.35), h=0.35) - block(x, h=0.7)).abs().max() > 1e-2


@pytest.mark.parametrize("name", list(NETWORKS))
def test_step_zero_is_the_identity_and_step_defaults_to_the_module_step(name):
    x = torch.randn(64, 4, dtype=F64)
    net = _network(name, 2)
    assert torch.equal(net(x, h=0.0), x) and torch.equal(net.inverse(x, h=0.0), x)
    assert torch.equal(net(x), net(x, h=1.0))
    net.step = 0.3  # the default h, read at each call
    assert torch.equal(net(x), net(x, h=0.3)) and torch.equal(net.inverse(x), net.inverse(x, h=0.3))


def test_per_sample_steps_act_row_by_row():
    net = _network("G-sigmoid", 2)
    x = torch.randn(6, 4, dtype=F64)
    h = torch.linspace(-1, 1, 6, dtype=F64)[:, None]
    rows = torch.stack([net(x[i], h=float(h[i])) for i in range(6)])
    torch.testing.assert_close(net(x, h=h), rows, rtol=0, atol=1e-13)


def test_untrained_networks_are_close_to_the_identity():
    """Initialisation as in the paper's code (0.01·N(0, 1) weights, zero biases); measured over seeds
    0–4 on [-1, 1]⁴: at most 0.11 (LA, six linear shears acting on all of x) and 8e-4 (G)."""
    x = 2 * torch.rand(256, 4, dtype=F64) - 1
    assert (LASympNet(2, layers=3, sublayers=2).double()(x) - x).abs().max() < 0.25
    assert (GSympNet(2, layers=4, width=20).double()(x) - x).abs().max() < 2e-3


def test_up_and_low_alternate_as_in_the_paper():
    """G: up, low, up, …; LA: activation shears up, low, …; each linear block's shears up, low, …"""
    g = GSympNet(1, layers=4, width=3)
    assert [shear.mode for shear in g.maps] == ["up", "low", "up", "low"]
    la = LASympNet(1, layers=4, sublayers=3)
    kinds = [type(part).__name__ for part in la.maps]
    assert kinds == ["LinearSymplectic", "ActivationShear"] * 3 + ["LinearSymplectic"]
    assert [part.mode for part in la.maps[1::2]] == ["up", "low", "up"]
    assert all([shear.mode for shear in block.shears] == ["up", "low", "up"] for block in la.maps[::2])
    x = torch.tensor([[1.0, 2.0]])
    up, low = ActivationShear(1, "up", "identity"), ActivationShear(1, "low", "identity")
    assert torch.equal(up(x)[:, :1], x[:, :1]) and torch.equal(low(x)[:, 1:], x[:, 1:])  # up moves p, low moves q


def test_parameter_counts():
    n, layers, sublayers, width = 2, 3, 4, 7
    la = LASympNet(n, layers=layers, sublayers=sublayers)
    g = GSympNet(n, layers=layers, width=width)
    assert la.n == g.n == n and la.dim == g.dim == 2 * n and isinstance(la, SymplecticMap)
    assert sum(p.numel() for p in la.parameters()) == layers * (sublayers * n * n + 2 * n) + (layers - 1) * n
    assert sum(p.numel() for p in g.parameters()) == layers * (width * n + 2 * width)


# ------------------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    "make",
    [
        lambda: LASympNet(2, layers=2, sublayers=2),
        lambda: GSympNet(2, layers=2, width=4),
        lambda: MLPMap(4, hidden=8),
    ],
    ids=["LA", "G", "MLP"],
)
def test_gradients_reach_every_parameter(make):
    net = make().double()
    x = torch.randn(16, 4, dtype=F64)
    net(x, h=torch.rand(16, 1, dtype=F64)).square().sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name


def test_gsympnet_learns_the_harmonic_oscillator_and_keeps_its_energy_bounded():
    """300 Adam steps on pairs (x, Φ_h(x)) of the exact flow of H = (q² + p²)/2 at h = 0.1 take the
    one-step MSE from 3e-3 to ≈ 3e-6 (measured over seeds 0–2: 2e-6 to 6e-6). Rolled out for 1000
    steps, the SympNet's energy error stays as small as over the first 100 steps (a symplectic map
    near a rotation keeps a nearby energy), while the MLP map, trained alike to a similar one-step
    error, drifts (measured ratio 8–11 over seeds 0–5)."""
    h = 0.1
    x = 2 * torch.rand(256, 2, dtype=F64) - 1
    target = _rotation(x, h)
    x_test = 2 * torch.rand(1000, 2, dtype=F64) - 1
    energy_errors = {}
    for net in (GSympNet(1, layers=4, width=16, step=h).double(), MLPMap(2, hidden=16, step=h).double()):
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(300):
            optimizer.zero_grad()
            loss = (net(x) - target).square().mean()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            assert (net(x_test) - _rotation(x_test, h)).square().mean() < 2e-5
            z = torch.tensor([[0.5, 0.0], [0.0, -0.8]], dtype=F64)
            energy = 0.5 * z.square().sum(-1)
            errors = []
            for _ in range(1000):
                z = net(z)
                errors.append((0.5 * z.square().sum(-1) - energy).abs().max())
            energy_errors[type(net).__name__] = torch.stack(errors)
    sympnet, mlp = energy_errors["GSympNet"], energy_errors["MLPMap"]
    assert sympnet[-100:].max() <= 1.5 * sympnet[:100].max()
    assert mlp[-100:].max() >= 3 * mlp[:100].max()


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs_give_clear_errors():
    net = GSympNet(2, layers=2, width=4)
    with pytest.raises(ValueError, match=r"last dimension 4, got shape \(5, 3\)"):
        net(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"last dimension 4, got shape \(5, 3\)"):
        net.inverse(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"last dimension 3, got shape \(5, 4\)"):
        MLPMap(3)(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"batch shape \(..., 1\) = \(5, 1\), got a tensor of shape \(5,\)"):
        net(torch.zeros(5, 4), h=torch.ones(5))
    with pytest.raises(TypeError, match="h must be a float, a tensor or None"):
        net(torch.zeros(5, 4), h="0.1")
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; valid names: tanh, .*sigmoid"):
        GSympNet(1, activation="gelu")
    with pytest.raises(ValueError, match=r"unknown activation 'relu6'; valid names: .*sigmoid"):
        LASympNet(1, activation="relu6")
    with pytest.raises(ValueError, match=r"unknown mode 'middle'; valid modes: 'up', 'low'"):
        LinearShear(1, mode="middle")
    with pytest.raises(ValueError, match="layers must be a positive int, got 0"):
        LASympNet(1, layers=0)
    with pytest.raises(ValueError, match=r"n must be a positive int, got 1.5"):
        GSympNet(1.5)
    with pytest.raises(ValueError, match="step must be a finite real number, got nan"):
        GSympNet(1, step=float("nan"))
