"""Runs the Python examples of the README and the documentation as written, in order.

Every fenced ```python block of a Markdown file is executed in one namespace, the way a new user
pastes them one after the other, except a block right after a line
``<!-- readme-examples: skip (why) -->`` or ``<!-- doc-examples: skip (why) -->`` (too long to
run; the reason names the test that covers it). Each file starts afresh: a new namespace and, when
several files are given, a new empty working directory of its own under the current one (named
after the file); a single file runs in the current directory, as it always has.

Output: one line per block, ``<file> python block N/M ran (S s)`` where ``<file>`` is the path
relative to the repository without ``.md`` (``README``, ``docs/deployment``), then a summary.
A failing block ends its file (later blocks build on it); the other files still run.
Exit status 0 when every block ran, 1 otherwise (with the failing blocks), also when no file
holds a python block.

Usage (run it from an empty directory):
    python readme_examples.py                       # the repository's README.md
    python readme_examples.py README.md docs        # a directory stands for its **/*.md, sorted
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"(?P<skip><!-- (?:readme|doc)-examples: skip[^>]*-->[ \t]*\n)?"
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def blocks(markdown: Path) -> list[str | None]:
    """The file's python blocks in order; None for a block marked to skip."""
    found = []
    for match in BLOCK.finditer(markdown.read_text(encoding="utf-8")):
        found.append(None if match["skip"] else textwrap.dedent(match["code"]))
    return found


def label(markdown: Path) -> str:
    """How the output names a file: its path in the repository without ``.md``."""
    path = markdown.resolve()
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    return str(path.with_suffix("")) if path.suffix == ".md" else str(path)


def expand(arguments: list[str]) -> list[Path]:
    """Files as given; a directory becomes its Markdown files, sorted."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument).resolve()  # before any change of directory
        files.extend(sorted(path.rglob("*.md")) if path.is_dir() else [path])
    return files


def run_file(markdown: Path, found: list[str | None]) -> bool:
    """Runs one file's blocks in a fresh namespace, in the current directory; True when all ran."""
    name = label(markdown)
    namespace: dict = {"__name__": "__readme__"}
    for number, code in enumerate(found, start=1):
        if code is None:
            print(f"{name} python block {number}/{len(found)} skipped (marked in the file)", flush=True)
            continue
        started = time.perf_counter()
        try:
            exec(compile(code, f"{name} python block {number}", "exec"), namespace)  # noqa: S102
        except BaseException:  # noqa: BLE001  (report which block failed, then go on to the next file)
            traceback.print_exc()
            print(f"{markdown}: python block {number} of {len(found)} failed", file=sys.stderr, flush=True)
            return False
        print(f"{name} python block {number}/{len(found)} ran ({time.perf_counter() - started:.0f} s)",
              flush=True)
    return True


def _fresh_keras_session() -> None:
    """Drops the models an earlier file built, if Keras is loaded (it keeps them otherwise)."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def main(argv: list[str]) -> int:
    files = expand(argv[1:]) or [ROOT / "README.md"]
    found = {path: blocks(path) for path in files}
    if not any(found.values()):
        print(f"{', '.join(map(str, files))}: no ```python blocks found", file=sys.stderr)
        return 1
    failed, started, home = [], time.perf_counter(), Path.cwd()
    for path, code in found.items():
        if not code:
            continue
        if len(files) > 1:  # each file in a new empty directory of its own
            workdir = home / label(path).strip(os.sep).replace(os.sep, "-")
            workdir.mkdir()
            os.chdir(workdir)
        file_started = time.perf_counter()
        try:
            if not run_file(path, code):
                failed.append(label(path))
        finally:
            os.chdir(home)
            _fresh_keras_session()
        if len(files) > 1:
            print(f"{label(path)}: {time.perf_counter() - file_started:.0f} s", flush=True)
    ran = sum(1 for code in found.values() if code)
    print(f"{ran} files with python blocks, {len(failed)} failed, {time.perf_counter() - started:.0f} s in all"
          + (f": {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
