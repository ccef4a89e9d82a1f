#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite. pytest's own exit code is kept:
# 5 (no tests collected) fails like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
