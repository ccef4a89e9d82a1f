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


# The registered methods are built when sdl is imported; these build them inside the test, so that a change
# to the construction (``__post_init__``) shows in the tests, not only in the objects made at import.
def _splitting_reference_step(kicks, drifts, func, t, h, q, p):
    """The step of ``SplittingMethod``'s docstring, zero coefficients included: kick at τ_i, drift at the
    midpoint σ_i = τ_i + a_i h / 2 of its interval, τ_{i+1} = τ_i + a_i h."""
    elapsed = 0.0
    for b_i, a_i in zip(kicks, drifts, strict=True):
        p = p + (b_i * h) * func(t + elapsed * h, (q, p))[1]
        q = q + (a_i * h) * func(t + (elapsed + a_i / 2) * h, (q, p))[0]
        elapsed += a_i
    return q, p


@pytest.mark.parametrize("name", list(sdl.integrators.SPLITTINGS))
def test_a_splitting_built_from_coefficients_steps_as_documented(name):
    """One step of a SplittingMethod made from a registered method's coefficients, on a field whose halves both
    depend on t, equals the documented kick/drift sequence (float64, to 1e-14; the same operations up to the order
    of additions), and the fresh object is time-reversible exactly when its sequence is a palindrome."""
    registered = sdl.integrators.SPLITTINGS[name]
    method = sdl.integrators.SplittingMethod(kicks=registered.kicks, drifts=registered.drifts, order=registered.order)
    func = lambda t, y: ((1 + 0.5 * torch.sin(3 * t)) * y[1], -torch.sin(y[0]) + 0.25 * torch.cos(t))  # noqa: E731
    t, h = torch.tensor(0.3, dtype=F64), 0.37
    q0, p0 = torch.tensor([1.0, -0.4], dtype=F64), torch.tensor([0.2, 0.9], dtype=F64)
    q, p = method.step(func, t, h, (q0, p0))
    q_ref, p_ref = _splitting_reference_step(registered.kicks, registered.drifts, func, t, h, q0, p0)
    torch.testing.assert_close(q, q_ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(p, p_ref, rtol=0, atol=1e-14)
    assert method.time_reversible == (name in ("verlet", "leapfrog", "yoshida4", "forest_ruth4"))


def test_a_splitting_skips_its_zero_coefficients():
    """symplectic Euler B, kicks (0, 1) and drifts (1, 0): one drift, then one kick, per step."""
    calls = []
    func = lambda t, y: calls.append(1) or (y[1], -y[0])  # noqa: E731 (each half costs one call of the pair)
    method = sdl.integrators.SplittingMethod(kicks=(0, 1), drifts=(1, 0), order=1)
    q, p = method.step(func, torch.tensor(0.0, dtype=F64), 0.5, (torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)))
    assert len(calls) == 2 and (q.item(), p.item()) == (1.0, -0.5)


@pytest.mark.parametrize(
    ("kicks", "drifts", "message"),
    [
        ((0.5, 0.5), (1.0,), "kicks and drifts need the same length, got 2 and 1"),
        ((0.5, 0.4), (1.0, 0.0), r"kicks must sum to 1 \(consistency\), got 0.9"),
        ((0.5, 0.5), (1.5, 0.0), r"drifts must sum to 1 \(consistency\), got 1.5"),
        ((0.5, 0.5), (1.0, 1e-13), r"drifts must sum to 1 \(consistency\), got 1.0000000000001"),
    ],
)
def test_a_splitting_with_inconsistent_coefficients_is_rejected(kicks, drifts, message):
    with pytest.raises(ValueError, match=message):
        sdl.integrators.SplittingMethod(kicks=kicks, drifts=drifts, order=1)


class _TimedSeparable(sdl.fields.Separable):
    """q' = (1 + sin(3t)/2) p, p' = -sin q + cos(t)/4: both halves depend on t."""

    def velocity(self, t, p):
        return (1 + 0.5 * torch.sin(3 * t)) * p

    def force(self, t, q):
        return -torch.sin(q) + 0.25 * torch.cos(t)


@pytest.mark.parametrize("name", list(sdl.integrators.SPLITTINGS))
def test_a_separable_field_gets_the_time_of_each_substep(name):
    """A splitting calls a Separable field's halves at the same times as it evaluates a plain pair function."""
    field, t, h = _TimedSeparable(), torch.tensor(0.3, dtype=F64), 0.37
    y0 = (torch.tensor([1.0, -0.4], dtype=F64), torch.tensor([0.2, 0.9], dtype=F64))
    separable = get(name).step(field, t, h, y0)
    plain = get(name).step(lambda s, y: (field.velocity(s, y[1]), field.force(s, y[0])), t, h, y0)
    for a, b in zip(separable, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_the_fixed_point_solver_solves_any_contraction():
    """FixedPointSolver.solve(g, k0) is public: for a plain callable (not a stage system) it measures changes
    against max|k0|, |K|. K = cos K: the Dottie number 0.7390851332151607, to 1e-13."""
    solver = sdl.integrators.FixedPointSolver(tol=1e-15, max_iter=200)
    k = solver.solve(torch.cos, torch.zeros(2, 3, dtype=F64))
    torch.testing.assert_close(k, torch.full((2, 3), 0.7390851332151607, dtype=F64), rtol=0, atol=1e-13)


def test_the_stage_solvers_name_what_they_were_given():
    k0 = torch.zeros(1, 3, dtype=F64)
    for solver in (NewtonSolver(), sdl.integrators.JacobiNewtonSolver()):
        with pytest.raises(
            TypeError, match=r"solves the stage equations of ImplicitRungeKutta and their adjoints; got a function$"
        ):
            solver.solve(lambda k: k, k0)
    stepper = get("backward_euler", solver="jacobi_newton")
    with pytest.raises(TypeError, match=r"DimwiseDifferentiable \(such as a HollowNet\); got function$"):
        stepper.step(lambda t, y: -y, torch.tensor(0.0, dtype=F64), 0.1, torch.ones(3, dtype=F64))


class _LinearDimwise(nn.Module, sdl.fields.DimwiseDifferentiable):
    """f(t, y) = -λ(t) ⊙ y + c · roll(y, 1) + g(t) over the last axis, λ(t) = rates (1 + 10 t): stiffness on the
    diagonal that differs between the stages of a step, a hollow coupling c (no diagonal part for d ≥ 2) and
    a forcing g; D_dim f = -λ(t)."""

    def __init__(self, rates, coupling=0.0, forcing=lambda t: 0.0):
        super().__init__()
        self.register_buffer("rates", torch.tensor(rates, dtype=F64))
        self.coupling, self.forcing = coupling, forcing

    def rate(self, t):
        return self.rates.to(t.dtype) * (1 + 10 * t)

    def forward(self, t, y):
        return -self.rate(t) * y + self.coupling * y.roll(1, -1) + self.forcing(t)

    def value_and_jacobian_diagonal(self, t, y, *, create_graph=False):
        return self(t, y), (-self.rate(t)).expand_as(y)


def _diagonal_step_factor(rates, t, h, tableau):
    """y_{n+1} = R ⊙ y_n for f = -λ(t) ⊙ y: per component R = 1 - h bᵀ (I + h diag(λ(t + c h)) A)⁻¹ λ(t + c h)."""
    a, b, c = np.array(tableau.a), np.array(tableau.b), np.array(tableau.c)
    factors = []
    for rate in rates:
        stage_rates = rate * (1 + 10 * (t + c * h))
        factors.append(1 - h * b @ np.linalg.solve(np.eye(len(b)) + h * stage_rates[:, None] * a, stage_rates))
    return torch.tensor(factors, dtype=F64)


@pytest.mark.parametrize("shape", [(3,), (1, 3)])
def test_jacobi_newton_is_newtons_method_for_a_diagonal_jacobian(shape):
    """For a field linear in y with a diagonal Jacobian, the Jacobi–Newton update is the exact Newton update, so
    one update solves the (stiff, h·λ up to 2·10⁵) stage equations of Gauss–Legendre 4, forward and adjoint
    (``gradient="otd"``), whatever the stiffness of each stage; 3 iterations suffice (fixed-point iteration
    diverges). Checked against y_{n+1} = R ⊙ y_n in closed form, for a state (d,) and a batch of one."""
    rates, h = [1.0, 1e3, 1e6], 0.1
    field = _LinearDimwise(rates)
    stepper = ImplicitRungeKutta(TABLEAUS["gauss_legendre4"], sdl.integrators.JacobiNewtonSolver(tol=1e-14, max_iter=3))
    y0 = torch.tensor([0.5, -1.0, 2.0], dtype=F64).reshape(shape).requires_grad_()
    y1 = sdl.odeint(field, y0, torch.tensor([0.0, h], dtype=F64), method=stepper, gradient="otd", output="last")
    factor = _diagonal_step_factor(rates, 0.0, h, TABLEAUS["gauss_legendre4"])
    torch.testing.assert_close(y1, factor * y0.detach(), rtol=1e-13, atol=0)
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    (grad,) = torch.autograd.grad((y1 * weights).sum(), y0)
    torch.testing.assert_close(grad, (factor * weights).expand(shape), rtol=1e-13, atol=0)


@pytest.mark.parametrize("solver", [sdl.integrators.FixedPointSolver, sdl.integrators.JacobiNewtonSolver])
def test_stage_solvers_measure_changes_against_the_state_not_the_first_guess(solver):
    """The stage iteration starts from k_i = f(t_n, y_n). Its changes are measured against max(|y|/|h|, |K|),
    not against that first guess, which is 10⁶ times larger here (a forcing that is large only at t_n): the
    stage solution is then as accurate as the tolerance asks (1e-12 relative), not 10⁶ times less."""
    field = _LinearDimwise([1.0, 1.0, 1.0], coupling=0.5, forcing=lambda t: 1 + 1e6 * torch.exp(-t / 1e-3))
    h, y0 = 0.05, torch.zeros(3, dtype=F64)
    stepper = ImplicitRungeKutta(TABLEAUS["backward_euler"], solver(tol=1e-13, max_iter=200))
    y1 = stepper.step(field, torch.tensor(0.0, dtype=F64), h, y0)
    # backward Euler with y_n = 0: y_{n+1} = h K, K = f(h, h K), i.e. (I - h J(h)) K = g(h)
    jacobian = -field.rate(torch.tensor(h, dtype=F64)).diag() + 0.5 * torch.eye(3, dtype=F64).roll(1, 0)
    k = torch.linalg.solve(torch.eye(3, dtype=F64) - h * jacobian, field.forcing(torch.tensor(h, dtype=F64)).expand(3))
    torch.testing.assert_close(y1, h * k, rtol=1e-12, atol=0)


@pytest.mark.parametrize("solver", ["newton", "jacobi_newton"])
def test_newton_solvers_keep_a_float32_state_in_float32_whatever_the_default_dtype(solver):
    """The matrices the Newton solvers build follow the state's dtype, not torch's default dtype."""
    field = _LinearDimwise([1.0, 30.0, 100.0], coupling=0.5)
    y0 = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    stepper = get("gauss_legendre4", solver=solver, tol=1e-6)
    reference = get("gauss_legendre4", solver=solver, tol=1e-14).step(field, torch.tensor(0.0, dtype=F64), 0.1, y0.double())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        y1 = stepper.step(field, torch.tensor(0.0, dtype=torch.float32), 0.1, y0)
    finally:
        torch.set_default_dtype(default)
    assert y1.dtype == torch.float32
    torch.testing.assert_close(y1.double(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver", ["fixed_point", "newton", "jacobi_newton"])
def test_implicit_steps_and_their_adjoint_work_on_the_states_device(solver, device):
    """Every tensor the stage solvers and the adjoint stage solve build is made on the state's device: steps and
    OTD gradients on ``device`` equal those on the CPU."""
    results = {}
    for where in dict.fromkeys(("cpu", device)):
        field = _LinearDimwise([1.0, 3.0, 10.0], coupling=0.5).to(where)
        y0 = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]], dtype=F64, device=where, requires_grad=True)
        t = torch.linspace(0, 0.2, 3, dtype=F64, device=where)
        ys = sdl.odeint(field, y0, t, method="gauss_legendre4", solver=solver, tol=1e-14, gradient="otd")
        assert ys.device.type == where
        results[where] = ys.detach().cpu(), torch.autograd.grad(ys.pow(2).sum(), y0)[0].cpu()
    for a, b in zip(results[device], results["cpu"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_newton_solves_a_batch_of_one_sample():
    """A state (1, d) is a batch of one sample: its n×n block is the whole Jacobian."""
    field = _LinearDimwise([1.0, 1e3, 1e6])
    y0 = torch.tensor([[0.5, -1.0, 2.0]], dtype=F64)
    y1 = get("gauss_legendre4", solver="newton", tol=1e-14).step(field, torch.tensor(0.0, dtype=F64), 0.1, y0)
    torch.testing.assert_close(
        y1, _diagonal_step_factor([1.0, 1e3, 1e6], 0.0, 0.1, TABLEAUS["gauss_legendre4"]) * y0, rtol=1e-13, atol=0
    )


def test_the_adjoint_stage_solve_tests_and_freezes_each_sample_on_its_own():
    """As the forward stage solve: each sample's adjoint stage change is measured against its own |h b λ|, so a
    sample's gradient through a batch equals its gradient alone, bit for bit, even when the batch's cotangents
    differ by 10¹² in size."""
    field = lambda t, y: -y * (1 + 5 * torch.exp(-y * y))  # noqa: E731
    y0 = torch.tensor([[1.0, -0.7], [0.4, 0.3]], dtype=F64)
    weights = torch.tensor([[1.0], [1e-12]], dtype=F64)
    t = torch.linspace(0, 0.3, 4, dtype=F64)

    def gradient(start, w):
        start = start.clone().requires_grad_()
        ys = sdl.odeint(field, start, t, method="backward_euler", gradient="otd", adjoint_params=(), tol=1e-10)
        return torch.autograd.grad((ys * w).sum(), start)[0]

    together = gradient(y0, weights)
    for b in range(len(y0)):
        assert torch.equal(together[b : b + 1], gradient(y0[b : b + 1], weights[b : b + 1]))


@pytest.mark.parametrize("per_sample", [1, None, "yes"])
def test_per_sample_must_be_a_bool(per_sample):
    with pytest.raises(ValueError, match=rf"per_sample must be True or False, got {per_sample!r}"):
        NewtonSolver(per_sample=per_sample)


def test_max_iter_one_is_one_iteration():
    """max_iter=1 is valid: one update, then the test. A start that already solves K = G(K) is returned; any other
    start fails with the documented error."""
    solver = sdl.integrators.FixedPointSolver(tol=1e-12, max_iter=1)
    k0 = torch.full((1, 2), 0.5, dtype=F64)
    assert torch.equal(solver.solve(lambda k: torch.full_like(k, 0.5), k0), k0)
    with pytest.raises(ConvergenceError, match="did not reach tol=1e-12 in max_iter=1 iterations"):
        solver.solve(torch.cos, k0)


def test_vjp_gives_zeros_for_what_the_output_does_not_depend_on():
    """vjp: Σ c · ∂out/∂x per input, zeros for an input the output does not use, for an input without grad and
    for an output without a graph; no pairing of outputs and cotangents of different lengths."""
    vjp = sdl.integrators.base.vjp
    x, unused = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True), torch.ones(3, dtype=F64, requires_grad=True)
    c = torch.tensor([0.5, -1.0], dtype=F64)
    grad_x, grad_unused = vjp(x**2, (x, unused), c)
    assert torch.equal(grad_x, 2 * x.detach() * c) and torch.equal(grad_unused, torch.zeros(3, dtype=F64))
    constant = torch.tensor([3.0, 4.0], dtype=F64)  # no graph: a force that does not depend on anything
    assert torch.equal(vjp(constant, (x,), c)[0], torch.zeros(2, dtype=F64))
    assert torch.equal(vjp(x**2, (torch.ones(2, dtype=F64),), c)[0], torch.zeros(2, dtype=F64))  # no input needs grad
    with pytest.raises(ValueError, match="zip"):
        vjp((x**2, x**3), (x,), (c,))


def test_vjp_frees_the_graph_unless_asked_to_keep_it():
    """A pullback releases the step's graph (the memory of a step lives until its pullback runs), unless
    ``retain_graph`` keeps it for another."""
    vjp = sdl.integrators.base.vjp
    x = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    c = torch.ones(2, dtype=F64)
    kept = torch.sin(x)
    assert torch.equal(vjp(kept, (x,), c, retain_graph=True)[0], vjp(kept, (x,), c)[0])
    freed = torch.sin(x)
    vjp(freed, (x,), c)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        vjp(freed, (x,), c)


@pytest.mark.parametrize("name", ["rk4", "verlet", "backward_euler", "gauss_legendre4"])
def test_adjoint_record_returns_the_step_and_its_pullback(name):
    """adjoint_record(func, t, h, y) = (y_{n+1}, pullback): y_{n+1} is the step's result (to the stage tolerance)
    and pullback(λ, params) the reverse-mode derivative of the step, for an explicit, a splitting and two
    implicit methods."""
    method = get(name, tol=1e-14)
    weight = torch.tensor(0.7, dtype=F64, requires_grad=True)
    t, h = torch.tensor(0.2, dtype=F64), 0.1
    if method.partitioned:
        func = lambda s, y: (y[1], -weight * torch.sin(y[0]))  # noqa: E731
        y = (torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([0.3, 0.2], dtype=F64))
    else:
        func = lambda s, y: -weight * torch.sin(y) + torch.cos(s)  # noqa: E731
        y = torch.tensor([1.0, -0.5], dtype=F64)
    y_next, pullback = method.adjoint_record(func, t, h, y)
    leaves = tuple(part.clone().requires_grad_() for part in (y if method.partitioned else (y,)))
    stepped = method.step(func, t, h, leaves if method.partitioned else leaves[0])
    outputs = stepped if method.partitioned else (stepped,)
    for a, b in zip(y_next if method.partitioned else (y_next,), outputs, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-14)
    cotangents = tuple(torch.tensor([0.4, -1.3], dtype=F64) for _ in outputs)
    lam, (weight_bar,) = pullback(cotangents if method.partitioned else cotangents[0], (weight,))
    expected = torch.autograd.grad(outputs, (*leaves, weight), cotangents)
    for a, b in zip((*(lam if method.partitioned else (lam,)), weight_bar), expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_the_default_stage_tolerance_is_100_ulp_of_the_dtype():
    """tol=None: a change of 99 ulp relative to the magnitude passes the test, one of 101 ulp does not."""
    for dtype in (torch.float32, F64):
        eps = torch.finfo(dtype).eps
        solver = sdl.integrators.FixedPointSolver(max_iter=1)
        k0 = torch.ones(1, 2, dtype=dtype)
        solver.solve(lambda k, e=eps: torch.full_like(k, 1 + 99 * e), k0)
        with pytest.raises(ConvergenceError, match=f"did not reach tol={100 * eps:g}"):
            solver.solve(lambda k, e=eps: torch.full_like(k, 1 + 101 * e), k0)


def test_a_plain_fixed_point_problem_is_tested_sample_by_sample():
    """For a plain callable and K: (s, B, n), each sample's change is measured against its own max|k0|, |K|:
    K = K/2 + c with c = (1, 10⁻¹²) per sample gives K = 2c for both, to 1e-9 relative."""
    c = torch.tensor([1.0, 1e-12], dtype=F64).view(1, 2, 1)
    k = sdl.integrators.FixedPointSolver(tol=1e-12).solve(lambda k: k / 2 + c, c.expand(1, 2, 3))
    torch.testing.assert_close(k, (2 * c).expand(1, 2, 3), rtol=1e-9, atol=0)


def test_stage_solver_failure_reports_the_worst_unconverged_sample():
    """The message gives the last change of the sample farthest from its test (change / magnitude), among those
    not converged: here sample 1 (change 10⁻³ at magnitude ≈ 1), not sample 2 (10⁻² at ≈ 100, relatively
    smaller) nor the converged sample 0."""
    step = torch.tensor([0.0, 1e-3, 1e-2], dtype=F64).view(1, 3, 1)
    k0 = torch.tensor([1.0, 1.0, 100.0], dtype=F64).view(1, 3, 1)
    with pytest.raises(ConvergenceError, match=r"for 2 of 3 samples \(worst last change 0\.001, relative to 1;"):
        sdl.integrators.FixedPointSolver(tol=1e-12, max_iter=5).solve(lambda k: k + step, k0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(tol=0.0), r"tol must be None \(100 ulp of the state's dtype\) or a finite number > 0, got 0.0"),
        (dict(tol=float("inf")), "a finite number > 0, got inf"),
        (dict(tol="1e-3"), "a finite number > 0, got '1e-3'"),
        (dict(max_iter=2.5), "max_iter must be a positive int, got 2.5"),
        (dict(max_iter=True), "max_iter must be a positive int, got True"),
    ],
)
def test_stage_solver_options_are_checked_on_construction(options, message):
    for solver in (sdl.integrators.FixedPointSolver, NewtonSolver, sdl.integrators.JacobiNewtonSolver):
        with pytest.raises(ValueError, match=message):
            solver(**options)


def test_an_implicit_tableau_is_refused_by_the_explicit_stepper():
    with pytest.raises(ValueError, match=r"^ExplicitRungeKutta needs a strictly lower triangular A; use ImplicitRungeKutta$"):
        sdl.integrators.ExplicitRungeKutta(TABLEAUS["implicit_midpoint"])
