"""Optimise-then-discretise: with the symplectic partner, OTD gradients equal DTO gradients."""

import sys

import numpy as np
import pytest
import torch
from problems import Pendulum

import sdl
from sdl import Adjoint
from sdl._binomial import first_sweep
from sdl.integrators import ExplicitRungeKutta, SplittingMethod, get, names
from sdl.models import HamiltonianField, ResNetField

F64 = torch.float64
IMPLICIT = {"backward_euler", "implicit_midpoint", "gauss_legendre4"}


def _problem(name, layered=True, dtype=F64, steps=6):
    torch.manual_seed(0)
    layers = steps if layered else None
    if get(name).partitioned:
        field = HamiltonianField(3, "tanh", num_layers=layers, kinetic="learned").to(dtype)
        y0 = (torch.randn(5, 3, dtype=dtype, requires_grad=True), torch.randn(5, 3, dtype=dtype, requires_grad=True))
    else:
        field = ResNetField(3, "tanh", num_layers=layers, init_scale=1.5).to(dtype)
        y0 = torch.randn(5, 3, dtype=dtype, requires_grad=True)
    return field, y0, torch.linspace(0, 1.2, steps + 1, dtype=dtype)


def _gradients(field, y0, t, method, gradient, output="all", **kwargs):
    """∇ of a loss that reads every state (so the adjoint must add jumps at each t_k)."""
    states = sdl.odeint(field, y0, t, method=method, gradient=gradient, output=output, **kwargs)
    parts = states if isinstance(states, tuple) else (states,)
    weights = torch.linspace(0.5, 1.5, parts[0].shape[0], dtype=parts[0].dtype)
    if output == "all":
        loss = sum((w * (x.square().sum((-1, -2)) + torch.sin(x).sum((-1, -2)))).sum() for x in parts for w in [weights])
    else:
        loss = sum(x.square().sum() + torch.sin(x).sum() for x in parts)
    inputs = (*(y0 if isinstance(y0, tuple) else (y0,)), *field.parameters())
    return torch.autograd.grad(loss, inputs)


def _relative_error(reference, other):
    return max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(reference, other, strict=True))


@pytest.mark.parametrize("name", names())
def test_otd_with_symplectic_partner_equals_dto(name):
    field, y0, t = _problem(name)
    method = get(name, tol=1e-13, max_iter=300)
    dto = _gradients(field, y0, t, method, "dto")
    otd = _gradients(field, y0, t, method, "otd")
    assert _relative_error(dto, otd) <= (1e-10 if name in IMPLICIT else 1e-12)


@pytest.mark.parametrize("name", ["rk4", "kutta3", "verlet", "gauss_legendre4"])
def test_equality_holds_for_shared_parameters_and_last_output(name):
    field, y0, t = _problem(name, layered=False)
    method = get(name, tol=1e-13, max_iter=300)
    dto = _gradients(field, y0, t, method, "dto", output="last")
    otd = _gradients(field, y0, t, method, "otd", output="last")
    assert _relative_error(dto, otd) <= (1e-10 if name in IMPLICIT else 1e-12)


def test_pair_state_through_a_runge_kutta_method():
    """RK methods see a flattened (q, p); the adjoint follows the flattening."""
    q0 = torch.tensor([[1.0], [2.0]], dtype=F64, requires_grad=True)
    p0 = torch.tensor([[0.3], [-0.2]], dtype=F64, requires_grad=True)
    t = torch.linspace(0, 2, 9, dtype=F64)
    grads = []
    for gradient in ("dto", "otd"):
        q, p = sdl.odeint(
            Pendulum(), (q0, p0), t, method="rk4", gradient=gradient, adjoint_params=None if gradient == "dto" else ()
        )
        grads.append(torch.autograd.grad((q[-1] ** 2).sum() + p.sum(), (q0, p0)))
    assert _relative_error(*grads) <= 1e-13


def test_float32_gradients_agree_to_single_precision():
    field, y0, t = _problem("rk4", dtype=torch.float32)
    assert _relative_error(_gradients(field, y0, t, "rk4", "dto"), _gradients(field, y0, t, "rk4", "otd")) < 1e-5


@pytest.mark.parametrize("recovery, every", [("checkpoint", 3), ("checkpoint", 1), ("checkpoint", 50)])
def test_checkpointed_recovery_gives_the_same_gradient(recovery, every):
    field, y0, t = _problem("rk4", steps=10)
    dto = _gradients(field, y0, t, "rk4", "dto")
    otd = _gradients(field, y0, t, "rk4", "otd", recovery=recovery, checkpoint_every=every)
    assert _relative_error(dto, otd) <= 1e-12


@pytest.mark.parametrize("name", ["leapfrog", "verlet", "yoshida4"])
def test_backward_stepping_recovery_for_reversible_methods(name):
    field, y0, t = _problem(name, steps=100)
    dto = _gradients(field, y0, t, name, "dto", output="last")
    otd = _gradients(field, y0, t, name, "otd", output="last", recovery="reverse")
    assert _relative_error(dto, otd) <= 1e-11


def test_backward_stepping_error_at_1000_steps_is_small():
    """Reported number: round-off of 1000 reversed leapfrog steps, in the gradient."""
    field, y0, t = _problem("leapfrog", layered=False, steps=1000)
    t = torch.linspace(0, 10, 1001, dtype=F64)
    dto = _gradients(field, y0, t, "leapfrog", "dto", output="last")
    otd = _gradients(field, y0, t, "leapfrog", "otd", output="last", recovery="reverse")
    assert _relative_error(dto, otd) <= 1e-9


def test_backward_stepping_is_refused_for_irreversible_methods():
    field, y0, t = _problem("rk4")
    with pytest.raises(
        ValueError, match=r"recovery='reverse' needs a time-reversible method .* reversible methods: implicit_midpoint"
    ):
        sdl.odeint(field, y0, t, method="rk4", gradient="otd", recovery="reverse")


# (Heun is left out: its mismatch happens to shrink one order faster, O(h³), measured.)
@pytest.mark.parametrize("adjoint_method, order", [("euler", 1), ("midpoint", 2), ("kutta3", 3), ("rk4", 4)])
def test_continuous_adjoint_mismatch_shrinks_at_the_method_order(adjoint_method, order):
    """The theorem the other way round: a non-partner adjoint is off by O(h^p)."""
    torch.manual_seed(3)
    field = ResNetField(3, "tanh", init_scale=1.5).double()
    y0 = torch.randn(5, 3, dtype=F64, requires_grad=True)
    steps_list = [8, 16, 32, 64]
    errors = []
    for steps in steps_list:
        t = torch.linspace(0, 1, steps + 1, dtype=F64)
        dto = _gradients(field, y0, t, adjoint_method, "dto", output="last")
        otd = _gradients(field, y0, t, adjoint_method, "otd", output="last", adjoint_method=adjoint_method)
        errors.append(_relative_error(dto, otd))
    assert min(errors) > 1e-12  # it is really a different gradient
    slope = np.polyfit(np.log([1 / s for s in steps_list]), np.log(errors), 1)[0]
    assert abs(slope - order) <= 0.3, f"observed order {slope:.2f}, expected {order}"


def test_torchdiffeq_adjoint_is_available_for_comparison():
    field, y0, t = _problem("rk4_38", layered=False)
    dto = _gradients(field, y0, t, "rk4_38", "dto", output="last")
    peer = _gradients(field, y0, t, "rk4_38", Adjoint(method="torchdiffeq"), output="last")
    assert 0 < _relative_error(dto, peer) < 5e-5  # measured 6.6e-6: its continuous adjoint is O(h⁴) off


def test_torchdiffeq_adjoint_refuses_layered_fields():
    field, y0, t = _problem("euler")
    with pytest.raises(ValueError, match="supports shared parameters only"):
        sdl.odeint(field, y0, t, method="euler", gradient=Adjoint(method="torchdiffeq"))


def test_plain_function_needs_adjoint_params():
    weight = torch.randn(2, 2, dtype=F64, requires_grad=True)
    y0 = torch.randn(2, dtype=F64)
    t = torch.linspace(0, 1, 5, dtype=F64)
    func = lambda t, y: torch.tanh(weight @ y)  # noqa: E731
    with pytest.raises(TypeError, match=r"func is a function, not an nn.Module; pass adjoint_params=\(the tensors func uses\)"):
        sdl.odeint(func, y0, t, gradient="otd")
    grads = [
        torch.autograd.grad(sdl.odeint(func, y0, t, gradient=g, **kw)[-1].sum(), weight)[0]
        for g, kw in (("dto", {}), ("otd", {"adjoint_params": (weight,)}))
    ]
    assert _relative_error(*grads) <= 1e-13


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(gradient="otd", adjoint_method="rk7"), ValueError, "unknown adjoint method 'rk7'; valid choices: None"),
        (
            dict(gradient="otd", recovery="tape"),
            ValueError,
            "unknown recovery 'tape'; valid choices: store, checkpoint, binomial, reverse",
        ),
        (dict(gradient="otd", recovery="binomial", snapshots=0), ValueError, "snapshots must be a positive int, got 0"),
        (dict(gradient="otd", recovery="binomial", snapshots=2.5), ValueError, "snapshots must be a positive int, got 2.5"),
        (dict(gradient="otd", checkpoint_every=0), ValueError, "checkpoint_every must be a positive int"),
        (
            dict(gradient="otd", adjoint_method="torchdiffeq", recovery="reverse"),
            ValueError,
            "recovery='reverse' applies to sdl's adjoints",
        ),
        (dict(gradient="dto", recovery="store"), ValueError, "recovery: used only with gradient='otd'"),
        (dict(output="first"), ValueError, "unknown output 'first'; valid choices: all, last"),
    ],
)
def test_bad_adjoint_options_are_rejected(kwargs, error, message):
    field, y0, t = _problem("rk4")
    with pytest.raises(error, match=message):
        sdl.odeint(field, y0, t, **kwargs)


def test_otd_keeps_no_graph_of_the_steps():
    """The output hangs off one autograd node, whatever the number of steps."""
    field, y0, t = _problem("rk4", steps=20)
    out = sdl.odeint(field, y0, t, gradient="otd")
    assert type(out.grad_fn).__name__ == "_OptimiseThenDiscretiseBackward"


def _dto_and_otd_gradients(func, y0, t, inputs, method, **otd_options):
    """Gradients of Σ y(t_K) with respect to ``inputs``, by autograd and by the adjoint."""
    results = []
    for gradient, options in (("dto", {}), ("otd", otd_options)):
        y = sdl.odeint(func, y0, t, method=method, gradient=gradient, output="last", **options)
        total = sum(part.sum() for part in y) if isinstance(y, tuple) else y.sum()
        results.append(torch.autograd.grad(total, inputs))
    return results


@pytest.mark.parametrize(
    "case",
    [
        "coupled callable, verlet",
        "constant field, rk4",
        "constant field, implicit_midpoint",
        "free fall, verlet",
        "constant adjoint_param, rk4",
    ],
)
def test_otd_equals_dto_for_unusual_but_valid_fields(case):
    """Coupled halves under a splitting (differentiated in both q and p), outputs without a graph
    (a force that does not depend on q), and adjoint_params that do not require grad."""
    t = torch.linspace(0, 1, 5, dtype=F64)
    q0 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    p0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    w = torch.tensor(0.7, dtype=F64, requires_grad=True)
    constant = torch.tensor(0.3, dtype=F64)
    func, state, inputs, method, params = {
        "coupled callable, verlet": (lambda t, y: (y[1] + 0.5 * y[0], -y[0] + 0.3 * y[1]), (q0, p0), (q0, p0), "verlet", ()),
        "constant field, rk4": (lambda t, y: torch.cos(t) * torch.ones_like(y), y0, (y0,), "rk4", ()),
        "constant field, implicit_midpoint": (lambda t, y: torch.cos(t) * torch.ones_like(y), y0, (y0,), "implicit_midpoint", ()),
        "free fall, verlet": (lambda t, y: (y[1], -9.81 * torch.ones_like(y[0])), (q0, p0), (q0, p0), "verlet", ()),
        "constant adjoint_param, rk4": (lambda t, y: -w * y + constant, y0, (y0, w), "rk4", (w, constant)),
    }[case]
    dto, otd = _dto_and_otd_gradients(func, state, t, inputs, method, adjoint_params=params)
    for a, b in zip(dto, otd, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)
    if case == "constant adjoint_param, rk4":  # and the continuous adjoint takes the same inputs
        _, continuous = _dto_and_otd_gradients(func, state, t, inputs, method, adjoint_params=params, adjoint_method="rk4")
        for a, b in zip(dto, continuous, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=0)  # O(h⁴) apart: measured 1.7e-5


@pytest.mark.parametrize("loss_scale", [1.0, 1e-8])
def test_implicit_adjoint_is_exact_at_any_loss_scale(loss_scale):
    """The adjoint stage equations are solved to a tolerance relative to h b λ, so a loss scaled
    by 1e-8 still gets the DTO gradient to round-off (it used to lose 8 digits)."""
    field, y0, t = _problem("implicit_midpoint", steps=6)
    grads = []
    for gradient in ("dto", "otd"):
        start = y0.clone().requires_grad_()
        y = sdl.odeint(
            field, start, t, method=get("implicit_midpoint", tol=1e-14, max_iter=200), gradient=gradient, output="last"
        )
        grads.append(torch.autograd.grad(loss_scale * y.square().sum(), [start, *field.parameters()]))
    assert _relative_error(*grads) < 1e-11


def test_implicit_adjoint_accepts_fields_that_count_their_calls():
    """The adjoint stage map pulls back through autograd graphs, not functorch transforms, so a
    field that updates a buffer (an evaluation counter, batch-norm statistics) works with OTD."""

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 3).double()
            self.register_buffer("calls", torch.zeros((), dtype=torch.long))

        def forward(self, t, y):
            self.calls += 1
            return torch.tanh(self.linear(y))

    field, t = Counting(), torch.linspace(0, 1, 5, dtype=F64)
    y0 = torch.randn(8, 3, dtype=F64)
    grads = []
    for gradient in ("dto", "otd"):
        start = y0.clone().requires_grad_()
        y = sdl.odeint(
            field, start, t, method=get("implicit_midpoint", tol=1e-14, max_iter=200), gradient=gradient, output="last"
        )
        grads.append(torch.autograd.grad(y.sum(), [start, *field.parameters()]))
    assert field.calls > 0
    assert _relative_error(*grads) < 1e-11


class _ScaledLayeredField(sdl.Layered):
    """f_k(t, z) = s ⊙ tanh(W_k z): per-layer W_k, and a scale s shared by every step, outside
    ``layer_parameters()``."""

    def __init__(self, num_layers, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(num_layers, dim, dim, dtype=F64))
        self.scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, dim, dtype=F64))

    @property
    def num_layers(self):
        return self.weight.shape[0]

    def layer_parameters(self):
        return (self.weight,)

    def bind(self, params):
        (weight,) = params
        return lambda t, z: self.scale * torch.tanh(z @ weight.T)


@pytest.mark.parametrize("name", ["rk4", "gauss_legendre4"])
@pytest.mark.parametrize("adjoint", [Adjoint(), Adjoint(recovery="checkpoint", checkpoint_every=2), Adjoint(method="rk4")])
def test_otd_includes_a_shared_parameter_of_a_layered_field(name, adjoint):
    """A parameter outside layer_parameters() is shared by all steps: its OTD gradient accumulates
    over every step and equals the DTO one (it used to be None under OTD)."""
    field = _ScaledLayeredField(6, 3)
    y0 = torch.randn(5, 3, dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1.2, 7, dtype=F64)
    method = get(name, tol=1e-14, max_iter=300)
    dto = _gradients(field, y0, t, method, "dto")
    otd = _gradients(field, y0, t, method, adjoint)
    assert otd[-1] is not None and otd[-1].abs().min() > 0  # the scale's gradient
    # a continuous adjoint is O(h⁴) off: measured 1.5e-4 (rk4) and 2.3e-4 (gauss_legendre4)
    tolerance = 1e-3 if adjoint.method is not None else (1e-10 if name in IMPLICIT else 1e-12)
    assert _relative_error(dto, otd) <= tolerance


_RECOVERIES = [
    (name, recovery)
    for name in names()
    for recovery in ("store", "checkpoint", "binomial", "reverse")
    if recovery != "reverse" or get(name).time_reversible
]


@pytest.mark.parametrize("method, recovery", _RECOVERIES)
def test_otd_passes_gradcheck_and_a_retained_graph_backpropagates_twice(method, recovery):
    """gradcheck (and any caller that retains the graph) runs backward through one solve several
    times; the kept states must survive until the graph is released. Found by running torchdiffeq's
    own test problems against sdl: the second pass used to fail on states already released. Every
    registered method with every recovery that applies to it (reverse: the time-reversible ones);
    gradcheck's fast mode compares uᵀJv for random u, v, so a wrong gradient still fails it."""
    torch.manual_seed(0)
    w = torch.randn(3, 3, dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1, 5, dtype=F64)
    options = {
        "method": method,
        "gradient": "otd",
        "recovery": recovery,
        "checkpoint_every": 2,
        "snapshots": 2,
        "adjoint_params": (w,),
    }
    if isinstance(get(method), SplittingMethod):
        q0, p0 = (torch.randn(4, 3, dtype=F64, requires_grad=True) for _ in range(2))

        def solve(q, p, weight):
            def force(t, y):
                return y[1], -torch.tanh(y[0] @ weight.T) @ weight

            return sdl.odeint(force, (q, p), t, **{**options, "adjoint_params": (weight,)})

        inputs = (q0, p0, w)
    else:
        y0 = torch.randn(4, 3, dtype=F64, requires_grad=True)

        def solve(y, weight):
            return sdl.odeint(lambda t, z: torch.tanh(z @ weight.T + 0.3 * t), y, t, **{**options, "adjoint_params": (weight,)})

        inputs = (y0, w)
    assert torch.autograd.gradcheck(solve, inputs, atol=1e-7, rtol=1e-6, fast_mode=True)
    out = solve(*inputs)
    loss = sum(o[-1].square().sum() for o in (out if isinstance(out, tuple) else (out,)))
    first = torch.autograd.grad(loss, w, retain_graph=True)[0]
    second = torch.autograd.grad(loss, w)[0]
    assert torch.equal(first, second)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(loss, w)  # released now: the kept states went with the graph
    with pytest.raises(RuntimeError, match="gradient='otd' gives first derivatives only"):
        torch.autograd.grad(solve(*inputs)[0].sum() if len(inputs) == 3 else solve(*inputs)[-1].sum(), w, create_graph=True)


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("snapshots", [1, 3, 12])
def test_binomial_recovery_equals_dto_and_store(name, snapshots):
    """Each step is recomputed from the same state by the same operations, so binomial checkpointing
    gives store's gradient bit for bit, and DTO's to round-off, at any budget (1: every state from y_0;
    12 ≥ K = 9: every state kept)."""
    field, y0, t = _problem(name, steps=9)
    method = get(name, tol=1e-14, max_iter=300)
    binomial = _gradients(field, y0, t, method, "otd", recovery="binomial", snapshots=snapshots)
    assert all(torch.equal(a, b) for a, b in zip(_gradients(field, y0, t, method, "otd"), binomial, strict=True))
    assert _relative_error(_gradients(field, y0, t, method, "dto"), binomial) <= 1e-12


class _TimeDependentField(torch.nn.Module):
    """f(t, z) = tanh(z W + sin(3t) u) on a state z, or (p (1 + ½ sin t), -tanh(q W + u) cos t) on a pair."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 3, dtype=F64))
        self.shift = torch.nn.Parameter(torch.randn(3, dtype=F64))

    def forward(self, t, y):
        if isinstance(y, tuple):
            q, p = y
            return p * (1 + 0.5 * torch.sin(t)), -torch.tanh(q @ self.weight + self.shift) * torch.cos(t)
        return torch.tanh(y @ self.weight + torch.sin(3 * t) * self.shift)


@pytest.mark.parametrize("name", ["rk4", "heun", "gauss_legendre4", "verlet", "forest_ruth4"])
@pytest.mark.parametrize("snapshots", [1, 2, 4])
def test_binomial_recovery_on_a_time_dependent_field(name, snapshots):
    """Step k recomputed by the schedule sees t_k (and t_k + c_i h), not the time of the step it restarted
    from; a loss on every output adds the jumps ∂L/∂y_k on the way back. t starts at 0.2, K = 11."""
    torch.manual_seed(1)
    field = _TimeDependentField()
    pair = get(name).partitioned
    y0 = (
        tuple(torch.randn(4, 3, dtype=F64, requires_grad=True) for _ in range(2))
        if pair
        else torch.randn(4, 3, dtype=F64, requires_grad=True)
    )
    t = torch.linspace(0.2, 2.4, 12, dtype=F64)
    method = get(name, tol=1e-14, max_iter=300)
    dto = _gradients(field, y0, t, method, "dto")
    assert _relative_error(dto, _gradients(field, y0, t, method, "otd", recovery="binomial", snapshots=snapshots)) <= 1e-12


class _CountingEuler(torch.nn.Module):
    """f(t, z) = tanh(z W), counting its evaluations with and without a graph."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 3, dtype=F64))
        self.calls = {"no graph": 0, "graph": 0}

    def forward(self, t, z):
        self.calls["graph" if torch.is_grad_enabled() else "no graph"] += 1
        return torch.tanh(z @ self.weight)


@pytest.mark.parametrize("snapshots", [1, 2, 3, 5, 30, 40])
def test_binomial_recovery_keeps_its_snapshots_and_recomputes_the_binomial_count(snapshots):
    """The memory and time claim without timing: K = 30 Euler steps (one evaluation per step) keep
    at most c states, and the backward sweep recomputes exactly the fewest steps that c snapshots allow
    (brute force, tests/test_binomial.py) less those the forward sweep already made, then records each
    step once: c = 1 recomputes 435 = 30·29/2 steps, c ≥ 30 none."""
    from test_binomial import fewest_advances

    field, steps = _CountingEuler(), 30
    z0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1, steps + 1, dtype=F64)
    z = sdl.odeint(field, z0, t, method="euler", gradient="otd", recovery="binomial", snapshots=snapshots, output="last")
    kept = len(z.grad_fn.saved_tensors)
    assert kept == len(first_sweep(steps, snapshots)) <= snapshots
    assert kept == min(snapshots, steps) if snapshots in (1, 30, 40) else kept >= 2  # c ≥ K: y_0 … y_{K-1}
    field.calls.update({"no graph": 0, "graph": 0})
    z.square().sum().backward()
    last_kept = first_sweep(steps, snapshots)[-1]
    assert field.calls == {"no graph": fewest_advances(steps, snapshots) - last_kept, "graph": steps}
    if snapshots == 1 or snapshots >= steps:
        assert field.calls["no graph"] == (435 if snapshots == 1 else 0)


@pytest.mark.parametrize("recovery", ["checkpoint", "binomial"])
def test_a_continuous_adjoint_gets_the_same_states_from_every_recovery(recovery):
    """The continuous adjoint integrates backward from y_{k+1}, which a recomputing recovery must supply
    (there is no record to give it): the gradient is store's, bit for bit."""
    field, y0, t = _problem("rk4", steps=9)
    store = _gradients(field, y0, t, "rk4", Adjoint(method="midpoint"))
    other = _gradients(field, y0, t, "rk4", Adjoint(method="midpoint", recovery=recovery, checkpoint_every=4, snapshots=3))
    assert all(torch.equal(a, b) for a, b in zip(store, other, strict=True))


# --- tests that kill surviving mutants of scripts/mutation.py (TESTING.md) ---------------------------------


def test_an_unknown_adjoint_method_is_refused_naming_every_valid_choice():
    """The message lists None and then every explicit Runge–Kutta method of the registry and torchdiffeq,
    comma-separated, so that the user can copy a valid name from it."""
    explicit = [n for n in names() if isinstance(get(n), ExplicitRungeKutta)]
    assert {"euler", "rk4", "rk4_38"} <= set(explicit)
    expected = (
        f"unknown adjoint method 'rk7'; valid choices: None (the exact symplectic partner), {', '.join(explicit)}, torchdiffeq"
    )
    with pytest.raises(ValueError) as error:
        Adjoint(method="rk7")
    assert str(error.value) == expected


def test_adjoint_params_are_refused_for_a_layered_field():
    """A Layered field's gradients are taken for its layer_parameters() (one slice per step): adjoint_params
    given beside it would be ignored, so they are refused, naming the reason."""
    field, y0, t = _problem("rk4", steps=4)
    with pytest.raises(
        ValueError, match=r"^adjoint_params cannot be given for a Layered field: its layer_parameters\(\) are used$"
    ):
        sdl.odeint(field, y0, t, gradient="otd", adjoint_params=tuple(field.parameters()))


def test_double_backward_through_otd_is_refused_naming_the_alternative():
    """create_graph=True through the adjoint would silently give a wrong second derivative (the sweep
    builds no graph): it raises, naming create_graph=True and gradient='dto'."""
    field, y0, t = _problem("rk4", layered=False, steps=3)
    out = sdl.odeint(field, y0, t, gradient="otd", output="last")
    message = (
        r"^gradient='otd' gives first derivatives only: its backward sweep builds no graph, so create_graph=True "
        r"\(double backward, Hessian-vector products\) is not supported; use gradient='dto'$"
    )
    with pytest.raises(RuntimeError, match=message):
        torch.autograd.grad(out.sum(), y0, create_graph=True)


class _DrivenPair(torch.nn.Module):
    """(dq/dt, dp/dt) = (p (1 + ½ sin t), -tanh(q W) cos t): a pair field that depends on t."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 3, dtype=F64))

    def forward(self, t, y):
        q, p = y
        return p * (1 + 0.5 * torch.sin(t)), -torch.tanh(q @ self.weight) * torch.cos(t)


def test_a_continuous_adjoint_of_a_pair_state_on_a_time_dependent_field_converges_to_dto():
    """Adjoint(method="rk4") after Verlet keeps the state a pair (q, p) and integrates the adjoint system
    backward from t_{k+1} with the field evaluated at the right times: its gradient differs from DTO's by
    O(h²) (Verlet's order; measured 1.7e-2, 4.4e-3, 1.1e-3 at K = 8, 16, 32: slope 1.96), from a loss on every output."""
    torch.manual_seed(2)
    field = _DrivenPair()
    q0, p0 = (torch.randn(4, 3, dtype=F64, requires_grad=True) for _ in range(2))
    steps_list, errors = [8, 16, 32], []
    for steps in steps_list:
        t = torch.linspace(0.2, 2.2, steps + 1, dtype=F64)
        gradients = []
        for gradient in ("dto", Adjoint(method="rk4")):
            q, p = sdl.odeint(field, (q0, p0), t, method="verlet", gradient=gradient)
            gradients.append(torch.autograd.grad(q.square().sum() + (p * q).sum(), (q0, p0, field.weight)))
        errors.append(_relative_error(*gradients))
    assert errors[-1] < 5e-3
    slope = np.polyfit(np.log([1 / s for s in steps_list]), np.log(errors), 1)[0]
    assert abs(slope - 2) <= 0.3, f"observed order {slope:.2f}, expected 2"


class _ScaledPairField(torch.nn.Module):
    """(dq/dt, dp/dt) = (p, -a tanh(q W + b) cos t), the scale a a tensor outside the module."""

    def __init__(self, scale):
        super().__init__()
        self.linear = torch.nn.Linear(3, 3).double()
        self.scale = scale

    def forward(self, t, y):
        q, p = y
        return p, -self.scale * torch.tanh(self.linear(q)) * torch.cos(t)


def test_the_torchdiffeq_peer_runs_the_same_method_on_the_same_grid_with_the_given_adjoint_params():
    """torchdiffeq's "rk4" is the 3/8 rule: on the same grid its forward states are sdl's rk4_38 states to
    round-off (measured 7e-16; torchdiffeq's default, the adaptive dopri5, is 3e-6 off here); on a pair state
    with output="last" it returns (q_K, p_K); and the gradient of a tensor passed only in adjoint_params is
    computed, within the continuous adjoint's O(h⁴) of DTO's (measured 7.4e-6)."""
    scale = torch.tensor(0.8, dtype=F64, requires_grad=True)
    field = _ScaledPairField(scale)
    q0, p0 = (torch.randn(4, 3, dtype=F64, requires_grad=True) for _ in range(2))
    t = torch.linspace(0.2, 1.4, 7, dtype=F64)
    inputs = (q0, p0, scale, *field.parameters())
    dto = sdl.odeint(field, (q0, p0), t, method="rk4_38", output="last")
    peer = sdl.odeint(
        field, (q0, p0), t, method="rk4_38", gradient=Adjoint(method="torchdiffeq"), adjoint_params=inputs[2:], output="last"
    )
    assert isinstance(peer, tuple) and len(peer) == 2
    for ours, theirs in zip(dto, peer, strict=True):
        torch.testing.assert_close(theirs, ours, rtol=1e-13, atol=1e-14)
    gradients = [torch.autograd.grad(sum(x.square().sum() for x in out), inputs) for out in (dto, peer)]
    assert 0 < _relative_error(*gradients) < 5e-5


def test_the_torchdiffeq_peer_refuses_a_plain_function():
    """torchdiffeq.odeint_adjoint reads the parameters of an nn.Module: a plain function is refused by name."""
    weight = torch.randn(3, 3, dtype=F64, requires_grad=True)
    y0, t = torch.randn(2, 3, dtype=F64), torch.linspace(0, 1, 5, dtype=F64)
    with pytest.raises(TypeError, match=r"^torchdiffeq\.odeint_adjoint needs func to be an nn\.Module$"):
        sdl.odeint(
            lambda t, y: torch.tanh(y @ weight),
            y0,
            t,
            method="euler",
            gradient=Adjoint(method="torchdiffeq"),
            adjoint_params=(weight,),
        )


def test_the_torchdiffeq_peer_without_torchdiffeq_says_how_to_install_it(monkeypatch):
    """torchdiffeq is an optional dependency: without it the peer adjoint raises ImportError with the install command."""
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)  # `import torchdiffeq` now raises ImportError
    field, y0, t = _problem("euler", layered=False, steps=3)
    with pytest.raises(ImportError, match=r"^Adjoint\(method='torchdiffeq'\) needs torchdiffeq: pip install torchdiffeq$"):
        sdl.odeint(field, y0, t, method="euler", gradient=Adjoint(method="torchdiffeq"))
