"""Test problems with exact or high-accuracy reference solutions (float64)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp

from sdl import Separable


class Pendulum(Separable):
    """H(q, p) = p²/2 - cos q: dq/dt = p, dp/dt = -sin q (separable, nonlinear)."""

    def velocity(self, t, p):
        return p

    def force(self, t, q):
        return -torch.sin(q)

    @staticmethod
    def energy(q, p):
        return 0.5 * p**2 - torch.cos(q)


def pendulum_reference(q0: float, p0: float, t_end: float) -> tuple[float, float]:
    """(q, p)(t_end) by scipy's DOP853 at rtol = atol = 1e-13."""
    sol = solve_ivp(lambda t, y: [y[1], -np.sin(y[0])], (0.0, t_end), [q0, p0], method="DOP853", rtol=1e-13, atol=1e-13)
    return float(sol.y[0, -1]), float(sol.y[1, -1])


def logistic(t, y):
    """y' = y (1 - y); exact y(t) = 1 / (1 + (1/y0 - 1) e^{-t})."""
    return y * (1 - y)


def logistic_exact(y0: torch.Tensor, t: float) -> torch.Tensor:
    return 1 / (1 + (1 / y0 - 1) * np.exp(-t))


def cos_growth(t, y):
    """y' = y cos t (non-autonomous); exact y(t) = y0 exp(sin t)."""
    return y * torch.cos(t)


def cos_growth_exact(y0: torch.Tensor, t: float) -> torch.Tensor:
    return y0 * np.exp(np.sin(t))


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> torch.nn.Module:
    """``steps`` Adam steps on the cross-entropy of a classifier (to move weights away from their
    initialisation before a check); returns the model in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
