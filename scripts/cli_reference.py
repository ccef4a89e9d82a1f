"""The command reference of the docs, docs/cli-reference.md: the ``--help`` of ``sdl`` and of each command.

    python scripts/cli_reference.py           # rewrite docs/cli-reference.md from the parser
    python scripts/cli_reference.py --check   # exit 1 when the page and the parser differ

tests/test_cli.py checks that the page is current, so a changed option or help text fails the tests
until the page is regenerated. argparse's layout changes between Python versions, so the page names
the version it was made with and the check runs only on that version.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli-reference.md"
COLUMNS = "100"  # argparse wraps at the terminal's width; a fixed width makes the page reproducible


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _help(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args([*argv, "--help"])
    return out.getvalue()


def render() -> str:
    """The page: one section per command, in the parser's order, each the command's --help."""
    from sdl import cli

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        parser = cli._parser()
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        subparsers = dict.fromkeys(commands.choices.values())  # an alias (analyze) maps to the same parser
        names = [sub.prog.split()[-1] for sub in subparsers]  # prog is "sdl NAME"
        sections = [("sdl", _help(parser, []))] + [(f"sdl {name}", _help(parser, [name])) for name in names]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    lines = [
        "# Command reference",
        "",
        "The `--help` of every `sdl` command, made from the parser by `python scripts/cli_reference.py`",
        f"(Python {python_version()}); the tests check that this page is current.",
        "[Configs and the command line](cli.md) explains the configs and shows the commands at work.",
    ]
    for title, text in sections:
        lines += ["", f"## `{title}`", "", "```text", text.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the page is out of date")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if PAGE.read_text() != page:
            print(f"{PAGE} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
