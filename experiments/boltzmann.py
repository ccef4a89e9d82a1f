"""Boltzmann generators: RealNVP with permutation, P4Inv or LULinear mixing, and the HollowNet CNF,
on the double well, Müller–Brown and φ⁴ (d = 64), over seeds.

Runs the boltzmann task (``experiments/configs/bg_*.yaml``: forward KL on replica-exchange MALA
samples, plus a reverse-KL term where the config weights one) for every system, flow and seed with the
same budget, and reports, mean ± standard deviation over the seeds, on the task's fixed batch of flow
samples:

- ESS: Kish's normalised effective sample size of the importance weights (1 is perfect);
- ΔF error: the reweighted F_B - F_A minus the reference, kT (2-D: quadrature; φ⁴: a separate MCMC run,
  its standard error printed);
- energy shift: mean u of the flow's samples minus that of held-out MCMC samples, kT (and the
  same with medians, which a few far-out samples cannot dominate);
- ms / step: wall time of training per optimizer step (plus one final evaluation), one thread.

The CNF gets its own budget (``CNF_STEPS``): fewer steps on the double well and φ⁴ (each step costs
far more than a coupling flow's), 3000 on Müller–Brown, where 1000 left ESS at 0.25–0.39.

Every run is an ordinary run folder inside a NEW folder ``<out>/boltzmann-<time>``, which also
gets ``results.md`` (the table and the command).

    PYTHONPATH=. python experiments/boltzmann.py            # 3 seeds, the configs' budgets
    PYTHONPATH=. python experiments/boltzmann.py --quick    # smoke run
    PYTHONPATH=. python experiments/boltzmann.py --rescore runs/boltzmann/boltzmann-…  # metrics of finished runs
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import torch

from sdl.config import load_config
from sdl.experiment import load_run, new_run_dir, run_job

CONFIGS = Path(__file__).resolve().parent / "configs"
SYSTEMS = {"double_well": "bg_double_well.yaml", "muller_brown": "bg_muller_brown.yaml", "phi4": "bg_phi4.yaml"}
FLOWS = {
    "RealNVP, permutations": ["model.flow=realnvp", "model.mixing=permutation"],
    "RealNVP + P4Inv": ["model.flow=realnvp", "model.mixing=p4inv"],
    "RealNVP + LULinear": ["model.flow=realnvp", "model.mixing=lu"],
    "HollowNet CNF": ["model.flow=cnf", "model.hidden=64", "model.steps=6"],
}
METRICS = ("ess", "free_energy_error", "energy_shift", "energy_shift_median", "state_b_fraction")
CNF_STEPS = {"double_well": 1000, "muller_brown": 3000, "phi4": 300}  # 1000 steps: about 2 minutes per model on one core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--flows", nargs="+", default=list(FLOWS), choices=list(FLOWS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per flow (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    parser.add_argument("--out", type=Path, default=Path("runs/boltzmann"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 20 steps, small MCMC runs")
    parser.add_argument(
        "--rescore",
        type=Path,
        nargs="+",
        metavar="FOLDER",
        help="instead of training: the final metrics of every finished run folder in FOLDER(s), recomputed with the "
        "current metric set on each run's own evaluation samples",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rescore:
        rescore(args.rescore)
        return
    extra = []
    if args.quick:
        args.seeds, args.steps = 1, 20
        extra = [
            "data.chains=8",
            "data.steps=200",
            "data.burn_in=100",
            "data.eval_samples=500",
            "data.reference_chains=8",
            "data.reference_steps=200",
            "model.couplings=2",
            "model.hidden=16",
            "data.lattice=4",
            "plots=[]",
        ]
    folder = new_run_dir(args.out, "boltzmann-quick" if args.quick else "boltzmann")
    results: dict = {}
    for system in args.systems:
        for flow in args.flows:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                steps = args.steps or (CNF_STEPS[system] if flow == "HollowNet CNF" else None)
                overrides = [*FLOWS[flow], f"model.seed={seed}", f"train.seed={seed}", "plots=[]", *extra]
                if steps is not None:
                    overrides.append(f"train.iterations={steps}")
                # one evaluation, at the end: the time per step is that of training
                overrides.append(f"train.log_every={steps or load_config(CONFIGS / SYSTEMS[system]).train.iterations}")
                overrides += args.set  # last: they win over the script's own (e.g. train.log_every)
                if system != "phi4":
                    overrides = [o for o in overrides if not o.startswith("data.lattice")]
                config = load_config(CONFIGS / SYSTEMS[system], overrides)
                result = run_job(config, folder, progress=False)
                row = {key: result.metrics[key] for key in METRICS}
                row["ms_per_step"] = 1e3 * result.seconds / config.train.iterations
                reference_error = result.metrics.get("reference_free_energy_error", 0.0)
                results.setdefault((system, flow), []).append(row)
                print(
                    f"{system:13s} {flow:22s} seed {seed}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in row.items())
                    + (f" (reference ΔF standard error {reference_error:.3g} kT)" if reference_error else ""),
                    flush=True,
                )
    lines = [
        "# Boltzmann generators: mean ± std over seeds",
        "",
        f"Command: `PYTHONPATH=. python {shlex.join(sys.argv)}`",
        "",
        "| system | flow | ESS | ΔF error (kT) | energy shift, mean (kT) | energy shift, median (kT) | in B | ms / step |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (system, flow), rows in results.items():
        cells = []
        for key in (*METRICS, "ms_per_step"):
            values = [r[key] for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3g} ± {spread:.2g}")
        lines.append(f"| {system} | {flow} | " + " | ".join(cells) + " |")
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {folder / 'results.md'}")


def rescore(folders: list[Path]) -> None:
    """Print the sample metrics of every run in ``folders`` (its checkpoint, its task's fixed noise)."""
    for folder in folders:
        for run_dir in sorted(p.parent for p in folder.glob("*/checkpoint.pt")):
            config, task, model = load_run(run_dir)
            metrics = task.sample_metrics(model.eval())
            flow = f"{config.model.flow}/{config.model.mixing}" if config.model.flow == "realnvp" else config.model.flow
            print(
                f"{run_dir.name} {config.data.energy} {flow} seed {config.model.seed} "
                f"reverse {config.task.reverse_weight:g} steps {config.train.iterations}: "
                + ", ".join(f"{k} {metrics[k]:.4g}" for k in METRICS),
                flush=True,
            )


if __name__ == "__main__":
    main()
