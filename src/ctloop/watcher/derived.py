"""Derived features in the watcher: the champion's declared features (``model.json``) computed on each
request's raw columns with :func:`ctloop.features.apply`, so the drift profile's derived features are
watched exactly as training computed them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.config import FeatureSpec
from ctloop.errors import CtloopError, EventError
from ctloop.features import apply, from_doc


@dataclass(frozen=True)
class Derived:
    """A model's declared features and their fitted state (empty when none are declared)."""

    specs: list[FeatureSpec] = field(default_factory=list)
    state: dict[str, list[str]] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()

    @classmethod
    def load(cls, model_dir: str | Path) -> Derived:
        """Read them from ``model_dir/model.json`` (no manifest or no features: none)."""
        man = Path(model_dir) / "model.json"
        if not man.is_file():
            return cls()
        doc = json.loads(man.read_text()).get("features")
        specs, state = from_doc(doc)
        return cls(specs, state, tuple((doc or {}).get("outputs", [])))

    def inputs(self, names: list[str]) -> list[str]:
        """``names`` without the derived ones: what a request carries."""
        return [n for n in names if n not in self.outputs]

    def add(self, columns: dict[str, Any], rows: int) -> dict[str, Any]:
        """``columns`` plus the derived columns computed from them.

        Raises:
            EventError: When the request lacks an input a feature reads.
        """
        if not self.specs or rows == 0:
            return columns
        try:
            frame = apply(pd.DataFrame({k: list(v) for k, v in columns.items()}), self.specs, self.state)
        except CtloopError as exc:
            raise EventError(f"request: cannot compute the model's derived features ({exc})") from exc
        return {**columns, **{c: frame[c].to_numpy() for c in self.outputs}}
