"""Each KFP component's python_func, called with small artifact fakes (no KFP runner)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components import build_components
from ctloop.config import load_config
from ctloop.errors import DataValidationError
from ctloop.registry import Registry

pytestmark = pytest.mark.component


@dataclass
class FakeArtifact:
    """What a component sees of an artifact: a path, metadata, and log_metric for Metrics."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value
        self.metadata[name] = value


def art(tmp: Path, name: str) -> FakeArtifact:
    return FakeArtifact(str(tmp / name))


def test_components_chain(project: Path, tmp_path: Path) -> None:
    c = build_components("example.org/ctloop-runtime:1.0")
    cfg = load_config(project)
    cj = cfg.to_json()
    ds = art(tmp_path, "dataset")
    content_hash = c.ingest.python_func(config_json=cj, cutoff_date="", dataset=ds)
    assert len(content_hash) == 64 and ds.metadata["rows"] == 3000
    report, html, summary = art(tmp_path, "report"), art(tmp_path, "html"), art(tmp_path, "summary")
    assert c.validate.python_func(config_json=cj, dataset=ds, report=report, report_html=html, summary=summary)
    assert json.loads(Path(report.path).read_text())["passed"] is True
    assert "<html" in Path(html.path).read_text().lower()
    c.validate_gate.python_func(config_json=cj, report=report)
    tr, te, rc = art(tmp_path, "train"), art(tmp_path, "test"), art(tmp_path, "recent")
    c.split.python_func(config_json=cj, dataset=ds, train=tr, test=te, recent=rc)
    assert tr.metadata["rows"] + te.metadata["rows"] == 3000 and 0 < rc.metadata["rows"] < te.metadata["rows"]
    table, state, fhtml = art(tmp_path, "features"), art(tmp_path, "features-state"), art(tmp_path, "features.html")
    c.features.python_func(config_json=cj, train=tr, table=table, state=state, summary=fhtml)
    assert table.metadata["rows"] == tr.metadata["rows"] and table.metadata["derived"] == []  # none declared
    assert "no derived features declared" in Path(fhtml.path).read_text()
    model = art(tmp_path, "model")
    c.train.python_func(config_json=cj, train=table, features=state, model=model,
                        metrics=art(tmp_path, "train-metrics"))
    assert (Path(model.path) / "model.json").exists()
    metrics, decision, md = art(tmp_path, "metrics"), art(tmp_path, "decision"), art(tmp_path, "md")
    passed = c.evaluate.python_func(config_json=cj, model=model, test=te, recent=rc, metrics=metrics,
                                    decision=decision, summary=md)
    assert passed is True and metrics.metrics["roc_auc"] > 0.7
    version = c.register.python_func(config_json=cj, model=model, decision=decision, dataset=ds,
                                     run_id="run-1", kfp_run_name="ignored", trigger_json='{"cause":"manual"}')
    assert version == 1
    out = json.loads(c.deploy.python_func(config_json=cj, version=version, run_id="run-1", kfp_run_name=""))
    assert out == {"version": 1, "previous": None, "promoted": True, "mode": "local",
                   "step_seconds": out["step_seconds"]}
    reg = Registry(cfg.registry.uri, cfg.name)
    meta = reg.get("champion").metadata
    assert meta["run_id"] == "run-1" and meta["data"]["content_hash"] == content_hash


def test_validate_component_fails_closed(project: Path, tmp_path: Path) -> None:
    c = build_components()
    cj = load_config(project).to_json()
    ds = art(tmp_path, "dataset")
    c.ingest.python_func(config_json=cj, cutoff_date="", dataset=ds)
    import pandas as pd

    pd.read_parquet(ds.path).drop(columns=["region"]).to_parquet(ds.path)
    report, html, summary = art(tmp_path, "report"), art(tmp_path, "html"), art(tmp_path, "summary")
    # validate publishes its reports and says "not passed"; the gate step then stops the run
    assert c.validate.python_func(config_json=cj, dataset=ds, report=report, report_html=html,
                                  summary=summary) is False
    assert json.loads(Path(report.path).read_text())["passed"] is False
    assert "region" in Path(summary.path).read_text()
    with pytest.raises(DataValidationError, match="region"):
        c.validate_gate.python_func(config_json=cj, report=report)


def test_components_use_configured_image_and_no_kfp_install() -> None:
    c = build_components("example.org/img:2")
    spec = c.train.component_spec
    container = spec.implementation.container
    assert container.image == "example.org/img:2"
    assert "pip install" not in " ".join(container.command or [])
