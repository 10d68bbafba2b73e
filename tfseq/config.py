"""Config files for the command line: YAML or TOML holding what the flags set."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tfseq.errors import InputError

__all__ = ["read_config", "check_keys"]


def read_config(path: Path) -> dict[str, Any]:
    """Reads a ``.yaml``/``.yml`` or ``.toml`` file into a flat mapping.

    Keys may be written as flags (``id-col``) or Python names (``id_col``);
    both come back as ``id_col``. A ``model:`` table is kept as a mapping of
    :class:`tfseq.ModelSpec` fields.

    Raises:
        InputError: for a missing, unreadable or malformed file, or one whose
            top level is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file.")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable config file ({exc}).") from None
    try:
        if suffix in (".yaml", ".yml", ".json"):  # JSON is YAML: tune's best_spec.json reads as is
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib

                data = tomllib.loads(text)
            else:
                raise InputError(f"{path}: TOML configs need Python 3.11 or newer (tomllib); use .yaml here.")
        else:
            raise InputError(f"{path}: unsupported config type {suffix or 'without suffix'!r}; expected .yaml, .yml, .json or .toml.")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  (yaml.YAMLError, tomllib.TOMLDecodeError)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: malformed config file ({first}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config holds a {type(data).__name__}; expected a mapping of flag names to values.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def check_keys(config: dict[str, Any], known: Iterable[str], path: Path) -> None:
    """Raises InputError naming the first unknown key and the closest known one."""
    known = sorted(known)
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known)}."
            raise InputError(f"{path}: unknown config key {key!r}; {hint}")
