"""``python -m sdl``: the ``sdl`` command, for environments without the console script on PATH."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
