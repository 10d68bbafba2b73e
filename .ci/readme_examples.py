"""Runs the README's Python examples as written, in order, in the current directory.

Every fenced ```python block of README.md is executed in one namespace, the way a new user pastes
them one after the other, except a block right after a line
``<!-- readme-examples: skip (why) -->`` (too long to run; the reason names the test that covers
it). Exit status 0 when all ran, 1 (with the failing block) otherwise.
Usage: python readme_examples.py [README.md]   (run it from an empty directory)
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from pathlib import Path

BLOCK = re.compile(r"(<!-- readme-examples: skip[^>]*-->\s*\n)?^```python[ \t]*\n(.*?)^```[ \t]*$",
                   re.MULTILINE | re.DOTALL)


def blocks(readme: Path) -> list[str | None]:
    """The README's python blocks in order; None for a block marked to skip."""
    return [None if skip else code for skip, code in BLOCK.findall(readme.read_text(encoding="utf-8"))]


def main(argv: list[str]) -> int:
    readme = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1] / "README.md")
    found = blocks(readme)
    if not found:
        print(f"{readme}: no ```python blocks found", file=sys.stderr)
        return 1
    namespace: dict = {"__name__": "__readme__"}
    for number, code in enumerate(found, start=1):
        if code is None:
            print(f"README python block {number}/{len(found)} skipped (marked in the README)")
            continue
        started = time.perf_counter()
        try:
            exec(compile(code, f"{readme.name} python block {number}", "exec"), namespace)  # noqa: S102
        except BaseException:  # noqa: BLE001  (report which block failed, then fail)
            traceback.print_exc()
            print(f"{readme}: python block {number} of {len(found)} failed", file=sys.stderr)
            return 1
        print(f"README python block {number}/{len(found)} ran ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
