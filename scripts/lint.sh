#!/usr/bin/env bash
# Lint and type-check: ruff (rules and format) over sdl/, tests/, benchmarks/, experiments/ and
# scripts; mypy over sdl/ (config in pyproject.toml). Needs the lint extra (scripts/setup.sh).
# Every check runs even when an earlier one fails; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
status=0
"$BIN/ruff" check . || status=1
"$BIN/ruff" format --check . || status=1
"$BIN/mypy" || status=1
exit $status
