#!/usr/bin/env bash
# Set up (idempotent) and run the main demo: train the spiral network of the default config
# into a new folder under runs/, then print where the plots are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sdl train experiments/configs/spiral.yaml "$@"
