import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import imread

import sdl
from sdl.data import make_dataset
from sdl.integrators import TABLEAUS
from sdl.plots import (
    plot_decision_boundary,
    plot_energy_error,
    plot_history,
    plot_layer_stability,
    plot_parameters,
    plot_stability_region,
    plot_transitions,
)


def _check_png(fig, path, min_width=400, min_height=300):
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 10_000
    image = imread(path)
    height, width = image.shape[:2]
    assert min_width <= width <= 4000 and min_height <= height <= 3000
    assert image[..., :3].std() > 0.05  # not a blank canvas


def _layer_states():
    data = make_dataset("donut2d", 200)
    weight = torch.tensor([[0.0, -2.0], [2.0, 0.0]])
    t = torch.linspace(0, 1.5, 16)
    states = sdl.odeint(lambda t, z: torch.tanh(z @ weight.T) - 0.3 * z, data.x_train, t, method="euler")
    return states, data.y_train


def test_plot_layer_stability_single_and_several_runs(tmp_path):
    k = np.arange(15)
    eigen, nu = -0.1 * np.exp(-k / 5), 0.2 * np.cos(k)
    fig = plot_layer_stability(torch.tensor(eigen), nu, tmp_path / "one.png")
    _check_png(fig, tmp_path / "one.png")
    assert len(fig.axes) == 1
    fig = plot_layer_stability(
        [eigen, eigen / 2, eigen / 4], [nu, nu / 2, nu / 4], tmp_path / "three.png", labels=["λ = 0", "λ = 0.1", "λ = 1"]
    )
    _check_png(fig, tmp_path / "three.png", min_width=1000)
    assert [ax.get_title() for ax in fig.axes] == ["λ = 0", "λ = 0.1", "λ = 1"]
    with pytest.raises(ValueError, match="labels"):
        plot_layer_stability([eigen, eigen], [nu, nu], tmp_path / "x.png", labels=["a"])
    with pytest.raises(ValueError, match="runs"):
        plot_layer_stability([eigen, eigen], [nu], tmp_path / "x.png")


def test_plot_history_of_a_trainer_against_its_iterations(tmp_path):
    """Trainer.history: "iteration" is the x axis, not a curve; a regularizer that is off
    (all zero) is left out and so does not stop the log scale."""
    history = {
        "iteration": [50, 100, 150],
        "loss": [0.4, 0.2, 0.1],
        "regularizer": [0.0, 0.0, 0.0],
        "train_accuracy": [0.6, 0.8, 0.9],
        "val_accuracy": [0.5, 0.7, 0.9],
    }
    fig = plot_history(history, tmp_path / "history.png")
    _check_png(fig, tmp_path / "history.png")
    loss_ax, accuracy_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss"]
    assert [line.get_label() for line in accuracy_ax.lines] == ["train_accuracy", "val_accuracy"]
    assert loss_ax.get_xlabel() == accuracy_ax.get_xlabel() == "iteration"
    assert list(loss_ax.lines[0].get_xdata()) == [50, 100, 150]
    assert loss_ax.get_yscale() == "log"


def test_plot_decision_boundary(tmp_path):
    data = make_dataset("donut2d", 300)

    def predict(z):
        return torch.sigmoid(20 * (0.3**2 - (z**2).sum(1)))

    fig = plot_decision_boundary(predict, data.x_train, data.y_train, tmp_path / "boundary.png")
    _check_png(fig, tmp_path / "boundary.png")
    with pytest.raises(ValueError, match="one probability per point"):
        plot_decision_boundary(lambda z: z, data.x_train, data.y_train, tmp_path / "x.png")


def test_plot_transitions(tmp_path):
    states, labels = _layer_states()
    fig = plot_transitions(states, labels, tmp_path / "transitions.png", title="explicit Euler")
    _check_png(fig, tmp_path / "transitions.png", min_width=1000)
    assert sum(ax.get_visible() for ax in fig.axes) == 8
    fig = plot_transitions(states, labels, tmp_path / "three.png", layers=[0, 7, 15])
    assert [ax.get_title() for ax in fig.axes] == ["input (layer 0)", "layer 7", "layer 15"]
    with pytest.raises(ValueError, match="layers must lie"):
        plot_transitions(states, labels, tmp_path / "x.png", layers=[16])


def test_plot_parameters(tmp_path):
    k = np.arange(20)[:, None]
    theta = np.sin(k / 3 + np.arange(6)) + 0.3 * np.random.default_rng(0).standard_normal((20, 6))
    fig = plot_parameters(theta, tmp_path / "theta.png", title="λ = 0")
    _check_png(fig, tmp_path / "theta.png")
    assert len(fig.axes[0].get_lines()) == 6


def test_plot_history(tmp_path):
    epochs = np.arange(1, 51)
    history = {"train_loss": list(1 / epochs), "val_loss": list(1.2 / epochs), "val_accuracy": list(1 - 0.5 / epochs)}
    fig = plot_history(history, tmp_path / "history.png")
    _check_png(fig, tmp_path / "history.png")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert fig.axes[0].get_yscale() == "log"


def test_plot_stability_region(tmp_path):
    tableaus = {name: TABLEAUS[name] for name in ("euler", "heun", "kutta3", "rk4")}
    fig = plot_stability_region(tableaus, tmp_path / "regions.png", resolution=121)
    _check_png(fig, tmp_path / "regions.png")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [*tableaus, "stable for all"]


def test_plot_energy_error(tmp_path):
    t = np.linspace(0, 100, 1001)
    errors = {"verlet": 1e-3 * np.abs(np.sin(t)), "rk4": 1e-6 * t}
    fig = plot_energy_error(torch.tensor(t), errors, tmp_path / "energy.png")
    _check_png(fig, tmp_path / "energy.png")
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="entries"):
        plot_energy_error(t[:-1], errors, tmp_path / "x.png")


def test_paths_are_created(tmp_path):
    path = tmp_path / "nested" / "dir" / "history.png"
    plot_history({"loss": [1.0, 0.5, 0.25 * math.e / 3]}, path)
    assert path.exists()
