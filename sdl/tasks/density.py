"""Density estimation by maximum likelihood on a 2-D density (``task: density``).

Each training step draws fresh samples x ~ p (``sdl.data.sample_density``) and minimises
-(1/B) Σ log q_θ(x), q_θ the model's density: a RealNVP flow (mixing layers: fixed permutations,
P4Inv layers, or nflows' LULinear), an alternating P4Inv flow, or a HollowNet CNF. Flows with P4Inv
layers get the log|det| band penalty and the merge scheduler. Metric: the mean negative
log-likelihood of a fixed held-out sample, in nats (the CNF's with the exact divergence).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from .. import plots
from .._validation import ConfigError, check_at_least, check_choice, check_finite
from ..data import density_names, sample_density
from ..fields import Capabilities
from ..integrators import get
from ..models.cnf import (
    CNF,
    BruteForceDivergence,
    ExactDivergence,
    HutchinsonDivergence,
)
from ..models.flows import FlowSequence, NormalizingFlow, Permutation, alternating_flow, realnvp
from ..models.hollow import HollowNet
from ..models.p4inv import P4InvLinear, P4InvScheduler, P4Layer
from .base import LogDetBand, Regularizer, Task, TaskConfig, check_solve, seeded

__all__ = ["DensityConfig", "DensityData", "DensityEstimation", "DensityModel"]

FLOWS = ("realnvp", "alternating", "cnf")
MIXINGS = ("permutation", "p4inv", "lu")
DIVERGENCES = {"exact": ExactDivergence(), "hutchinson": HutchinsonDivergence(), "brute_force": BruteForceDivergence()}
PLOTS = ("history", "density")
_EVALUATION_CHUNK = 4096
_LIMIT = 4.5  # plots on [-_LIMIT, _LIMIT]²


@dataclass(frozen=True)
class DensityData:
    """The ``data:`` section: the density, and the held-out sample the metric is measured on."""

    name: str = "two_moons"
    test_points: int = 20_000
    seed: int = 10_000

    def __post_init__(self) -> None:
        check_choice("data.name", self.name, density_names())
        check_at_least("data.test_points", self.test_points, 1)
        check_at_least("data.seed", self.seed, 0)


@dataclass(frozen=True)
class DensityModel:
    """The ``model:`` section. ``flow``: "realnvp" (``couplings`` affine couplings, MLPs of width
    ``hidden``, ``mixing`` between them), "alternating" (P4Inv layers and ``blocks`` bent identities of
    bend ``bend``), or "cnf" (a HollowNet field of width ``hidden`` over [0, ``t_final``] in ``steps``
    steps of the config's integrator, divergence ``divergence`` in training)."""

    flow: str = "realnvp"
    mixing: str = "p4inv"
    couplings: int = 6
    hidden: int = 64
    blocks: int = 4
    bend: float = 0.5
    divergence: str = "exact"
    steps: int = 6
    t_final: float = 1.0
    time_dependent: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model.flow", self.flow, FLOWS)
        check_choice("model.mixing", self.mixing, MIXINGS)
        check_choice("model.divergence", self.divergence, DIVERGENCES)
        for key in ("couplings", "hidden", "blocks", "steps"):
            check_at_least(f"model.{key}", getattr(self, key), 1)
        check_finite("model.t_final", self.t_final, "> 0")
        if not abs(self.bend) < 1:
            raise ConfigError(f"model.bend: {self.bend!r} must lie in (-1, 1), where the bent identity is a bijection")
        if self.flow == "realnvp" and self.mixing == "lu" and importlib.util.find_spec("nflows") is None:
            raise ConfigError("model.mixing: 'lu' uses nflows' LULinear, which is not installed; pip install 'sdl[bench]'")


@dataclass(frozen=True)
class DensityConfig(TaskConfig):
    """``task: density``. ``logdet_penalty``: weight of the log|det| band penalty of P4Inv layers;
    ``merge_every`` / ``refine_every``: the P4Inv scheduler (steps between merges; merges between
    inverse refinements, None for never)."""

    kind: str = "density"
    logdet_penalty: float = 0.1
    merge_every: int = 10
    refine_every: int | None = 50
    data_config: ClassVar[type] = DensityData
    model_config: ClassVar[type] = DensityModel
    plot_names: ClassVar[tuple[str, ...]] = PLOTS
    default_plots: ClassVar[tuple[str, ...]] = PLOTS

    def __post_init__(self) -> None:
        check_finite("task.logdet_penalty", self.logdet_penalty, "≥ 0")
        check_at_least("task.merge_every", self.merge_every, 1)
        if self.refine_every is not None:
            check_at_least("task.refine_every", self.refine_every, 1)

    def title(self, config) -> str:
        model = config.model
        flow = {"realnvp": f"RealNVP, {model.mixing} mixing", "alternating": "P4Inv + bent identities"}
        return f"{config.data.name}, {flow.get(model.flow, f'HollowNet CNF, {config.integrator.name}')}"

    def check(self, config) -> None:
        if config.train.batch_size is None:
            raise ConfigError(
                "train.batch_size: None (full batch) has no meaning for a density, whose samples are "
                "drawn fresh at every step; give the number of samples per step, e.g. 256"
            )
        check_flow_solve(config)

    def build(self, config, data_dir: Path | None = None) -> tuple[DensityEstimation, nn.Module]:
        device, dtype = config.torch_device(), config.torch_dtype()
        m = config.model
        with seeded(m.seed):
            model = _model(m, config)
        model = model.to(device=device, dtype=dtype)
        regularizers = logdet_regularizers(model, self.logdet_penalty)
        d = config.data
        task = DensityEstimation(
            d.name,
            sample_density(d.name, d.test_points, d.seed, dtype=dtype, device=device),
            regularizers=regularizers,
            merge_every=self.merge_every,
            refine_every=self.refine_every,
        )
        return task, model


def logdet_regularizers(model: nn.Module, weight: float) -> tuple[Regularizer, ...]:
    """The log|det| band penalty of weight ``weight`` when ``model`` has P4Inv layers and weight > 0."""
    has_p4inv = any(isinstance(layer, P4InvLinear) for layer in model.modules())
    return (LogDetBand(weight),) if has_p4inv and weight > 0 else ()


def p4_schedulers(model: nn.Module, optimizer: torch.optim.Optimizer, merge_every: int, refine_every: int | None) -> list:
    """``[P4InvScheduler(...)]`` when ``model`` has P4 layers (P4Inv, P4Orth), else []."""
    if not any(isinstance(layer, P4Layer) for layer in model.modules()):
        return []
    return [P4InvScheduler(model, optimizer, merge_every=merge_every, refine_every=refine_every)]


def check_flow_solve(config) -> None:
    """ConfigError when ``config.model`` is a CNF that the config's integrator and gradient cannot integrate."""
    if config.model.flow == "cnf":
        if get(config.integrator.name).partitioned:
            raise ConfigError(
                f"integrator.name: {config.integrator.name!r} needs (q, p) states; a CNF needs a Runge–Kutta method"
            )
        # the CNF integrates the pair (x, log p) of a HollowNet, whose flow field gives its Jacobian diagonal
        flow = Capabilities("HollowNet CNF", pair=True, dimwise_differentiable=True)
        check_solve(config, flow, "model.flow: cnf")


def _model(m: DensityModel, config, dim: int = 2) -> nn.Module:
    """The flow ``m`` describes on ℝ^dim (the CNF integrated by the config's integrator and gradient)."""
    if m.flow == "alternating":
        return alternating_flow(dim, m.blocks, m.bend)
    if m.flow == "realnvp":
        return realnvp(dim, m.couplings, m.hidden, _reversed_lu if m.mixing == "lu" else m.mixing)
    field = HollowNet(dim, hidden=m.hidden, transformer_hidden=m.hidden, time_dependent=m.time_dependent)
    integrator = config.integrator
    return CNF(
        field,
        dim,
        divergence=DIVERGENCES[m.divergence],
        t1=m.t_final,
        num_steps=m.steps,
        method=integrator.name,
        gradient=config.gradient.adjoint(),
        solver=integrator.solver,
        tol=integrator.tol,
        max_iter=integrator.max_iter,
    )


def _reversed_lu(dim: int) -> nn.Module:
    """The reversal, then nflows' LU-parameterised linear layer (identity at the start): the peer of
    a P4Inv layer initialised to the reversal, so every mixing starts as the same map."""
    from nflows.transforms.lu import LULinear

    return FlowSequence([Permutation(dim), LULinear(dim, identity_init=True)])


class DensityEstimation(Task):
    """Maximum likelihood for a model with ``log_prob(x)`` on samples of the density ``name``.

    ``test`` (M, d) is the held-out sample of the metric. A model with ``P4InvLinear`` layers gets
    ``P4InvScheduler(merge_every, refine_every)`` after every optimizer step.
    """

    headline = ("test_nll",)

    def __init__(
        self,
        name: str,
        test: Tensor,
        regularizers: Sequence[Regularizer] = (),
        merge_every: int = 10,
        refine_every: int | None = 50,
    ) -> None:
        self.name, self.test = name, test
        self.regularizers = tuple(regularizers)
        self.merge_every, self.refine_every = merge_every, refine_every

    def reference(self) -> Tensor:
        return self.test

    def batch(self, batch_size: int | None, generator: torch.Generator) -> Tensor:
        if batch_size is None:
            raise ValueError("a density task draws fresh samples each step; give a batch size")
        return sample_density(self.name, batch_size, generator, dtype=self.test.dtype, device=self.test.device)

    def data_loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        return -cast(NormalizingFlow | CNF, model).log_prob(batch).mean()  # what _model builds

    def evaluate(self, model: nn.Module) -> tuple[Tensor, dict[str, float]]:
        nll = -torch.cat([_exact_log_prob(model, chunk) for chunk in self.test.split(_EVALUATION_CHUNK)])
        mean = nll.mean()
        return mean, {"test_nll": mean.item(), "test_nll_stderr": (nll.std() / math.sqrt(len(nll))).item()}

    def schedulers(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> list:
        return p4_schedulers(model, optimizer, self.merge_every, self.refine_every)

    def plots(self, out: Path, model: nn.Module, history: dict, names: Sequence[str], title: str, analysis=None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        if "history" in names and history.get("iteration"):
            plots.plot_history(history, out / "history.png", title=title)
        if "density" in names:
            axis = torch.linspace(-_LIMIT, _LIMIT, 120, dtype=self.test.dtype, device=self.test.device)
            grid = torch.cartesian_prod(axis, axis).flip(-1)  # rows: x2, columns: x1
            with torch.no_grad():
                log_p = torch.cat([_exact_log_prob(model, c) for c in grid.split(_EVALUATION_CHUNK)])
            plots.plot_density(
                self.test.cpu(), log_p.exp().reshape(len(axis), len(axis)).cpu(), _LIMIT, out / "density.png", title=title
            )


def _exact_log_prob(model: nn.Module, x: Tensor) -> Tensor:
    """log q(x) with no estimator noise: a CNF evaluates its divergence exactly."""
    if isinstance(model, CNF):
        return model.log_prob(x, divergence=exact_divergence(model))
    return cast(NormalizingFlow, model).log_prob(x)  # the other flows _model builds


def exact_divergence(model: CNF) -> ExactDivergence | BruteForceDivergence:
    """The CNF's divergence without estimator noise: from the Jacobian diagonal when its field gives
    one (a HollowNet), else by d backward passes."""
    exact = ExactDivergence()
    try:
        exact.check_field(model.field)
    except TypeError:
        return BruteForceDivergence()
    return exact
