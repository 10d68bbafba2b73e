"""Checks that a type checker sees tfseq's public API: every name in each package's ``__all__``.

Writes a small "user" module that touches ``pkg.name`` for every exported name, runs mypy on it
with the project's configuration, and fails when a name is unknown to mypy, or reveals as plain
``Any`` (what a lazy ``__getattr__`` gives a name that the ``TYPE_CHECKING`` block forgot).

Usage (from the repository root): python typed_api.py [PACKAGE ...]
"""

from __future__ import annotations

import ast
import re
import sys
import tempfile
from pathlib import Path

from mypy import api

PACKAGES = ("tfseq", "tfseq.data", "tfseq.models", "tfseq.export", "tfseq.training", "tfseq.tuning",
            "tfseq.workflows")


def exported(package: str, root: Path) -> list[str] | None:
    """The package's ``__all__`` (a list or ``sorted(...)`` of literals, ``+`` allowed), read without importing it."""
    init = root.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text(), str(init))
    names: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
    if "__all__" not in names:
        return None

    def evaluate(node: object) -> list[str]:
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ast.literal_eval(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return evaluate(node.left) + evaluate(node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("sorted", "list"):
            return sorted(evaluate(node.args[0])) if node.func.id == "sorted" else evaluate(node.args[0])
        if isinstance(node, ast.Dict):  # sorted(_EXPORTS): the keys
            return [ast.literal_eval(k) for k in node.keys if k is not None]
        if isinstance(node, ast.Name) and node.id in names:
            return evaluate(names[node.id])
        raise ValueError(f"{init}: cannot read __all__ ({ast.dump(node)[:80]})")

    return evaluate(names["__all__"])


def main(argv: list[str]) -> int:
    root = Path.cwd()
    packages = argv or list(PACKAGES)
    lines, where = [], {}
    for package in packages:
        names = exported(package, root)
        if names is None:
            print(f"{package}: no __all__ (nothing exported to check)")
            continue
        lines.append(f"import {package}")
        for name in names:
            lines.append(f"reveal_type({package}.{name})")
            where[len(lines)] = f"{package}.{name}"
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "typed_api_user.py"
        user.write_text("\n".join(lines) + "\n")
        stdout, stderr, _ = api.run(["--config-file", str(root / "pyproject.toml"), "--no-incremental",
                                     "--follow-imports=silent", str(user)])
    problems, seen = [], set()
    for line in stdout.splitlines():
        match = re.match(r".*typed_api_user\.py:(\d+): (\w+): (.*)", line)
        if not match or int(match.group(1)) not in where:
            continue
        number, kind, message = int(match.group(1)), match.group(2), match.group(3)
        name = where[number]
        if kind == "note" and message.startswith("Revealed type is "):
            revealed = message[len("Revealed type is "):].strip('"')
            seen.add(name)
            short = revealed if len(revealed) <= 110 else revealed[:107] + "..."
            print(f"{'ANY ' if revealed == 'Any' else 'ok  '} {name}: {short}")
            if revealed == "Any":
                problems.append(f"{name}: a type checker sees Any (missing from the TYPE_CHECKING block?)")
        elif kind == "error":
            problems.append(f"{name}: {message}")
    problems += [f"{name}: not revealed (mypy: {stderr.strip() or 'no output'})" for name in where.values()
                 if name not in seen and not any(p.startswith(name + ":") for p in problems)]
    print(f"\n{len(where)} public names checked, {len(problems)} problem(s)")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
