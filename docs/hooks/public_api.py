"""MkDocs hook: the table of tfseq's public names, read from ``tfseq/__init__.py`` at build time.

``tfseq`` imports its public names lazily (``_EXPORTS``: name -> module), so the API reference
documents each where it is defined and the page of ``tfseq`` lists them all: the placeholder line
``<!-- public-api -->`` becomes one row per name, linked to its documentation, with the first line
of its docstring. The names and docstrings are read statically with griffe (no TensorFlow is
imported). A name whose documentation is not on the site fails ``mkdocs build --strict`` (an
unresolved cross-reference), so the list and the reference pages cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"^<!-- public-api -->[ \t]*$", re.MULTILINE)
ROLE = re.compile(r":(?:py:)?[a-z]+:`~?([^`]+)`")


def exports() -> dict[str, str]:
    """``tfseq._EXPORTS``, read from the source without importing tfseq."""
    tree = ast.parse((ROOT / "tfseq" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError("tfseq/__init__.py defines no _EXPORTS")


def summary(package: griffe.Module, path: str) -> str:
    try:
        docstring = package.modules_collection[path].docstring
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return ""
    if docstring is None:
        return ""
    first = docstring.value.strip().split("\n\n")[0].replace("\n", " ")
    return ROLE.sub(r"`\1`", first).replace("|", "\\|")


def table() -> str:
    package = griffe.load("tfseq", search_paths=[str(ROOT)], docstring_parser="google")
    lines = ["| name | defined in | what it is |", "|---|---|---|"]
    for name, module in sorted(exports().items(), key=lambda item: item[0].lower()):
        path = f"{module}.{name}"
        lines.append(f"| [`tfseq.{name}`][{path}] | `{module}` | {summary(package, path)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if not PLACEHOLDER.search(markdown):
        return markdown
    return PLACEHOLDER.sub(lambda _: table(), markdown)
