"""One resolved solve: method, state layout, gradient, state recovery and stage solver, checked together once.

``resolve_solve`` turns the choices of a solve into a ``Solve``, an immutable record, and raises
at once (naming the bad value and the valid choices) for any combination that cannot run:

- unknown method, gradient, output, adjoint method or recovery; stage-solver options for a method
  given as an ``Integrator`` instance, which carries its own solver;
- a splitting (partitioned) method without a pair state (q, p); a ``PairField`` without one;
- ``recovery="reverse"`` with a method that is not time-reversible (Φ_{-h} ≠ Φ_h⁻¹);
- ``solver="jacobi_newton"`` for a field that is not ``DimwiseDifferentiable``;
- ``Adjoint(method="torchdiffeq")`` with a layered field or a method torchdiffeq lacks.

What is known of the field enters as ``sdl.fields.Capabilities``: from an instance
(``Capabilities.of(field)``) or, before any exists, from its class (``Capabilities.of_type``), so a
config can refuse a combination before a run starts. ``sdl.odeint`` resolves its arguments on every
call; ``ODENet`` and ``CNF`` resolve once at construction and then call ``sdl.odeint.integrate``,
which runs a resolved solve with no further checks, no extra field evaluation and no host sync.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from .adjoint import _TORCHDIFFEQ_NAMES, TORCHDIFFEQ, Adjoint
from .fields import Capabilities
from .integrators import ImplicitRungeKutta, Integrator, JacobiNewtonSolver, get, names

__all__ = ["GRADIENTS", "OUTPUTS", "Solve", "TimeGrid", "UniformGrid", "resolve_solve"]

GRADIENTS = ("dto", "otd")
OUTPUTS = ("all", "last")
SOLVER_OPTIONS = tuple(inspect.signature(get).parameters)[1:]  # solver, tol, max_iter: get()'s keywords


@dataclass(frozen=True)
class Solve:
    """How to integrate, resolved and checked by ``resolve_solve`` (build it there, not by hand).

    Attributes:
        integrator: the one-step method.
        adjoint: None for gradient="dto" (autograd through the steps); the ``Adjoint`` of "otd".
        pair: the state is a pair (q, p).
        output: "all" (every state, time first) or "last" (the final state only).
        method_name: the method's registered name when it was given by name (torchdiffeq needs it).
    """

    integrator: Integrator
    adjoint: Adjoint | None
    pair: bool
    output: str = "all"
    method_name: str | None = None

    @property
    def flattens_pair(self) -> bool:
        """A pair state is joined into one vector, for every method that does not split it."""
        return self.pair and not self.integrator.partitioned


def resolve_solve(
    method: str | Integrator = "rk4",
    gradient: str | Adjoint = "dto",
    *,
    pair: bool | None = None,
    field: Capabilities | None = None,
    output: str = "all",
    adjoint_method: str | None = None,
    recovery: str | None = None,
    checkpoint_every: int | None = None,
    snapshots: int | None = None,
    **solver_options,
) -> Solve:
    """The ``Solve`` of these choices, or a ValueError/TypeError naming what cannot work.

    Args:
        method: a name from ``sdl.integrators.names()`` or an ``Integrator``.
        gradient: "dto", "otd", or an ``sdl.Adjoint``.
        pair: whether the state is a pair (q, p); None takes it from ``field.pair`` (a network's
            state is a pair exactly when its field is a ``PairField``).
        field: what the field declares, or None when nothing is known (then the checks that need
            it are left to the first step).
        output: "all" or "last".
        adjoint_method, recovery, checkpoint_every, snapshots: the ``Adjoint`` that gradient="otd" builds.
        **solver_options: ``solver``, ``tol``, ``max_iter`` of ``sdl.integrators.get`` (stage solver
            of implicit methods; explicit methods ignore them).

    Example (a config, before any field exists)::

        resolve_solve("verlet", "otd", field=Capabilities.of_type(HamiltonianField, layered=True), recovery="reverse")
    """
    integrator = _integrator(method, solver_options)
    adjoint = _adjoint(gradient, adjoint_method, recovery, checkpoint_every, snapshots)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; valid choices: {', '.join(OUTPUTS)}")
    if field is not None and not isinstance(field, Capabilities):
        raise TypeError(
            f"field must be sdl.fields.Capabilities (Capabilities.of(field) or Capabilities.of_type(cls, layered=...)); "
            f"got {type(field).__name__}"
        )
    if pair is None:
        if field is None:
            raise TypeError("pair=None takes the state layout from the field: pass field=Capabilities..., or pair=True/False")
        pair = field.pair
        if integrator.partitioned and not pair:
            raise ValueError(
                f"{method!r} is a splitting method for (q, p) states and needs a field on pairs such as HamiltonianField; "
                f"got {field.name} (a field on pairs subclasses sdl.PairField)"
            )
    _check_layout(integrator, pair, field)
    _check_stage_solver(integrator, field)
    _check_adjoint(adjoint, integrator, method, field)
    return Solve(integrator, adjoint, pair, output, method if isinstance(method, str) else None)


def _integrator(method: str | Integrator, options: dict) -> Integrator:
    unknown = sorted(set(options) - set(SOLVER_OPTIONS))
    if unknown:
        raise TypeError(
            f"got unexpected keyword argument(s) {', '.join(unknown)}; its extra options are the stage-solver "
            f"settings {', '.join(SOLVER_OPTIONS)}"
        )
    if not isinstance(method, Integrator):
        return get(method, **options)
    if options:
        raise TypeError(
            f"{', '.join(options)} configure a method given by name; got an {type(method).__name__} instance, "
            f"which carries its own solver"
        )
    return method


def _adjoint(gradient, adjoint_method, recovery, checkpoint_every, snapshots) -> Adjoint | None:
    if isinstance(gradient, Adjoint):
        return gradient
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}; valid choices: {', '.join(GRADIENTS)}, or an sdl.Adjoint")
    options = {
        "adjoint_method": adjoint_method,
        "recovery": recovery,
        "checkpoint_every": checkpoint_every,
        "snapshots": snapshots,
    }
    given = {k: v for k, v in options.items() if v is not None}
    if gradient == "dto":
        if given:
            raise ValueError(f"{', '.join(given)}: used only with gradient='otd'; got gradient='dto'")
        return None
    return Adjoint(**{k.removeprefix("adjoint_"): v for k, v in given.items()})


def _check_layout(integrator: Integrator, pair: bool, field: Capabilities | None) -> None:
    if integrator.partitioned and not pair:
        raise TypeError(f"{type(integrator).__name__} is partitioned and needs the state as a (q, p) tuple; got Tensor")
    if field is not None and field.pair and not pair:
        raise TypeError(f"{field.name} acts on pairs (q, p) (it is an sdl.PairField); got a single tensor state")


def _check_stage_solver(integrator: Integrator, field: Capabilities | None) -> None:
    """Jacobi–Newton needs D_dim f, which a field declares by being ``DimwiseDifferentiable``."""
    if not (isinstance(integrator, ImplicitRungeKutta) and isinstance(integrator.solver, JacobiNewtonSolver)):
        return
    if field is not None and not field.dimwise_differentiable:  # unknown fields: the first stage solve checks
        raise TypeError(
            f"solver='jacobi_newton' needs a field that is sdl.fields.DimwiseDifferentiable (such as a HollowNet); "
            f"got {field.name}; use solver='fixed_point' or 'newton'"
        )


def _check_adjoint(adjoint: Adjoint | None, integrator: Integrator, method, field: Capabilities | None) -> None:
    if adjoint is None:
        return
    if adjoint.recovery == "reverse" and not integrator.time_reversible:
        reversible = [n for n in names() if get(n).time_reversible]
        raise ValueError(
            f"recovery='reverse' needs a time-reversible method (Φ_-h = Φ_h⁻¹); "
            f"{method if isinstance(method, str) else type(integrator).__name__!r} is not; "
            f"reversible methods: {', '.join(reversible)}; "
            f"or use recovery='store', 'checkpoint' or 'binomial'"
        )
    if adjoint.method != TORCHDIFFEQ:
        return
    if not isinstance(method, str):
        raise ValueError("Adjoint(method='torchdiffeq') needs the forward method by name")
    if field is not None and field.layered:
        raise ValueError(
            "Adjoint(method='torchdiffeq') supports shared parameters only: torchdiffeq cannot tell which layer a "
            "stage at t_k + c h = t_{k+1} belongs to"
        )
    if method not in _TORCHDIFFEQ_NAMES:
        raise ValueError(f"torchdiffeq has no fixed-grid method equal to {method!r}; use one of: {', '.join(_TORCHDIFFEQ_NAMES)}")


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """The grid of a solve: t_0 … t_K as 0-d tensors in the state's dtype and device, and the step
    sizes h_k = t_{k+1} - t_k as Python floats, so that no step reads a tensor back to the host."""

    times: tuple[Tensor, ...]
    steps: tuple[float, ...]

    @classmethod
    def of(cls, t: Tensor) -> TimeGrid:
        """From a checked (K+1,) grid; reads it to the host once."""
        values = t.tolist()
        return cls(t.unbind(), tuple(b - a for a, b in itertools.pairwise(values)))

    @property
    def num_steps(self) -> int:
        return len(self.steps)


class UniformGrid:
    """t_k = start + k (end - start)/K, k = 0..K, fixed at construction (Python floats), and its
    ``TimeGrid`` per dtype and device, built at first use and kept: a network's grid is never
    rebuilt or read back per call."""

    def __init__(self, start: float, end: float, num_steps: int) -> None:
        values = torch.linspace(start, end, num_steps + 1, dtype=torch.float64).tolist()
        self.values = tuple(values)
        self.steps = tuple(b - a for a, b in itertools.pairwise(values))
        self._grids: dict[tuple[torch.dtype, torch.device], TimeGrid] = {}

    def on(self, dtype: torch.dtype, device: torch.device) -> TimeGrid:
        key = (dtype, torch.device(device))
        if key not in self._grids:
            with torch.inference_mode(False):  # kept for later calls, so never an inference tensor
                times = torch.tensor(self.values, dtype=dtype, device=device)
            self._grids[key] = TimeGrid(times.unbind(), self.steps)
        return self._grids[key]
