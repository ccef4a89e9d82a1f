#!/usr/bin/env bash
# Create .venv (if missing) and install sdl with its test, benchmark, data-set, docs, lint and Ray extras, pinned by constraints.txt.
#
# Which torch build: by default pip's own index, where the pinned torch is PyPI's default build
# (on Linux, the CUDA one; on this project's machines, the local CPU wheel). To choose a build,
# name a PyTorch wheel index in SDL_TORCH_INDEX_URL before the first run (or after removing .venv):
#   SDL_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   bash scripts/setup.sh   # CPU only
#   SDL_TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh   # CUDA 12.6
# torch alone comes from that index (its pinned version, any local label such as +cpu); everything
# else, torch's own dependencies included, from pip's usual index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "${SDL_TORCH_INDEX_URL:-}" ]; then
    .venv/bin/python -m pip install --quiet -c constraints.txt --index-url "$SDL_TORCH_INDEX_URL" --no-deps torch
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,bench,datasets,docs,lint,ray]"
