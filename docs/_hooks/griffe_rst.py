"""Griffe extension: read kernelshape's docstrings (Google style with a few reST habits) as
the Markdown that mkdocstrings renders.

The source docstrings follow STYLE.md (Google sections, Sphinx roles such as
``:func:`emit```, ``.. math::`` formulas, ``Example:`` headings). Without this, mkdocstrings
would show the roles verbatim, set formulas as running text, and read ``Example:`` as a note
whose ``>>>`` lines are Markdown (where ``xs[0]`` looks like a link). Changes, text only:

- ``Example:`` becomes ``Examples:`` (the Google section that renders doctest blocks as code);
- ``:role:`~pkg.mod.name``` becomes ``name`` in code font, ``:role:`text``` becomes ``text``;
- a ``.. math::`` directive (inline or indented block) becomes a fenced ``text`` block;
- an ``Args:`` entry naming several parameters (``sigma_w, sigma_b: ...``) becomes one
  entry per parameter with the same description (griffe still checks each name against the
  signature).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_MATH = re.compile(r"^(\s*)\.\. math::\s*(.*)$")
_ARGS = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_MULTI = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)((?:\s*\([^)]*\))?:(?:\s.*)?)$")


def _role(match: re.Match) -> str:
    short, target = match.groups()
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, first = m.group(1), m.group(2).strip()
        body = [first] if first else []
        i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        width = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
        body += [b[width:].rstrip() for b in block if b.strip()]
        out += [f"{indent}```text", *(f"{indent}{b}" for b in body), f"{indent}```", ""]
    return "\n".join(out)


def _split_multi_params(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    section_indent = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        header = _ARGS.match(line)
        if header:
            section_indent = len(header.group(1))
        elif line.strip() and section_indent is not None and indent <= section_indent:
            section_indent = None
        m = _MULTI.match(line) if section_indent is not None else None
        if not m:
            out.append(line)
            i += 1
            continue
        entry_indent = len(m.group(1))
        continuation = []
        i += 1
        while i < len(lines) and lines[i].strip() and \
                len(lines[i]) - len(lines[i].lstrip()) > entry_indent:
            continuation.append(lines[i])
            i += 1
        for name in (n.strip() for n in m.group(2).split(",")):
            out += [f"{m.group(1)}{name}{m.group(3)}", *continuation]
    return "\n".join(out)


def markdown_docstring(text: str) -> str:
    """The reST habits above rewritten as Markdown (pure text transformation)."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    text = _ROLE.sub(_role, text)
    text = _split_multi_params(text)
    return _math_blocks(text)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded objects with :func:`markdown_docstring`."""

    def on_object(self, *, obj, loader, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
