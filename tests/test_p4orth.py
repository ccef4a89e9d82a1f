"""P4OrthLinear: exact orthogonality through merges, inverse, gradients against the dense Cayley map."""

import pytest
import torch

from sdl.models import P4InvScheduler, P4OrthLinear


def _dense(layer: P4OrthLinear, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Q (I - K/2)⁻¹ (I + K/2), K = U Vᵀ - V Uᵀ, by a dense solve (the reference)."""
    skew = u @ v.T - v @ u.T
    eye = torch.eye(layer.dim, dtype=u.dtype)
    return layer.weight.to(u.dtype) @ torch.linalg.solve(eye - skew / 2, eye + skew / 2)


@pytest.mark.parametrize("rank", [1, 3])
def test_forward_inverse_and_gradients_match_the_dense_cayley_map(rank):
    layer = P4OrthLinear(8, rank=rank, init="reverse", dtype=torch.float64)
    with torch.no_grad():
        layer.u.normal_()
        layer.bias.normal_()
    x = torch.randn(6, 8, dtype=torch.float64)
    y, logdet = layer(x)
    dense = _dense(layer, layer.u, layer.v)
    assert torch.allclose(y, x @ dense.T + layer.bias, atol=1e-13) and torch.equal(logdet, torch.zeros(6, dtype=torch.float64))
    assert torch.allclose(layer.effective_matrix(), dense.detach(), atol=1e-13)
    assert torch.allclose(layer.inverse(y)[0], x, atol=1e-13)
    weights = torch.randn(6, 8, dtype=torch.float64)
    grads = torch.autograd.grad((layer(x)[0] * weights).sum(), (layer.u, layer.v, layer.bias))
    u, v = layer.u.detach().clone().requires_grad_(True), layer.v.detach().clone().requires_grad_(True)
    reference = torch.autograd.grad(((x @ _dense(layer, u, v).T) * weights).sum(), (u, v))
    for got, want in zip(grads, (*reference, weights.sum(0)), strict=True):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-10)
    inverse_grads = torch.autograd.grad((layer.inverse(y.detach())[0] * weights).sum(), (layer.u, layer.v))

    def dense_inverse(u, v):
        return (y.detach() - layer.bias.detach()) @ _dense(layer, u, v)

    reference = torch.autograd.grad((dense_inverse(u, v) * weights).sum(), (u, v))
    for got, want in zip(inverse_grads, reference, strict=True):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-10)


def test_orthogonal_to_1e_12_after_ten_thousand_steps_with_merges():
    torch.manual_seed(1)
    layer = P4OrthLinear(6, rank=2, dtype=torch.float64)
    # 10⁴ perturbations of the size Adam steps reach, each merged at once: every merge rotates Q
    for _ in range(10_000):
        with torch.no_grad():
            layer.u.normal_(std=0.3)
        layer.merge()
    assert layer.num_merges == 10_000 and layer.orthogonality_error() <= 1e-12
    # and real training steps with the scheduler's merges: Q C learns a rotation
    upper = 0.8 * torch.randn(6, 6, dtype=torch.float64).triu(1)
    target = torch.linalg.matrix_exp(upper - upper.T)  # a rotation (det +1): reachable from the identity
    layer = P4OrthLinear(6, rank=2, dtype=torch.float64)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.02)
    scheduler = P4InvScheduler(layer, optimizer, merge_every=10, refine_every=None)
    x = torch.randn(32, 6, dtype=torch.float64)

    def loss():
        return (layer(x)[0] - x @ target.T).square().mean()

    start = loss().item()
    for _ in range(600):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
        scheduler.step()
    assert layer.num_merges == 60 and loss().item() < 1e-2 * start
    assert layer.orthogonality_error() <= 1e-12
    assert optimizer.state.get(layer.v) is None  # the redrawn factor's Adam state was cleared at the merge


def test_refine_squares_the_orthogonality_error_and_casts_keep_the_state_dtype():
    layer = P4OrthLinear(5, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.add_(1e-5 * torch.randn(5, 5, dtype=torch.float64))
    before = layer.orthogonality_error()
    assert layer.refine() and layer.orthogonality_error() < 10 * before**2
    layer.float()
    assert layer.weight.dtype == torch.float64 and layer.u.dtype == torch.float32
    x = torch.randn(3, 5)
    assert torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="rank must be an int in"):
        P4OrthLinear(4, rank=3)
    with pytest.raises(ValueError, match="unknown init 'random'"):
        P4OrthLinear(4, init="random")
    with pytest.raises(ValueError, match="not orthogonal"):
        P4OrthLinear(2, init=torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="last dimension 4"):
        P4OrthLinear(4)(torch.randn(2, 3))
