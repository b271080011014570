"""Artifact digests: verify every file a model folder's manifest (or the registry) records a digest for,
before anything in it is deserialised.

Two records are checked:

* the registry's ``artifact.sha256`` (:func:`ctloop.registry.tree_digest` of the whole model folder,
  written at registration): :meth:`ctloop.registry.Registry.local_model_dir` verifies it;
* the manifest's per-file digests (``model.json``), checked by :func:`ctloop.model.load_model`: the
  ``digests`` map (``{relative path: sha256}``, written by :func:`ctloop.model.save_model`), any
  ``<name>_sha256`` key beside a ``<name>`` key naming a file (``weights``/``weights_sha256``), and any
  object holding a ``sha256`` beside a ``file`` or ``path`` (e.g. an ONNX block).

A pickled artifact (``model.joblib``) without a recorded digest is never unpickled.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from ctloop.errors import ArtifactIntegrityError

log = logging.getLogger("ctloop.artifacts")

DIGESTS_KEY = "digests"
PICKLED = ("model.joblib",)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())


def recorded_digests(manifest: dict[str, Any]) -> dict[str, str]:
    """``{relative path: sha256}`` of every file the manifest records a digest for."""
    out: dict[str, str] = {}
    table = manifest.get(DIGESTS_KEY)
    if isinstance(table, dict):
        out.update({str(k): str(v) for k, v in table.items()})
    for key, value in manifest.items():
        if key.endswith("_sha256") and isinstance(manifest.get(key[:-7]), str) and _is_digest(value):
            out.setdefault(str(manifest[key[:-7]]), str(value))
        if isinstance(value, dict) and _is_digest(value.get("sha256")):
            name = value.get("file") or value.get("path")
            if isinstance(name, str):
                out.setdefault(name, str(value["sha256"]))
    return out


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ArtifactIntegrityError(f"{root}/model.json: digest entry {rel!r} points outside the model folder")
    return path


def verify_manifest_digests(model_dir: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Check every digest the manifest records; return the verified relative paths.

    Raises:
        ArtifactIntegrityError: A listed file is missing, outside the folder, or its bytes differ, or a
            pickled artifact has no recorded digest.
    """
    root = Path(model_dir)
    digests = recorded_digests(manifest)
    for rel, expected in sorted(digests.items()):
        path = _inside(root, rel)
        if not path.is_file():
            raise ArtifactIntegrityError(f"{path}: artifact listed in model.json is missing; not loaded")
        actual = file_sha256(path)
        if actual != expected.lower():
            log.error("artifact digest mismatch: %s has sha256 %s, model.json records %s", path, actual, expected)
            raise ArtifactIntegrityError(f"{path}: sha256 {actual[:12]}… does not match the digest recorded in "
                                         f"model.json ({expected[:12]}…); refusing to deserialise it")
    for rel in PICKLED:
        if (root / rel).is_file() and rel not in digests:
            raise ArtifactIntegrityError(f"{root / rel}: no digest recorded for this pickled artifact in "
                                         "model.json; refusing to unpickle it (re-save the model with this "
                                         "ctloop version)")
    return sorted(digests)


def verify_tree(model_dir: str | Path, expected: str, where: str) -> None:
    """Check the registry's folder digest (:func:`ctloop.registry.tree_digest`) of ``model_dir``.

    Raises:
        ArtifactIntegrityError: When it differs from ``expected``.
    """
    from ctloop.registry import tree_digest

    actual = tree_digest(model_dir)
    if actual != expected:
        log.error("artifact digest mismatch: %s has tree sha256 %s, %s records %s", model_dir, actual, where,
                  expected)
        raise ArtifactIntegrityError(f"{model_dir}: model folder sha256 {actual[:12]}… does not match "
                                     f"artifact.sha256 recorded at registration ({where}: {expected[:12]}…); "
                                     "refusing to load it")
