"""``manifest.json``: what an export holds, what it expects, and how well it verified.

Keys: ``format_version``, ``name``, ``created``, ``versions`` (tfseq,
TensorFlow, Keras, tf2onnx, ...), ``spec`` (the model config summary),
``contract`` (the :class:`~tfseq.run.DataContract`), ``input`` (name, dtype,
steps, feature names and order), ``normalization`` (mean, variance),
``class_names``, ``threshold`` and ``artifacts``: per artifact its relative
``path``, ``format``, ``quantization``, ``sha256``, ``size_bytes`` and
``verification`` figures.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from tfseq.errors import InputError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

__all__ = ["MANIFEST", "sha256_path", "size_bytes", "package_versions", "read_manifest", "check_manifest"]


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    for name, file in files:
        if path.is_dir():
            digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    """Size of a file, or the total of a directory's files."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def package_versions() -> dict[str, str | None]:
    """Installed versions of tfseq and the libraries an export depends on."""
    versions: dict[str, str | None] = {}
    for package in ("tfseq", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    import tfseq

    versions["tfseq"] = tfseq.__version__
    return versions


def read_manifest(export_dir: Path) -> dict[str, Any]:
    """Reads ``export_dir/manifest.json``.

    Raises:
        InputError: if it is missing or not a tfseq export manifest.
    """
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"{export_dir}: not a tfseq export directory (no {MANIFEST}).")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc}).") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise InputError(f"{path}: not a tfseq export manifest (no artifacts list).")
    return manifest


def check_manifest(export_dir: Path, *, only: Path | None = None) -> dict[str, Any]:
    """Checks that every artifact named in the manifest exists and matches its sha256.

    Args:
        export_dir: The export directory.
        only: Check only the artifact at this path.

    Returns:
        The manifest.

    Raises:
        InputError: naming the artifact that is missing or does not match.
    """
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    listed = {(export_dir / str(a.get("path", ""))).resolve() for a in manifest["artifacts"]
              if isinstance(a, dict)}
    if only is not None and Path(only).resolve() not in listed:
        raise InputError(
            f"{only}: not listed in {export_dir / MANIFEST}, so its sha256 cannot be checked; "
            "expected an artifact of that export, or no check (verify).", arguments=("verify",)
        )
    for artifact in manifest["artifacts"]:
        try:
            path = export_dir / artifact["path"]
            expected = artifact["sha256"]
        except (KeyError, TypeError):
            raise InputError(f"{export_dir / MANIFEST}: an artifact entry lacks path or sha256.") from None
        if only is not None and path.resolve() != Path(only).resolve():
            continue
        if not path.exists():
            raise InputError(f"{path}: listed in {MANIFEST} but missing.")
        actual = sha256_path(path)
        if actual != expected:
            raise InputError(
                f"{path}: sha256 {actual[:12]}... does not match {expected[:12]}... in {MANIFEST}; "
                "the artifact or the manifest was changed after export."
            )
    return manifest
