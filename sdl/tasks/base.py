"""The task interface: everything that differs between learning problems, behind one small API.

A ``Task`` is a problem bound to its data. It draws training batches, gives the objective as named
terms (the data term and a list of ``Regularizer``s), evaluates metrics, supplies schedulers that
run after every optimizer step (e.g. the P4Inv merge scheduler), draws its plots and, where it has
one, its stability analysis. The ``Trainer`` sums the terms and steps; it never asks which task runs.

A ``TaskConfig`` is the ``task:`` section of a config: a frozen dataclass tagged by ``kind`` that
names the schemas of the ``data:`` and ``model:`` sections, checks what spans several sections,
and builds the task and its model. ``sdl.tasks.TASKS`` maps every kind to its config class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._validation import ConfigError

__all__ = ["LogDetBand", "Regularizer", "Smoothness", "Task", "TaskConfig", "check_solve", "seeded"]


class Regularizer(ABC):
    """A named, weighted term of the objective that depends on the model alone: ``term(model)``, shape ()."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, model: nn.Module) -> Tensor:
        """The weighted term, a 0-d tensor in the model's dtype and on its device."""


@dataclass(frozen=True)
class Smoothness(Regularizer):
    """λ R_h(θ), the roughness of the layer parameters of ``model.field`` integrated with step
    h = ``model.step_size`` (see ``sdl.models.parameter_smoothness`` for the two forms)."""

    weight: float
    form: str = "derivative"
    name: ClassVar[str] = "smoothness"

    def __call__(self, model: nn.Module) -> Tensor:
        from ..models.network import ODENet
        from ..models.vector_fields import parameter_smoothness

        if not isinstance(model, ODENet):
            raise TypeError(f"the smoothness regularizer needs an ODENet (its field and step size); got {type(model).__name__}")
        return self.weight * parameter_smoothness(model.field, model.step_size, self.form)


@dataclass(frozen=True)
class LogDetBand(Regularizer):
    """w Σ_layers [relu(low - L)² + relu(L - high)²], L = log|det| of each ``P4InvLinear`` in the model."""

    weight: float
    name: ClassVar[str] = "logdet_band"

    def __call__(self, model: nn.Module) -> Tensor:
        from ..models.p4inv import logdet_band_penalty

        return self.weight * logdet_band_penalty(model)


class Task(ABC):
    """A learning problem bound to its data.

    Attributes:
        regularizers: the terms added to the data loss, each logged under its ``name``.
        headline: the metrics a progress bar and a sweep table show (keys of ``evaluate``'s metrics).
    """

    regularizers: tuple[Regularizer, ...] = ()
    headline: ClassVar[tuple[str, ...]]

    @abstractmethod
    def batch(self, batch_size: int | None, generator: torch.Generator) -> Any:
        """One training batch (``None``: the task's full training set), drawn with ``generator`` only."""

    @abstractmethod
    def data_loss(self, model: nn.Module, batch: Any) -> Tensor:
        """The data term of the objective on ``batch``, a 0-d tensor with its autograd graph."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> tuple[Tensor, dict[str, float]]:
        """(the data term over the task's evaluation set, metrics by name); run without a graph.

        Must leave every training state (modules, random streams) as it found it.
        """

    @abstractmethod
    def reference(self) -> Tensor:
        """A tensor of the task's data: the model must share its dtype and device."""

    def schedulers(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> list:
        """Objects with ``step()``, ``state_dict()`` and ``load_state_dict()`` that run after every
        optimizer step, in order (e.g. ``P4InvScheduler``)."""
        return []

    def divergence_advice(self, model: nn.Module) -> str:
        """What to try when the loss becomes NaN, besides a lower learning rate."""
        return ""

    @abstractmethod
    def plots(self, out: Path, model: nn.Module, history: dict, names: Sequence[str], title: str, analysis: Any = None) -> None:
        """Draw the plots ``names`` (a subset of the task config's ``plot_names``) into the folder ``out``; ``analysis``
        is the config's analysis section, for tasks with a stability plot."""

    def analyse(self, model: nn.Module, analysis: Any) -> dict:
        """Stability diagnostics of the trained model, JSON-ready; tasks without any refuse."""
        raise ConfigError(f"{type(self).__name__} has no stability analysis")

    def check_model(self, model: nn.Module) -> None:
        """ValueError when the model's parameters and the task's data differ in dtype or device."""
        parameter = next(model.parameters(), None)
        data = self.reference()
        if parameter is not None and (data.dtype, data.device) != (parameter.dtype, parameter.device):
            raise ValueError(
                f"the data are {data.dtype} on {data.device} but the model's parameters are "
                f"{parameter.dtype} on {parameter.device}; make_dataset(..., dtype=, device=) or model.to() them alike"
            )


@dataclass(frozen=True)
class TaskConfig:
    """The ``task:`` section: ``kind`` picks the subclass, whose class attributes give the schemas of
    the ``data:`` and ``model:`` sections (frozen dataclasses) and the plots it can draw."""

    kind: str
    data_config: ClassVar[type]
    model_config: ClassVar[type]
    plot_names: ClassVar[tuple[str, ...]]
    default_plots: ClassVar[tuple[str, ...]]
    analysis_plots: ClassVar[tuple[str, ...]] = ()  # what ``sdl analyse`` draws when the run drew none

    def plots_for(self, config: Any) -> tuple[str, ...]:
        """The plots a run draws when its config names none."""
        return self.default_plots

    def title(self, config: Any) -> str:
        """A short description of the run for plot titles."""
        return config.name

    def check(self, config: Any) -> None:
        """ConfigError for a combination of sections that cannot run (each section is valid alone)."""

    def build(self, config: Any, data_dir: Path | None = None) -> tuple[Task, nn.Module]:
        """The task on its data and the initial model, on ``config.torch_device()`` in ``config.torch_dtype()``.
        ``data_dir``: a folder (a run's ``data/``) where a task that generates its data keeps them, to
        read them back instead of generating them again; None: nothing is written."""
        raise NotImplementedError


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """A random stream of its own for the block: torch's CPU generator seeded with ``seed`` inside and
    the caller's state restored after, so what the block draws (a model's initial parameters) depends
    on ``seed`` alone, whatever ran before in the process, and nothing after it sees a difference."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def check_solve(config: Any, field: Any, what: str) -> None:
    """ConfigError unless the config's integrator and gradient can integrate a field with the
    capabilities ``field`` (``sdl.fields.Capabilities``; ``what`` names it in the message)."""
    from ..solve import resolve_solve

    integrator = config.integrator
    try:
        resolve_solve(
            integrator.name,
            config.gradient.adjoint(),
            field=field,
            solver=integrator.solver,
            tol=integrator.tol,
            max_iter=integrator.max_iter,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"integrator and gradient do not fit {what}: {error}") from None
