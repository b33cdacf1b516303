"""mkdocs hook: fill pages with text generated from the installed package, so it cannot drift.

Markers (an HTML comment alone on a line) are replaced at build time:

- ``<!-- kernelshape:builtins -->``: a table of the built-in activations and their formulas
  (``kernelshape.activations.BUILTIN_FORMULAS``);
- ``<!-- kernelshape:cli-help -->``: the ``--help`` text of the command line and of every
  subcommand (``kernelshape.cli.build_parser``).
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"^<!-- kernelshape:([a-z-]+) -->$", re.MULTILINE)


def builtins_table() -> str:
    from kernelshape.activations import BUILTIN_FORMULAS, DKS_NAMES

    rows = ["| name | phi(x) | in `dks` |", "| --- | --- | --- |"]
    for name, formula in BUILTIN_FORMULAS.items():
        formula = formula.replace("|", "\\|")
        rows.append(f"| `{name}` | `{formula}` | {'yes' if name in DKS_NAMES else ''} |")
    return "\n".join(rows)


def cli_help() -> str:
    import argparse

    from kernelshape.cli import build_parser

    parser = build_parser()
    parts = [f"### `kernelshape --help`\n\n```text\n{_help(parser)}\n```"]
    for action in parser._actions:  # argparse offers no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"### `kernelshape {name}`\n\n```text\n{_help(sub)}\n```")
    return "\n\n".join(parts)


def _help(parser) -> str:
    import os
    from unittest import mock

    # A fixed width keeps the text the same on every machine.
    with mock.patch.dict(os.environ, {"COLUMNS": "88"}):
        return parser.format_help().rstrip()


_GENERATORS = {"builtins": builtins_table, "cli-help": cli_help}


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match):
        kind = match.group(1)
        if kind not in _GENERATORS:
            raise ValueError(f"{page.file.src_uri}: unknown marker {kind!r}; "
                             f"expected one of {sorted(_GENERATORS)}")
        return _GENERATORS[kind]()
    return _MARKER.sub(fill, markdown)
