"""Classification with ODE-networks: labelled points in, logits out (``task: classification``).

Objective (Benning et al. 2019): E(θ) = (1/N) Σ_n L(η(z_n^K), y_n) + λ R_h(θ), with L the squared or
the cross-entropy loss (``train.loss``) and R_h the smoothness of θ over the layers (``train.smoothness``).
Metrics: accuracy on the training and the validation set. Plots: training curves, decision
boundary, the points layer by layer, θ^k against k, and per-layer stability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .. import plots
from .._validation import ConfigError, check_at_least, check_choice, check_finite
from ..data import Dataset, dataset_classes, dataset_features, dataset_names, make_dataset
from ..data.toy import _check_arguments as _check_data_arguments
from ..fields import AnalyticJacobian, Capabilities, PairField
from ..integrators import get
from ..losses import accuracy, loss_value
from ..models import AntisymmetricField, GradientFlowField, HamiltonianField, ODENet, ResNetField, SwitchingField
from ..models.activations import activation_names
from ..models.constrained import CONSTRAINTS, NORMS
from ..models.network import HEADS, LIFTS, MOMENTA
from ..models.vector_fields import KINETIC_MODELS
from ..stability import per_layer_stability
from .base import Regularizer, Smoothness, Task, TaskConfig, check_solve, seeded

__all__ = ["FIELDS", "Classification", "ClassificationConfig", "ClassificationData", "ClassificationModel"]


@dataclass(frozen=True)
class _FieldKind:
    description: str
    make: Callable[[Any, int | None], nn.Module]  # (model section, layers or None) -> field
    cls: type


FIELDS: dict[str, _FieldKind] = {
    "resnet": _FieldKind(
        "σ(A z + b): the residual network field",
        lambda m, layers: ResNetField(m.width, m.activation, num_layers=layers, init_scale=m.init_scale),
        ResNetField,
    ),
    "gradient_flow": _FieldKind(
        "-Aᵀσ(A z + b): a gradient flow, contractive (ν ≤ 0)",
        lambda m, layers: GradientFlowField(m.width, m.activation, num_layers=layers, init_scale=m.init_scale),
        GradientFlowField,
    ),
    "hamiltonian": _FieldKind(
        "(q, p) with H = T(p) + V(q): separable Hamiltonian, for symplectic methods",
        lambda m, layers: HamiltonianField(m.width, m.activation, num_layers=layers, kinetic=m.kinetic, init_scale=m.init_scale),
        HamiltonianField,
    ),
    "antisymmetric": _FieldKind(
        "σ((W - Wᵀ - γI) z + b): antisymmetric, a conservative flow for small γ (model.gamma)",
        lambda m, layers: AntisymmetricField(m.width, m.activation, num_layers=layers, gamma=m.gamma, init_scale=m.init_scale),
        AntisymmetricField,
    ),
    "switching": _FieldKind(
        "expansive σ(A z + b) and contractive -Aᵀσ(A z + b) layers in turn (model.constraint: switching)",
        lambda m, layers: SwitchingField(m.width, m.activation, num_layers=layers, init_scale=m.init_scale),
        SwitchingField,
    ),
}
PLOTS = ("history", "decision_boundary", "transitions", "parameters", "layer_stability")
_PLANE_PLOTS = ("decision_boundary", "transitions")  # they draw points of the plane


@dataclass(frozen=True)
class ClassificationData:
    """The ``data:`` section: a labelled set from ``sdl.data.make_dataset`` (``n``: None takes the
    set's default, 1000 points per split of a toy set, the whole training split of a real one)."""

    name: str = "spiral2d"
    n: int | None = None
    noise: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("data.name", self.name, dataset_names())
        try:  # make_dataset's own checks, now rather than when the run starts
            _check_data_arguments(self.name, self.n, self.noise, self.seed, torch.float32)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"data.{error}") from None


@dataclass(frozen=True)
class ClassificationModel:
    """The ``model:`` section: an ``ODENet`` with a field from ``FIELDS``, its lift and head, and
    optionally a constraint from ``sdl.models.CONSTRAINTS`` that makes every step non-expansive."""

    field: str = "resnet"
    width: int = 2
    activation: str = "tanh"
    layered: bool = True
    steps: int = 15
    t_final: float = 1.5
    lift: str = "pad"
    kinetic: str = "quadratic"
    momentum: str = "zero"
    init_scale: float = 1.0
    seed: int = 0
    head: str = "linear"
    constraint: str | None = None
    constraint_norm: str = "exact"
    gamma: float = 1e-4

    def __post_init__(self) -> None:
        check_choice("model.field", self.field, FIELDS)
        check_choice("model.head", self.head, HEADS)
        if self.constraint is not None:
            check_choice("model.constraint", self.constraint, CONSTRAINTS)
        check_choice("model.constraint_norm", self.constraint_norm, NORMS)
        check_finite("model.gamma", self.gamma, "≥ 0")
        check_choice("model.activation", self.activation, activation_names())
        check_choice("model.lift", self.lift, LIFTS)
        check_choice("model.kinetic", self.kinetic, KINETIC_MODELS)
        check_choice("model.momentum", self.momentum, MOMENTA)
        check_at_least("model.width", self.width, 1)
        check_at_least("model.steps", self.steps, 1)
        check_finite("model.t_final", self.t_final, "> 0")
        check_finite("model.init_scale", self.init_scale, "≥ 0")


@dataclass(frozen=True)
class ClassificationConfig(TaskConfig):
    """``task: classification``: an ODE-network classifier of a labelled data set."""

    kind: str = "classification"
    data_config: ClassVar[type] = ClassificationData
    model_config: ClassVar[type] = ClassificationModel
    plot_names: ClassVar[tuple[str, ...]] = PLOTS
    default_plots: ClassVar[tuple[str, ...]] = PLOTS
    analysis_plots: ClassVar[tuple[str, ...]] = ("layer_stability",)

    def plots_for(self, config) -> tuple[str, ...]:
        if dataset_features(config.data.name) == 2:
            return PLOTS
        return tuple(plot for plot in PLOTS if plot not in _PLANE_PLOTS)

    def title(self, config) -> str:
        return f"{config.data.name}, {config.model.field}, {config.integrator.name}"

    def check(self, config) -> None:
        data, model = config.data, config.model
        features = dataset_features(data.name)
        plane = [plot for plot in config.plots if plot in _PLANE_PLOTS]
        if features != 2 and plane:
            raise ConfigError(
                f"plots: {', '.join(plane)} draw points of the plane, and {data.name} has {features} features; leave them out"
            )
        if model.lift == "pad" and model.width < features:
            raise ConfigError(
                f"model.width: {model.width!r} is less than the data's dimension {features}, which model.lift: pad "
                f"needs; raise it or use model.lift: linear"
            )
        pair_fields = [name for name, kind in FIELDS.items() if issubclass(kind.cls, PairField)]
        if get(config.integrator.name).partitioned and model.field not in pair_fields:
            raise ConfigError(
                f"integrator.name: {config.integrator.name!r} is a splitting method for (q, p) states and needs "
                f"model.field: {' or '.join(pair_fields)} (got {model.field!r})"
            )
        check_solve(config, Capabilities.of_type(FIELDS[model.field].cls, layered=model.layered), f"model.field: {model.field}")
        if model.momentum != "zero" and model.field not in pair_fields:
            raise ConfigError(
                f"model.momentum: {model.momentum!r} needs a field on (q, p) pairs (model.field: "
                f"{' or '.join(pair_fields)}); got {model.field!r}"
            )
        try:  # what only the network can judge (a constraint and its field, activation and method): build a small one
            with seeded(model.seed):
                _network(config, features, dataset_classes(data.name))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model: {error}") from None

    def build(self, config, data_dir: Path | None = None) -> tuple[Classification, ODENet]:
        device, dtype = config.torch_device(), config.torch_dtype()
        d = config.data
        data = make_dataset(d.name, n=d.n, noise=d.noise, seed=d.seed, dtype=dtype, device=device)
        with seeded(config.model.seed):
            model = _network(config, data.x_train.shape[-1], data.num_classes)
        task = Classification.from_train_config(data, config.train)
        return task, model.to(device=device, dtype=dtype)


def _network(config, in_dim: int, num_classes: int) -> ODENet:
    m, integrator = config.model, config.integrator
    return ODENet(
        FIELDS[m.field].make(m, m.steps if m.layered else None),
        num_steps=m.steps,
        t_final=m.t_final,
        method=integrator.name,
        in_dim=in_dim,
        num_classes=num_classes,
        lift=m.lift,
        head=m.head,
        momentum=m.momentum,
        gradient=config.gradient.adjoint(),
        constraint=m.constraint,
        constraint_norm=m.constraint_norm,
        solver=integrator.solver,
        tol=integrator.tol,
        max_iter=integrator.max_iter,
    )


def _regularizers(train) -> tuple[Regularizer, ...]:
    return (Smoothness(train.smoothness, train.smoothness_form),) if train.smoothness > 0 else ()


class Classification(Task):
    """Classify the points of a ``Dataset`` with a model that maps (N, d) points to logits.

    Training batches are random subsets of the training set (or all of it); the evaluation set for
    the loss is the training set, and accuracy is measured on both sets.
    """

    headline = ("train_accuracy", "val_accuracy")

    def __init__(
        self, data: Dataset, loss: str = "squared", regularizers: Sequence[Regularizer] = (), margin: float = 1.0
    ) -> None:
        self.data = data
        self.loss, self.margin = loss, margin
        self.regularizers = tuple(regularizers)

    @classmethod
    def from_train_config(cls, data: Dataset, train) -> Classification:
        """The task a ``TrainConfig`` describes for ``data`` (its loss and smoothness)."""
        return cls(data, loss=train.loss, regularizers=_regularizers(train), margin=train.margin)

    def reference(self) -> Tensor:
        return self.data.x_train

    def batch(self, batch_size: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = self.data.x_train, self.data.y_train
        if batch_size is None or batch_size >= len(x):
            return x, y
        index = torch.randperm(len(x), generator=generator)[:batch_size].to(x.device)
        return x[index], y[index]

    def data_loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return loss_value(self.loss, model(x), y, self.margin)

    def evaluate(self, model: nn.Module) -> tuple[Tensor, dict[str, float]]:
        train_logits = model(self.data.x_train)  # one pass serves the loss and the accuracy
        loss = loss_value(self.loss, train_logits, self.data.y_train, self.margin)
        metrics = {
            "train_accuracy": accuracy(train_logits, self.data.y_train),
            "val_accuracy": accuracy(model(self.data.x_val), self.data.y_val),
        }
        return loss, metrics

    def divergence_advice(self, model: nn.Module) -> str:
        step = getattr(model, "step_size", None)
        return f" or the step size h = T/K = {step:g}" if step is not None else ""

    def plots(self, out: Path, model: ODENet, history: dict, names: Sequence[str], title: str, analysis=None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        data, wanted = self.data, set(names)
        if "history" in wanted and history.get("iteration"):
            plots.plot_history(history, out / "history.png", title=title)
        with torch.no_grad():
            if "decision_boundary" in wanted:
                plots.plot_decision_boundary(
                    lambda p: model.predict_proba(p.to(data.x_val)),
                    data.x_val.cpu(),
                    data.y_val.cpu(),
                    out / "decision_boundary.png",
                    title=title,
                )
            if "transitions" in wanted:
                plots.plot_transitions(
                    layer_states(model, data.x_val).cpu(), data.y_val.cpu(), out / "transitions.png", title=title
                )
            if "parameters" in wanted and model.field.num_layers is not None:
                theta = torch.cat([p.detach().flatten(1) for p in model.field.layer_parameters()], dim=1).cpu()
                plots.plot_parameters(theta, out / "parameters.png", title=f"{title}: θ^k against k")
        if "layer_stability" in wanted and analysis is not None:
            stats = self.analyse(model, analysis)
            plots.plot_layer_stability(
                np.array(stats["max_real_eigenvalue"]),
                np.array(stats["one_sided_lipschitz"]),
                out / "layer_stability.png",
                labels=[title],
            )

    def analyse(self, model: ODENet, analysis) -> dict:
        """Per layer k: max Re λ(∂f_k/∂z) and ν_k = max μ₂(∂f_k/∂z) over the states entering layer k."""
        x = self.data.x_val if analysis.points == "val" else self.data.x_train
        x = x[: analysis.max_points]
        states = layer_states(model, x)
        fields, jacobians = _layer_analysis_fields(model)
        result = per_layer_stability(fields, states[:-1], jacobians, refine_steps=analysis.refine_steps)
        return {
            "max_real_eigenvalue": result.max_real_eigenvalue.tolist(),
            "one_sided_lipschitz": result.one_sided_lipschitz.tolist(),
            "points": analysis.points,
            "num_points": int(x.shape[0]),
        }


@torch.no_grad()
def layer_states(model: ODENet, x: Tensor) -> Tensor:
    """The points z^k at every layer, (K+1, N, dim) (positions q for fields on pairs)."""
    states = model.trajectory(x)
    return states[0] if model.pair_state else states


def _layer_analysis_fields(model: ODENet):
    """Per layer: the field of z alone (for fields on pairs, the force F(q) of the potential), and
    its Jacobians where the field has them in closed form."""
    times = model.time_grid(next(model.parameters())).unbind()
    fields = model.layer_fields()
    if model.pair_state:
        return [lambda z, f=f, t=t: f.force(t, z) for f, t in zip(fields, times)], None
    analytic = all(isinstance(f, AnalyticJacobian) for f in fields)
    jacobians = [lambda z, f=f, t=t: f.jacobian(t, z) for f, t in zip(fields, times)] if analytic else None
    return [lambda z, f=f, t=t: f(t, z) for f, t in zip(fields, times)], jacobians
