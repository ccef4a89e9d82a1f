"""Training by discretise-then-optimise: it learns, it resumes exactly, it fails loudly."""

import itertools

import pytest
import torch

from sdl.data import make_dataset
from sdl.losses import margins
from sdl.models import ODENet, ResNetField, parameter_smoothness
from sdl.training import TrainConfig, Trainer, TrainingDiverged, loss_value


def _net(seed=0, layers=15, dim=2):
    torch.manual_seed(seed)
    return ODENet(ResNetField(dim, "tanh", num_layers=layers), t_final=1.5, method="rk4")


def test_short_run_learns_the_spiral():
    """Benning's set-up (2 channels, 15 layers, h = 0.1) on 300 points: 300 Adam steps reach 97%."""
    data = make_dataset("spiral2d", n=300, seed=0)
    trainer = Trainer(_net(), data, TrainConfig(lr=0.05, iterations=300, loss="cross_entropy", log_every=100))
    history = trainer.run(progress=False)
    assert history["val_accuracy"][0] < 0.97 <= history["val_accuracy"][-1]


def test_resumed_run_equals_uninterrupted_run():
    data = make_dataset("spiral2d", n=200, seed=1)
    config = TrainConfig(lr=0.02, iterations=30, batch_size=64, smoothness=0.1, log_every=5)
    straight = Trainer(_net(layers=5), data, config)
    straight.run(progress=False)

    first = Trainer(_net(layers=5), data, config)
    first.run(iterations=15, progress=False)
    saved = first.state_dict()
    resumed = Trainer(_net(seed=99, layers=5), data, config)  # different init: everything must come from the state
    resumed.load_state_dict(saved)
    resumed.run(progress=False)

    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert straight.history == resumed.history


@pytest.mark.parametrize("optimizer, lr", [("gd", 1.0), ("lbfgs", 1.0), ("sgd", 0.1)])
def test_other_optimizers_decrease_the_loss(optimizer, lr):
    data = make_dataset("donut2d", n=100, seed=0)
    trainer = Trainer(_net(layers=4), data, TrainConfig(optimizer=optimizer, lr=lr, iterations=8, log_every=1))
    history = trainer.run(progress=False)
    assert history["loss"][-1] < history["loss"][0]
    if optimizer == "gd":  # Armijo backtracking never accepts an increase
        assert all(b <= a for a, b in itertools.pairwise(history["loss"]))


def test_smoothness_penalty_makes_parameters_smoother():
    data = make_dataset("spiral2d", n=100, seed=0)
    rough = Trainer(_net(layers=8), data, TrainConfig(lr=0.05, iterations=40, smoothness=0.0))
    smooth = Trainer(_net(layers=8), data, TrainConfig(lr=0.05, iterations=40, smoothness=1.0))
    rough.run(progress=False)
    smooth.run(progress=False)
    h = rough.model.step_size
    assert parameter_smoothness(smooth.model.field, h) < 0.5 * parameter_smoothness(rough.model.field, h)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_weight_decay_is_decoupled(optimizer):
    """One step with decay w differs from the same step without it by exactly -lr·w·θ₀."""
    data = make_dataset("donut2d", n=50, seed=0, dtype=torch.float64)
    lr, decay = 0.05, 0.3
    start = {k: v.clone() for k, v in _net(layers=3).double().state_dict().items()}
    plain = Trainer(_net(layers=3).double(), data, TrainConfig(optimizer=optimizer, lr=lr, iterations=1))
    decayed = Trainer(_net(layers=3).double(), data, TrainConfig(optimizer=optimizer, lr=lr, iterations=1, weight_decay=decay))
    plain.step()
    decayed.step()
    for name, theta0 in start.items():
        difference = decayed.model.state_dict()[name] - plain.model.state_dict()[name]
        torch.testing.assert_close(difference, -lr * decay * theta0, rtol=0, atol=1e-15)


def test_nan_loss_stops_training_with_a_clear_message():
    data = make_dataset("spiral2d", n=50, seed=0)
    trainer = Trainer(_net(layers=3), data, TrainConfig(iterations=5))
    with torch.no_grad():
        trainer.model.field.weight[1, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="the loss became nan at iteration 0; lower the learning rate"):
        trainer.run(progress=False)


def test_data_and_model_of_different_dtypes_are_rejected():
    data = make_dataset("spiral2d", n=20, seed=0)
    with pytest.raises(
        ValueError, match=r"the data are torch.float32 on cpu but the model's parameters are torch.float64 on cpu"
    ):
        Trainer(_net(layers=3).double(), data, TrainConfig(iterations=1))


def test_squared_loss_matches_benning_definition():
    logits = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    labels = torch.tensor([1, 1, 0])
    eta = torch.sigmoid(logits)
    expected = 0.5 * ((eta[0] - 1) ** 2 + (eta[1] - 1) ** 2 + eta[2] ** 2) / 3
    assert loss_value("squared", logits, labels).item() == pytest.approx(expected.item(), abs=1e-15)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; valid choices: adam, sgd, lbfgs, gd"),
        (dict(loss="huber"), "unknown loss 'huber'; valid choices: squared, cross_entropy, hinge"),
        (dict(lr=0.0), "lr must be a finite number > 0"),
        (dict(smoothness=-1.0), "smoothness must be a finite number ≥ 0"),
        (dict(weight_decay=float("nan")), "weight_decay must be a finite number ≥ 0"),
        (dict(optimizer="lbfgs", weight_decay=0.1), "weight_decay=0.1 needs optimizer adam or sgd, got 'lbfgs'"),
        (dict(iterations=0), "iterations must be a positive int"),
        (dict(batch_size=0), "batch_size must be a positive int or None"),
    ],
)
def test_bad_training_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_stopping_between_log_points_logs_no_extra_row():
    """run(3) with log_every=2 then run() to 6 logs rows 2, 4, 6, as an uninterrupted run does."""
    data = make_dataset("spiral2d", n=20, seed=0)
    config = TrainConfig(iterations=6, log_every=2)
    straight = Trainer(_net(layers=2), data, config)
    straight.run(progress=False)
    stopped = Trainer(_net(layers=2), data, config)
    stopped.run(iterations=3, progress=False)
    assert stopped.history["iteration"] == [2]
    stopped.run(progress=False)
    assert stopped.history == straight.history


def test_resuming_takes_lr_and_decay_from_the_new_config_and_refuses_another_optimizer():
    data = make_dataset("spiral2d", n=20, seed=0)
    first = Trainer(_net(layers=2), data, TrainConfig(lr=0.05, iterations=2))
    first.run(progress=False)
    resumed = Trainer(_net(layers=2), data, TrainConfig(lr=0.001, weight_decay=0.1, iterations=4))
    resumed.load_state_dict(first.state_dict())
    assert [(g["lr"], g["weight_decay"]) for g in resumed.optimizer.param_groups] == [(0.001, 0.1)]
    with pytest.raises(ValueError, match="the state is of optimizer 'adam', this trainer's is 'sgd'"):
        Trainer(_net(layers=2), data, TrainConfig(optimizer="sgd", iterations=4)).load_state_dict(first.state_dict())
    gd = Trainer(_net(layers=2), data, TrainConfig(optimizer="gd", lr=1.0, iterations=2))
    gd.run(progress=False)
    adapted = gd.optimizer.param_groups[0]["lr"]
    again = Trainer(_net(layers=2), data, TrainConfig(optimizer="gd", lr=0.5, iterations=4))
    again.load_state_dict(gd.state_dict())
    assert again.optimizer.param_groups[0]["lr"] == adapted  # the line search's α, not the config's


def test_hinge_loss_asks_for_a_margin_of_the_true_class():
    logits = torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0], [4.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 0])
    # margins z_y - max_{j≠y} z_j: 1, -2, 4; with m = 1.5 the losses are 0.5, 3.5, 0
    assert torch.equal(margins(logits, labels), torch.tensor([1.0, -2.0, 4.0]))
    assert loss_value("hinge", logits, labels, margin=1.5).item() == pytest.approx(4.0 / 3)
    binary = torch.tensor([0.3, -2.0, 1.0])  # one logit: the margin is (2y - 1) z
    assert torch.equal(margins(binary, torch.tensor([1, 1, 0])), torch.tensor([0.3, -2.0, -1.0]))
