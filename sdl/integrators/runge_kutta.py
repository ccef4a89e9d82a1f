"""One explicit and one implicit Runge–Kutta stepper; every tableau runs on one of them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..fields import DimwiseDifferentiable
from .base import ConvergenceError, Integrator, add_into, completed, vjp
from .tableau import ButcherTableau

__all__ = ["ExplicitRungeKutta", "FixedPointSolver", "ImplicitRungeKutta", "JacobiNewtonSolver", "NewtonSolver"]


@dataclass(frozen=True)
class ExplicitRungeKutta(Integrator):
    """Y_i = y + h Σ_{j<i} a_ij k_j,  k_i = f(t + c_i h, Y_i),  y_{n+1} = y + h Σ_i b_i k_i.

    Zero coefficients are dropped once, at construction, so a step does only the
    additions the tableau asks for. ``y`` may have any shape; ``func`` returns its shape.
    """

    tableau: ButcherTableau
    symplectic = False
    _stage_terms: tuple[tuple[tuple[int, float], ...], ...] = field(init=False, repr=False)
    _weight_terms: tuple[tuple[int, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tableau.explicit:
            raise ValueError("ExplicitRungeKutta needs a strictly lower triangular A; use ImplicitRungeKutta")
        a, b = self.tableau.a, self.tableau.b
        stage_terms = tuple(tuple((j, a[i][j]) for j in range(i) if a[i][j] != 0.0) for i in range(len(b)))
        object.__setattr__(self, "_stage_terms", stage_terms)
        object.__setattr__(self, "_weight_terms", tuple((i, bi) for i, bi in enumerate(b) if bi != 0.0))

    @property
    def order(self) -> int:
        return self.tableau.order

    def step(self, func: Callable, t: Tensor, h: float, y: Tensor) -> Tensor:
        k: list[Tensor] = []
        for c_i, terms in zip(self.tableau.c, self._stage_terms, strict=True):
            y_i = y
            for j, a_ij in terms:
                y_i = torch.add(y_i, k[j], alpha=h * a_ij)
            k.append(func(t + c_i * h if c_i else t, y_i))
        out = y
        for i, b_i in self._weight_terms:
            out = torch.add(out, k[i], alpha=h * b_i)
        return out


def _by_sample(x: Tensor, batched: bool) -> Tensor:
    """A stage tensor (s, *y.shape) viewed as (s, B, n): B samples of n = y[0].numel() numbers when
    ``batched``, else one system (s, 1, y.numel())."""
    return x.reshape(x.shape[0], x.shape[1] if batched else 1, -1)


def _sample_max(x: Tensor, batched: bool) -> Tensor:
    """max |x| over each sample's stages and components: (s, *y.shape) → (B,), or (1,) for one system."""
    return _by_sample(x, batched).abs().amax(-1).amax(0)  # faster than one amax over (0, 2)


@dataclass(frozen=True)
class _StageSolver:
    """Shared by the stage solvers: iterate K ← update(K) until, for every sample,
    max|ΔK| ≤ tol · magnitude, both over that sample's stages and components; the magnitude is
    max(scale, |K|) with the fixed scale chosen by the stage system (``_StageSystem.scale``: |y|/|h|
    forward, |h b λ| adjoint), so that the test is relative at every scale of y and of the loss.
    A sample that passes is frozen (no longer updated), and the loop stops when all have passed:
    one host synchronisation per iteration. ``tol=None`` asks for 100 ulp of the stage dtype
    (2e-14 in float64, 1e-5 in float32).

    ``per_sample`` (default True) assumes that a state y with y.ndim ≥ 2 is a batch along its leading
    axis and that the field acts on each sample alone: f(t, y)[b] depends on y[b] only (true of every
    sdl field, a CNF's flow field and any row-wise MLP). Each sample's stage system is then solved,
    tested and frozen on its own. Set it to False for a field that couples samples (batch statistics,
    attention across the batch): the whole state is then one system, as is any state with y.ndim < 2.
    """

    tol: float | None = None
    max_iter: int = 100
    per_sample: bool = True
    _name = "stage"
    _advice = "reduce the step size or raise max_iter"

    def __post_init__(self) -> None:
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be None (100 ulp of the state's dtype) or a finite number > 0, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {self.max_iter!r}")
        if not isinstance(self.per_sample, bool):
            raise ValueError(f"per_sample must be True or False, got {self.per_sample!r}")

    def _batched(self, k: Tensor) -> bool:
        """Whether axis 1 of K (s, *y.shape), the leading axis of y, holds independent samples."""
        return self.per_sample and k.ndim >= 3

    def _iterate(self, update: Callable[[Tensor], Tensor], g: Callable, k0: Tensor) -> Tensor:
        if k0.numel() == 0:  # an empty batch: nothing to solve
            return k0
        tol = 100 * torch.finfo(k0.dtype).eps if self.tol is None else self.tol
        batched = self._batched(k0)
        scale = g.scale(batched) if isinstance(g, _StageSystem) else _sample_max(k0, batched)  # (B,)
        active = torch.ones_like(scale, dtype=torch.bool)
        remaining = active.numel()
        k = k0
        for _ in range(self.max_iter):
            k_new = update(k)
            change = _sample_max(k_new - k, batched)
            if remaining < active.numel():  # frozen samples keep their K, and the graph that converged them
                k_new = torch.where(active.view(-1, *[1] * (k.ndim - 2)) if batched else active.view(()), k_new, k)
            k = k_new
            magnitude = torch.maximum(scale, _sample_max(k, batched))
            active = active & ~(change <= tol * magnitude)  # not `change >`: a NaN change stays active
            remaining = int(active.count_nonzero())  # the iteration's one host synchronisation
            if remaining == 0:
                return k
        worst = int(torch.argmax(torch.where(active, change / magnitude, -math.inf)))
        unconverged = f"{remaining} of {active.numel()} samples" if batched else "the state"
        raise ConvergenceError(
            f"{self._name} stage iteration did not reach tol={tol:g} in max_iter={self.max_iter} iterations for "
            f"{unconverged} (worst last change {change[worst].item():.3g}, relative to {magnitude[worst].item():.3g}; "
            f"{k.dtype} resolves about {torch.finfo(k.dtype).eps:.1g}); {self._advice}"
        )


@dataclass(frozen=True)
class FixedPointSolver(_StageSolver):
    """Solves K = G(K) by K ← G(K).

    Converges when G is a contraction, i.e. for h·Lip(f)·‖A‖ < 1; non-stiff problems only.
    """

    _name = "fixed-point"
    _advice = "reduce the step size, raise max_iter, or use a Newton solver"

    def solve(self, g: Callable[[Tensor], Tensor], k0: Tensor) -> Tensor:
        return self._iterate(g, g, k0)


@dataclass(frozen=True)
class NewtonSolver(_StageSolver):
    """Solves K = G(K) by Newton's method on R(K) = K - G(K):  K ← K - M⁻¹ R(K),  M = I - ∂G/∂K.

    M is assembled from the field Jacobians J_i = ∂f/∂y(t_i, Y_i), each formed by ``torch.func.jacrev``:
    forward stages M[i, j] = δ_ij I - h a_ij J_i, adjoint stages M[i, j] = δ_ij I - h a_ji J_jᵀ.
    With ``per_sample`` (the default, see ``_StageSolver``) and y: (B, ...), each sample has its own
    (s·n)×(s·n) system, n = y[0].numel(): its blocks of J_i by n vector-Jacobian products through the
    batched field, and one batched solve, O(B (s·n)³). With ``per_sample=False``, or y.ndim < 2,
    M is the dense (s·N)×(s·N) matrix of the whole state, N = y.numel(): O((s·N)³), for small or
    coupled systems only. Either way this is for stiff systems, where fixed-point iteration fails.
    The field must work under ``torch.func`` transforms: no writes to tensors it closes over, no
    ``.item()`` or data-dependent Python branches.
    """

    max_iter: int = 20
    _name = "Newton"

    def solve(self, g: Callable[[Tensor], Tensor], k0: Tensor) -> Tensor:
        if not isinstance(g, _StageSystem):
            raise TypeError(
                f"NewtonSolver solves the stage equations of ImplicitRungeKutta and their adjoints; got a {type(g).__name__}"
            )
        batched = self._batched(k0)

        def update(k: Tensor) -> Tensor:
            residual = _by_sample(k - g(k), batched).transpose(0, 1)  # (B, s, n)
            # A detached M keeps gradients exact: at the solution, one Newton update
            # differentiates to the implicit-function derivative -M⁻¹ ∂R/∂θ.
            matrix = g.newton_matrix(k, batched)  # (B, s·n, s·n)
            step = torch.linalg.solve(matrix, residual.reshape(*matrix.shape[:2], 1)).reshape(residual.shape)
            return k - step.transpose(0, 1).reshape(k.shape)

        return self._iterate(update, g, k0)


@dataclass(frozen=True)
class JacobiNewtonSolver(_StageSolver):
    """Solves K = G(K) by Newton's method with the Jacobian replaced by its dimension-wise part.

    R(K) = K - G(K). Per state component m, M_m = I_s - B_m with B_m[i, j] = h a_ij [D_dim f(Y_i)]_m
    (the entries of ∂R/∂K that couple component m to itself, across the s stages), and

        K_m ← K_m - M_m^{-1} R_m(K),   i.e. for one stage (backward Euler)  K ← K - R / (1 - h a D_dim f).

    This is Jacobi–Newton x ← x - f(x)/D_dim f(x) (Chen & Duvenaud 2019) on R. It needs a field that
    is ``sdl.fields.DimwiseDifferentiable``: each iteration costs one field evaluation per stage plus
    one backward pass, independent of the state size, and no linear algebra beyond s×s. It converges
    for stiffness on the diagonal of ∂f/∂y, where fixed-point iteration fails, at a linear rate set by
    the off-diagonal (hollow) part. Gradients follow the iterations with M held fixed, so they
    converge to the exact derivative of the implicit step with the iteration. The adjoint stage
    system (``gradient="otd"``) is linear with the transposed blocks, B̄_m[i, j] = h a_ji [D_dim f(Y_j)]_m,
    and is solved by the same update (a block-Jacobi iteration).
    """

    _name = "Jacobi–Newton"
    _advice = (
        "reduce the step size, raise max_iter, or use the dense NewtonSolver when the off-diagonal part of the Jacobian is stiff"
    )

    def solve(self, g: Callable[[Tensor], Tensor], k0: Tensor) -> Tensor:
        if not isinstance(g, _StageSystem):
            raise TypeError(
                f"JacobiNewtonSolver solves the stage equations of ImplicitRungeKutta and their adjoints; "
                f"got a {type(g).__name__}"
            )

        def update(k: Tensor) -> Tensor:
            value, blocks = g.value_and_dimwise_blocks(k)
            residual = k - value
            if k.shape[0] == 1:
                return k - residual / (1.0 - blocks[..., 0, 0]).unsqueeze(0)
            eye = torch.eye(k.shape[0], dtype=k.dtype, device=k.device)
            rhs = residual.movedim(0, -1).unsqueeze(-1)  # (*y.shape, s, 1)
            return k - torch.linalg.solve(eye - blocks, rhs).squeeze(-1).movedim(-1, 0)

        return self._iterate(update, g, k0)


@dataclass(frozen=True)
class ImplicitRungeKutta(Integrator):
    """k_i = f(t + c_i h, y + h Σ_j a_ij k_j) for all i at once; y_{n+1} = y + h Σ_i b_i k_i.

    The stage vector K = (k_1, …, k_s), shape (s, *y.shape), solves K = G(K) with
    ``solver`` (fixed-point iteration by default; ``NewtonSolver``; ``JacobiNewtonSolver`` for
    ``DimwiseDifferentiable`` fields), started from k_i = f(t, y). For y: (B, ...) the solvers
    treat each sample y[b] as its own system (see ``_StageSolver.per_sample``).
    Symplectic exactly when the tableau satisfies Cooper's condition (Gauss–Legendre does).
    Gradients through the steps follow the solver's iterations; they match the exact
    derivative of the implicit step to about the solver tolerance.
    """

    tableau: ButcherTableau
    solver: FixedPointSolver | NewtonSolver | JacobiNewtonSolver = FixedPointSolver()

    @property
    def order(self) -> int:
        return self.tableau.order

    @property
    def symplectic(self) -> bool:
        return self.tableau.symplectic

    @property
    def time_reversible(self) -> bool:
        return self.tableau.symmetric

    def step(self, func: Callable, t: Tensor, h: float, y: Tensor) -> Tensor:
        stage_map = self._stage_map(func, t, h, y)
        b = torch.tensor(self.tableau.b, dtype=y.dtype, device=y.device)
        return y + h * torch.tensordot(b, self._solve_stages(stage_map, func, t, y), dims=1)

    def _stage_map(self, func: Callable, t: Tensor, h: float, y: Tensor) -> _StageMap:
        a = torch.tensor(self.tableau.a, dtype=y.dtype, device=y.device)
        return _StageMap(func, tuple(t + c_i * h for c_i in self.tableau.c), y, h, a)

    def _solve_stages(self, stage_map: _StageMap, func: Callable, t: Tensor, y: Tensor) -> Tensor:
        """K (s, *y.shape), started from k_i = f(t, y)."""
        k0 = func(t, y).unsqueeze(0).expand(self.tableau.stages, *y.shape)
        return self.solver.solve(stage_map, k0)

    def adjoint_record(self, func, t, h, y):
        """The stage adjoints solve the linear system (with the forward stages Z_j fixed)

            k̄_i = h b_i λ_{n+1} + h Σ_j a_ji J(Z_j)ᵀ k̄_j,

        by the same stage solver as the forward step; then λ_n = λ_{n+1} + Σ_j J(Z_j)ᵀ k̄_j and
        θ̄ = Σ_j (∂f/∂θ(Z_j))ᵀ k̄_j. Exact up to the solver tolerance.
        """
        b = torch.tensor(self.tableau.b, dtype=y.dtype, device=y.device)
        with torch.no_grad():
            stage_map = self._stage_map(func, t, h, y)
            k = self._solve_stages(stage_map, func, t, y)
            stages = stage_map.stage_states(k)
            y_next = y + h * torch.tensordot(b, k, dims=1)
        a, times = stage_map.a, stage_map.times

        def pullback(adjoint, params):
            weighted_adjoint = h * b.view(-1, *[1] * y.ndim) * adjoint
            adjoint_map = _AdjointStageMap(func, times, stages, h, a, weighted_adjoint)
            k_bar = self.solver.solve(adjoint_map, weighted_adjoint)
            lam = adjoint
            param_adjoints: list[Tensor | None] = [None] * len(params)
            for out_i, z_i, k_i in zip(adjoint_map.outputs, adjoint_map.inputs, k_bar, strict=True):  # the graphs' last use
                z_bar, *theta_bar = vjp(out_i, (z_i, *params), k_i)
                lam = lam + z_bar
                add_into(param_adjoints, theta_bar)
            return lam, completed(params, param_adjoints)

        return y_next, pullback


def _dimwise_diagonals(func: Callable, times, states: Tensor) -> tuple[Tensor, Tensor]:
    """(f(t_i, Y_i) stacked, D_dim f(t_i, Y_i) stacked and detached), both (s, *y.shape)."""
    if not isinstance(func, DimwiseDifferentiable):
        raise TypeError(
            f"Jacobi–Newton needs a field that is sdl.fields.DimwiseDifferentiable (such as a HollowNet); "
            f"got {type(func).__name__}"
        )
    pairs = [func.value_and_jacobian_diagonal(t_i, y_i) for t_i, y_i in zip(times, states, strict=True)]
    return torch.stack([v for v, _ in pairs]), torch.stack([d for _, d in pairs]).detach()


def _field_jacobians(func: Callable, times, states: Tensor, batched: bool) -> Tensor:
    """J_i = ∂f/∂y(t_i, Y_i) for every stage, detached, from states Y (s, *y.shape): (B, s, n, n), one n×n
    block per sample when ``batched`` (n = y[0].numel()), else (1, s, N, N) for the whole state (N = y.numel()).

    The blocks are the Jacobian of Σ_b f(t_i, y)[b] with respect to y: when f acts on each sample alone,
    its slice at sample b is ∂f[b]/∂y[b]. That is n vector-Jacobian products through the field called on the
    whole batch, so fields that close over per-sample tensors (a CNF's Hutchinson probes) work unchanged.
    """
    jacobians = []
    for t_i, y_i in zip(times, states.detach(), strict=True):
        if batched:
            jacobian = torch.func.jacrev(lambda y, t=t_i: func(t, y).sum(0))(y_i)  # (*y[0].shape, *y.shape)
            jacobian = jacobian.reshape(-1, len(y_i), y_i[0].numel()).transpose(0, 1)
        else:
            jacobian = torch.func.jacrev(lambda y, t=t_i: func(t, y))(y_i).reshape(1, y_i.numel(), y_i.numel())
        jacobians.append(jacobian.detach())
    return torch.stack(jacobians, dim=1)


def _newton_matrix(jacobians: Tensor, h: float, a: Tensor, adjoint: bool = False) -> Tensor:
    """M = I - ∂G/∂K: jacobians J (B, s, n, n), a (s, s) → (B, s·n, s·n), rows and columns ordered
    (stage, component). ∂G_i/∂K_j = h a_ij J_i for the stage equations, h a_ji J_jᵀ for their adjoint."""
    batch, s, n, _ = jacobians.shape
    pattern = "ji,bjqp->bipjq" if adjoint else "ij,bipq->bipjq"
    coupling = h * torch.einsum(pattern, a, jacobians).reshape(batch, s * n, s * n)
    return torch.eye(s * n, dtype=coupling.dtype, device=coupling.device) - coupling


class _StageSystem:
    """The fixed-point form K = G(K) of a set of coupled stage equations, K: (s, *y.shape). Any stage solver
    calls it and measures changes of K per sample against ``scale``; ``newton_matrix`` gives what
    NewtonSolver needs, ``value_and_dimwise_blocks`` what Jacobi–Newton needs when f is
    ``DimwiseDifferentiable``: G(K) and, for every state component m, the s×s block of ∂G/∂K that couples
    component m of all stages to itself, shaped (*y.shape, s, s) and without a graph."""

    def scale(self, batched: bool) -> Tensor:
        """The fixed part of the magnitude a change of K is measured against, per sample: (B,) (or (1,))."""
        raise NotImplementedError

    def newton_matrix(self, k: Tensor, batched: bool) -> Tensor:
        """I - ∂G/∂K per sample, (B, s·n, s·n) (or (1, s·N, s·N)), without a graph."""
        raise NotImplementedError

    def value_and_dimwise_blocks(self, k: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class _StageMap(_StageSystem):
    """G(K)_i = f(t_i, Y_i),  Y_i = y + h Σ_j a_ij K_j;  K, G(K): (s, *y.shape)."""

    func: Callable
    times: tuple[Tensor, ...]
    y: Tensor
    h: float
    a: Tensor  # (s, s)

    def stage_states(self, k: Tensor) -> Tensor:
        """Y (s, *y.shape)."""
        return self.y + self.h * torch.tensordot(self.a, k, dims=1)

    def __call__(self, k: Tensor) -> Tensor:
        return torch.stack([self.func(t_i, y_i) for t_i, y_i in zip(self.times, self.stage_states(k), strict=True)])

    def scale(self, batched: bool) -> Tensor:
        """|y|/|h| per sample: a change ΔK moves the stage states by h A ΔK, so the test, against
        max(|y|/|h|, |K|), bounds that move relative to max(|y|, |h K|), whatever the scale of y."""
        return _sample_max(self.y.unsqueeze(0), batched) / abs(self.h)

    def newton_matrix(self, k: Tensor, batched: bool) -> Tensor:
        """M[i, j] = δ_ij I - h a_ij J(t_i, Y_i)."""
        return _newton_matrix(_field_jacobians(self.func, self.times, self.stage_states(k), batched), self.h, self.a)

    def value_and_dimwise_blocks(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """B[..., i, j] = ∂G_{i,m}/∂K_{j,m} = h a_ij [D_dim f(t_i, Y_i)]_m: row i scaled by D(Y_i)."""
        value, diagonal = _dimwise_diagonals(self.func, self.times, self.stage_states(k))
        return value, self.h * self.a * diagonal.movedim(0, -1).unsqueeze(-1)


class _AdjointStageMap(_StageSystem):
    """The adjoint stage equations of ``ImplicitRungeKutta.adjoint_record``, with the stages Z fixed:

        G(K̄)_i = W_i + h Σ_j a_ji J(t_j, Z_j)ᵀ K̄_j,   W_i = h b_i λ_{n+1};   K̄, W: (s, *y.shape).

    Linear in K̄; its blocks are the forward ones transposed: M[i, j] = δ_ij I - h a_ji J(t_j, Z_j)ᵀ for Newton,
    B[..., i, j] = h a_ji [D_dim f(t_j, Z_j)]_m for Jacobi–Newton; both are formed once per solve.
    The graph of each f(t_j, Z_j) is built once and pulled back through at every iteration.
    """

    def __init__(self, func: Callable, times, stages: Tensor, h: float, a: Tensor, weighted_adjoint: Tensor) -> None:
        self.func, self.times, self.stages, self.h, self.a, self.offset = func, times, stages, h, a, weighted_adjoint
        with torch.enable_grad():
            self.inputs = [z.detach().requires_grad_() for z in stages]
            self.outputs = [func(t_i, z_i) for t_i, z_i in zip(times, self.inputs, strict=True)]
        self._blocks: Tensor | None = None
        self._newton: Tensor | None = None

    def __call__(self, k_bar: Tensor) -> Tensor:
        pulled = torch.stack(
            [vjp(out, (z,), k_i, retain_graph=True)[0] for out, z, k_i in zip(self.outputs, self.inputs, k_bar, strict=True)]
        )
        return self.offset + self.h * torch.tensordot(self.a.T, pulled, dims=1)

    def scale(self, batched: bool) -> Tensor:
        """|h b λ_{n+1}| per sample."""
        return _sample_max(self.offset, batched)

    def newton_matrix(self, k_bar: Tensor, batched: bool) -> Tensor:
        if self._newton is None:  # the stages are fixed, so M is too
            jacobians = _field_jacobians(self.func, self.times, self.stages, batched)
            self._newton = _newton_matrix(jacobians, self.h, self.a, adjoint=True)
        return self._newton

    def value_and_dimwise_blocks(self, k_bar: Tensor) -> tuple[Tensor, Tensor]:
        if self._blocks is None:  # the stages are fixed, so the blocks are too
            _, diagonal = _dimwise_diagonals(self.func, self.times, self.stages)
            self._blocks = self.h * self.a.T * diagonal.movedim(0, -1).unsqueeze(-2)
        return self(k_bar), self._blocks
