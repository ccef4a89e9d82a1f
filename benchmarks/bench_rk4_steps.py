"""Forward + backward through 100 RK4 steps of f = tanh(A z + b): sdl vs a hand loop vs torchdiffeq vs torchode.

Batch 1024, d = 8, float32, one thread. All integrate the same field on the same grid and
backpropagate the same loss (sum of squares of the final state). torchode has no RK4 of its own:
it runs the classical tableau through its generic explicit RK stepper, fixed steps
(``FixedStepController``), autograd through the solver (``AutoDiffAdjoint``, its only gradient).

    python benchmarks/bench_rk4_steps.py            # full run
    python benchmarks/bench_rk4_steps.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torchdiffeq
import torchode
from torchode.interpolation import ThirdOrderPolynomialInterpolation
from torchode.single_step_methods.runge_kutta import ButcherTableau, ExplicitRungeKutta

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, table

import sdl


class TanhField(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)

    def forward(self, t, z):
        return torch.tanh(self.linear(z))


def hand_loop(field, z0, t):
    """RK4 as one would write it by hand for this grid."""
    z = z0
    zs = [z]
    for k in range(len(t) - 1):
        tk, h = t[k], t[k + 1] - t[k]
        k1 = field(tk, z)
        k2 = field(tk + h / 2, z + h / 2 * k1)
        k3 = field(tk + h / 2, z + h / 2 * k2)
        k4 = field(tk + h, z + h * k3)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        zs.append(z)
    return torch.stack(zs)


class TorchodeRK4(ExplicitRungeKutta):
    """The classical RK4 tableau in torchode (its registry has euler, heun, dopri5, tsit5)."""

    TABLEAU = ButcherTableau.from_lists(
        c=[0.0, 0.5, 0.5, 1.0],
        a=[[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
        b=[1 / 6, 1 / 3, 1 / 3, 1 / 6],
        b_low_order=[1 / 6, 1 / 3, 1 / 3, 1 / 6],  # fixed steps: no error estimate needed
    )

    def __init__(self, term=None) -> None:
        super().__init__(term, TorchodeRK4.TABLEAU)

    def convergence_order(self) -> int:
        return 4

    def build_interpolation(self, data):
        return ThirdOrderPolynomialInterpolation.from_k(data.t0, data.dt, data.y0, data.y1, data.k)


def torchode_solve(field, z0, t_end: float, steps: int):
    """z(t_end) for every sample, ``steps`` RK4 steps. torchode times each sample on its own; h is
    widened by 1e-6 relative so that float32 round-off in t cannot add a 101st, tiny step."""
    solver = torchode.AutoDiffAdjoint(TorchodeRK4(torchode.ODETerm(field)), torchode.FixedStepController())
    batch = z0.shape[0]
    problem = torchode.InitialValueProblem(y0=z0, t_eval=torch.tensor([0.0, t_end]).expand(batch, 2))
    solution = solver.solve(problem, dt0=torch.full((batch,), t_end / steps * (1 + 1e-6)))
    assert int(solution.stats["n_steps"].max()) == steps, solution.stats["n_steps"].max()
    return solution.ys.transpose(0, 1)  # (2, batch, d): time first, as the others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for CI")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    field = TanhField(args.dim)
    z0 = torch.randn(args.batch, args.dim)
    t = torch.linspace(0, 1, args.steps + 1)
    t_list = t.tolist()

    def run(integrate):
        def forward_backward():
            field.zero_grad(set_to_none=True)
            integrate()[-1].square().sum().backward()

        return forward_backward

    candidates = {
        "hand loop": run(lambda: hand_loop(field, z0, t_list)),
        "sdl.odeint": run(lambda: sdl.odeint(field, z0, t, method="rk4")),
        "torchdiffeq": run(lambda: torchdiffeq.odeint(field, z0, t, method="rk4")),
        "torchode": run(lambda: torchode_solve(field, z0, 1.0, args.steps)),
    }
    # same numbers first: the three compute the same trajectory
    reference = hand_loop(field, z0, t_list)
    for name, integrate in [
        ("sdl", lambda: sdl.odeint(field, z0, t)),
        ("torchdiffeq", lambda: torchdiffeq.odeint(field, z0, t, method="rk4")),
        ("torchode", lambda: torchode_solve(field, z0, 1.0, args.steps)),
    ]:
        diff = (integrate()[-1] - reference[-1]).abs().max().item()
        assert diff < 1e-5, f"{name} differs from the hand loop by {diff}"

    medians = compare(candidates, repeats=5 if args.quick else 40)
    print(f"# {args.steps} RK4 steps, batch {args.batch}, d = {args.dim}, float32, 1 thread, forward + backward")
    print(
        f"# torch {torch.__version__}, torchdiffeq {getattr(torchdiffeq, '__version__', '?')}, torchode "
        f"{getattr(torchode, '__version__', '?')}, {platform.processor() or platform.machine()}"
    )
    print(table(medians, baseline="hand loop"))
    print(
        f"\nsdl is {medians['torchdiffeq'] / medians['sdl.odeint']:.2f}x faster than torchdiffeq, "
        f"{medians['torchode'] / medians['sdl.odeint']:.2f}x faster than torchode"
    )


if __name__ == "__main__":
    main()
