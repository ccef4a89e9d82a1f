#!/usr/bin/env bash
# Set up (idempotent), lint and type-check (scripts/lint.sh: ruff, mypy), check the built wheel
# (scripts/wheel_smoke.sh) and run the whole test suite (the docs site build is one of its tests).
# pytest's own exit code is kept: 5 (no tests collected) fails like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
bash scripts/wheel_smoke.sh
exec .venv/bin/python -m pytest "$@"
