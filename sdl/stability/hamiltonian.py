"""Geometric diagnostics of one-step maps and trajectories of Hamiltonian systems.

A map Φ: (q, p) ↦ (q', p') on R^{2n} is symplectic iff DΦᵀ Ω DΦ = Ω with
Ω = [[0, I_n], [-I_n, 0]]; symplectic integrators keep the energy error bounded over
exponentially long times, non-symplectic ones (RK4) let it drift.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["energy_error", "symplecticity_defect"]

StepMap = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def symplecticity_defect(step_map: StepMap, q: Tensor, p: Tensor) -> float:
    """max over points and entries of |DΦᵀ Ω DΦ - Ω| for the one-step map Φ(q, p) = (q', p').

    DΦ is the (2n, 2n) Jacobian ∂(q', p')/∂(q, p) at each point, by reverse-mode autograd:
    one backward pass per output coordinate (2n in all, none per point). ``step_map`` must
    treat the rows of a batch independently (any integrator step does).

    Args:
        step_map: ``step_map(q, p) -> (q', p')``, e.g.
            ``lambda q, p: sdl.integrators.get("verlet").step(field, t, h, (q, p))``.
        q: (n,) one point, or (N, n) a batch of points.
        p: same shape as q.

    Returns:
        The defect, ≈ machine epsilon times a modest factor for a symplectic method.
    """
    if not isinstance(q, Tensor) or not isinstance(p, Tensor) or q.shape != p.shape or q.ndim not in (1, 2):
        raise ValueError(
            f"q and p must be tensors of the same shape (n,) or (N, n); got "
            f"{getattr(q, 'shape', type(q).__name__)} and {getattr(p, 'shape', type(p).__name__)}"
        )
    n = q.shape[-1]
    with torch.enable_grad():
        q0 = q.detach().clone().requires_grad_(True)
        p0 = p.detach().clone().requires_grad_(True)
        image = step_map(q0, p0)
        if not isinstance(image, (tuple, list)) or len(image) != 2:
            raise TypeError(f"step_map must return a pair (q', p'), got {type(image).__name__}")
        q1, p1 = image
        if q1.shape != q.shape or p1.shape != p.shape:
            raise ValueError(f"step_map changed the shape: {tuple(q.shape)} -> {tuple(q1.shape)}, {tuple(p1.shape)}")
        outputs = torch.cat([q1.reshape(-1, n), p1.reshape(-1, n)], dim=1)  # (N, 2n)
        rows = []
        for j in range(2 * n):
            dq, dp = torch.autograd.grad(
                outputs[:, j].sum(), (q0, p0), retain_graph=j < 2 * n - 1, allow_unused=True, materialize_grads=True
            )
            rows.append(torch.cat([dq.reshape(-1, n), dp.reshape(-1, n)], dim=1))
    jac = torch.stack(rows, dim=1)  # (N, 2n, 2n): jac[i, a, b] = ∂out_a/∂in_b
    eye = torch.eye(n, dtype=jac.dtype, device=jac.device)
    zero = torch.zeros_like(eye)
    omega = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
    return float((jac.mT @ omega @ jac - omega).abs().max())


def energy_error(hamiltonian: Callable[[Tensor, Tensor], Tensor], qs: Tensor, ps: Tensor) -> Tensor:
    """|H(q_k, p_k) - H(q_0, p_0)| along a trajectory stored time first.

    Args:
        hamiltonian: H(q, p), evaluated on the whole trajectory at once; it must keep the
            leading (time) dimension, e.g. ``lambda q, p: 0.5 * (p**2).sum(-1) - torch.cos(q).sum(-1)``.
        qs: (T, ...) positions, e.g. the first output of ``sdl.odeint`` on a pair state.
        ps: (T, ...) momenta.

    Returns:
        (T, ...) energy errors (the shape H returns), detached; the first entry is 0.
    """
    if qs.shape[:1] != ps.shape[:1] or qs.ndim == 0:
        raise ValueError(
            f"qs and ps must be time-first trajectories of equal length, got {tuple(qs.shape)} and {tuple(ps.shape)}"
        )
    with torch.no_grad():
        energies = hamiltonian(qs, ps)
    if not isinstance(energies, Tensor) or energies.ndim == 0 or energies.shape[0] != qs.shape[0]:
        raise ValueError(
            f"hamiltonian(qs, ps) must return one energy per time step (leading dimension {qs.shape[0]}), got "
            f"{tuple(energies.shape) if isinstance(energies, Tensor) else type(energies).__name__}"
        )
    return (energies - energies[:1]).abs()
