"""``odeint``: integrate dy/dt = func(t, y) over a time grid, one step per interval.

``odeint`` checks and resolves its arguments at every call; ``integrate`` runs a solve resolved
beforehand (``sdl.solve.resolve_solve``), as a model that integrates the same way at every call does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .adjoint import TORCHDIFFEQ, Adjoint, adjoint_odeint, torchdiffeq_adjoint
from .fields import Capabilities, DimwiseDifferentiable, _has_layers, layer_count
from .integrators import Integrator
from .solve import Solve, TimeGrid, resolve_solve

__all__ = ["integrate", "odeint"]


def odeint(
    func: Callable,
    y0: Tensor | tuple[Tensor, Tensor],
    t: Tensor,
    *,
    method: str | Integrator = "rk4",
    gradient: str | Adjoint = "dto",
    output: str = "all",
    adjoint_method: str | None = None,
    recovery: str | None = None,
    checkpoint_every: int | None = None,
    snapshots: int | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
    **options,
) -> Tensor | tuple[Tensor, Tensor]:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, taking one step of ``method`` per interval of ``t``.

    Step k goes from t[k] to t[k+1] with h = t[k+1] - t[k]; a residual network is this loop,
    one step per layer. If ``func`` is ``sdl.fields.Layered`` (parameters θ^k per step), all
    stages of step k use θ^k, and ``t`` must have ``func.num_layers + 1`` points.

    Args:
        func: ``func(t, y)`` with ``t`` a 0-d tensor. For a pair state y = (q, p) it returns
            (dq/dt, dp/dt).
        y0: initial state, a tensor of any shape (batch dimensions included), or a pair (q, p).
        t: (T,) strictly monotone (increasing or decreasing), finite time grid, T ≥ 2. Not
            differentiated.
        method: a name from ``sdl.integrators.names()`` or an ``Integrator``. Methods with
            ``partitioned = True`` (splittings such as "verlet") need a pair state; every
            other method flattens a pair into one vector and splits the result again.
        gradient: "dto" (discretise-then-optimise: autograd through the steps), "otd"
            (optimise-then-discretise: the adjoint equation solved backward, see
            ``sdl.adjoint``), or an ``sdl.Adjoint``. With the default adjoint, "otd" gives the
            DTO gradient to round-off while keeping no autograd graph of the steps.
        output: "all" (the state at every point of t) or "last" (only y(t[-1])).
        adjoint_method, recovery, checkpoint_every, snapshots: fields of the ``Adjoint`` that
            gradient="otd" builds (defaults: the exact partner, "store", 10, 32).
        adjoint_params: with "otd", the tensors a func that is not an ``nn.Module`` depends on.
        **options: passed to ``sdl.integrators.get`` (stage solver settings of implicit methods).

    Returns:
        With output="all", the states at every point of ``t``, time first: shape
        (T, *y0.shape), or a pair of such tensors for a pair state; with "last", y(t[-1]).
        dtype and device follow ``y0``.

    Every call resolves its choices (``sdl.solve.resolve_solve``), checks the state and the grid,
    and evaluates func once more to check its output; a model that integrates the same way at
    every call resolves once and calls ``integrate`` instead (``ODENet``, ``CNF``).
    """
    is_pair = isinstance(y0, (tuple, list))
    _check_state(y0, is_pair)
    solve = resolve_solve(
        method,
        gradient,
        pair=is_pair,
        field=Capabilities.of(func),
        output=output,
        adjoint_method=adjoint_method,
        recovery=recovery,
        checkpoint_every=checkpoint_every,
        snapshots=snapshots,
        **options,
    )
    if solve.adjoint is None and adjoint_params is not None:
        raise ValueError("adjoint_params: used only with gradient='otd'; got gradient='dto'")
    y0 = tuple(y0) if is_pair else y0
    t = _check_grid(t, y0[0] if isinstance(y0, tuple) else y0)
    _check_first_call(func, y0, t)
    return integrate(solve, func, y0, TimeGrid.of(t), adjoint_params)


def _check_first_call(func: Callable, y0, t: Tensor) -> None:
    """Evaluate the first step's field once at (t0, y0) and check what it returns.

    One extra evaluation per call is the price of errors that name the mismatch instead of
    failing deep inside a stepper. It runs in the caller's grad mode, so fields that take
    derivatives themselves (e.g. f = -∇U by autograd) work; a field with side effects (a
    counter, batch-norm statistics, random draws) sees one more call.
    """
    _check_layer_count(func, len(t) - 1)
    first = func.layer(0) if _has_layers(func) else func
    _check_output(first(t[0], y0), y0)


def _check_state(y0, is_pair: bool) -> None:
    parts = tuple(y0) if is_pair else (y0,)
    if is_pair and len(parts) != 2:
        raise ValueError(f"a tuple state must be a pair (q, p); got {len(parts)} elements")
    for part in parts:
        if not isinstance(part, Tensor):
            raise TypeError(f"the state must be a tensor or a pair of tensors; got {type(part).__name__}")
        if not part.is_floating_point():
            raise TypeError(f"the state must have a floating dtype; got {part.dtype}")
    if is_pair and (parts[0].dtype != parts[1].dtype or parts[0].device != parts[1].device):
        raise ValueError(
            f"q and p must share dtype and device; got {parts[0].dtype} on {parts[0].device} and "
            f"{parts[1].dtype} on {parts[1].device}"
        )


def _check_grid(t: Tensor, reference: Tensor) -> Tensor:
    t = torch.as_tensor(t)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D grid of at least 2 points; got shape {tuple(t.shape)}")
    t = t.detach().to(dtype=reference.dtype, device=reference.device)
    if not torch.isfinite(t).all():
        raise ValueError(f"t must be finite; got {t.tolist()}")
    dt = t.diff()
    if not ((dt > 0).all() or (dt < 0).all()):
        bad = int(torch.nonzero((dt <= 0) if dt[0] > 0 else (dt >= 0))[0])
        raise ValueError(
            f"t must be strictly increasing or strictly decreasing; t[{bad}] = {t[bad].item()!r} and "
            f"t[{bad + 1}] = {t[bad + 1].item()!r} break the order"
        )
    return t


def _check_output(out, y) -> None:
    """func's output at a state must be a tensor (or pair) of the state's shapes and dtypes."""
    is_pair = isinstance(y, tuple)
    if is_pair and not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"func must return a pair (dq/dt, dp/dt) for a pair state; got {type(out).__name__}")
    parts, outs = (y, out) if is_pair else ((y,), (out,))
    for name, state, deriv in zip(("q", "p") if is_pair else ("y",), parts, outs, strict=True):
        if not isinstance(deriv, Tensor):
            raise TypeError(f"func must return tensors; got {type(deriv).__name__} for {name}")
        if deriv.shape != state.shape or deriv.dtype != state.dtype:
            raise ValueError(
                f"func returned shape {tuple(deriv.shape)} and dtype {deriv.dtype} for state {name} of shape "
                f"{tuple(state.shape)} and dtype {state.dtype}; they must match"
            )


def integrate(solve: Solve, func: Callable, y0, grid: TimeGrid, adjoint_params: Sequence[Tensor] | None = None):
    """Run a solve resolved beforehand (``sdl.solve.resolve_solve``) of dy/dt = func(t, y) from y0
    over ``grid``, as ``odeint`` does but without its checks of the state, the grid and func's first
    output, and without the extra evaluation they cost: K steps of an s-stage explicit method
    evaluate the field s·K times, and no step reads a tensor back to the host.

    ``y0``: a tensor, or a pair (q, p) when ``solve.pair``, in the grid's dtype and device. Returns
    what ``odeint`` returns for ``solve.output``.
    """
    last_only = solve.output == "last"
    _check_layer_count(func, grid.num_steps)  # an int comparison: a layered field fixes K
    if solve.adjoint is not None and solve.adjoint.method == TORCHDIFFEQ:
        t = torch.stack(grid.times)
        assert solve.method_name is not None  # resolve_solve admits torchdiffeq only for a method given by name
        return torchdiffeq_adjoint(func, tuple(y0) if solve.pair else y0, t, solve.method_name, adjoint_params, last_only)

    flat = _FlatPair(*y0) if solve.flattens_pair else None
    state = flat.join(*y0) if flat is not None else (tuple(y0) if solve.pair else y0)
    wrap = flat.wrap if flat is not None else (lambda f: f)
    state_is_pair = solve.pair and flat is None
    if solve.adjoint is not None:
        ys = adjoint_odeint(func, state, grid, solve.integrator, solve.adjoint, adjoint_params, wrap, state_is_pair, last_only)
    else:
        funcs = func.layers() if _has_layers(func) else itertools.repeat(func, grid.num_steps)
        ys = _steps(solve.integrator, map(wrap, funcs), state, grid, last_only)
        ys = ys[-1] if last_only else (tuple(map(torch.stack, zip(*ys, strict=True))) if state_is_pair else torch.stack(ys))
    return flat.unjoin(ys) if flat is not None else ys


def _steps(integrator: Integrator, step_funcs, y0, grid: TimeGrid, last_only: bool) -> list:
    ys = [y0]
    y = y0
    for t_k, h_k, func in zip(grid.times[:-1], grid.steps, step_funcs, strict=True):  # K starts t_0 … t_{K-1}
        y = integrator.step(func, t_k, h_k, y)
        if not last_only:
            ys.append(y)
    return ys if not last_only else [y]


def _check_layer_count(func: Callable, num_steps: int) -> None:
    layers = layer_count(func)
    if layers is not None and layers != num_steps:
        raise ValueError(
            f"the field has parameters for {layers} layers but t has {num_steps} intervals; pass a grid of {layers + 1} points"
        )


class _FlatPair:
    """Flattens a pair (q, p) into one tensor for methods that do not split the state: (n_q + n_p,), or
    (B, n_q + n_p) when q and p share a leading batch axis B (and one has more axes), so that the stage
    solvers still see the batch (a CNF's (x (B, d), log p (B,)) becomes (B, d + 1))."""

    def __init__(self, q: Tensor, p: Tensor) -> None:
        self.batch_axes = 1 if min(q.ndim, p.ndim) >= 1 and max(q.ndim, p.ndim) >= 2 and len(q) == len(p) else 0
        self.shapes = (q.shape[self.batch_axes :], p.shape[self.batch_axes :])
        self.sizes = (self.shapes[0].numel(), self.shapes[1].numel())

    def join(self, q: Tensor, p: Tensor) -> Tensor:
        lead = q.shape[: self.batch_axes]  # the batch, whatever its size (a stage solver may pass one sample)
        return torch.cat([q.reshape(*lead, self.sizes[0]), p.reshape(*lead, self.sizes[1])], dim=-1)

    def unjoin(self, y: Tensor) -> tuple[Tensor, Tensor]:
        q, p = y.split(self.sizes, dim=-1)
        return q.reshape(y.shape[:-1] + self.shapes[0]), p.reshape(y.shape[:-1] + self.shapes[1])  # 0-d parts too

    def wrap(self, func: Callable) -> Callable:
        if isinstance(func, DimwiseDifferentiable):  # Jacobi–Newton needs the diagonal through the flattening
            return _FlatDimwiseField(self, func)
        return lambda t, y: self.join(*func(t, self.unjoin(y)))


class _FlatDimwiseField(DimwiseDifferentiable[Tensor]):
    """A ``DimwiseDifferentiable`` pair field seen through ``_FlatPair``: its value and its Jacobian
    diagonal ((D_q f_q, D_p f_p), the diagonal of the flat Jacobian) are both joined."""

    def __init__(self, flat: _FlatPair, func: DimwiseDifferentiable[tuple[Tensor, Tensor]]) -> None:
        self.flat, self.func = flat, func

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        return self.flat.join(*self.func(t, self.flat.unjoin(y)))

    def value_and_jacobian_diagonal(self, t: Tensor, y: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        value, diagonal = self.func.value_and_jacobian_diagonal(t, self.flat.unjoin(y), create_graph=create_graph)
        return self.flat.join(*value), self.flat.join(*diagonal)
