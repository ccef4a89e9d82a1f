"""Non-autonomous Hamiltonian networks and reversibility (issue 17, parts 1 and 3), in one command.

Trains the Hamiltonian network of ``configs/hamiltonian_verlet.yaml`` (spiral2d, q'' = -Aᵀtanh(Aq + b),
K = 15, T = 1.5, Verlet), then

1. reads its θ^k as a continuous θ(t) (piecewise linear through the layer centres) and integrates
   the extended system on (q, t, p, p_t), K = H(t, q, p) + p_t, from the lifted validation points
   with Verlet and RK4 at h = T/15 and T/60: ``extended_energy.png`` shows |K - K(0)| and the error
   of H against a reference (RK4, h = T/1920) along the trajectories; the table gives the symplecticity
   defect of one step in the extended variables and in (q, p) alone (Verlet, Yoshida-4, RK4);
2. refines θ (piecewise constant, the same θ(t)) to K = 15 … 960 layers and runs each network forward
   and back (``ODENet.inverse``; RK4 backward with steps -h by ``integrate_backward``) in float32
   and float64: ``reconstruction.png`` shows max |z^0 - lift(x)| against K, beside the round-off
   bound ε K exp(∫ν̄ dt), ν̄_k the one-sided Lipschitz constant of the backward field -f_k over the
   layer states (``sdl.stability.per_layer_stability``).

    python experiments/hamiltonian_networks.py            # full (a few minutes)
    python experiments/hamiltonian_networks.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import sdl
from sdl.config import load_config
from sdl.experiment import build, new_run_dir
from sdl.integrators import get
from sdl.models import InterpolatedHamiltonian, ODENet, extended_phase_space
from sdl.stability import per_layer_stability, symplecticity_defect
from sdl.training import Trainer

CONFIG = Path(__file__).resolve().parent / "configs" / "hamiltonian_verlet.yaml"
f64 = torch.float64


def _trained_network(iterations: int) -> tuple[ODENet, torch.Tensor, float]:
    config = load_config(CONFIG, [f"train.iterations={iterations}", "dtype=float64"])
    task, model = build(config)
    Trainer(model, task, config.train).run(progress=False)
    model.eval()
    with torch.no_grad():
        accuracy = task.evaluate(model)[1]["val_accuracy"]
    return model, task.data.x_val[:200], accuracy


def _extended(model: ODENet, x: torch.Tensor, out: Path) -> list[str]:
    """K drift and H error along the extended trajectories; one-step symplecticity defects."""
    field = extended_phase_space(InterpolatedHamiltonian(model.field, model.t_final, "linear"))
    with torch.no_grad():
        q0, p0 = model.lift(x)
    start = (field.join(q0, torch.zeros(len(x), dtype=f64)), field.join(p0, torch.zeros(len(x), dtype=f64)))
    k_steps, fine = model.num_steps, 128

    def run(method: str, steps: int):
        with torch.no_grad():
            return sdl.odeint(field, start, torch.linspace(0, model.t_final, steps + 1, dtype=f64), method=method)

    reference_q, reference_p = run("rk4", k_steps * fine)
    with torch.no_grad():
        k0 = field.energy(*start)
        h_change = float((field.hamiltonian(reference_q, reference_p) - field.hamiltonian(*start)).abs().max())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    lines = ["| method | h | max_t max_x |K - K(0)| | max_t max_x |H - H_ref| |", "|---|---:|---:|---:|"]
    for method, colour in (("verlet", "tab:blue"), ("rk4", "tab:red")):
        for multiple, style in ((1, "-"), (4, "--")):
            steps = k_steps * multiple
            qs, ps = run(method, steps)
            every = fine // multiple
            with torch.no_grad():
                h_ref = field.hamiltonian(reference_q[::every], reference_p[::every])
                k_error = (field.energy(qs, ps) - k0).abs().max(-1).values
                h_error = (field.hamiltonian(qs, ps) - h_ref).abs().max(-1).values
            times = torch.linspace(0, model.t_final, steps + 1)
            label = f"{method}, h = {model.t_final / steps:.3g}"
            left.semilogy(times, k_error.clamp_min(1e-17), style, color=colour, label=label)
            right.semilogy(times, h_error.clamp_min(1e-17), style, color=colour, label=label)
            lines.append(f"| {method} | {model.t_final / steps:.4g} | {k_error.max():.3g} | {h_error.max():.3g} |")
    lines.append(f"\nH itself changes by up to {h_change:.3g} along the reference trajectories (max over points and t).")
    left.set(xlabel="t", ylabel="max over points of |K - K(0)|", title="extended energy K = H + p_t")
    right.set(xlabel="t", ylabel="max over points of |H - H_reference|", title="energy H (not conserved)")
    left.legend(fontsize=8)
    fig.suptitle("trained Hamiltonian network (spiral2d), θ(t) piecewise linear, extended phase space")
    fig.tight_layout()
    fig.savefig(out / "extended_energy.png", dpi=120)
    plt.close(fig)

    lines += ["", "| method | defect, extended (q, t, p, p_t) | defect, (q, p) alone |", "|---|---:|---:|"]
    points = (start[0][:32], start[1][:32])
    for method in ("verlet", "yoshida4", "rk4"):
        h, t0 = model.step_size, 0.7

        def step(big_q, big_p, t0=t0, h=h, method=method):
            grid = torch.tensor([t0, t0 + h], dtype=f64)
            return sdl.odeint(field, (big_q, big_p), grid, method=method, output="last")

        def step_qp(q, p, step=step, t0=t0):
            big_q, big_p = step(
                field.join(q, torch.full((len(q),), t0, dtype=f64)), field.join(p, torch.zeros(len(q), dtype=f64))
            )
            return big_q[:, :-1], big_p[:, :-1]

        extended_defect = symplecticity_defect(step, *points)
        qp_defect = symplecticity_defect(step_qp, points[0][:, :-1], points[1][:, :-1])
        lines.append(f"| {method} | {extended_defect:.2g} | {qp_defect:.2g} |")
    return lines


def _backward_growth(model: ODENet, x: torch.Tensor) -> float:
    """∫ν̄ dt = h Σ_k ν̄_k, ν̄_k = max μ₂(-J_k) of the backward (q, p) field over the states entering layer k."""
    dim = model.dim
    with torch.no_grad():
        qs, ps = model.trajectory(x)
    states = torch.cat([qs, ps], -1)[:-1]
    times = model.time_grid(x).unbind()
    fields = [
        lambda z, f=f, t=t: -torch.cat([f.velocity(t, z[:, dim:]), f.force(t, z[:, :dim])], -1)
        for f, t in zip(model.layer_fields(), times[:-1], strict=True)
    ]
    nu = per_layer_stability(fields, states).one_sided_lipschitz
    return float(model.step_size * nu.sum())


def _reconstruction(model: ODENet, x: torch.Tensor, out: Path, factors: tuple[int, ...]) -> list[str]:
    growth = _backward_growth(model, x)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = [
        f"∫ν̄ dt = {growth:.3g} (backward field), so exp(∫ν̄) = {math.exp(growth):.3g}",
        "",
        "| method | dtype | " + " | ".join(f"K = {15 * f}" for f in factors) + " |",
        "|---|---|" + "---:|" * len(factors),
    ]
    colours = {"verlet": "tab:blue", "yoshida4": "tab:green", "rk4": "tab:red"}
    for dtype, style in ((torch.float32, "--"), (torch.float64, "-")):
        for method in ("verlet", "yoshida4", "rk4"):
            errors = []
            for factor in factors:
                refined = model.refine(factor, "constant")
                net = ODENet(refined.field, method=method, t_final=model.t_final, in_dim=2).to(dtype)
                inputs = x.to(dtype)
                with torch.no_grad():
                    state = net.final_state(inputs)
                    back = net.inverse(state) if get(method).time_reversible else net.integrate_backward(state)
                    lifted = net.lift(inputs)
                errors.append(max(float((b - a).abs().max()) for a, b in zip(lifted, back, strict=True)))
            steps = [15 * f for f in factors]
            name = str(dtype).removeprefix("torch.")
            ax.loglog(steps, [max(e, 1e-18) for e in errors], style, marker="o", color=colours[method], label=f"{method}, {name}")
            lines.append(f"| {method} | {name} | " + " | ".join(f"{e:.2g}" for e in errors) + " |")
        eps = torch.finfo(dtype).eps
        ax.loglog(steps, [eps * k * math.exp(growth) for k in steps], ":", color="grey")
    ax.set(
        xlabel="layers K (same T, θ(t) piecewise constant)",
        ylabel="max |z^0 - lift(x)| after K steps forward and K back",
        title="reconstruction of the inputs; dotted: ε K exp(∫ν̄ dt)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reconstruction.png", dpi=120)
    plt.close(fig)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations and depths, for a smoke test")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--out", default="runs", help="parent folder of the new output folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = new_run_dir(args.out, "hamiltonian-networks")
    model, x, accuracy = _trained_network(8 if args.quick else args.iterations)
    lines = [f"Hamiltonian network, spiral2d, validation accuracy {accuracy:.3f}; {len(x)} validation points.", ""]
    lines += _extended(model, x[:16] if args.quick else x, out)
    lines += ["", *_reconstruction(model, x, out, (1, 4) if args.quick else (1, 2, 4, 8, 16, 32, 64))]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
