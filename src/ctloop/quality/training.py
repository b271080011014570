"""Training-time side of estimated performance: fit the calibration on the holdout, and put it into the
reference profile of the version that gets registered (without touching the step's input artifact)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.errors import DataError
from ctloop.model import load_model
from ctloop.profile import PROFILE_FILE, Profile
from ctloop.quality.calibration import Calibration, fit_calibration


def holdout_calibration(model_dir: str | Path, holdout: pd.DataFrame, target: str) -> dict[str, Any]:
    """Fit the model's calibration on the holdout; the part of the decision record that carries it.

    Returns:
        ``{"calibration": {...}}``, or ``{"calibration": None, "calibration_error": why}`` when the
        holdout cannot be used (the gate decides on its own whether the model is good enough).
    """
    if target not in holdout:
        return {"calibration": None, "calibration_error": f"holdout has no {target!r} column"}
    try:
        scores = load_model(model_dir).predict_proba(holdout)
        cal = fit_calibration(scores, holdout[target].to_numpy())
    except DataError as exc:
        return {"calibration": None, "calibration_error": str(exc)}
    return {"calibration": cal.model_dump()}


@contextlib.contextmanager
def with_calibration(model_dir: str | Path, calibration: dict[str, Any] | None) -> Iterator[Path]:
    """The model folder to register: a staged copy whose profile (v2) carries ``calibration``, or the
    folder itself when there is no calibration or no profile. The input folder is never modified."""
    src = Path(model_dir)
    if not calibration or not (src / PROFILE_FILE).is_file():
        yield src
        return
    cal = Calibration.model_validate(calibration)
    with tempfile.TemporaryDirectory(prefix="ctloop-register-") as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(src, staged)
        profile = Profile.load(staged)
        (staged / PROFILE_FILE).unlink()  # a copied read-only file cannot be overwritten in place
        profile.model_copy(update={"calibration": cal}).save(staged)
        yield staged
