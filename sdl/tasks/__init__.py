"""Tasks: one module per learning problem, each a ``Task`` (the problem bound to its data) and a
``TaskConfig`` (its ``task:`` section, which names the schemas of ``data:`` and ``model:``).

The trainer and the experiment runner see only this interface. A new task is a new module that
defines both and an entry in ``TASKS``.
"""

from __future__ import annotations

from ..data import Dataset
from .base import LogDetBand, Regularizer, Smoothness, Task, TaskConfig, seeded
from .boltzmann import BoltzmannConfig, BoltzmannGenerator
from .classification import Classification, ClassificationConfig
from .density import DensityConfig, DensityEstimation
from .dynamics import DynamicsConfig, LearningDynamics

__all__ = [
    "TASKS",
    "BoltzmannConfig",
    "BoltzmannGenerator",
    "Classification",
    "ClassificationConfig",
    "DensityConfig",
    "DensityEstimation",
    "DynamicsConfig",
    "LearningDynamics",
    "LogDetBand",
    "Regularizer",
    "Smoothness",
    "Task",
    "TaskConfig",
    "as_task",
    "seeded",
]

TASKS: dict[str, type[TaskConfig]] = {
    config.kind: config for config in (ClassificationConfig, DensityConfig, DynamicsConfig, BoltzmannConfig)
}
_DATA_TASKS = {Dataset: Classification}  # data a task can be made from with a TrainConfig alone


def as_task(task_or_data, train_config) -> Task:
    """``task_or_data`` if it is a ``Task``; otherwise the task that takes such data, built from the
    objective ``train_config`` describes (a ``Dataset``: classification with its loss and smoothness)."""
    if isinstance(task_or_data, Task):
        return task_or_data
    for data_type, task in _DATA_TASKS.items():
        if isinstance(task_or_data, data_type):
            return task.from_train_config(task_or_data, train_config)
    accepted = ", ".join(t.__name__ for t in _DATA_TASKS)
    raise TypeError(f"Trainer needs an sdl.tasks.Task or data a task accepts ({accepted}); got {type(task_or_data).__name__}")
