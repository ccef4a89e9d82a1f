"""Training by discretise-then-optimise: optimizers, a learning-rate schedule, and one resumable loop for every task.

Objective: E(θ) = (data term of the task) + Σ regularizers, each a named term (``sdl.tasks.Task``).
Optional decoupled weight decay w shrinks every parameter before each step,
θ ← (1 - α w) θ - α · (the optimizer's step), α the learning rate. The ``Trainer`` sums the terms,
steps the optimizer and the task's schedulers, and logs; it never asks which task it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .losses import LOSSES, accuracy, loss_value
from .models.vector_fields import SMOOTHNESS_FORMS

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "BacktrackingGD",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "accuracy",
    "evaluation_mode",
    "loss_value",
]

OPTIMIZERS = ("adam", "sgd", "lbfgs", "gd")
SCHEDULES = ("constant", "cosine")
_DECAYING_OPTIMIZERS = ("adam", "sgd")  # the line-search optimizers have no fixed step α to scale w by


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``batch_size=None`` is full batch; ``smoothness`` is λ of R_h (0 = off) and
    ``smoothness_form`` which R_h (see ``sdl.models.parameter_smoothness``); ``weight_decay`` is w
    of the decoupled decay θ ← (1 - lr·w) θ before each step, for "adam" (then AdamW) and "sgd"
    only; 0 = off. ``schedule`` is "constant" or "cosine" (α_i = α (1 + cos(π i / iterations)) / 2).
    ``loss`` (with ``margin`` m of the hinge loss) and ``smoothness`` describe the classification
    objective (``sdl.tasks.Classification``)."""

    optimizer: str = "adam"
    lr: float = 0.05
    iterations: int = 2000
    batch_size: int | None = None
    loss: str = "squared"
    margin: float = 1.0
    smoothness: float = 0.0
    smoothness_form: str = "derivative"
    weight_decay: float = 0.0
    schedule: str = "constant"
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.smoothness_form not in SMOOTHNESS_FORMS:
            raise ValueError(f"unknown smoothness_form {self.smoothness_form!r}; valid choices: {', '.join(SMOOTHNESS_FORMS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid choices: {', '.join(SCHEDULES)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid choices: {', '.join(LOSSES)}")
        for name in ("lr", "smoothness", "weight_decay", "margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '≥ 0'}, got {value!r}")
        for name in ("iterations", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.weight_decay > 0 and self.optimizer not in _DECAYING_OPTIMIZERS:
            raise ValueError(
                f"weight_decay={self.weight_decay!r} needs optimizer {' or '.join(_DECAYING_OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None (full batch), got {self.batch_size!r}")


class BacktrackingGD(torch.optim.Optimizer):
    """Gradient descent θ ← θ - α∇E with Armijo backtracking: α shrinks by ``shrink`` until
    E(θ - α∇E) ≤ E(θ) - c α ‖∇E‖², then grows by ``grow`` for the next step.

    Needs a closure that returns E and, when E carries a graph, fills the gradients. Only the
    first call per step takes gradients: trial points are evaluated under ``torch.no_grad()``,
    so the closure must skip ``backward()`` when E has no graph (``Trainer``'s does).
    """

    def __init__(
        self, params, lr: float = 1.0, shrink: float = 0.5, c: float = 1e-4, grow: float = 2.0, max_backtracks: int = 40
    ):
        super().__init__(params, dict(lr=lr, shrink=shrink, c=c, grow=grow, max_backtracks=max_backtracks))

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            start = [p.detach().clone() for p in params]
            grads = [p.grad.detach().clone() for p in params]
            grad_norm2 = sum(g.square().sum() for g in grads)
            lr = group["lr"]
            for _ in range(group["max_backtracks"]):
                for p, g in zip(params, grads, strict=True):
                    p.add_(g, alpha=-lr)
                trial = closure()  # no graph: only the value decides
                if trial <= loss - group["c"] * lr * grad_norm2:
                    group["lr"] = lr * group["grow"]
                    break
                for p, p0 in zip(params, start, strict=True):
                    p.copy_(p0)
                lr *= group["shrink"]
            else:
                group["lr"] = lr  # no decrease found: stay put with the smallest step tried
        return loss


def _optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        # for plain SGD, adding w θ to the gradient is exactly the decoupled decay
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, line_search_fn="strong_wolfe")
    return BacktrackingGD(params, lr=lr)


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule of ``model`` in eval mode for the block, and each one's mode restored after.

    The flags are set directly rather than through ``train()``/``eval()``, which may act: a
    ``P4InvLinear`` merges its perturbation and redraws v on ``eval()``. An evaluation must leave
    the training state as it was, or a run's path would depend on how often it is evaluated.
    """
    modes = [(module, module.training) for module in model.modules()]
    for module, _ in modes:
        module.training = False
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


class _RandomStream:
    """The global torch random state of a run, kept apart from the process's: swapped in around
    each step, so what a step draws (Hutchinson probes, P4Inv's redrawn v) depends on the run's
    seed alone, and a resumed run continues the same stream."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.state = {"cpu": torch.Generator().manual_seed(seed).get_state()}  # the global state after manual_seed
        if self.cuda:
            self.state["cuda"] = torch.Generator(device=device).manual_seed(seed).get_state()

    def _capture(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self.cuda:
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    @contextmanager
    def active(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if self.cuda else []):
            torch.set_rng_state(self.state["cpu"])
            if self.cuda:
                torch.cuda.set_rng_state(self.state["cuda"])
            try:
                yield
            finally:
                self.state = self._capture()


def _cosine(iterations: int):
    return lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, iterations) / iterations))


class Trainer:
    """A resumable training loop for any task: ``Trainer(model, task, config)``.

    ``task`` is an ``sdl.tasks.Task``, or data that a registered task accepts (a ``Dataset`` makes
    the classification task of ``config.loss`` and ``config.smoothness``). ``state_dict()`` holds the
    model, optimizer, schedulers, batch generator, random stream, iteration and history, so a run
    restored with ``load_state_dict`` continues exactly as if never stopped.
    """

    def __init__(self, model: nn.Module, task, config: TrainConfig) -> None:
        from .tasks import as_task

        self.task = as_task(task, config)
        self.task.check_model(model)
        self.model, self.config = model, config
        self.optimizer = _optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        self.schedule = (
            torch.optim.lr_scheduler.LambdaLR(self.optimizer, _cosine(config.iterations)) if config.schedule == "cosine" else None
        )
        self.schedulers = self.task.schedulers(model, self.optimizer)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.random = _RandomStream(config.seed, self.task.reference().device)
        self.iteration = 0
        names = [r.name for r in self.task.regularizers]
        self.history: dict[str, list[float]] = {k: [] for k in ("iteration", "loss", "regularizer", *names)}

    def objective(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        """(the data term plus every regularizer, each term by name: "data" and the regularizers')."""
        terms = {"data": self.task.data_loss(self.model, batch)}
        for regularizer in self.task.regularizers:
            terms[regularizer.name] = regularizer(self.model)
        data, *penalties = terms.values()
        return sum(penalties, data), terms

    def step(self) -> float:
        """One optimizer step (and the task's schedulers); returns the objective at the start of the step."""
        self.model.train()
        batch = self.task.batch(self.config.batch_size, self.generator)

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            total, _ = self.objective(batch)
            if total.requires_grad:
                total.backward()
            return total.detach()

        with self.random.active():
            loss = float(self.optimizer.step(closure))
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss} at iteration {self.iteration}; lower the learning rate "
                    f"(lr={self.config.lr}){self.task.divergence_advice(self.model)}"
                )
            if self.schedule is not None:
                self.schedule.step()
            for scheduler in self.schedulers:
                scheduler.step()
        self.iteration += 1
        return loss

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The objective over the task's evaluation set, its regularizers by name, and the task's
        metrics. Leaves every training state (modules, optimizer, random streams) as it was."""
        with evaluation_mode(self.model), torch.random.fork_rng(devices=[]):
            data_loss, metrics = self.task.evaluate(self.model)
            penalties = {r.name: r(self.model).item() for r in self.task.regularizers}
        regularizer = sum(penalties.values(), 0.0)
        return {"loss": data_loss.item() + regularizer, "regularizer": regularizer, **penalties, **metrics}

    def run(self, iterations: int | None = None, progress: bool = True, callback=None) -> dict[str, list[float]]:
        """Train until ``iterations`` in total (default ``config.iterations``); returns the history.

        ``callback(trainer)`` runs after every logged evaluation (e.g. to write a checkpoint).
        Evaluations fall on multiples of ``log_every`` and on ``config.iterations`` only, so a
        run stopped early and resumed logs the same rows as one never stopped.
        """
        end = self.config.iterations if iterations is None else iterations
        bar = tqdm(total=end, initial=self.iteration, disable=not progress, desc="train", dynamic_ncols=True)
        while self.iteration < end:
            self.step()
            bar.update(1)
            if self.iteration % self.config.log_every == 0 or self.iteration == self.config.iterations:
                metrics = self.evaluate()
                self.history["iteration"].append(self.iteration)
                for key, value in metrics.items():
                    self.history.setdefault(key, []).append(value)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", **{k: f"{metrics[k]:.3g}" for k in self.task.headline})
                if callback is not None:
                    callback(self)
        bar.close()
        return self.history

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "generator": self.generator.get_state(),
            "random": self.random.state,
            "iteration": self.iteration,
            "history": self.history,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` of a trainer with the same optimizer. The learning rate and
        weight decay become this trainer's config's, except for "gd", whose α the line search adapts."""
        saved = state["config"]["optimizer"]
        if saved != self.config.optimizer:
            raise ValueError(f"the state is of optimizer {saved!r}, this trainer's is {self.config.optimizer!r}; they must match")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # this restores the saved lr and decay too
        for scheduler, saved_state in zip(self.schedulers, state.get("schedulers", []), strict=False):  # older states have none
            scheduler.load_state_dict(saved_state)
        self.iteration = int(state["iteration"])
        if not isinstance(self.optimizer, BacktrackingGD):
            factor = _cosine(self.config.iterations)(self.iteration) if self.schedule is not None else 1.0
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * factor
                if self.config.optimizer in _DECAYING_OPTIMIZERS:
                    group["weight_decay"] = self.config.weight_decay
        if self.schedule is not None:
            self.schedule.base_lrs = [self.config.lr] * len(self.optimizer.param_groups)
            self.schedule.last_epoch = self.iteration
        self.generator.set_state(state["generator"])
        if "random" in state:  # runs saved before the random stream was kept start a fresh one
            self.random.state = state["random"]
        history = {k: list(v) for k, v in state["history"].items()}
        for key in self.history:  # a term the saved run did not log (it had no such regularizer)
            history.setdefault(key, [math.nan] * len(history.get("iteration", [])))
        self.history = history
