"""Shared by flows_density.py and cnf_density.py: one density-task run per (density, variant) through
``sdl.experiment.run_job``, a table of test NLLs and a figure of the learned densities."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from sdl.config import load_config
from sdl.data import sample_density
from sdl.experiment import load_run, run_job
from sdl.tasks.density import _exact_log_prob

LIMIT = 4.5  # plotting window [-LIMIT, LIMIT]²


def run_grid(config_path: Path, overrides: list[str], variants: dict[str, list[str]], densities, folder: Path) -> dict:
    """results[density][variant] = {"nll", "stderr", "seconds", "parameters", "run"}: one run folder each,
    inside ``folder``. Every density gets its own test points (data.seed 10000 + index) and training
    stream (train.seed + index); every variant of a density starts from the same model seed."""
    results: dict = {}
    for index, density in enumerate(densities):
        results[density] = {}
        for variant, extra in variants.items():
            base = load_config(config_path, overrides)
            config = load_config(
                config_path,
                [
                    *overrides,
                    *extra,
                    f"data.name={density}",
                    f"data.seed={10_000 + index}",
                    f"train.seed={base.train.seed + index}",
                    f"name={base.name}-{density}-{variant}",
                ],
            )
            result = run_job(config, folder, progress=False)
            _, _, model = load_run(result.run_dir)
            results[density][variant] = {
                "nll": result.metrics["test_nll"],
                "stderr": result.metrics["test_nll_stderr"],
                "seconds": result.seconds,
                "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "run": result.run_dir,
            }
            print(
                f"{density:16s} {variant:12s} test NLL {result.metrics['test_nll']:.4f} ± "
                f"{result.metrics['test_nll_stderr']:.4f}  ({result.seconds:.1f} s)",
                flush=True,
            )
    return results


def table(results: dict, titles: dict[str, str]) -> list[str]:
    variants = list(titles)
    lines = ["| density | " + " | ".join(titles.values()) + " |", "|---|" + "---|" * len(variants)]
    for density, row in results.items():
        best = min(row[v]["nll"] for v in variants)
        cells = [
            (f"**{row[v]['nll']:.3f}**" if row[v]["nll"] == best else f"{row[v]['nll']:.3f}") + f" ± {row[v]['stderr']:.3f}"
            for v in variants
        ]
        lines.append(f"| {density} | " + " | ".join(cells) + " |")
    first = next(iter(results.values()))
    lines.append("| trainable parameters | " + " | ".join(str(first[v]["parameters"]) for v in variants) + " |")
    lines.append(
        "| training seconds (all densities) | "
        + " | ".join(f"{sum(results[d][v]['seconds'] for d in results):.0f}" for v in variants)
        + " |"
    )
    return lines


def figure(results: dict, titles: dict[str, str], resolution: int, path: Path) -> None:
    """Samples of each density beside every variant's learned density."""
    densities, variants = list(results), list(titles)
    fig, axes = plt.subplots(
        len(densities), 1 + len(variants), figsize=(3.2 * (1 + len(variants)), 3.2 * len(densities)), squeeze=False
    )
    axis = torch.linspace(-LIMIT, LIMIT, resolution)
    grid = torch.cartesian_prod(axis, axis).flip(-1)  # rows: x2, columns: x1
    for row, density in enumerate(densities):
        samples = sample_density(density, 50_000, seed=20_000 + row)
        axes[row, 0].hist2d(*samples.T.numpy(), bins=resolution // 2, range=[[-LIMIT, LIMIT]] * 2, cmap="viridis")
        axes[row, 0].set_title(f"{density}: data", fontsize=12)
        for col, variant in enumerate(variants, start=1):
            _, task, model = load_run(results[density][variant]["run"])
            model.eval()
            with torch.no_grad():
                density_grid = torch.cat([_exact_log_prob(model, c.to(task.test)) for c in grid.split(4096)]).exp()
            axes[row, col].imshow(
                density_grid.reshape(resolution, resolution).cpu().numpy(),
                origin="lower",
                extent=(-LIMIT, LIMIT, -LIMIT, LIMIT),
                cmap="viridis",
            )
            axes[row, col].set_title(f"{titles[variant]}\ntest NLL {results[density][variant]['nll']:.3f}", fontsize=12)
    for ax in axes.flat:
        ax.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal")
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def command() -> str:
    return "PYTHONPATH=. python " + " ".join(sys.argv)
