"""The server's side of the compiled path: load it beside the reference model and check they agree."""

from __future__ import annotations

import logging
from pathlib import Path

from ctloop.fastpath.artifact import load_fast, max_delta
from ctloop.fastpath.runtime import FastModel
from ctloop.model import LoadedModel

log = logging.getLogger("ctloop.serving")


def load_fast_checked(model: LoadedModel, model_dir: str | Path, tolerance: float) -> tuple[FastModel | None, str]:
    """Load the model's compiled artifact and check it against the reference on the smoke rows.

    Returns:
        ``(fast model or None, why)``: None means the reference path serves (no artifact, or it
        disagrees on the smoke rows by more than ``tolerance``).

    Raises:
        ModelError: The manifest lists an artifact that is missing, altered or unreadable (the version
            is refused, like one with a corrupt reference artifact).
    """
    from ctloop.serving.model import smoke_frame

    block = model.manifest.get("fast_path")
    fast = load_fast(model_dir, model.manifest)
    if fast is None:
        status = block.get("status") if isinstance(block, dict) else "absent"
        reason = block.get("reason", "") if isinstance(block, dict) else "no compiled artifact in model.json"
        return None, f"fast path {status}: {reason}".rstrip(": ")
    try:
        delta = max_delta(model, fast, smoke_frame(model, model_dir))
    except Exception as exc:  # a fast path that cannot even predict the smoke rows is not used
        return None, f"fast path failed on the smoke rows ({type(exc).__name__}: {exc})"
    if not delta <= tolerance:
        return None, f"fast path differs from the reference by {delta:.3g} > {tolerance:g} on the smoke rows"
    return fast, f"fast path {fast.kind} (max |dP| {delta:.2g} on the smoke rows)"
