"""The pipeline's ``features`` step: fit the declared features on the training split, write the feature
table, the fitted state (it travels into the model folder) and a small HTML summary."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.config import FeatureSpec, ProjectConfig
from ctloop.errors import DataError
from ctloop.features import apply, check_spec, fit, to_doc
from ctloop.schema import ColumnSpec, Schema


def with_derived(schema: Schema, doc: dict[str, Any]) -> Schema:
    """The schema plus the derived columns (numeric, nullable) that the trainers see as features."""
    extra = {name: ColumnSpec(dtype="numeric", nullable=True) for name in doc.get("outputs", [])}
    if not extra:
        return schema
    return schema.model_copy(update={"columns": {**schema.columns, **extra}})


def summary_html(table: pd.DataFrame, specs: list[FeatureSpec], outputs: list[str]) -> str:
    """A small HTML page: each derived column with its transform, inputs and train-split statistics."""
    by_out: dict[str, FeatureSpec] = {}
    for spec in specs:
        names = ([c for c in outputs if c.startswith(f"{spec.name}=")] if spec.transform == "one_hot_top_k"
                 else [spec.name])
        by_out.update({o: spec for o in names})
    rows = []
    for name in outputs:
        x = table[name].to_numpy(dtype="float64")
        ok = ~np.isnan(x)
        f = by_out.get(name)
        stats = (f"{x[ok].mean():.4g}", f"{x[ok].min():.4g}", f"{x[ok].max():.4g}") if ok.any() else ("-",) * 3
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            name, f.transform if f else "-", ", ".join(f.inputs()) if f else "-", f"{ok.mean():.1%}", *stats))
            + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("feature", "transform", "inputs", "non-missing", "mean", "min", "max"))
    body = "".join(rows) or '<tr><td colspan="7">no derived features declared (features: [])</td></tr>'
    return (f"<!doctype html><meta charset='utf-8'><title>ctloop features</title><h1>Derived features</h1>"
            f"<p>{len(table)} training rows, {len(outputs)} derived columns</p>"
            f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>")


def build_features(cfg: ProjectConfig, schema: Schema, train_path: str, table_path: str, state_path: str,
                   html_path: str = "") -> dict[str, Any]:
    """Fit the features on the training split and write the feature table, state and summary."""
    check_spec(cfg.features, list(schema.columns), schema.target)
    try:
        train = pd.read_parquet(train_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{train_path}: cannot read the train split ({exc})") from exc
    state = fit(train, cfg.features)
    table = apply(train, cfg.features, state)
    doc = to_doc(cfg.features, state)
    Path(table_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(table_path, index=False)
    Path(state_path).write_text(json.dumps(doc, indent=2, sort_keys=True))
    if html_path:
        Path(html_path).write_text(summary_html(table, list(cfg.features), doc["outputs"]))
    return {"rows": int(len(table)), "derived": doc["outputs"]}
