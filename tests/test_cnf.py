"""CNF: the change of variables (sign, normalisation), exact vs estimated divergence, gradients."""

import math

import pytest
import torch
from torch import nn

from sdl.integrators import TABLEAUS, ImplicitRungeKutta, NewtonSolver
from sdl.models.cnf import CNF, BruteForceDivergence, ExactDivergence, HutchinsonDivergence
from sdl.models.hollow import HollowNet

F64 = torch.float64


class _Linear(nn.Module):
    """f(t, x) = A x, not DimwiseDifferentiable; div f = tr A everywhere."""

    def __init__(self, matrix):
        super().__init__()
        self.matrix = nn.Parameter(matrix)

    def forward(self, t, x):
        return x @ self.matrix.T


def _hollow_cnf(dim=2, **kwargs):
    torch.manual_seed(3)
    return CNF(HollowNet(dim, hidden=16, transformer_hidden=16, time_dependent=True), dim, **kwargs).to(F64)


def test_log_prob_of_a_linear_flow_is_the_change_of_variables():
    matrix = torch.tensor([[0.3, -0.5], [0.8, -0.1]], dtype=F64)
    cnf = CNF(_Linear(matrix), 2, divergence=BruteForceDivergence(), t1=0.7, num_steps=40)
    x = torch.randn(5, 2, dtype=F64)
    z = x @ torch.linalg.matrix_exp(0.7 * matrix).T
    # p(x) = N(z) |det e^{t1 A}| = N(z) e^{t1 tr A}
    expected = -0.5 * z.pow(2).sum(-1) - math.log(2 * math.pi) + 0.7 * torch.trace(matrix)
    assert torch.allclose(cnf.log_prob(x), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", ["euler", "heun", "rk4", "implicit_midpoint"])
def test_exact_divergence_equals_brute_force(method):
    cnf = _hollow_cnf(4, num_steps=2, method=method)
    x = torch.randn(3, 4, dtype=F64)
    exact = cnf.log_prob(x)
    brute_force = cnf.log_prob(x, divergence=BruteForceDivergence())
    assert torch.allclose(exact, brute_force, rtol=0, atol=1e-10)


def test_density_integrates_to_one():
    cnf = _hollow_cnf(2, num_steps=4)
    grid = torch.linspace(-6.0, 6.0, 101, dtype=F64)
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = cnf.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1.0) < 5e-3


def test_samples_and_their_log_prob_invert_the_flow():
    cnf = _hollow_cnf(3, num_steps=12)
    with torch.no_grad():
        x, log_p = cnf.sample(7)
        assert x.shape == (7, 3) and log_p.shape == (7,)
        assert torch.allclose(cnf.log_prob(x), log_p, rtol=0, atol=1e-8)


def test_training_gradients_of_exact_and_brute_force_log_prob_agree():
    cnf = _hollow_cnf(3, num_steps=2)
    x = torch.randn(4, 3, dtype=F64)
    grads = [
        torch.autograd.grad(-cnf.log_prob(x, divergence=estimator).mean(), list(cnf.parameters()))
        for estimator in (ExactDivergence(), BruteForceDivergence())
    ]
    for g_exact, g_brute in zip(*grads, strict=True):
        assert torch.allclose(g_exact, g_brute, rtol=1e-10, atol=1e-13)
    assert any(g.abs().max() > 1e-4 for g in grads[0])


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_one_probe_held_for_the_whole_solve(distribution):
    matrix = torch.tensor([[0.4, 1.0, -0.3], [0.2, -0.6, 0.5], [0.7, 0.1, 0.2]], dtype=F64)
    t1, n = 0.5, 20000
    cnf = CNF(_Linear(matrix), 3, divergence=HutchinsonDivergence(distribution), t1=t1, num_steps=4)
    with torch.no_grad():
        # at x = 0, log p = log N(0) + t1 εᵀAε: a constant integrand, so one ε per solve shows up whole
        estimate = cnf.log_prob(torch.zeros(n, 3, dtype=F64)) + 1.5 * math.log(2 * math.pi)
    symmetric = matrix + matrix.T
    off_diagonal = symmetric - torch.diag(symmetric.diagonal())
    variance = 0.5 * off_diagonal.pow(2).sum()  # Var(εᵀAε) for Rademacher ε
    if distribution == "gaussian":
        variance = 0.5 * symmetric.pow(2).sum()
    assert abs(estimate.mean() - t1 * torch.trace(matrix)) < 5 * t1 * math.sqrt(variance / n)
    assert abs(estimate.var() / (t1**2 * variance) - 1) < 0.1


def test_bad_arguments_raise():
    net = HollowNet(2)
    with pytest.raises(TypeError, match="DimwiseDifferentiable"):
        CNF(_Linear(torch.eye(2)), 2)
    with pytest.raises(TypeError, match="divergence must be"):
        CNF(net, 2, divergence="exact")
    with pytest.raises(ValueError, match="partitioned"):
        CNF(net, 2, method="verlet")
    with pytest.raises(ValueError, match="unknown integrator"):
        CNF(net, 2, method="rk5")
    with pytest.raises(ValueError, match="distribution"):
        HutchinsonDivergence("uniform")
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        CNF(net, 2).log_prob(torch.randn(3, 3))
    with pytest.raises(ValueError, match="t1"):
        CNF(net, 2, t1=0.0)


def test_otd_gradients_of_the_log_likelihood_equal_dto():
    """The CNF passes gradient= through to odeint: the exact adjoint reproduces autograd."""
    from sdl.models import CNF, ExactDivergence, HollowNet

    x = torch.randn(32, 2, dtype=torch.float64)
    results = []
    for gradient in ("dto", "otd"):
        torch.manual_seed(1)
        flow = CNF(HollowNet(2, time_dependent=True), 2, divergence=ExactDivergence(), num_steps=4, gradient=gradient).double()
        loss = -flow.log_prob(x).mean()
        results.append((loss.detach(), torch.autograd.grad(loss, list(flow.parameters()))))
    (loss_dto, grads_dto), (loss_otd, grads_otd) = results
    assert torch.equal(loss_dto, loss_otd)
    assert max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(grads_dto, grads_otd, strict=True)) < 1e-12


@pytest.mark.parametrize("method", ["backward_euler", "gauss_legendre4"])
def test_jacobi_newton_log_likelihood_and_gradients_equal_newton_and_fixed_point(method):
    """The pair field (f, -div f) offers its Jacobian diagonal (D_dim f, 0) with respect to (x, log p), also
    through the flattening of the pair, so Jacobi–Newton solves a CNF's stages. log p and its parameter
    gradients (DTO and OTD) equal those with dense Newton, per-sample Newton and fixed-point iteration to the
    solver tolerance."""
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    solvers = {
        "jacobi_newton": dict(solver="jacobi_newton", tol=1e-14, max_iter=300),
        "newton": dict(solver="newton", tol=1e-14),
        "dense_newton": dict(method=ImplicitRungeKutta(TABLEAUS[method], NewtonSolver(tol=1e-14, per_sample=False))),
        "fixed_point": dict(solver="fixed_point", tol=1e-14, max_iter=300),
    }
    results = {}
    for name, options in solvers.items():
        for gradient in ("dto", "otd"):
            cnf = _hollow_cnf(2, num_steps=3, gradient=gradient, **{"method": method, **options})
            log_p = cnf.log_prob(x)
            results[name, gradient] = log_p.detach(), torch.autograd.grad(log_p.sum(), list(cnf.parameters()))
    log_p_dense, grads_dense = results["dense_newton", "dto"]
    for log_p, grads in results.values():
        torch.testing.assert_close(log_p, log_p_dense, rtol=0, atol=1e-12)
        for g, g_dense in zip(grads, grads_dense, strict=True):
            torch.testing.assert_close(g, g_dense, rtol=1e-10, atol=1e-12)
