"""Training by discretise-then-optimise: losses, the smoothness penalty, optimizers, a resumable loop.

Objective (Benning et al. 2019):  E(θ) = (1/N) Σ_n L(η(z_n^K), y_n) + λ R_h(θ),
R_h(θ) = h Σ_k ‖(θ^{k+1} - θ^k)/h‖².  Optional decoupled weight decay w shrinks every parameter
before each step, θ ← (1 - α w) θ - α · (the optimizer's step), α the learning rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .fields import Layered
from .models.network import ODENet
from .models.vector_fields import SMOOTHNESS_FORMS, parameter_smoothness

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "BacktrackingGD", "LOSSES", "OPTIMIZERS", "loss_value", "accuracy"]

LOSSES = ("squared", "cross_entropy")
OPTIMIZERS = ("adam", "sgd", "lbfgs", "gd")
_DECAYING_OPTIMIZERS = ("adam", "sgd")  # the line-search optimizers have no fixed step α to scale w by


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``batch_size=None`` is full batch; ``smoothness`` is λ of R_h (0 = off) and
    ``smoothness_form`` which R_h (see ``sdl.models.parameter_smoothness``); ``weight_decay`` is w
    of the decoupled decay θ ← (1 - lr·w) θ before each step, for "adam" (then AdamW) and "sgd"
    only; 0 = off."""

    optimizer: str = "adam"
    lr: float = 0.05
    iterations: int = 2000
    batch_size: int | None = None
    loss: str = "squared"
    smoothness: float = 0.0
    smoothness_form: str = "derivative"
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.smoothness_form not in SMOOTHNESS_FORMS:
            raise ValueError(
                f"unknown smoothness_form {self.smoothness_form!r}; valid choices: {', '.join(SMOOTHNESS_FORMS)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid choices: {', '.join(LOSSES)}")
        for name in ("lr", "smoothness", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '≥ 0'}, got {value!r}")
        for name in ("iterations", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.weight_decay > 0 and self.optimizer not in _DECAYING_OPTIMIZERS:
            raise ValueError(
                f"weight_decay={self.weight_decay!r} needs optimizer {' or '.join(_DECAYING_OPTIMIZERS)}, "
                f"got {self.optimizer!r}"
            )
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None (full batch), got {self.batch_size!r}")


def loss_value(name: str, logits: Tensor, labels: Tensor) -> Tensor:
    """Mean loss over the batch.

    "squared": ½‖η(logits) - onehot(y)‖², η the logistic function for 2 classes (logits (N,)),
    softmax otherwise (the loss of Benning et al.); "cross_entropy": -log η(logits)_y.
    """
    if logits.ndim == 1:
        target = labels.to(logits.dtype)
        if name == "squared":
            return 0.5 * (torch.sigmoid(logits) - target).square().mean()
        return F.binary_cross_entropy_with_logits(logits, target)
    if name == "squared":
        target = F.one_hot(labels.long(), logits.shape[-1]).to(logits.dtype)
        return 0.5 * (torch.softmax(logits, -1) - target).square().sum(-1).mean()
    return F.cross_entropy(logits, labels.long())


def accuracy(logits: Tensor, labels: Tensor) -> float:
    predicted = (logits > 0).long() if logits.ndim == 1 else logits.argmax(-1)
    return (predicted == labels.long()).double().mean().item()


class BacktrackingGD(torch.optim.Optimizer):
    """Gradient descent θ ← θ - α∇E with Armijo backtracking: α shrinks by ``shrink`` until
    E(θ - α∇E) ≤ E(θ) - c α ‖∇E‖², then grows by ``grow`` for the next step. Needs a closure."""

    def __init__(self, params, lr: float = 1.0, shrink: float = 0.5, c: float = 1e-4, grow: float = 2.0, max_backtracks: int = 40):
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
                for p, g in zip(params, grads):
                    p.add_(g, alpha=-lr)
                with torch.enable_grad():
                    trial = closure()
                if trial <= loss - group["c"] * lr * grad_norm2:
                    group["lr"] = lr * group["grow"]
                    break
                for p, p0 in zip(params, start):
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


class Trainer:
    """A resumable training loop for an ``ODENet`` on a data set with x_train, y_train, x_val, y_val.

    ``state_dict()`` holds the model, optimizer, batch-sampling generator, iteration and
    history, so a run restored with ``load_state_dict`` continues exactly as if never stopped.
    """

    def __init__(self, model: ODENet, data, config: TrainConfig) -> None:
        parameter = next(model.parameters())
        if (data.x_train.dtype, data.x_train.device) != (parameter.dtype, parameter.device):
            raise ValueError(
                f"the data are {data.x_train.dtype} on {data.x_train.device} but the model's parameters are "
                f"{parameter.dtype} on {parameter.device}; make_dataset(..., dtype=, device=) or model.to() them alike"
            )
        self.model, self.data, self.config = model, data, config
        self.optimizer = _optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0
        self.history: dict[str, list[float]] = {k: [] for k in ("iteration", "loss", "regularizer", "train_accuracy", "val_accuracy")}

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(data loss + λ R_h, λ R_h)."""
        loss = loss_value(self.config.loss, self.model(x), y)
        penalty = torch.zeros((), dtype=loss.dtype, device=loss.device)
        if self.config.smoothness > 0 and isinstance(self.model.field, Layered):
            roughness = parameter_smoothness(self.model.field, self.model.step_size, self.config.smoothness_form)
            penalty = self.config.smoothness * roughness
        return loss + penalty, penalty

    def _batch(self) -> tuple[Tensor, Tensor]:
        x, y = self.data.x_train, self.data.y_train
        if self.config.batch_size is None or self.config.batch_size >= len(x):
            return x, y
        index = torch.randperm(len(x), generator=self.generator)[: self.config.batch_size].to(x.device)
        return x[index], y[index]

    def step(self) -> float:
        """One optimizer step; returns the objective at the start of the step."""
        self.model.train()
        x, y = self._batch()

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            total, _ = self.objective(x, y)
            if total.requires_grad:
                total.backward()
            return total.detach()

        loss = float(self.optimizer.step(closure))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss} at iteration {self.iteration}; lower the learning rate (lr={self.config.lr}) "
                f"or the step size h = T/K = {self.model.step_size:g}"
            )
        self.iteration += 1
        return loss

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        total, penalty = self.objective(self.data.x_train, self.data.y_train)
        return {
            "loss": total.item(),
            "regularizer": penalty.item(),
            "train_accuracy": accuracy(self.model(self.data.x_train), self.data.y_train),
            "val_accuracy": accuracy(self.model(self.data.x_val), self.data.y_val),
        }

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
                    self.history[key].append(value)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", val_acc=f"{metrics['val_accuracy']:.3f}")
                if callback is not None:
                    callback(self)
        bar.close()
        return self.history

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
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
        if not isinstance(self.optimizer, BacktrackingGD):
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr
                if self.config.optimizer in _DECAYING_OPTIMIZERS:
                    group["weight_decay"] = self.config.weight_decay
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        self.history = {k: list(v) for k, v in state["history"].items()}

