"""The compiled artifact beside a model: export (with an agreement check), digest, load, and disable.

``model.json`` gains a ``fast_path`` block. When the export worked and agreed with the reference path:
``{"status": "ok", "file": "fast.npz", "sha256": ..., "kind": ..., "max_abs_delta": ..., "checked_rows":
..., "tolerance": ...}``; otherwise ``{"status": "failed" | "disagrees" | "disabled", "reason": ...}`` and
no file: the model is served on the reference path.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import FastPathError, ModelError
from ctloop.fastpath.runtime import FastModel

log = logging.getLogger("ctloop.fastpath")

FAST_FILE = "fast.npz"
DEFAULT_TOLERANCE = 1e-5
MANIFEST = "model.json"


def frame_columns(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """Typed columns of a frame as the decoders produce them (numeric float64, categorical str or None)."""
    out: dict[str, Any] = {c: pd.to_numeric(frame[c], errors="raise").to_numpy(dtype="float64")
                           for c in numeric}
    for c in categorical:
        out[c] = [None if v is None or (isinstance(v, float) and v != v) else v
                  for v in frame[c].astype("object").tolist()]
    return out


def compile_model(model: Any) -> dict[str, np.ndarray]:
    """Compile a :class:`~ctloop.model.LoadedModel` (either trainer) into arrays.

    Raises:
        FastPathError: When the model cannot be compiled.
    """
    from ctloop.fastpath.compile import compile_sklearn, compile_torch

    trainer = model.manifest.get("trainer", "sklearn")
    if trainer == "torch":
        net = model.predictor.net
        return compile_torch(model.manifest, {k: v.detach().cpu() for k, v in net.state_dict().items()})
    if trainer == "sklearn":
        return compile_sklearn(model.predictor, model.numeric_features, model.categorical_features)
    raise FastPathError(f"no compiler for trainer {trainer!r}")


def max_delta(model: Any, fast: FastModel, frame: pd.DataFrame) -> float:
    """max |P_fast - P_reference| over the rows of ``frame`` (0.0 on no rows)."""
    if frame.empty:
        return 0.0
    ref = np.asarray(model.predict_proba(frame), dtype="float64")
    got = fast.predict_proba(frame_columns(frame, model.numeric_features, model.categorical_features))
    if got.shape != ref.shape:
        return float("inf")
    return float(np.nanmax(np.abs(got - ref))) if np.all(np.isfinite(got)) else float("inf")


def _write_manifest(model_dir: Path, block: dict[str, Any]) -> None:
    path = model_dir / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["fast_path"] = block
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def export_fast_path(model_dir: str | Path, sample: pd.DataFrame,
                     tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Compile the model in ``model_dir``, check it on ``sample`` and write ``fast.npz`` + the manifest block.

    Never raises for a model that cannot be compiled: the block records why and no file is written.
    """
    from ctloop.model import load_model

    d = Path(model_dir)
    (d / FAST_FILE).unlink(missing_ok=True)
    try:
        model = load_model(d)
        arrays = compile_model(model)
        fast = FastModel(arrays, model.numeric_features, model.categorical_features)
        delta = max_delta(model, fast, sample)
    except Exception as exc:  # any compile failure leaves the reference path, never a failed training
        block: dict[str, Any] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        log.warning("%s: no fast path (%s); the model is served on the reference path", d, block["reason"])
        _write_manifest(d, block)
        return block
    if not delta <= tolerance:
        block = {"status": "disagrees", "max_abs_delta": delta, "tolerance": tolerance,
                 "reason": f"fast path differs from the reference by {delta:.3g} > {tolerance:g} on "
                           f"{len(sample)} training rows"}
        log.warning("%s: %s; the model is served on the reference path", d, block["reason"])
        _write_manifest(d, block)
        return block
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    data = buf.getvalue()
    (d / FAST_FILE).write_bytes(data)
    block = {"status": "ok", "file": FAST_FILE, "sha256": hashlib.sha256(data).hexdigest(), "kind": fast.kind,
             "max_abs_delta": delta, "checked_rows": int(len(sample)), "tolerance": tolerance}
    _write_manifest(d, block)
    return block


def load_fast(model_dir: str | Path, manifest: dict[str, Any]) -> FastModel | None:
    """The compiled model named by ``manifest["fast_path"]``, or None when the model has none.

    Raises:
        ModelError: When the manifest lists a fast artifact that is missing, altered or unreadable
            (a corrupt version is refused, as for a corrupt reference artifact).
    """
    block = manifest.get("fast_path")
    if not isinstance(block, dict) or block.get("status") != "ok":
        return None
    path = Path(model_dir) / str(block.get("file", FAST_FILE))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: fast-path artifact listed in model.json cannot be read ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != block.get("sha256"):
        raise ModelError(f"{path}: sha256 {digest[:12]} does not match model.json's "
                         f"{str(block.get('sha256'))[:12]}; the artifact was altered")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return FastModel(arrays, list(manifest["numeric_features"]), list(manifest["categorical_features"]))
    except (ValueError, OSError, KeyError, FastPathError) as exc:
        raise ModelError(f"{path}: cannot load the fast-path artifact ({exc})") from exc


def fast_path_status(model_dir: str | Path) -> dict[str, Any]:
    """The ``fast_path`` block of a model folder's manifest (``{"status": "absent"}`` when there is none)."""
    try:
        manifest = json.loads((Path(model_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "absent"}
    block = manifest.get("fast_path")
    return block if isinstance(block, dict) else {"status": "absent"}


def without_fast_path(model_dir: str | Path, reason: str) -> Path:
    """A copy of ``model_dir`` whose fast path is disabled (``fast.npz`` removed, the block says why)."""
    target = Path(tempfile.mkdtemp(prefix="ctloop-model-")) / "model"
    shutil.copytree(model_dir, target)
    for p in target.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    (target / FAST_FILE).unlink(missing_ok=True)
    _write_manifest(target, {"status": "disabled", "reason": reason})
    return target
