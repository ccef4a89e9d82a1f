"""Figures of the experiments: each function draws one figure, saves it as a PNG and returns it.

Figures are built with the object-oriented API on the Agg canvas (``matplotlib.figure.Figure``,
no ``pyplot``): nothing is shown, no global figure state is kept, and the returned ``Figure``
still displays in a notebook. Inputs may be tensors (any device) or arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .integrators import ButcherTableau
from .stability import stability_region

__all__ = [
    "plot_decision_boundary",
    "plot_density",
    "plot_energy",
    "plot_energy_error",
    "plot_energy_samples",
    "plot_ess",
    "plot_hamiltonian_contours",
    "plot_history",
    "plot_layer_stability",
    "plot_parameters",
    "plot_phase_portrait",
    "plot_reaction_coordinate",
    "plot_stability_region",
    "plot_sweep",
    "plot_transitions",
]

_DPI = 120
_CLASS_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown")
_EIGEN_COLOUR, _LIPSCHITZ_COLOUR = "tab:blue", "tab:red"  # as in Owren's slides
_MAX_TRANSITION_PANELS = 8
_MAX_LEGEND_ENTRIES = 10


def plot_layer_stability(
    max_re_eig,
    lipschitz,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Owren's plot: per layer k, max Re λ(J_k) (blue) and the one-sided Lipschitz ν_k (red).

    Args:
        max_re_eig: (K,) values for one run, or R runs as a sequence of (K_r,) arrays or an
            (R, K) array; each run gets its own panel, side by side, with a shared y axis.
        lipschitz: the same layout as ``max_re_eig``.
        path: where to save the PNG.
        labels: R run labels, the panel titles, e.g. ``["λ = 0", "λ = 0.1", "λ = 1"]``.
    """
    eigen_runs, lipschitz_runs = _runs(max_re_eig, "max_re_eig"), _runs(lipschitz, "lipschitz")
    if len(eigen_runs) != len(lipschitz_runs):
        raise ValueError(f"got {len(eigen_runs)} runs of eigenvalues but {len(lipschitz_runs)} of Lipschitz constants")
    titles = _titles(labels, len(eigen_runs))
    fig = _figure(4.2 * len(eigen_runs), 3.9)
    axes = fig.subplots(1, len(eigen_runs), sharey=True, squeeze=False)[0]
    for ax, eigen, nu, title in zip(axes, eigen_runs, lipschitz_runs, titles, strict=True):
        if eigen.shape != nu.shape:
            raise ValueError(f"a run has {eigen.size} eigenvalue entries but {nu.size} Lipschitz entries")
        layers = np.arange(eigen.size)
        ax.axhline(0.0, color="0.6", lw=0.8)
        # ν ≥ max Re λ, with equality for symmetric J: draw λ thinner and on top so both show.
        ax.plot(layers, nu, "s-", color=_LIPSCHITZ_COLOUR, lw=2.2, ms=5, label="one-sided Lipschitz ν")
        ax.plot(layers, eigen, "o--", color=_EIGEN_COLOUR, lw=1.2, ms=3, label="max Re λ(J)")
        ax.set_xlabel("layer k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("max over the layer's states")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9)
    return _save(fig, path)


def plot_decision_boundary(
    predict: Callable,
    x,
    y,
    path: str | Path,
    *,
    limits: tuple[float, float, float, float] | None = None,
    resolution: int = 200,
    title: str | None = None,
) -> Figure:
    """Predicted probability of class 1 on a grid, the 0.5 contour, and the labelled points.

    Args:
        predict: ``predict(points: (M, 2)) -> (M,)`` probabilities of class 1; called once, under
            ``torch.no_grad()``, with a tensor of x's dtype and device (the default dtype for
            an array x).
        x: (N, 2) points.
        y: (N,) labels.
        path: where to save the PNG.
        limits: (x_min, x_max, y_min, y_max); default the data's bounding box plus 10%.
        resolution: grid points per axis.
        title: optional axes title.
    """
    points, labels = _numpy(x), _numpy(y)
    if points.ndim != 2 or points.shape[1] != 2 or labels.shape != (points.shape[0],):
        raise ValueError(f"x must be (N, 2) and y (N,), got {points.shape} and {labels.shape}")
    x0, x1, y0, y1 = limits if limits is not None else _padded_box(points)
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    dtype, device = (x.dtype, x.device) if isinstance(x, torch.Tensor) else (torch.get_default_dtype(), None)
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=dtype, device=device)
    with torch.no_grad():
        probability: np.ndarray = _numpy(predict(grid)).reshape(-1)
    if probability.size != grid.shape[0]:
        raise ValueError(f"predict must return one probability per point ({grid.shape[0]}), got {probability.size}")
    probability = probability.reshape(gx.shape)
    fig = _figure(5.2, 4.5)
    ax = fig.subplots()
    filled = ax.contourf(gx, gy, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.75)
    ax.contour(gx, gy, probability, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(filled, ax=ax, label="P(class 1)")
    _scatter_classes(ax, points, labels, size=10)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.set_title(title or "decision boundary (P = 0.5)")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_transitions(
    layer_states,
    labels,
    path: str | Path,
    layers: Sequence[int] | None = None,
    *,
    limits: tuple[float, float] = (-1.5, 1.5),
    title: str | None = None,
) -> Figure:
    """Snapshots of the points at selected layers (first two coordinates), coloured by label.

    Args:
        layer_states: (K + 1, N, d ≥ 2), e.g. ``sdl.odeint`` output; index 0 is the input.
        labels: (N,) class labels.
        path: where to save the PNG.
        layers: which indices of ``layer_states`` to show; default all if K + 1 ≤ 8, else 8
            evenly spaced ones including the first and the last.
        limits: (min, max) of both axes.
        title: optional figure title (e.g. the integrator's name).
    """
    states, labels = _numpy(layer_states), _numpy(labels)
    if states.ndim != 3 or states.shape[2] < 2 or labels.shape != (states.shape[1],):
        raise ValueError(f"layer_states must be (K + 1, N, d ≥ 2) and labels (N,), got {states.shape} and {labels.shape}")
    count = states.shape[0]
    chosen: Sequence[int] | np.ndarray
    if layers is None:
        chosen = range(count) if count <= _MAX_TRANSITION_PANELS else np.linspace(0, count - 1, _MAX_TRANSITION_PANELS)
    else:
        chosen = layers
    layers = sorted({round(float(k)) for k in chosen})
    if any(not 0 <= k < count for k in layers):
        raise ValueError(f"layers must lie in 0..{count - 1}, got {layers}")
    columns = min(len(layers), 4)
    rows = -(-len(layers) // columns)
    fig = _figure(2.9 * columns, 3.2 * rows + (0.4 if title else 0.0))
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    for ax, k in zip(axes, layers, strict=False):  # the last row may have empty panels
        _scatter_classes(ax, states[k, :, :2], labels, size=9)
        ax.set(xlim=limits, ylim=limits, aspect="equal", title=f"layer {k}" if k else "input (layer 0)")
        ax.tick_params(labelsize=7)
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    axes[0].legend(loc="upper left", fontsize=7, markerscale=2, framealpha=0.9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_parameters(
    theta, path: str | Path, *, names: Sequence[str] | None = None, title: str | None = None, labels: Sequence[str] | None = None
) -> Figure:
    """Each parameter θ^k_j against the layer k (shows how regular the learned θ(t) is).

    Args:
        theta: (K, P) parameters per layer, e.g. the flattened (A^k, b^k); or a list of R such
            arrays (e.g. one per regularisation weight), drawn side by side with a shared y axis.
        path: where to save the PNG.
        names: P legend names (the legend is shown for at most 10 parameters).
        title: optional figure title.
        labels: R panel titles when several runs are given, e.g. ``["λ = 0", "λ = 1"]``.
    """
    runs = [_numpy(t) for t in theta] if isinstance(theta, (list, tuple)) else [_numpy(theta)]
    if any(values.ndim != 2 for values in runs):
        raise ValueError(f"theta must be (K, P) or a list of (K, P) arrays, got shapes {[v.shape for v in runs]}")
    num_params = runs[0].shape[1]
    if names is not None and len(names) != num_params:
        raise ValueError(f"got {len(names)} names for {num_params} parameters")
    titles = _titles(labels, len(runs))
    fig = _figure(6.0 if len(runs) == 1 else 4.2 * len(runs), 3.8)
    axes = fig.subplots(1, len(runs), squeeze=False, sharey=True)[0]
    for ax, values, panel in zip(axes, runs, titles, strict=True):
        layers = np.arange(values.shape[0])
        for j in range(values.shape[1]):
            label = names[j] if names is not None else f"θ_{j}"
            ax.plot(layers, values[:, j], "-", marker="." if values.shape[0] <= 40 else None, lw=1.0, label=label)
        ax.set(xlabel="layer k", title=panel or f"parameters per layer ({values.shape[1]})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("parameter value $θ^k_j$")
    if num_params <= _MAX_LEGEND_ENTRIES:
        axes[-1].legend(fontsize=7, ncol=2, loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, *, title: str | None = None) -> Figure:
    """Training curves: losses in one panel, accuracies in another.

    Keys containing "acc" (e.g. "train_accuracy") go to the accuracy panel (y in [0, 1]); all
    others to the loss panel, on a log scale when every value there is positive. A series that
    is zero throughout (a regularizer that is off) is left out. The x axis is the "iteration"
    entry when there is one (``Trainer.history``), else the position 1, 2, ... ("evaluation").

    Args:
        history: name -> values per evaluation, optionally "iteration" -> the iteration of each.
        path: where to save the PNG.
        title: optional figure title.
    """
    curves = {name: _numpy(values).reshape(-1) for name, values in history.items() if name != "iteration"}
    if not curves:
        raise ValueError("history is empty")
    n = max(v.size for v in curves.values())
    if "iteration" in history:
        x, x_label = _numpy(history["iteration"]).reshape(-1), "iteration"
        if x.size != n:
            raise ValueError(f"history has {x.size} iterations but {n} values per series")
    else:
        x, x_label = np.arange(1, n + 1), "evaluation"
    losses = {k: v for k, v in curves.items() if "acc" not in k.lower()}
    groups = {
        "loss": {k: v for k, v in losses.items() if np.any(v != 0)} or losses,
        "accuracy": {k: v for k, v in curves.items() if "acc" in k.lower()},
    }
    groups = {kind: group for kind, group in groups.items() if group}
    fig = _figure(5.0 * len(groups), 3.6 + (0.3 if title else 0.0))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (kind, group) in zip(axes, groups.items(), strict=True):
        for name, values in group.items():
            ax.plot(x[: values.size], values, lw=1.4, label=name)
        if kind == "loss" and all(np.all(v[np.isfinite(v)] > 0) for v in group.values()):
            ax.set_yscale("log")
        if kind == "accuracy":
            ax.set_ylim(-0.02, 1.02)
        ax.set(xlabel=x_label, ylabel=kind)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_stability_region(
    tableaus: Mapping[str, ButcherTableau],
    path: str | Path,
    *,
    re_range: tuple[float, float] = (-5.0, 1.5),
    im_range: tuple[float, float] = (-3.5, 3.5),
    resolution: int = 301,
) -> Figure:
    """The boundaries |R(z)| = 1 of the linear stability regions, one colour per method.

    The region of each method is the side of its curve containing small negative z
    (for explicit methods, the bounded inside). The lightest fill marks where every
    method is stable.

    Args:
        tableaus: legend name -> ``ButcherTableau``, e.g. ``{n: TABLEAUS[n] for n in ("euler", "rk4")}``.
        path: where to save the PNG.
        re_range, im_range, resolution: the grid, as in ``sdl.stability.stability_region``.
    """
    if not tableaus:
        raise ValueError("tableaus is empty")
    fig = _figure(5.6, 5.0)
    ax = fig.subplots()
    handles: list[Artist] = []
    everywhere = None
    for i, (name, tableau) in enumerate(tableaus.items()):
        region = stability_region(tableau, re_range, im_range, resolution)
        colour = f"C{i % 10}"
        ax.contour(region.real, region.imag, region.modulus, levels=[1.0], colors=[colour], linewidths=1.6)
        handles.append(Line2D([], [], color=colour, lw=1.6, label=name))
        everywhere = region.stable if everywhere is None else everywhere & region.stable
    assert everywhere is not None  # tableaus is not empty
    ax.contourf(region.real, region.imag, everywhere.astype(float), levels=[0.5, 1.5], colors=["0.85"])
    handles.append(Patch(color="0.85", label="stable for all"))
    ax.axhline(0, color="0.4", lw=0.7)
    ax.axvline(0, color="0.4", lw=0.7)
    ax.set(xlabel="Re z  (z = hλ)", ylabel="Im z", aspect="equal", title="stability regions |R(z)| ≤ 1")
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_energy_error(times, errors: Mapping[str, object], path: str | Path, *, title: str | None = None) -> Figure:
    """|H(t) - H(0)| against t on a log scale, one line per method.

    Args:
        times: (T,) times.
        errors: legend name -> (T,) energy errors (e.g. from ``sdl.stability.energy_error``;
            extra trailing dimensions are reduced by their maximum).
        path: where to save the PNG.
        title: optional axes title.
    """
    t = _numpy(times).reshape(-1)
    if not errors:
        raise ValueError("errors is empty")
    fig = _figure(6.0, 3.8)
    ax = fig.subplots()
    for name, values in errors.items():
        values = _numpy(values)
        values = values.reshape(values.shape[0], -1).max(1) if values.ndim > 1 else values
        if values.shape != t.shape:
            raise ValueError(f"errors[{name!r}] has {values.shape[0]} entries but times has {t.size}")
        ax.plot(t, np.where(values > 0, values, np.nan), lw=1.2, label=name)  # log scale: drop exact zeros
    ax.set_yscale("log")
    ax.set(xlabel="time t", ylabel="energy error |H(t) - H(0)|", title=title or "energy error")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_sweep(results: Mapping[str, Mapping[str, float]], path: str | Path, *, title: str | None = None) -> Figure:
    """The metrics of each run of a sweep, as grouped horizontal bars (one colour per metric).

    Args:
        results: run label -> {metric name: value}; the metrics are those of the first run that has
            any, a run without them (a failed one) draws no bars. Accuracies get an axis on [0, 1].
    """
    labels = list(results)
    names = list(next((metrics for metrics in results.values() if metrics), {}))
    values = np.array([[results[label].get(name, np.nan) for name in names] for label in labels], dtype=float)
    values = values.reshape(len(labels), len(names))
    fig = _figure(7.0, 1.2 + 0.25 * max(len(names), 2) * len(labels))
    ax = fig.add_subplot()
    rows = np.arange(len(labels))
    height = 0.8 / max(len(names), 1)
    for column, name in enumerate(names):
        offset = (column - (len(names) - 1) / 2) * height
        ax.barh(rows + offset, values[:, column], height=height, label=name.replace("_", " "))
        for row, value in zip(rows, values[:, column], strict=True):
            if np.isfinite(value):
                ax.text(value, row + offset, f" {value:.3f}", va="center", fontsize=8)
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()
    finite = values[np.isfinite(values)]
    if names and all("accuracy" in name for name in names):
        low = finite.min() if finite.size else 0.0
        ax.set_xlim(max(0.0, min(0.5, low - 0.05)), 1.04)
    ax.set_xlabel(", ".join(name.replace("_", " ") for name in names))
    ax.legend(loc="lower right")
    ax.set_title(title or "sweep")
    return _save(fig, path)


def plot_density(samples, density, limit: float, path: str | Path, *, title: str | None = None) -> Figure:
    """Samples of a 2-D density beside a model's density on a grid over [-limit, limit]².

    Args:
        samples: (M, 2) points of the true density, drawn as a 2-D histogram.
        density: (R, R) model density on the grid, rows along x₂, columns along x₁.
    """
    samples, density = _numpy(samples), _numpy(density)
    fig = _figure(7.0, 3.6 + (0.3 if title else 0.0))
    box = [[-limit, limit], [-limit, limit]]
    for index, name in enumerate(("samples", "model density")):
        ax = fig.add_subplot(1, 2, index + 1)
        if index == 0:
            ax.hist2d(samples[:, 0], samples[:, 1], bins=density.shape[0], range=box, cmap="viridis")
        else:
            ax.imshow(density, origin="lower", extent=(-limit, limit, -limit, limit), cmap="viridis")
        ax.set(title=name, xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_phase_portrait(exact, predicted, n: int, path: str | Path, *, title: str | None = None, count: int = 5) -> Figure:
    """True against predicted trajectories in the (q_i, p_i) planes, one panel per coordinate i
    (at most 4), the first ``count`` trajectories.

    Args:
        exact, predicted: (T, S, 2n) states x = (q, p) of S trajectories at T times.
        n: the number of coordinates of q (and of p).
    """
    exact, predicted = _numpy(exact), _numpy(predicted)
    if exact.shape != predicted.shape or exact.ndim != 3 or exact.shape[-1] != 2 * n:
        raise ValueError(f"exact and predicted must both be (T, S, {2 * n}); got {exact.shape} and {predicted.shape}")
    panels = min(n, 4)
    fig = _figure(3.4 * panels, 3.5 + (0.3 if title else 0.0))
    for i in range(panels):
        ax = fig.add_subplot(1, panels, i + 1)
        for s in range(min(count, exact.shape[1])):
            colour = f"C{s}"
            ax.plot(exact[:, s, i], exact[:, s, n + i], color=colour, lw=2.2, alpha=0.35)
            ax.plot(predicted[:, s, i], predicted[:, s, n + i], color=colour, lw=0.9, ls="--")
        ax.set(xlabel=f"q{i + 1}" if n > 1 else "q", ylabel=f"p{i + 1}" if n > 1 else "p")
        ax.grid(alpha=0.3)
    legend = [
        Line2D([], [], color="0.4", lw=2.2, alpha=0.35, label="true"),
        Line2D([], [], color="0.4", lw=0.9, ls="--", label="learned"),
    ]
    fig.axes[0].legend(handles=legend, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_energy(times, exact, predicted, path: str | Path, *, title: str | None = None) -> Figure:
    """The true energy H along true and predicted trajectories against time (left) and the mean
    squared energy error over the trajectories (right, log scale).

    Args:
        times: (T,) times.
        exact, predicted: (T, S) the energy H(x(t)) of S true and predicted trajectories.
    """
    t, exact, predicted = _numpy(times).reshape(-1), _numpy(exact), _numpy(predicted)
    if exact.shape != predicted.shape or exact.shape[0] != t.size:
        raise ValueError(f"exact and predicted must both be (T, S) with T = {t.size}; got {exact.shape} and {predicted.shape}")
    fig = _figure(9.0, 3.6 + (0.3 if title else 0.0))
    left, right = fig.subplots(1, 2)
    for s in range(min(5, exact.shape[1])):
        left.plot(t, exact[:, s], color=f"C{s}", lw=2.2, alpha=0.35)
        left.plot(t, predicted[:, s], color=f"C{s}", lw=0.9, ls="--")
    left.set(xlabel="time t", ylabel="H", title="energy (true: thick, learned: dashed)")
    error = ((predicted - exact) ** 2).mean(1)
    right.plot(t, np.where(error > 0, error, np.nan), lw=1.2)
    right.set_yscale("log")
    right.set(xlabel="time t", ylabel="mean (H(x̂) - H(x))²", title="energy error")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_hamiltonian_contours(q_axis, p_axis, true, learned, path: str | Path, *, title: str | None = None) -> Figure:
    """Level sets of the true and the learned Hamiltonian on a (q, p) grid, side by side (a learned
    H is determined up to a constant and, from trajectories, a scale: only its level sets compare).

    Args:
        q_axis, p_axis: (R,), (C,) grid axes.
        true, learned: (C, R) values, rows along p.
    """
    q_axis, p_axis, true, learned = map(_numpy, (q_axis, p_axis, true, learned))
    fig = _figure(7.6, 3.6 + (0.3 if title else 0.0))
    for index, (name, values) in enumerate((("true H", true), ("learned H", learned))):
        ax = fig.add_subplot(1, 2, index + 1)
        ax.contour(q_axis, p_axis, values, levels=20, cmap="viridis", linewidths=0.9)
        ax.set(title=name, xlabel="q", ylabel="p")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return fig


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _runs(values, name: str) -> list[np.ndarray]:
    """One run (K,) or several: a sequence of (K_r,) or an (R, K) array -> list of 1-D arrays."""
    if isinstance(values, (list, tuple)) and values and np.ndim(_numpy(values[0])) == 1:
        runs = [_numpy(v).astype(float) for v in values]
    else:
        array = _numpy(values).astype(float)
        if array.ndim not in (1, 2):
            raise ValueError(f"{name} must be (K,), (R, K) or a list of (K,) arrays, got shape {array.shape}")
        runs = [array] if array.ndim == 1 else list(array)
    if not runs or any(r.ndim != 1 or r.size == 0 for r in runs):
        raise ValueError(f"{name} must hold at least one non-empty run of per-layer values")
    return runs


def _titles(labels: Sequence[str] | None, count: int) -> list[str]:
    if labels is None:
        return [""] * count if count == 1 else [f"run {i}" for i in range(count)]
    if len(labels) != count:
        raise ValueError(f"got {len(labels)} labels for {count} runs")
    return list(labels)


def _padded_box(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points.min(0), points.max(0)
    pad = 0.1 * np.maximum(high - low, 1e-12)
    return low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1]


def _scatter_classes(ax, points: np.ndarray, labels: np.ndarray, size: float) -> None:
    for i, label in enumerate(np.unique(labels)):
        chosen = labels == label
        ax.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=size,
            color=_CLASS_COLOURS[i % len(_CLASS_COLOURS)],
            edgecolors="white",
            linewidths=0.3,
            label=f"class {label:g}",
        )


def plot_energy_samples(
    axes_x, axes_y, energy, samples: Mapping[str, object], path: str | Path, *, title: str | None = None, levels: int = 25
) -> Figure:
    """Samples of a 2-D system over the contours of its energy, one panel per named sample set.

    Args:
        axes_x, axes_y: (R,) and (S,) grid coordinates.
        energy: (S, R) reduced energy u on the grid (rows along x₂), drawn up to its minimum + 20 kT.
        samples: name -> (M, 2) points (e.g. "MCMC reference", "flow").
    """
    axes_x, axes_y, energy = _numpy(axes_x), _numpy(axes_y), _numpy(energy)
    fig = _figure(3.6 * len(samples), 3.6 + (0.3 if title else 0.0))
    low = energy.min()
    for index, (name, points) in enumerate(samples.items()):
        points = _numpy(points)
        ax = fig.add_subplot(1, len(samples), index + 1)
        ax.contour(axes_x, axes_y, energy, levels=np.linspace(low, low + 20.0, levels), cmap="Greys", linewidths=0.7)
        ax.scatter(points[:, 0], points[:, 1], s=1.5, alpha=0.35, color="tab:blue", rasterized=True)
        ax.set(title=name, xlim=(axes_x[0], axes_x[-1]), ylim=(axes_y[0], axes_y[-1]), xlabel="x₁", ylabel="x₂")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_reaction_coordinate(
    reference,
    flow,
    log_weights,
    dividing_value: float,
    path: str | Path,
    *,
    title: str | None = None,
    bins: int = 80,
    label: str = "reaction coordinate",
) -> Figure:
    """Histograms along the reaction coordinate r: reference samples of p, the flow's raw samples,
    and the same samples reweighted by w = exp(log_weights); the dividing value r* as a line.
    Free energy -log(density) on a second panel, where the wells are visible.

    Args:
        reference: (M,) r of samples of p; flow: (N,) r of the flow's samples; log_weights: (N,).
    """
    reference, flow, log_w = _numpy(reference), _numpy(flow), _numpy(log_weights).astype(float)
    weights = np.exp(log_w - log_w[np.isfinite(log_w)].max()) if np.isfinite(log_w).any() else np.zeros_like(log_w)
    edges = np.histogram_bin_edges(np.concatenate([reference, flow]), bins=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    curves = {
        "reference (MCMC)": np.histogram(reference, edges, density=True)[0],
        "flow": np.histogram(flow, edges, density=True)[0],
        "flow, reweighted": np.histogram(flow, edges, weights=weights, density=True)[0] if weights.sum() > 0 else np.zeros(bins),
    }
    fig = _figure(9.0, 3.6 + (0.3 if title else 0.0))
    axes = fig.subplots(1, 2)
    for name, values in curves.items():
        axes[0].plot(centres, values, lw=1.4, label=name)
        with np.errstate(divide="ignore"):
            axes[1].plot(centres, -np.log(values), lw=1.4, label=name)
    for ax, ylabel in zip(axes, ("density", "-log density (kT)"), strict=True):
        ax.axvline(dividing_value, color="k", lw=0.8, ls="--")
        ax.set(xlabel=label, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_ess(iterations, ess, path: str | Path, *, title: str | None = None) -> Figure:
    """The normalised effective sample size of the importance weights against the training step."""
    fig = _figure(5.0, 3.6 + (0.3 if title else 0.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(_numpy(iterations), _numpy(ess), lw=1.4, marker="o", ms=3)
    ax.set(xlabel="iteration", ylabel="ESS / n", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
