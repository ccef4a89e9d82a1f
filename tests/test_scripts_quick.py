"""Every benchmark and experiment script still runs end to end in its --quick mode.

Speed is never asserted here (benchmarks/RESULTS.md holds the measurements); these only keep
the scripts from rotting.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    ("benchmarks/bench_rk4_steps.py", []),
    ("benchmarks/bench_adjoint.py", []),
    ("benchmarks/bench_p4inv.py", []),
    ("benchmarks/bench_hollow_divergence.py", []),
    ("benchmarks/bench_jacobi_newton.py", []),
    ("benchmarks/bench_attacks.py", []),
    ("benchmarks/bench_newton.py", []),
    ("benchmarks/bench_p4orth.py", []),
    ("benchmarks/bench_p4_models.py", []),
    ("experiments/regularisation_study.py", ["--out", "{tmp}"]),
    ("experiments/flows_density.py", ["--out-root", "{tmp}"]),
    ("experiments/cnf_density.py", ["--out", "{tmp}"]),
    ("experiments/noise_floor.py", ["--out", "{tmp}"]),
    ("experiments/robustness_digits.py", ["--out", "{tmp}"]),
    ("experiments/learning_dynamics.py", ["--out", "{tmp}"]),
    ("experiments/boltzmann.py", ["--out", "{tmp}"]),
    ("experiments/p4_linear_fit.py", ["--out", "{tmp}"]),
    ("experiments/deep_limits.py", ["--out", "{tmp}"]),
    ("experiments/hamiltonian_networks.py", ["--out", "{tmp}"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, args", SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_script_runs_in_quick_mode(script, args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / script), "--quick", *(a.format(tmp=tmp_path) for a in args)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
