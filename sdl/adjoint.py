"""Optimise-then-discretise: gradients from the adjoint (costate) equation, solved backward.

For dz/dt = f(t, z; θ) and a loss L(z(t_0), …, z(t_K)), the costate λ solves

    dλ/dt = -(∂f/∂z)ᵀ λ  backward from λ(T) = ∂L/∂z(T),   ∂L/∂θ = ∫ (∂f/∂θ)ᵀ λ dt,

jumping by ∂L/∂z(t_k) at every output time. How the costate equation is discretised decides
how the gradient relates to the gradient of the discrete forward map (DTO, autograd):

- ``Adjoint()``, the default: the symplectic partner of the forward method (Hager 2000,
  Sanz-Serna 2016), derived from the method itself (``Integrator.adjoint_record``). Forward and
  adjoint together form a symplectic partitioned method, so the gradient *equals* the DTO
  gradient to round-off (to the stage-solver tolerance for implicit methods).
- ``Adjoint(method="rk4")`` (any registered explicit Runge–Kutta method): the continuous adjoint
  system (z, λ, θ̄) integrated backward by that method, one step per forward step, as black-box
  adjoints do. The gradient then differs from DTO's by O(h^p).
- ``Adjoint(method="torchdiffeq")``: ``torchdiffeq.odeint_adjoint`` on the same grid, for
  comparison (shared parameters only; needs torchdiffeq).

The backward sweep needs the forward states; ``recovery`` chooses how to get them back:
"store" keeps one state per step (no autograd graph), "checkpoint" keeps every m-th state and
recomputes the others segment by segment, "binomial" keeps at most c states (``snapshots``) and
recomputes the others by Griewank's binomial schedule (revolve; ``sdl._binomial``): O(K log K)
steps for O(log K) states, every method, "reverse" steps backward with -h from the final
state (time-reversible methods only; exact in exact arithmetic, round-off grows with K).
Every recovery gives the same gradient: each step is recomputed from the same state by the same
operations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import _binomial
from .fields import Layered, _has_layers
from .integrators import ExplicitRungeKutta, Integrator, get, names
from .integrators.base import vjp

__all__ = ["RECOVERIES", "Adjoint"]

RECOVERIES = ("store", "checkpoint", "binomial", "reverse")
TORCHDIFFEQ = "torchdiffeq"
# torchdiffeq's fixed-grid methods that are the same method as one of ours ("rk4" there is the 3/8 rule)
_TORCHDIFFEQ_NAMES = {"euler": "euler", "midpoint": "midpoint", "rk4_38": "rk4"}


def _explicit_rk_names() -> list[str]:
    return [n for n in names() if isinstance(get(n), ExplicitRungeKutta)]


@dataclass(frozen=True)
class Adjoint:
    """The choice of adjoint: ``method`` (None = exact symplectic partner, an explicit RK name,
    or "torchdiffeq"), state ``recovery`` ("store", "checkpoint", "binomial", "reverse"), the
    checkpoint spacing ``checkpoint_every`` (m) of "checkpoint", and the number of states
    ``snapshots`` (c, y_0 included) that "binomial" keeps: K steps then cost t(K, c) = r K - C(c + r, r - 1)
    steps recomputed without a graph, r the least integer with K ≤ C(c + r, c) (e.g. K = 1000:
    c = 32 recomputes about 1.4 K, c = 8 about 3.3 K, c = 1 K(K - 1)/2, c ≥ K none)."""

    method: str | None = None
    recovery: str = "store"
    checkpoint_every: int = 10
    snapshots: int = 32

    def __post_init__(self) -> None:
        valid = [*_explicit_rk_names(), TORCHDIFFEQ]
        if self.method is not None and self.method not in valid:
            raise ValueError(
                f"unknown adjoint method {self.method!r}; valid choices: None (the exact symplectic partner), {', '.join(valid)}"
            )
        if self.recovery not in RECOVERIES:
            raise ValueError(f"unknown recovery {self.recovery!r}; valid choices: {', '.join(RECOVERIES)}")
        for name in ("checkpoint_every", "snapshots"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.method == TORCHDIFFEQ and self.recovery != "store":
            raise ValueError(
                f"recovery={self.recovery!r} applies to sdl's adjoints; torchdiffeq's integrates the state backward "
                f"itself (use recovery='store', the default)"
            )


class _Parameters:
    """The tensors the adjoint returns gradients for, and step k's function of them.

    For a layered field these are its ``layer_parameters()`` (each (K, ...): step k uses slice k)
    followed by every other trainable parameter of the module, which all steps share (a global
    scale, say): the gradient of a shared tensor accumulates over the steps."""

    def __init__(self, func: Callable, adjoint_params, wrap: Callable[[Callable], Callable]) -> None:
        self.func, self.wrap = func, wrap
        self.layered: Layered | None = func if _has_layers(func) else None  # func, when it has per-step layers
        if adjoint_params is not None:
            if self.layered is not None:
                raise ValueError("adjoint_params cannot be given for a Layered field: its layer_parameters() are used")
            self.tensors = tuple(adjoint_params)
            self.per_layer = (False,) * len(self.tensors)
        elif self.layered is not None:
            per_layer = tuple(self.layered.layer_parameters())
            shared = tuple(p for p in self.layered.parameters() if p.requires_grad and not any(p is q for q in per_layer))
            self.tensors = per_layer + shared
            self.per_layer = (True,) * len(per_layer) + (False,) * len(shared)
        elif isinstance(func, nn.Module):
            self.tensors = tuple(p for p in func.parameters() if p.requires_grad)
            self.per_layer = (False,) * len(self.tensors)
        else:
            raise TypeError(
                f"gradient='otd' needs to know what func depends on: func is a {type(func).__name__}, not an "
                f"nn.Module; pass adjoint_params=(the tensors func uses), or adjoint_params=() if none"
            )

    def forward_functions(self, num_steps: int):
        funcs = self.layered.layers() if self.layered is not None else itertools.repeat(self.func, num_steps)
        return [self.wrap(f) for f in itertools.islice(funcs, num_steps)]

    def at(self, k: int) -> tuple[Callable, tuple[Tensor, ...]]:
        """(f_k, leaves): step k's function of fresh leaves for the per-layer slices θ^k, and of
        the shared tensors themselves (which a bound layer reads from its module)."""
        if self.layered is None:
            return self.wrap(self.func), self.tensors
        leaves = tuple(
            p[k].detach().requires_grad_() if layer else p for p, layer in zip(self.tensors, self.per_layer, strict=True)
        )
        return self.wrap(self.layered.bind(leaves[: self.per_layer.count(True)])), leaves

    def accumulate(self, totals: list[Tensor], k: int, grads) -> None:
        """Adds step k's gradients: into slice k of a per-layer tensor, into the whole of a shared one."""
        for total, grad, layer in zip(totals, grads, self.per_layer, strict=True):
            if layer:
                total[k] += grad
            else:
                total += grad


class _Problem:
    """Everything the autograd Function needs besides tensors."""

    def __init__(self, integrator, params: _Parameters, grid, adjoint: Adjoint, is_pair: bool, last_only: bool):
        """``grid``: an ``sdl.solve.TimeGrid`` (times as 0-d tensors, step sizes as floats). The
        choices were checked together by ``sdl.solve.resolve_solve`` (e.g. reverse recovery only
        for time-reversible methods)."""
        self.integrator, self.params, self.adjoint = integrator, params, adjoint
        self.is_pair, self.last_only = is_pair, last_only
        self.times, self.steps = grid.times, grid.steps
        self.continuous = get(adjoint.method) if adjoint.method is not None else None

    def step(self, func, k: int, y, backward: bool = False):
        h = self.steps[k]
        return (
            self.integrator.step(func, self.times[k + 1], -h, y) if backward else self.integrator.step(func, self.times[k], h, y)
        )

    def advance(self, funcs, start: int, stop: int, y):
        """y_stop from y_start, without a graph."""
        for k in range(start, stop):
            y = self.step(funcs[k], k, y)
        return y

    def backward_records(self, funcs, states: list, record: bool) -> Iterator[tuple]:
        """(k, y_k, y_{k+1}, pullback, leaves) for k = K-1, …, 0, the states recovered as
        ``recovery`` says. With ``record``, step k is recomputed once by
        ``Integrator.adjoint_record`` (a checkpointed segment is recomputed by these records
        themselves); without it, pullback and leaves are None."""
        num_steps = len(self.steps)
        recovery, m = self.adjoint.recovery, self.adjoint.checkpoint_every

        def recorded(k: int, y):
            if not record:
                return k, y, None, None, None
            func_k, leaves = self.params.at(k)
            y_next, pullback = self.integrator.adjoint_record(func_k, self.times[k], self.steps[k], y)
            return k, y, y_next, pullback, leaves

        if recovery == "store":
            for k in reversed(range(num_steps)):
                k, y, _, pullback, leaves = recorded(k, states[k])
                yield k, y, states[k + 1], pullback, leaves
        elif recovery == "binomial":
            snapshots = dict(zip(self.kept_positions(), states, strict=True))
            for kind, position, source in _binomial.backward_plan(num_steps, self.adjoint.snapshots):
                if kind == _binomial.DROP:
                    del snapshots[position]
                    continue
                y = self.advance(funcs, source, position, snapshots[source])
                if kind == _binomial.STORE:
                    snapshots[position] = y
                    continue
                k, y, y_next, pullback, leaves = recorded(position, y)
                yield k, y, (self.step(funcs[k], k, y) if y_next is None else y_next), pullback, leaves
        elif recovery == "reverse":
            y_next = states[-1]
            for k in reversed(range(num_steps)):
                y = self.step(funcs[k], k, y_next, backward=True)
                k, y, _, pullback, leaves = recorded(k, y)
                yield k, y, y_next, pullback, leaves
                y_next = y
        else:
            for start in reversed(range(0, num_steps, m)):
                segment, y = [], states[start // m]
                for k in range(start, min(start + m, num_steps)):
                    k, y, y_next, pullback, leaves = recorded(k, y)
                    if y_next is None:
                        y_next = self.step(funcs[k], k, y)
                    segment.append((k, y, y_next, pullback, leaves))
                    y = y_next
                yield from reversed(segment)

    def kept_positions(self) -> Sequence[int]:
        """The k of the states y_k that the backward sweep starts from, as ``recovery`` says."""
        num_steps, recovery = len(self.steps), self.adjoint.recovery
        if recovery == "binomial":
            return _binomial.first_sweep(num_steps, self.adjoint.snapshots)  # cached per (K, c), as the plan is
        if recovery == "checkpoint":
            return range(0, num_steps + 1, self.adjoint.checkpoint_every)
        return range(num_steps + 1) if recovery == "store" else (num_steps,)

    def stored(self, y0, funcs) -> tuple[list, list]:
        """Forward sweep without a graph: (the states recovery keeps, every output state)."""
        keep, keep_all = self.kept_positions(), not self.last_only
        outputs, kept, y = [y0], [y0] if 0 in keep else [], y0
        for k, func in enumerate(funcs):
            y = self.step(func, k, y)
            if keep_all:
                outputs.append(y)
            if k + 1 in keep:
                kept.append(y)
        if not keep_all:
            outputs.append(y)
        return kept, outputs


def _parts(y, is_pair: bool) -> tuple[Tensor, ...]:
    return tuple(y) if is_pair else (y,)


def _state(parts, is_pair: bool):
    return tuple(parts) if is_pair else parts[0]


class _OptimiseThenDiscretise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, problem: _Problem, num_state_parts: int, *inputs):
        y0 = _state(inputs[:num_state_parts], problem.is_pair)
        with torch.no_grad():
            funcs = problem.params.forward_functions(len(problem.steps))
            kept, outputs = problem.stored(y0, funcs)
        # saved, not kept on ctx: autograd frees them after a backward pass unless the caller retains
        # the graph (gradcheck, functional.jacobian, two losses), and then a second pass finds them
        ctx.save_for_backward(*(part for y in kept for part in _parts(y, problem.is_pair)))
        ctx.problem, ctx.num_state_parts = problem, num_state_parts
        if problem.last_only:
            return _parts(outputs[-1], problem.is_pair)
        return tuple(torch.stack(part) for part in zip(*(_parts(y, problem.is_pair) for y in outputs), strict=True))

    @staticmethod
    def backward(ctx, *grad_outputs):
        if torch.is_grad_enabled():  # the engine enables grad mode in backward exactly for create_graph=True
            raise RuntimeError(
                "gradient='otd' gives first derivatives only: its backward sweep builds no graph, so "
                "create_graph=True (double backward, Hessian-vector products) is not supported; use gradient='dto'"
            )
        problem = ctx.problem
        pair = problem.is_pair
        tensors = problem.params.tensors
        param_grads = [torch.zeros_like(p) for p in tensors]
        last = _state(tuple(g if problem.last_only else g[-1] for g in grad_outputs), pair)
        lam = last
        with torch.no_grad():
            funcs = problem.params.forward_functions(len(problem.steps))
            exact = problem.continuous is None
            saved, width = ctx.saved_tensors, 2 if pair else 1
            kept = [_state(saved[i : i + width], pair) for i in range(0, len(saved), width)]
            for k, _, y_next, pullback, leaves in problem.backward_records(funcs, kept, record=exact):
                if exact:
                    lam, grads = pullback(lam, leaves)
                else:
                    func_k, leaves = problem.params.at(k)
                    lam, grads = _continuous_adjoint_step(
                        problem.continuous, func_k, problem.times[k + 1], problem.steps[k], y_next, lam, leaves, pair
                    )
                problem.params.accumulate(param_grads, k, grads)
                if not problem.last_only:
                    lam = _state(tuple(lam_i + g[k] for lam_i, g in zip(_parts(lam, pair), grad_outputs, strict=True)), pair)
        return (None, None, *_parts(lam, pair), *param_grads)


def _continuous_adjoint_step(method, func, t_next, h, y_next, lam, leaves, is_pair):
    """One backward step of -h, by ``method``, of the continuous adjoint system

        dz/ds = f(s, z),   dλ/ds = -(∂f/∂z)ᵀ λ,   dg/ds = -(∂f/∂θ)ᵀ λ,

    from (z, λ, g)(t_{k+1}) = (z^{k+1}, λ^{k+1}, 0); returns (λ^k, g^k)."""
    z_parts, lam_parts = _parts(y_next, is_pair), _parts(lam, is_pair)
    shapes = [x.shape for x in (*z_parts, *lam_parts, *leaves)]
    sizes = [x.numel() for x in (*z_parts, *lam_parts, *leaves)]
    n = len(z_parts)

    def unpack(w):
        return [piece.view(shape) for piece, shape in zip(w.split(sizes), shapes, strict=True)]

    def augmented(s, w):
        pieces = unpack(w)
        with torch.enable_grad():
            z = [x.detach().requires_grad_() for x in pieces[:n]]
            out = func(s, _state(z, is_pair))
            outs = _parts(out, is_pair)
            grads = vjp(outs, (*z, *leaves), pieces[n : 2 * n])
        return torch.cat([x.reshape(-1) for x in (*[o.detach() for o in outs], *[-g for g in grads])])

    start = torch.cat([x.reshape(-1) for x in (*z_parts, *lam_parts, *[torch.zeros_like(p) for p in leaves])])
    pieces = unpack(method.step(augmented, t_next, -h, start))
    return _state(pieces[n : 2 * n], is_pair), tuple(pieces[2 * n :])


def adjoint_odeint(
    func: Callable, y0, grid, integrator: Integrator, adjoint: Adjoint, adjoint_params, wrap, is_pair: bool, last_only: bool
):
    """Run the forward sweep without a graph and attach the adjoint as the backward pass."""
    params = _Parameters(func, adjoint_params, wrap)
    problem = _Problem(integrator, params, grid, adjoint, is_pair, last_only)
    parts = _parts(y0, is_pair)
    out = _OptimiseThenDiscretise.apply(problem, len(parts), *parts, *params.tensors)
    return _state(out, is_pair)


def torchdiffeq_adjoint(func: Callable, y0, t: Tensor, integrator_name: str, adjoint_params, last_only: bool):
    """``torchdiffeq.odeint_adjoint`` on the same grid, for comparison. ``sdl.solve.resolve_solve``
    has checked the method name and that the field shares its parameters across steps."""
    try:
        import torchdiffeq
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("Adjoint(method='torchdiffeq') needs torchdiffeq: pip install torchdiffeq") from error
    if not isinstance(func, nn.Module):
        raise TypeError("torchdiffeq.odeint_adjoint needs func to be an nn.Module")
    kwargs = {} if adjoint_params is None else {"adjoint_params": tuple(adjoint_params)}
    out = torchdiffeq.odeint_adjoint(func, y0, t, method=_TORCHDIFFEQ_NAMES[integrator_name], **kwargs)
    if last_only:
        return tuple(x[-1] for x in out) if isinstance(out, tuple) else out[-1]
    return out
