"""The maths of every registered integrator: order, symplecticity, energy, reversibility."""

import numpy as np
import pytest
import torch
from problems import Pendulum, cos_growth, cos_growth_exact, logistic, logistic_exact, pendulum_reference
from scipy.integrate import solve_ivp
from torch import nn

import sdl
from sdl.integrators import TABLEAUS, ConvergenceError, ImplicitRungeKutta, NewtonSolver, get, names

F64 = torch.float64
# Step counts per order: errors stay in the asymptotic range and far above round-off.
STEP_COUNTS = {1: [40, 80, 160, 320], 2: [20, 40, 80, 160], 3: [10, 20, 40, 80], 4: [16, 32, 64, 128]}


def _method(name):
    return get(name, tol=1e-14, max_iter=200)


def _observed_order(step_sizes, errors):
    return np.polyfit(np.log(step_sizes), np.log(errors), 1)[0]


def _scalar_errors(method, func, exact, t_end=2.0):
    y0 = torch.tensor([0.2, 0.6], dtype=F64)
    errors = []
    for n in STEP_COUNTS[method.order]:
        y = sdl.odeint(func, y0, torch.linspace(0, t_end, n + 1, dtype=F64), method=method)
        errors.append((y[-1] - exact(y0, t_end)).abs().max().item())
    return [t_end / n for n in STEP_COUNTS[method.order]], errors


@pytest.mark.parametrize("name", [n for n in names() if not get(n).partitioned])
@pytest.mark.parametrize("problem", ["logistic", "cos_growth"])
def test_convergence_order_on_exact_solutions(name, problem):
    func, exact = {"logistic": (logistic, logistic_exact), "cos_growth": (cos_growth, cos_growth_exact)}[problem]
    method = _method(name)
    order = _observed_order(*_scalar_errors(method, func, exact))
    assert abs(order - method.order) <= 0.3, f"{name}: observed order {order:.3f}, declared {method.order}"


@pytest.mark.parametrize("name", names())
def test_convergence_order_on_pendulum_pair_state(name):
    """Every method takes a (q, p) state; reference by DOP853 at rtol 1e-13."""
    method = _method(name)
    q_ref, p_ref = pendulum_reference(1.2, 0.3, 3.0)
    errors = []
    for n in STEP_COUNTS[method.order]:
        y0 = (torch.tensor([1.2], dtype=F64), torch.tensor([0.3], dtype=F64))
        q, p = sdl.odeint(Pendulum(), y0, torch.linspace(0, 3.0, n + 1, dtype=F64), method=method)
        errors.append(max(abs(q[-1].item() - q_ref), abs(p[-1].item() - p_ref)))
    order = _observed_order([3.0 / n for n in STEP_COUNTS[method.order]], errors)
    assert abs(order - method.order) <= 0.3, f"{name}: observed order {order:.3f}, declared {method.order}"


@pytest.mark.parametrize("name", [n for n in names() if get(n).partitioned])
def test_splittings_keep_their_order_when_both_halves_depend_on_time(name):
    """q' = (1 + sin(3t)/2) p, p' = -sin(q) + cos(t)/4: drifts and kicks see the right times.
    Reference: RK4 with 4000 steps."""
    func = lambda t, y: ((1 + 0.5 * torch.sin(3 * t)) * y[1], -torch.sin(y[0]) + 0.25 * torch.cos(t))  # noqa: E731
    y0 = (torch.tensor([1.0], dtype=F64), torch.tensor([0.2], dtype=F64))
    reference = sdl.odeint(func, y0, torch.linspace(0.3, 2.3, 4001, dtype=F64), method="rk4", output="last")
    method, errors = get(name), []
    for n in STEP_COUNTS[get(name).order]:
        q, p = sdl.odeint(func, y0, torch.linspace(0.3, 2.3, n + 1, dtype=F64), method=method, output="last")
        errors.append(max(abs(q - reference[0]).item(), abs(p - reference[1]).item()))
    order = _observed_order([2.0 / n for n in STEP_COUNTS[method.order]], errors)
    assert abs(order - method.order) <= 0.3, f"{name}: observed order {order:.3f}, declared {method.order}"


def _symplecticity_defect(method, h=0.3):
    """‖DΦᵀ Ω DΦ - Ω‖_max of one step on the pendulum at a point where it is strongly nonlinear."""
    t0 = torch.tensor(0.0, dtype=F64)

    def step(y):
        if method.partitioned:
            return torch.cat(method.step(Pendulum(), t0, h, (y[:1], y[1:])))
        return method.step(lambda t, z: torch.cat([z[1:], -torch.sin(z[:1])]), t0, h, y)

    jac = torch.autograd.functional.jacobian(step, torch.tensor([2.0, 0.7], dtype=F64))
    omega = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=F64)
    return (jac.T @ omega @ jac - omega).abs().max().item()


@pytest.mark.parametrize("name", [n for n in names() if get(n).symplectic])
def test_symplectic_methods_preserve_the_symplectic_form(name):
    assert _symplecticity_defect(_method(name)) <= 1e-12


@pytest.mark.parametrize("name", [n for n in names() if not get(n).symplectic])
def test_other_methods_do_not(name):
    assert _symplecticity_defect(_method(name)) > 1e-8  # RK4: 1.6e-6, four orders above round-off


def _pendulum_energy_error(name, steps, h):
    y0 = (torch.tensor([1.5], dtype=F64), torch.tensor([0.0], dtype=F64))
    q, p = sdl.odeint(Pendulum(), y0, torch.arange(steps + 1, dtype=F64) * h, method=name)
    energy = Pendulum.energy(q, p).squeeze(-1)
    return (energy - energy[0]).numpy()


def test_verlet_energy_error_stays_bounded_while_rk4_drifts():
    steps, h = 20_000, 0.25  # t = 5000, about 700 periods
    verlet = _pendulum_energy_error("verlet", steps, h)
    rk4 = _pendulum_energy_error("rk4", steps, h)
    first, last = slice(0, steps // 10), slice(-steps // 10, None)
    # Verlet: the error oscillates with the same amplitude at the start and the end (no trend).
    assert np.abs(verlet[last]).max() <= 1.05 * np.abs(verlet[first]).max()
    # RK4: the error grows monotonically in time (energy is dissipated), past Verlet's bound.
    assert np.abs(rk4[last]).mean() > 5 * np.abs(rk4[first]).mean()
    assert np.abs(rk4[-1]) > np.abs(verlet).max()


@pytest.mark.parametrize("name", [n for n in names() if n in ("leapfrog", "verlet", "yoshida4", "forest_ruth4")])
def test_symmetric_splittings_are_time_reversible(name):
    t = torch.linspace(0, 100, 1001, dtype=F64)
    y0 = (torch.tensor([2.0, -0.5], dtype=F64), torch.tensor([0.3, 1.1], dtype=F64))
    q, p = sdl.odeint(Pendulum(), y0, t, method=name)
    q_back, p_back = sdl.odeint(Pendulum(), (q[-1], p[-1]), t.flip(0), method=name)
    assert (q_back[-1] - y0[0]).abs().max() <= 1e-12
    assert (p_back[-1] - y0[1]).abs().max() <= 1e-12


def test_splittings_evaluate_only_the_half_they_need():
    calls = {"velocity": 0, "force": 0}

    class Counting(Pendulum):
        def velocity(self, t, p):
            calls["velocity"] += 1
            return p

        def force(self, t, q):
            calls["force"] += 1
            return -torch.sin(q)

    y0 = (torch.tensor([1.0]), torch.tensor([0.0]))
    sdl.odeint(Counting(), y0, torch.linspace(0, 1, 11), method="verlet")
    # one call of the whole pair checks its shapes; then 1 drift and 2 kicks a step
    assert calls == {"velocity": 1 + 10, "force": 1 + 20}


def test_implicit_stage_solver_reports_failure_to_converge():
    stiff = lambda t, y: -1000.0 * y  # noqa: E731 (fixed-point iteration diverges for h·1000 > 2)
    with pytest.raises(ConvergenceError, match="fixed-point stage iteration did not reach tol"):
        sdl.odeint(stiff, torch.ones(2, dtype=F64), torch.linspace(0, 1, 11, dtype=F64), method="backward_euler")


def test_newton_stage_solver_handles_stiff_problems():
    stiff = lambda t, y: -1000.0 * (y - torch.cos(t))  # noqa: E731
    t = torch.linspace(0, 1, 11, dtype=F64)
    y0 = torch.zeros(1, dtype=F64)
    with pytest.raises(ConvergenceError):
        sdl.odeint(stiff, y0, t, method="gauss_legendre4")
    y = sdl.odeint(stiff, y0, t, method="gauss_legendre4", solver="newton", tol=1e-13)
    # the same steps with the linear stage equations (I + 1000 h A) K = -1000 (y_k - cos(t_k + c h)) solved directly
    tableau = TABLEAUS["gauss_legendre4"]
    a, b, c, h = np.array(tableau.a), np.array(tableau.b), np.array(tableau.c), 0.1
    direct = [0.0]
    for k in range(10):
        stages = np.linalg.solve(np.eye(2) + 1000 * h * a, -1000 * (direct[-1] - np.cos(k * h + c * h)))
        direct.append(direct[-1] + h * b @ stages)
    np.testing.assert_allclose(y[:, 0].numpy(), direct, rtol=0, atol=1e-13)  # measured 4e-16
    # against scipy's Radau solution: Gauss–Legendre is A- but not L-stable, so at h·1000 = 100 the transient
    # only shrinks by R(-100) ≈ 0.887 per step (0.30 left at t = 1); at h·1000 = 10 (R = 0.30) it is gone
    exact = solve_ivp(
        lambda s, v: -1000.0 * (v - np.cos(s)), (0, 1), [0.0], method="Radau", rtol=1e-12, atol=1e-14, t_eval=t.numpy()
    ).y[0]
    assert abs(y[-1, 0].item() - exact[-1]) > 0.25
    fine = sdl.odeint(stiff, y0, torch.linspace(0, 1, 101, dtype=F64), method="gauss_legendre4", solver="newton", tol=1e-13)
    errors = np.abs(fine[::10, 0].numpy() - exact)
    assert errors.max() < 3e-5 and errors[-1] < 1e-7  # measured 6.4e-6 (at t = 0.1) and 1.9e-8
    # backward Euler is L-stable: the transient dies and y tracks cos t with a lag h·sin(t)/(1 + 1000h)
    y = sdl.odeint(stiff, y0, t, method="backward_euler", solver="newton", tol=1e-13)
    assert (y[-1] - torch.cos(t[-1])).abs().item() < 1e-3


class _StiffCoupledField(nn.Module):
    """f(t, y) = -S y + tanh(W y + c) row by row, y: (B, d); S symmetric with eigenvalues 1 … 1000 in a random
    basis: stiff across the components of a sample, so only the full Newton solver converges."""

    def __init__(self, dim):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        basis, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=F64, generator=generator))
        self.register_buffer("stiffness", basis @ torch.diag(torch.logspace(0, 3, dim, dtype=F64)) @ basis.T)
        self.layer = nn.Linear(dim, dim).double()

    def forward(self, t, y):
        return -y @ self.stiffness.T + torch.tanh(self.layer(y))


@pytest.mark.parametrize("method", ["backward_euler", "gauss_legendre4"])
def test_newton_per_sample_blocks_equal_the_dense_jacobian(method, monkeypatch):
    """NewtonSolver solves one (s·d)×(s·d) system per sample, not one (s·B·d)² system for the batch, and gives
    the steps and the gradients (DTO through the iterations, OTD through the adjoint stage solves) of the
    dense whole-state Jacobian (``per_sample=False``)."""
    field, tableau = _StiffCoupledField(3), TABLEAUS[method]
    y0 = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0, 0.1, 4, dtype=F64)  # h · 1000 ≈ 33
    with pytest.raises(ConvergenceError):
        sdl.odeint(field, y0, t, method=method)
    solve, shapes = torch.linalg.solve, set()
    monkeypatch.setattr(torch.linalg, "solve", lambda a, b: shapes.add(tuple(a.shape)) or solve(a, b))
    results = {}
    for per_sample in (True, False):
        for gradient in ("dto", "otd"):
            stepper = ImplicitRungeKutta(tableau, NewtonSolver(tol=1e-14, per_sample=per_sample))
            start = y0.clone().requires_grad_()
            ys = sdl.odeint(field, start, t, method=stepper, gradient=gradient)
            results[per_sample, gradient] = ys.detach(), torch.autograd.grad(ys.pow(2).sum(), [start, *field.parameters()])
    s = tableau.stages
    assert shapes == {(6, 3 * s, 3 * s), (1, 18 * s, 18 * s)}
    ys_dense, grads_dense = results[False, "dto"]
    for ys, grads in results.values():
        torch.testing.assert_close(ys, ys_dense, rtol=0, atol=1e-12)
        for g, g_dense in zip(grads, grads_dense, strict=True):
            torch.testing.assert_close(g, g_dense, rtol=1e-10, atol=1e-12)


def test_stage_solvers_test_and_freeze_each_sample_on_its_own():
    """Each sample's change is measured against its own magnitude, and a sample that passes is no longer
    updated, so its result does not depend on the rest of the batch: it equals its solve alone, bit for bit.
    Here the tiny sample's stages converge more slowly (fixed-point rate 0.6 near 0, about 0.3 at 1); a test
    against the whole batch's magnitude stopped it at a relative error of about 1e-4."""
    field = lambda t, y: -y * (1 + 5 * torch.exp(-y * y))  # noqa: E731
    y0 = torch.tensor([[1.0, -0.7], [1e-12, 3e-12]], dtype=F64)
    t = torch.linspace(0, 0.3, 4, dtype=F64)
    together = sdl.odeint(field, y0, t, method="backward_euler", tol=1e-10)
    for b in range(len(y0)):
        assert torch.equal(together[:, b : b + 1], sdl.odeint(field, y0[b : b + 1], t, method="backward_euler", tol=1e-10))


def test_stage_iteration_synchronises_with_the_host_once_per_iteration(monkeypatch):
    calls, syncs = [0], [0]

    def field(t, y):
        calls[0] += 1
        return -y * (1 + 5 * torch.exp(-y * y))

    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor,
            name,
            lambda self, *args, _original=original: syncs.__setitem__(0, syncs[0] + 1) or _original(self, *args),
        )
    stepper = get("gauss_legendre4", tol=1e-12)
    stepper.step(field, torch.tensor(0.0, dtype=F64), 0.1, torch.randn(50, 2, dtype=F64))
    iterations = (calls[0] - 1) // stepper.tableau.stages  # one call for the start k_i = f(t, y)
    assert iterations > 5 and syncs[0] == iterations


def test_stage_solver_failure_names_the_unconverged_samples():
    field = lambda t, y: -y * (1 + 5000 * torch.exp(-y * y))  # noqa: E731 (h · 5000 ≫ 1 near 0 only)
    t = torch.linspace(0, 0.1, 2, dtype=F64)
    y0 = torch.tensor([[5.0], [1e-3], [6.0]], dtype=F64)
    with pytest.raises(ConvergenceError, match=r"for 1 of 3 samples \(worst last change .*, relative to"):
        sdl.odeint(field, y0, t, method="backward_euler")
    with pytest.raises(ConvergenceError, match="for the state"):
        sdl.odeint(field, y0[:, 0], t, method="backward_euler")


def test_stage_solver_tolerance_is_a_parameter():
    y0 = torch.tensor([0.3], dtype=F64)
    t = torch.linspace(0, 1, 6, dtype=F64)
    solve = lambda tol: sdl.odeint(logistic, y0, t, method="gauss_legendre4", tol=tol)[-1]  # noqa: E731
    reference = solve(1e-15)
    assert (solve(1e-13) - reference).abs().item() < 1e-13
    assert (solve(1e-4) - reference).abs().item() > 1e-12
