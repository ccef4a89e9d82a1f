"""Tests that kill the mutants a mutation run found alive (issue 20): each one fails on the bug named
in its docstring and passes on the code as it is."""

import pytest
import torch

import sdl
from sdl import cli
from sdl.integrators import SPLITTINGS, get
from sdl.models import HollowNet, MergeRule, P4InvLinear, P4InvScheduler

F64 = torch.float64


class _DrivenOscillator(sdl.Separable, torch.nn.Module):
    """dq/dt = (1 + ½ sin t) p,  dp/dt = -w tanh(q) cos t: both halves depend on t and on w."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([0.7, -1.3, 0.4], dtype=F64))

    def velocity(self, t, p):
        return (1 + 0.5 * torch.sin(t)) * p

    def force(self, t, q):
        return -self.weight * torch.tanh(q) * torch.cos(t)


_SOLVES = [(m, r) for m in SPLITTINGS for r in ("store", "checkpoint", "reverse") if r != "reverse" or get(m).time_reversible]


@pytest.mark.parametrize("method, recovery", _SOLVES)
def test_otd_equals_dto_on_fields_that_depend_on_time(method, recovery):
    """Bug: the splitting adjoint evaluates every substep at the step's start time (16% off on Verlet).
    Every splitting with every recovery it allows (reverse needs a time-reversible method)."""
    field = _DrivenOscillator()
    q0 = torch.tensor([0.3, -0.8, 1.1], dtype=F64, requires_grad=True)
    p0 = torch.tensor([0.5, 0.2, -0.4], dtype=F64, requires_grad=True)
    t = torch.linspace(0.2, 2.2, 9, dtype=F64)
    gradients = []
    for gradient in ("dto", "otd"):
        extra = {"recovery": recovery, "checkpoint_every": 3} if gradient == "otd" else {}
        q, p = sdl.odeint(field, (q0, p0), t, method=method, gradient=gradient, **extra)
        loss = (q[-1] ** 2).sum() + (p[-1] * q[-1]).sum() + q[4].sum()
        gradients.append(torch.autograd.grad(loss, (q0, p0, field.weight)))
    for dto, otd in zip(*gradients, strict=True):
        torch.testing.assert_close(otd, dto, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("recovery, expected", [("store", 13), ("checkpoint", 4), ("reverse", 1)])
def test_otd_keeps_only_the_states_its_recovery_needs(recovery, expected):
    """Bug: recovery="reverse" keeps (and uses) every stored state. K = 12 steps, checkpoints every 4:
    store keeps K + 1 states, checkpoint K/4 + 1, reverse only the last."""
    field = _DrivenOscillator()
    q0, p0 = torch.ones(3, dtype=F64, requires_grad=True), torch.zeros(3, dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1.2, 13, dtype=F64)
    q, _ = sdl.odeint(field, (q0, p0), t, method="verlet", gradient="otd", recovery=recovery, checkpoint_every=4, output="last")
    assert len(q.grad_fn.saved_tensors) == 2 * expected  # a state is the pair (q, p)


def test_p4inv_float64_state_stays_exact_when_the_layer_computes_in_float32():
    """Bug: merge computes A⁻¹u and vᵀA⁻¹ from the float32 compute copies. Measured with the float64
    path: ‖A A⁻¹ - I‖ ≈ 1e-15 and |log|det A| - slogdet| ≈ 1e-14 after 300 merges; the bug gives ~1e-7."""
    torch.manual_seed(0)
    layer = P4InvLinear(16, dtype=torch.float32, rule=MergeRule(logdet_band=(-1e3, 1e3)))
    for _ in range(300):
        with torch.no_grad():
            layer.u.copy_(0.05 * torch.randn(16))
        layer.merge()
    assert layer.num_merges > 250
    eye = torch.eye(16, dtype=F64)
    assert (layer.weight @ layer.weight_inverse - eye).abs().max() < 1e-12
    sign, logabsdet = torch.linalg.slogdet(layer.weight)
    assert abs(float(logabsdet - layer.log_abs_det)) < 1e-11 and float(sign) == float(layer.det_sign)


def test_the_p4inv_scheduler_refines_every_refine_every_merges(monkeypatch):
    """Bug: the scheduler never refines."""
    layer = P4InvLinear(4)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scheduler = P4InvScheduler(layer, optimizer, merge_every=2, refine_every=3)
    refinements = []
    monkeypatch.setattr(layer, "refine_inverse", lambda order=2: refinements.append(scheduler.steps))
    for _ in range(24):
        scheduler.step()
    assert refinements == [6, 12, 18, 24]


def test_a_time_dependent_hollownet_depends_on_time():
    """Bug: the conditioner ignores t."""
    torch.manual_seed(0)
    x = torch.randn(5, 4, dtype=F64)
    dependent, independent = HollowNet(4, time_dependent=True).double(), HollowNet(4, time_dependent=False).double()
    for net, differs in ((dependent, True), (independent, False)):
        a, b = net(torch.tensor(0.0, dtype=F64), x), net(torch.tensor(1.0, dtype=F64), x)
        assert (not torch.allclose(a, b)) == differs
    diagonal_a = dependent.value_and_jacobian_diagonal(torch.tensor(0.0, dtype=F64), x)[1]
    diagonal_b = dependent.value_and_jacobian_diagonal(torch.tensor(1.0, dtype=F64), x)[1]
    assert not torch.allclose(diagonal_a, diagonal_b)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.iterations=true", "train.iterations: True must be int, got bool"),
        ("model.steps=2.0", "model.steps: 2.0 must be int, got float"),
        ("train.lr=true", "train.lr: True must be float"),
    ],
)
def test_config_types_are_strict(tmp_path, capsys, override, message):
    """Bug: the type check accepts bool for int (`--set train.iterations=true` trained one iteration)."""
    config = tmp_path / "c.yaml"
    config.write_text("data: {n: 20}\n")
    code = cli.main(["train", str(config), "--runs", str(tmp_path / "runs"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_resuming_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    """Bug: FileNotFoundError no longer caught (a traceback and exit 1)."""
    (tmp_path / "empty").mkdir()
    code = cli.main(["train", "--resume", str(tmp_path / "empty"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "no config.yaml in" in err and "Traceback" not in err
