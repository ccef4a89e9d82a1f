"""Learning Hamiltonian dynamics from trajectories: HNNs, SympNets and their unstructured baselines.

For each system, every model is trained by ``sdl.experiment.run_job`` from the configs in
``experiments/configs`` (one run folder each) over several seeds (data, model and training seed
alike), then measured by the HNN protocol (``task: dynamics``): energy MSE and rollout MSE over 15
initial states on t ∈ [0, 20], and the energy error |H(x̂(t)) - H(x(0))| of 3 rollouts to t = 1000,
averaged over the first and the last tenth of the horizon (bounded: last ≈ first; drift: last ≫ first).

- mass_spring, pendulum, two_body (the HNN recipes): the HNN recipe (derivative matching, MLP H),
  the baseline MLP field (the HNN paper's baseline), and the separable HNN T(p) + V(q).
- pendulum_sympnets, double_pendulum (the SympNets recipes): LA- and G-SympNets and the MLP map; on
  the pendulum also the LA-SympNet of the SympNetsTorch package (the peer, when installed:
  ``pip install 'sdl[bench]'``; its layout conversion is wrong for n ≥ 2, so not on the double pendulum).

Writes ``results.md`` (the table, with the published HNN numbers beside ours) into a NEW folder
``<out>/learning-dynamics-<time>``.

    PYTHONPATH=. python experiments/learning_dynamics.py             # 3 seeds, every system (~1 h on 2 cores)
    PYTHONPATH=. python experiments/learning_dynamics.py --quick     # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from sdl.config import load_config
from sdl.experiment import build, new_run_dir, run_job
from sdl.tasks.dynamics import MapFlow
from sdl.training import Trainer

CONFIGS = Path(__file__).resolve().parent / "configs"
PEER = "SympNetsTorch LA-SympNet (peer)"
# system -> variant label -> (config file, overrides)
STUDIES: dict[str, dict[str, tuple[str, list[str]]]] = {
    **{
        system: {
            "HNN (derivatives)": (config, []),
            # the same, with the learning rate annealed to 0 (α_i = α (1 + cos(π i / I)) / 2)
            "HNN, cosine lr (derivatives)": (config, ["train.schedule=cosine"]),
            "baseline MLP field (derivatives)": (config, ["model.model=mlp_field"]),
            "separable HNN (derivatives)": (config, ["model.model=separable_hnn"]),
        }
        for system, config in (
            ("mass_spring", "hnn_spring.yaml"),
            ("pendulum", "hnn_pendulum.yaml"),
            ("two_body", "hnn_two_body.yaml"),
        )
    },
    **{
        system: {
            "LA-SympNet": (config, []),
            "G-SympNet": (config, ["model.model=g_sympnet", "model.layers=5", "model.hidden=30"]),
            "MLP map": (config, ["model.model=mlp_map", "model.layers=2", "model.hidden=30", "model.activation=tanh"]),
        }
        for system, config in (
            ("pendulum_sympnets", "sympnet_pendulum.yaml"),
            ("double_pendulum", "sympnet_double_pendulum.yaml"),
        )
    },
}
# The peer's layout conversion is its own inverse for n = 1 only (its maps are not symplectic for n ≥ 2).
STUDIES["pendulum_sympnets"][PEER] = ("sympnet_pendulum.yaml", [])
PUBLISHED = {  # energy MSE, Greydanus et al. 2019, Table 1 (baseline / HNN)
    "mass_spring": {"baseline MLP field (derivatives)": 1.71e-1, "HNN (derivatives)": 3.84e-4},
    "two_body": {"baseline MLP field (derivatives)": 6.33e-2, "HNN (derivatives)": 3.88e-5},
}
COLUMNS = ("energy_mse", "rollout_mse", "energy_error_first", "energy_error_last", "seconds")


class _PeerMap(nn.Module):
    """SympNetsTorch's LA-SympNet as a one-step map Φ(x, h); its layers have no step input, so h is
    the data step it learns at. Its layout is (q₁, p₁, q₂, p₂, …), which is sdl's (q, p) for n = 1 only."""

    def __init__(self, n: int, layers: int, sublayers: int) -> None:
        super().__init__()
        from SympNetsTorch import SympNets

        modules = []
        for index in range(layers):
            side = "up" if index % 2 == 0 else "low"
            modules.append(SympNets.Linear(dim=n, up_or_low=side, n=sublayers))
            if index < layers - 1:
                modules.append(SympNets.Activation(torch.sigmoid, dim=n, up_or_low=side))
        self.layers = nn.ModuleList(modules)

    def forward(self, x, h=None):
        for layer in self.layers:
            x = layer(x)
        return x


def run(system: str, label: str, seed: int, overrides: list[str], folder: Path) -> dict:
    file, extra = STUDIES[system][label]
    config = load_config(
        CONFIGS / file,
        [
            *extra,
            *overrides,
            f"data.seed={seed}",
            f"model.seed={seed}",
            f"train.seed={seed}",
            f"name={system}-{_slug(label)}-seed{seed}",
        ],
    )
    if label != PEER:
        result = run_job(config, folder, progress=False)
        from sdl.experiment import load_run

        _, task, model = load_run(result.run_dir)
        metrics, seconds = result.metrics, result.seconds
    else:
        task, _ = build(config)
        torch.manual_seed(seed)
        model = MapFlow(_PeerMap(task.system.dim, config.model.layers, config.model.sublayers)).to(task.exact.dtype)
        trainer = Trainer(model, task, config.train)
        start = time.perf_counter()
        trainer.run(progress=False)
        seconds = time.perf_counter() - start
        metrics = trainer.evaluate()
    long = task.analyse(model)
    return {**metrics, **long, "seconds": seconds}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.split(" (")[0].lower()).strip("-")


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument(
        "--models", nargs="+", metavar="LABEL", help="only these rows (labels of the table, e.g. 'HNN (derivatives)')"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/learning_dynamics"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 30 steps, small nets, short horizons")
    args = parser.parse_args()
    labels = {label for system in args.systems for label in STUDIES[system]}
    unknown = sorted(set(args.models or ()) - labels)
    if unknown:
        parser.error(f"unknown --models {unknown}; the rows of these systems are {sorted(labels)}")
    overrides = []
    if args.quick:
        args.seeds = 1
        overrides = [
            "train.iterations=30",
            "train.log_every=30",
            "model.hidden=16",
            "task.long_time=20",
            "task.rollout_states=3",
            "plots=[]",
        ]
        args.systems = [s for s in args.systems if s != "two_body"] or args.systems
    torch.set_num_threads(args.threads)
    peer = importlib.util.find_spec("SympNetsTorch") is not None
    folder = new_run_dir(args.out, "learning-dynamics-quick" if args.quick else "learning-dynamics")
    lines = [
        "# Learning Hamiltonian dynamics: energy and rollout errors (lower is better)",
        "",
        f"Command: `PYTHONPATH=. python {' '.join(sys.argv)}`",
        "",
        f"Mean ± standard deviation over {args.seeds} seed(s). Energy and rollout MSE: 15 initial states, t ∈ [0, 20], "
        "true H. Long horizon: mean |H(x̂(t)) - H(x(0))| over the first and the last tenth of t ∈ [0, 1000].",
        "",
        "| system | model | energy MSE | rollout MSE | long: first tenth | long: last tenth | published energy MSE | train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for system in args.systems:
        for label in STUDIES[system]:
            if args.models and label not in args.models:
                continue
            if label == PEER and not peer:
                print(f"{system}: {PEER} skipped: SympNetsTorch is not installed", flush=True)
                continue
            rows = [run(system, label, seed, overrides, folder) for seed in range(args.seeds)]
            cells = {key: _cell([row[key] for row in rows]) for key in COLUMNS}
            published = PUBLISHED.get(system, {}).get(label)
            lines.append(
                f"| {system} | {label} | {cells['energy_mse']} | {cells['rollout_mse']} | {cells['energy_error_first']} | "
                f"{cells['energy_error_last']} | {'' if published is None else f'{published:.3g}'} | {cells['seconds']} |"
            )
            print(lines[-1], flush=True)
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {folder / 'results.md'}")


if __name__ == "__main__":
    main()
