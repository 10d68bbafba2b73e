"""A griffe extension for the API reference: tfseq's docstrings, shown as Markdown.

tfseq's docstrings are Google style written for Sphinx/Napoleon readers, with a few reST habits
that Markdown would show as typed. Before mkdocstrings renders a docstring this extension rewrites
(the docstrings in ``tfseq/`` stay as they are):

- Cross-reference roles (``:func:`fit```, ``:class:`~tfseq.models.spec.ModelSpec```) become
  optional cross-references: a link where the target is documented on the site, plain code
  otherwise (no warning either way). A leading ``~`` shows the last part of the name only.
- ``text::`` before a literal block becomes ``text:`` (the indented block is code in Markdown too).
- A section titled ``Example:`` becomes ``Examples:``, the title griffe's Google parser knows
  (Napoleon accepts both); otherwise its ``>>>`` lines render as nested quotes.
- An ``Args:`` entry naming several parameters (``label_col, id_col: ...``) becomes one entry per
  parameter, as griffe expects.
- A reST simple table (columns under ``=====  =====`` rules) becomes a Markdown table.
- A reST literal (````x````) becomes a Markdown code span (`` `x` ``), which also holds in the
  tables mkdocstrings renders the ``Args:`` and ``Returns:`` sections into.

Registered in mkdocs.yml under the python handler's ``extensions``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const|type):`(~?)([^`<>]+?)`")
LITERAL_BLOCK = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
EXAMPLE_TITLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)
ARGS_TITLE = re.compile(r"^([ \t]*)(?:Args|Arguments|Parameters):[ \t]*$")
SEVERAL_NAMES = re.compile(r"^([ \t]+)(\*{0,2}\w+(?:,[ \t]*\*{0,2}\w+)+):(.*)$")
TABLE_RULE = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")
RST_LITERAL = re.compile(r"``([^`]+?)``")


def _parents(obj: griffe.Object):
    parent = obj.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as seen from ``obj``'s scope, or None."""
    if name.startswith("tfseq."):
        return name
    head, _, rest = name.partition(".")
    scopes = ([obj] if obj.is_module or obj.is_class else []) + list(_parents(obj))
    for scope in scopes:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return None


def _roles(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match) -> str:
        short, name = match.group(1), match.group(2).strip()
        shown = name.rsplit(".", 1)[-1] if short else name
        title = f"<code>{html.escape(shown)}</code>"
        target = _resolve(obj, name)
        if target is None:
            return title
        return f'<autoref identifier="{html.escape(target)}" optional>{title}</autoref>'

    return ROLE.sub(role, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_parameters(text: str) -> str:
    """One ``Args:`` entry per parameter where an entry names several."""
    lines, out, i = text.split("\n"), [], 0
    section_indent = None
    while i < len(lines):
        line = lines[i]
        title = ARGS_TITLE.match(line)
        if title:
            section_indent = len(title.group(1))
            out.append(line)
            i += 1
            continue
        if section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        several = SEVERAL_NAMES.match(line) if section_indent is not None else None
        if several:
            entry_indent = len(several.group(1))
            body = [several.group(3)]
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > entry_indent):
                body.append("\n" + lines[i])
                i += 1
            for name in several.group(2).split(","):
                out.append(f"{several.group(1)}{name.strip()}:{''.join(body)}")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _simple_tables(text: str) -> str:
    """reST simple tables (two or more columns under ``====`` rules) as Markdown tables."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if not TABLE_RULE.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        rule = lines[i]
        starts = [m.start() for m in re.finditer(r"=+", rule)]
        rules = [j for j in range(i, len(lines)) if TABLE_RULE.match(lines[j])]
        if len(rules) < 2:
            out.append(lines[i])
            i += 1
            continue
        end = rules[2] if len(rules) >= 3 and rules[1] - i <= 3 else rules[1]
        rows: list[list[str]] = []
        for line in lines[i + 1:end]:
            if TABLE_RULE.match(line) or not line.strip():
                continue
            cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
            if rows and not cells[0]:  # a continuation line of the row above
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        indent = " " * _indent(rule)
        if rows:
            out.append(indent + "| " + " | ".join(rows[0]) + " |")
            out.append(indent + "|" + "---|" * len(starts))
            out.extend(indent + "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                       for row in rows[1:])
        i = end + 1
    return "\n".join(out)


def rewrite(obj: griffe.Object, text: str) -> str:
    text = _simple_tables(text)
    text = EXAMPLE_TITLE.sub(r"\1Examples:", text)
    text = _split_parameters(text)
    text = LITERAL_BLOCK.sub(r"\1:", text)
    text = RST_LITERAL.sub(r"`\1`", text)
    return _roles(obj, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the loaded package once it is fully loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()

        def walk(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    walk(member)

        walk(pkg)
