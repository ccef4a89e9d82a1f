"""Mutation testing of sdl's core modules with mutmut: one score per module.

    python scripts/mutation.py                    # every target below (hours on 2 cores)
    python scripts/mutation.py hollow stability_linear --jobs 1
    python scripts/mutation.py --list             # the targets, their files and their tests
    python scripts/mutation.py integrators --mutants "sdl.integrators.tableau.*"   # a part of a big target

Each target mutates only its own files and runs only the tests that are about them (mutmut maps
each mutated function to the tests that call it), in a scratch copy build/mutation/TARGET/ (made
fresh on every run), so the working tree is never touched. A mutant is killed when a test fails
(or times out) with it; the score is killed / all. Needs the dev extra: pip install -e ".[dev]".
Not part of the test command: it takes minutes per module. TESTING.md has the last scores and the
survivors judged equivalent, with the reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutation"

# target: (files mutated, test files run against them)
TARGETS = {
    # test_hollow.py runs the Jacobi–Newton solver, test_adjoint.py every Integrator.adjoint_record
    "integrators": (
        ["sdl/integrators/*"],
        [
            "tests/test_integrators.py",
            "tests/test_tableau.py",
            "tests/test_odeint.py",
            "tests/test_hollow.py",
            "tests/test_adjoint.py",
        ],
    ),
    # _binomial.py is the checkpoint schedule of the adjoint's binomial recovery
    "adjoint": (
        ["sdl/adjoint.py", "sdl/_binomial.py"],
        ["tests/test_adjoint.py", "tests/test_binomial.py", "tests/test_survivors.py"],
    ),
    "p4inv": (["sdl/models/p4inv.py"], ["tests/test_p4inv.py", "tests/test_survivors.py"]),
    "hollow": (["sdl/models/hollow.py"], ["tests/test_hollow.py", "tests/test_survivors.py"]),
    "stability_linear": (["sdl/stability/linear.py"], ["tests/test_stability.py", "tests/test_tableau.py"]),
    # the rest of sdl/stability (linear.py is its own target above)
    "stability": (
        [
            "sdl/stability/attacks.py",
            "sdl/stability/certificates.py",
            "sdl/stability/contractivity.py",
            "sdl/stability/hamiltonian.py",
            "sdl/stability/spectra.py",
        ],
        ["tests/test_stability.py", "tests/test_contractivity.py", "tests/test_certificates.py", "tests/test_attacks.py"],
    ),
    "config": (
        ["sdl/config.py", "sdl/cli.py", "sdl/_validation.py"],
        [
            "tests/test_config.py",
            "tests/test_config_conflicts.py",
            "tests/test_config_properties.py",
            "tests/test_cli.py",
            "tests/test_sweep.py",
            "tests/test_survivors.py",
        ],
    ),
}
KILLED = ("killed", "timeout")
# copied into the scratch folder: the package, its tests, and what tests read (the shipped configs, the
# command reference in docs/ and the script that makes it)
COPIED = ("sdl", "tests", "experiments", "docs", "scripts")

# Appended to the scratch copy's tests/conftest.py (never the project's): with a mutant under test the
# fastest of its tests run first, so that a killed mutant costs its quickest failing test (mutmut stops
# at the first failure), not a random share of the slow CLI tests. Durations are mutmut's own.
_FASTEST_FIRST = """

def pytest_collection_modifyitems(items):
    import json
    from pathlib import Path

    stats = Path(__file__).resolve().parents[1] / "mutmut-stats.json"
    if stats.is_file():
        durations = json.loads(stats.read_text()).get("duration_by_test", {})
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
"""

# Imported by every Python process a test starts (tests/test_cli.py runs `python -m sdl.cli` with the
# mutants folder on PYTHONPATH). While mutmut maps tests to functions ("stats"), such a child would try
# to record its calls, look for setup.cfg in its own working directory (a tmp folder) and crash; its
# records would be lost with the process anyway, so it runs the original code. With a mutant under
# test, the child inherits the mutant's name and runs the mutated code, so CLI tests still kill.
_SUBPROCESS_GUARD = """import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


def _prepare(target: str) -> Path:
    """A fresh copy of the package and its tests with the target's mutmut config (setup.cfg)."""
    mutate, tests = TARGETS[target]
    folder = SCRATCH / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    lines = [
        "[mutmut]",
        "source_paths=sdl",
        "only_mutate=",
        *(f"    {p}" for p in mutate),
        "pytest_add_cli_args_test_selection=",
        *(f"    {p}" for p in tests),
        # a mutant that loops forever (a bisection that never ends) is a timeout after 3× the tests' own
        # time, not mutmut's default 15× (minutes per such mutant on 2 shared cores)
        "timeout_multiplier=3.0",
        "also_copy=",
        "    sitecustomize.py",
        *(f"    {name}" for name in COPIED[2:]),
    ]
    (folder / "setup.cfg").write_text("\n".join(lines) + "\n")
    (folder / "sitecustomize.py").write_text(_SUBPROCESS_GUARD)
    with open(folder / "tests" / "conftest.py", "a") as conftest:
        conftest.write(_FASTEST_FIRST)
    return folder


def _statuses(folder: Path) -> Counter:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    return Counter(line.rsplit(": ", 1)[1].strip() for line in out.splitlines() if ": " in line)


def run(target: str, jobs: int, mutants: list[str]) -> Counter:
    folder = _prepare(target)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # import the mutated copy, not the tree
    env["OMP_NUM_THREADS"] = "1"
    with open(folder / "mutmut-run.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *mutants],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return _statuses(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (default 1)")
    parser.add_argument("--list", action="store_true", help="print the targets and exit")
    parser.add_argument(
        "--mutants",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="run only the mutants whose names match (fnmatch, e.g. 'sdl.adjoint.x_otd*'); one target only; "
        "the others are counted as not checked",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, (mutate, tests) in TARGETS.items():
            print(f"{name}: {' '.join(mutate)}  <-  {' '.join(tests)}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; valid choices: {', '.join(TARGETS)}")
    if args.mutants and len(args.targets) != 1:
        parser.error(f"--mutants needs exactly one target, got {len(args.targets)}")
    print(
        f"{'target':18s} {'mutants':>7s} {'killed':>7s} {'timeout':>7s} {'survived':>8s} {'no tests':>8s} "
        f"{'unchecked':>9s} {'score':>6s}"
    )
    for target in args.targets or list(TARGETS):
        counts = run(target, args.jobs, args.mutants)
        checked = sum(counts.values()) - counts["not checked"]  # all mutants unless --mutants picked some
        score = sum(counts[k] for k in KILLED) / checked if checked else float("nan")
        print(
            f"{target:18s} {checked:7d} {counts['killed']:7d} {counts['timeout']:7d} {counts['survived']:8d} "
            f"{counts['no tests']:8d} {counts['not checked']:9d} {score:6.1%}",
            flush=True,
        )
        if set(counts) - {*KILLED, "survived", "no tests", "not checked"}:
            print(f"  other outcomes: {dict(counts)}; see {SCRATCH / target / 'mutmut-run.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
