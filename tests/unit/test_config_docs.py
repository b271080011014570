"""docs/config.md is generated from the config models: every key is documented and the file is fresh."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from ctloop.config import ProjectConfig
from ctloop.config_docs import config_reference

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out.append(key)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{key}.")
    return out


def test_committed_reference_is_fresh() -> None:
    assert DOC.read_text() == config_reference(), "run `ctloop config-reference --out docs/config.md`"


def test_every_key_has_type_default_and_description() -> None:
    rows = {line.split("|")[1].strip().strip("`"): line for line in config_reference().splitlines()
            if line.startswith("| `")}
    for key in _keys(ProjectConfig):
        assert key in rows, f"{key} missing from the reference"
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[key])[1:-1]]
        assert len(cells) == 4 and all(cells), f"{key}: empty type, default or description: {rows[key]}"
