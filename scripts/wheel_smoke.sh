#!/usr/bin/env bash
# Build the sdist, and the wheel from the sdist, install the wheel into a fresh venv and use it from
# outside the source tree: catches files missing from the package or the sdist, and a build that
# warns (e.g. a setuptools deprecation). Needs the environment of scripts/setup.sh (build, torch).
#
# The fresh venv gets no torch download: its dependencies come from .venv's site-packages, added
# to its path by a .pth file (as --system-site-packages would, but with the pinned environment), and
# `pip check` verifies that they satisfy the wheel's declared requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(realpath -s "$(command -v "${PYTHON:-.venv/bin/python}")")  # absolute: the smoke test runs elsewhere
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Build in a copy of the tracked tree, so the build leaves nothing (egg-info, build/) in the checkout.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WORK" --one-top-level=src
if ! "$PYTHON" -m build --no-isolation --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
fi
if grep -n -E "Warning|[Dd]eprecat" "$WORK/build.log" >&2; then
    echo "wheel_smoke: the build printed the warnings above" >&2
    exit 1
fi
WHEEL=$(ls "$WORK"/dist/sdl-*.whl)
ls "$WORK"/dist/sdl-*.tar.gz >/dev/null

"$PYTHON" -m venv --without-pip "$WORK/venv"
"$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
    >"$("$WORK/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/dependencies.pth"
"$PYTHON" -m pip --python "$WORK/venv/bin/python" install --quiet --no-deps --no-index "$WHEEL"

cd "$WORK"  # outside the source tree: only the installed wheel can be imported as sdl
export PATH="$WORK/venv/bin:$PATH"
python - "$WORK/venv" <<'PY'
import sys
from importlib.metadata import metadata, version
from importlib.resources import files
from pathlib import Path

import torch

import sdl

venv = Path(sys.argv[1]).resolve()
assert Path(sdl.__file__).resolve().is_relative_to(venv), f"sdl imported from {sdl.__file__}, not the wheel"
assert version("sdl") == sdl.__version__, (version("sdl"), sdl.__version__)
assert metadata("sdl")["License-Expression"] == "MIT", metadata("sdl")["License-Expression"]
assert files("sdl").joinpath("py.typed").is_file(), "py.typed is missing from the wheel"
t = torch.linspace(0, 1, 11, dtype=torch.float64)
y = sdl.odeint(lambda t, y: -y, torch.ones(2, dtype=torch.float64), t, method="rk4")
assert y.shape == (11, 2) and abs(y[-1, 0].item() - torch.e**-1) < 1e-6, y[-1]
print(f"wheel_smoke: sdl {sdl.__version__} from {Path(sdl.__file__).parent}, odeint ok")
PY
test "$(sdl --version)" = "sdl $(python -c 'import sdl; print(sdl.__version__)')"
listing=$(python -m sdl list)  # whole, then checked (grep -q would close the pipe early)
grep -q "^integrators:" <<<"$listing"
"$PYTHON" -m pip --python "$WORK/venv/bin/python" check
echo "wheel_smoke: ok ($(basename "$WHEEL"))"
