"""Boltzmann generators (``task: boltzmann``): a flow trained towards p(x) ∝ exp(-u(x)) of an energy.

The data are a seeded replica-exchange MALA run of the energy (``sdl.data.sample_mcmc``): three
quarters of its chains are the training samples, the rest the held-out reference. Each step
minimises

    forward_weight · E_batch[-log q(x)]  +  reverse_weight · E_z[u(T⁻¹z) + log q(T⁻¹z)],

forward KL on MCMC samples and reverse KL on the energy (``sdl.boltzmann``). The flows are the
density task's (``DensityModel``: RealNVP with permutation, P4Inv or LU mixing, the alternating
P4Inv flow, the HollowNet CNF) on ℝ^d. Metrics on a fixed batch of flow samples: the normalised
ESS of the importance weights, the free-energy difference F_B - F_A between the energy's states and
its error against a reference (2-D: quadrature; φ⁴: a separate, longer MCMC run), the mean energy shift of the
flow's samples against the held-out MCMC samples (kT), and the held-out NLL.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from .. import plots
from .._validation import ConfigError, check_at_least, check_choice, check_finite
from ..boltzmann import (
    effective_sample_size,
    forward_kl,
    free_energy_difference,
    log_importance_weights,
    mcmc_free_energy,
    mirror_free_energy,
    reverse_kl,
)
from ..data.energies import (
    Energy,
    energy_names,
    get_energy,
    sample_mcmc,
    state_free_energy_quadrature,
)
from ..models.cnf import CNF
from ..models.flows import NormalizingFlow
from .base import Task, TaskConfig, seeded
from .density import (
    DensityModel,
    _exact_log_prob,
    _model,
    check_flow_solve,
    exact_divergence,
    logdet_regularizers,
    p4_schedulers,
)

__all__ = ["BoltzmannConfig", "BoltzmannData", "BoltzmannGenerator"]

PLOTS = ("history", "ess", "samples", "reaction_coordinate")
_TWO_D_PLOTS = ("samples",)
_EVALUATION_CHUNK = 4096
_DATA_VERSION = 1


@dataclass(frozen=True)
class BoltzmannData:
    """The ``data:`` section: the energy (``lattice`` L for "phi4" only, d = L²) and its MCMC run:
    ``chains`` chains of ``steps`` sweeps after ``burn_in``, every ``thin``-th state kept (a quarter
    of the chains held out), seeded by ``seed``; ``eval_samples`` flow samples per evaluation.

    An energy without a quadrature (d > 2) gets its free-energy reference from a second, separate
    MCMC run: ``reference_chains`` chains of ``reference_steps`` sweeps (same burn-in and thinning),
    seeded by ``reference_seed`` (default ``seed + 1``; it must differ from ``seed``), so the
    reference shares no sample with the training data."""

    energy: str = "double_well"
    lattice: int | None = None
    chains: int = 64
    steps: int = 2000
    burn_in: int = 1000
    thin: int = 10
    eval_samples: int = 10_000
    seed: int = 0
    reference_chains: int = 256
    reference_steps: int = 20_000
    reference_seed: int | None = None

    def __post_init__(self) -> None:
        check_choice("data.energy", self.energy, energy_names())
        try:
            get_energy(self.energy, self.lattice)
        except ValueError as error:
            raise ConfigError(f"data.lattice: {error}") from None
        check_at_least("data.chains", self.chains, 4)
        for key in ("steps", "thin", "eval_samples"):
            check_at_least(f"data.{key}", getattr(self, key), 1)
        check_at_least("data.burn_in", self.burn_in, 0)
        check_at_least("data.seed", self.seed, 0)
        if self.steps < self.thin:
            raise ConfigError(f"data.steps: {self.steps} keeps no sample with data.thin={self.thin}; give steps ≥ thin")
        check_at_least("data.reference_chains", self.reference_chains, 2)
        check_at_least("data.reference_steps", self.reference_steps, self.thin)
        if self.reference_seed is not None:
            check_at_least("data.reference_seed", self.reference_seed, 0)
            if self.reference_seed == self.seed:
                raise ConfigError(
                    f"data.reference_seed: {self.reference_seed} equals data.seed; the reference run must be "
                    f"independent of the training data: give another seed (or leave it out for seed + 1)"
                )

    @property
    def reference_run(self) -> BoltzmannData:
        """The data section of the reference run: its chains, sweeps and seed in place of the training run's."""
        seed = self.seed + 1 if self.reference_seed is None else self.reference_seed
        return replace(self, chains=self.reference_chains, steps=self.reference_steps, seed=seed, reference_seed=None)

    def get_energy(self) -> Energy:
        return get_energy(self.energy, self.lattice)


@dataclass(frozen=True)
class BoltzmannConfig(TaskConfig):
    """``task: boltzmann``. ``forward_weight`` / ``reverse_weight``: weights of the forward KL (on MCMC
    samples) and the reverse KL (on the energy); ``logdet_penalty``, ``merge_every``, ``refine_every``:
    the P4Inv band penalty and scheduler, as in the density task."""

    kind: str = "boltzmann"
    forward_weight: float = 1.0
    reverse_weight: float = 0.0
    logdet_penalty: float = 0.1
    merge_every: int = 10
    refine_every: int | None = 50
    data_config: ClassVar[type] = BoltzmannData
    model_config: ClassVar[type] = DensityModel
    plot_names: ClassVar[tuple[str, ...]] = PLOTS
    default_plots: ClassVar[tuple[str, ...]] = PLOTS
    analysis_plots: ClassVar[tuple[str, ...]] = ("reaction_coordinate",)

    def __post_init__(self) -> None:
        for key in ("forward_weight", "reverse_weight", "logdet_penalty"):
            check_finite(f"task.{key}", getattr(self, key), "≥ 0")
        if self.forward_weight == 0 and self.reverse_weight == 0:
            raise ConfigError("task.forward_weight and task.reverse_weight are both 0: nothing to train; give one > 0")
        check_at_least("task.merge_every", self.merge_every, 1)
        if self.refine_every is not None:
            check_at_least("task.refine_every", self.refine_every, 1)

    def plots_for(self, config) -> tuple[str, ...]:
        dim = config.data.get_energy().dim
        return tuple(p for p in self.default_plots if dim == 2 or p not in _TWO_D_PLOTS)

    def title(self, config) -> str:
        model = config.model
        flow = {"realnvp": f"RealNVP, {model.mixing} mixing", "alternating": "P4Inv + bent identities"}
        weights = f"forward {self.forward_weight:g} / reverse {self.reverse_weight:g}"
        return f"{config.data.get_energy().name}, {flow.get(model.flow, 'HollowNet CNF')}, {weights}"

    def check(self, config) -> None:
        if config.train.batch_size is None:
            raise ConfigError(
                "train.batch_size: None (full batch) has no meaning for a Boltzmann generator; "
                "give the number of samples per step, e.g. 256"
            )
        dim = config.data.get_energy().dim
        for plot in config.plots:
            if plot in _TWO_D_PLOTS and dim != 2:
                raise ConfigError(
                    f"plots: {plot!r} needs a 2-D energy, {config.data.energy!r} has d = {dim}; "
                    f"valid here: {', '.join(p for p in PLOTS if p not in _TWO_D_PLOTS)}"
                )
        check_flow_solve(config)

    def build(self, config, data_dir: Path | None = None) -> tuple[BoltzmannGenerator, nn.Module]:
        device, dtype = config.torch_device(), config.torch_dtype()
        d = config.data
        energy = d.get_energy()
        samples = _mcmc_data(d, data_dir)
        held_out = max(d.chains // 4, 1)
        train, test = samples[:, held_out:].reshape(-1, energy.dim), samples[:, :held_out].reshape(-1, energy.dim)
        with seeded(config.model.seed):
            model = _model(config.model, config, energy.dim)
        model = model.to(device=device, dtype=dtype)
        regularizers = logdet_regularizers(model, self.logdet_penalty)
        reference, reference_error = _reference_free_energy(energy, d, data_dir)
        noise = torch.randn(d.eval_samples, energy.dim, generator=torch.Generator().manual_seed(d.seed + 1), dtype=torch.float64)
        task = BoltzmannGenerator(
            energy,
            train.to(device=device, dtype=dtype),
            test.to(device=device, dtype=dtype),
            noise.to(device=device, dtype=dtype),
            reference,
            reference_error=reference_error,
            forward_weight=self.forward_weight,
            reverse_weight=self.reverse_weight,
            regularizers=regularizers,
            merge_every=self.merge_every,
            refine_every=self.refine_every,
        )
        return task, model


def _mcmc_arguments(d: BoltzmannData) -> dict:
    energy = d.get_energy()
    return dict(chains=d.chains, burn_in=d.burn_in, thin=d.thin, seed=d.seed, **energy.mcmc_settings())


@functools.lru_cache(maxsize=4)
def _generate(d: BoltzmannData) -> Tensor:
    """(kept states, chains, d) float64: the MCMC run of ``d``, once per process."""
    return sample_mcmc(d.get_energy(), d.steps, **_mcmc_arguments(d)).samples


def _mcmc_data(d: BoltzmannData, data_dir: Path | None) -> Tensor:
    """The MCMC run of ``d``, read from ``data_dir`` when a complete file of it is there (a run folder
    reopened by ``sdl analyse``), else generated and, with a ``data_dir``, written there atomically."""
    name = f"mcmc-{d.energy}-L{d.lattice}-chains{d.chains}-steps{d.steps}-seed{d.seed}.pt"
    path = None if data_dir is None else data_dir / name
    key = {"version": _DATA_VERSION, "energy": d.energy, "lattice": d.lattice, "steps": d.steps, **_mcmc_arguments(d)}
    key = {k: list(v) if isinstance(v, tuple) else v for k, v in key.items()}  # as torch.load gives it back
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, weights_only=True, map_location="cpu")
            if saved.get("key") == key:
                return saved["samples"]
        except Exception:
            pass
    samples = _generate(d)
    if path is not None:
        from ..experiment import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda p: torch.save({"key": key, "samples": samples}, p))
    return samples


def _reference_free_energy(energy: Energy, d: BoltzmannData, data_dir: Path | None) -> tuple[float, float]:
    """(F_B - F_A in kT, its standard error): by quadrature for a 2-D energy (error 0), else from the
    separate reference run ``d.reference_run``: within each state when x → -x swaps the states
    (``sdl.boltzmann.mirror_free_energy``; φ⁴), from the state counts otherwise (``mcmc_free_energy``)."""
    if energy.dim == 2 and energy.box is not None:
        return state_free_energy_quadrature(energy)[0], 0.0
    samples = _mcmc_data(d.reference_run, data_dir)
    if energy.dividing_value == 0:
        return mirror_free_energy(energy, samples)
    return mcmc_free_energy(energy.in_state_b(samples))


class BoltzmannGenerator(Task):
    """A flow trained towards exp(-u) of ``energy`` by forward KL on ``train`` and reverse KL on u.

    ``train`` (N, d) / ``test`` (M, d): MCMC samples; ``noise`` (S, d): the base points of the flow
    samples every evaluation uses; ``reference``: F_B - F_A in kT. A model with ``P4InvLinear``
    layers gets ``P4InvScheduler(merge_every, refine_every)`` after every optimizer step.
    """

    headline = ("ess", "free_energy_error")

    def __init__(
        self,
        energy: Energy,
        train: Tensor,
        test: Tensor,
        noise: Tensor,
        reference: float,
        *,
        reference_error: float = 0.0,
        forward_weight: float = 1.0,
        reverse_weight: float = 0.0,
        regularizers: Sequence = (),
        merge_every: int = 10,
        refine_every: int | None = 50,
    ) -> None:
        self.energy, self.train, self.test, self.noise, self.reference_free_energy = energy, train, test, noise, reference
        self.reference_error = reference_error
        self.forward_weight, self.reverse_weight = forward_weight, reverse_weight
        self.regularizers = tuple(regularizers)
        self.merge_every, self.refine_every = merge_every, refine_every

    def reference(self) -> Tensor:
        return self.train

    def batch(self, batch_size: int | None, generator: torch.Generator) -> dict[str, Tensor]:
        if batch_size is None:
            raise ValueError("a Boltzmann generator draws a batch each step; give a batch size")
        batch = {}
        if self.forward_weight > 0:
            index = torch.randint(len(self.train), (batch_size,), generator=generator)
            batch["x"] = self.train[index.to(self.train.device)]
        if self.reverse_weight > 0:
            z = torch.randn(batch_size, self.energy.dim, generator=generator, dtype=torch.float64)
            batch["z"] = z.to(self.train)
        return batch

    def data_loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        loss = self.train.new_zeros(())
        if "x" in batch:
            loss = loss + self.forward_weight * forward_kl(model, batch["x"])
        if "z" in batch:
            loss = loss + self.reverse_weight * reverse_kl(model, self.energy, batch["z"])
        return loss

    def flow_samples(self, model: nn.Module, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The flow's samples x (S, d) of ``noise`` (default: the task's) and their log q(x) (S,),
        exact (a CNF integrates its divergence exactly). No graph."""
        noise = self.noise if noise is None else noise
        with torch.no_grad():
            pairs = [_exact_from_noise(model, chunk) for chunk in noise.split(_EVALUATION_CHUNK)]
        return torch.cat([x for x, _ in pairs]), torch.cat([log_q for _, log_q in pairs])

    def sample_metrics(self, model: nn.Module, noise: Tensor | None = None) -> dict[str, float]:
        """ESS, F_B - F_A and its error, the energy shift (kT: mean u of the flow's samples with finite u
        minus that of the held-out MCMC samples, and the same with medians) and the reverse KL of flow samples."""
        x, log_q = self.flow_samples(model, noise)
        u = self.energy.energy(x)
        log_w = log_importance_weights(u, log_q)
        estimate = free_energy_difference(log_w, self.energy.in_state_b(x))
        finite = torch.isfinite(u)
        return {
            "ess": effective_sample_size(log_w),
            "free_energy": estimate,
            "free_energy_error": estimate - self.reference_free_energy,
            "energy_shift": (u[finite].mean() - self.energy.energy(self.test).mean()).item(),
            # the mean is at the mercy of a few far-out samples where u explodes (Müller–Brown); the median is not
            "energy_shift_median": (u.median() - self.energy.energy(self.test).median()).item(),
            "reverse_kl": (u + log_q).mean().item(),
            "state_b_fraction": self.energy.in_state_b(x).double().mean().item(),
        }

    def evaluate(self, model: nn.Module) -> tuple[Tensor, dict[str, float]]:
        with torch.no_grad():
            nll = -torch.cat([_exact_log_prob(model, chunk) for chunk in self.test.split(_EVALUATION_CHUNK)]).mean()
        metrics = {"test_nll": nll.item(), **self.sample_metrics(model), "reference_free_energy_error": self.reference_error}
        objective = self.forward_weight * nll
        if self.reverse_weight > 0:  # a term of weight 0 stays out: 0 · inf (one far-out sample) would be nan
            objective = objective + self.reverse_weight * metrics["reverse_kl"]
        return objective, metrics

    def schedulers(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> list:
        return p4_schedulers(model, optimizer, self.merge_every, self.refine_every)

    def analyse(self, model: nn.Module, analysis) -> dict:
        """The sample metrics over 5 fresh batches of flow samples: mean and standard deviation of each."""
        batches = []
        for index in range(5):
            noise = torch.randn(self.noise.shape, generator=torch.Generator().manual_seed(1_000 + index), dtype=torch.float64)
            batches.append(self.sample_metrics(model, noise.to(self.noise)))
        stats = {"reference_free_energy": self.reference_free_energy, "reference_free_energy_error": self.reference_error}
        for key in batches[0]:
            values = torch.tensor([b[key] for b in batches], dtype=torch.float64)
            stats[f"{key}_mean"], stats[f"{key}_std"] = values.mean().item(), values.std().item()
        return stats

    def plots(self, out: Path, model: nn.Module, history: dict, names: Sequence[str], title: str, analysis=None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        if "history" in names and history.get("iteration"):
            plots.plot_history(
                {k: history[k] for k in ("iteration", "loss", "test_nll") if k in history}, out / "history.png", title=title
            )
        if "ess" in names and history.get("iteration"):
            plots.plot_ess(history["iteration"], history["ess"], out / "ess.png", title=title)
        if not ({"samples", "reaction_coordinate"} & set(names)):
            return
        x, log_q = self.flow_samples(model)
        if "samples" in names:
            if self.energy.box is None:
                raise ValueError(f"the samples plot needs a 2-D energy with a box; {self.energy.name} has none")
            (x_low, x_high), (y_low, y_high) = self.energy.box
            axis_x = torch.linspace(x_low, x_high, 200, dtype=torch.float64)
            axis_y = torch.linspace(y_low, y_high, 200, dtype=torch.float64)
            grid = torch.cartesian_prod(axis_y, axis_x).flip(-1)  # rows: x2, columns: x1
            energy = self.energy.energy(grid).reshape(len(axis_y), len(axis_x))
            plots.plot_energy_samples(
                axis_x, axis_y, energy, {"MCMC reference": self.test.cpu(), "flow": x.cpu()}, out / "samples.png", title=title
            )
        if "reaction_coordinate" in names:
            log_w = log_importance_weights(self.energy.energy(x), log_q)
            rc = self.energy.reaction_coordinate
            plots.plot_reaction_coordinate(
                rc(self.test).cpu(),
                rc(x).cpu(),
                log_w.cpu(),
                self.energy.dividing_value,
                out / "reaction_coordinate.png",
                title=title,
            )


def _exact_from_noise(model: nn.Module, z: Tensor) -> tuple[Tensor, Tensor]:
    """x and log q(x) for base noise z with no estimator noise: a CNF integrates its divergence exactly."""
    if isinstance(model, CNF):
        return model.from_noise(z, divergence=exact_divergence(model))
    return cast(NormalizingFlow, model).from_noise(z)  # the other flows _model builds
