"""POST /labels and realized performance on the real watcher process (``ctloop watch``) over HTTP."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctloop.quality.realized import log_loss, roc_auc
from tests.helpers_quality import HOLDOUT, TOKEN, WatcherProcess, event_pair, post_labels, quality_project

pytestmark = [pytest.mark.integration]
N = 40


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("quality")
    project, cfg, version = quality_project(
        root, monitoring={"labels": {"max_body_bytes": 64 * 1024}, "performance": {"min_slice_rows": 5}},
        slices=[{"column": "plan", "metric": "roc_auc", "min": 0.5, "min_rows": 5}])
    w = WatcherProcess(project)
    try:
        w.wait_watching()
        ids = [f"q-{i}" for i in range(N)]
        proba = np.linspace(0.02, 0.98, N)
        for headers, body in event_pair(cfg, ids, version, proba=proba):
            r = httpx.post(f"{w.url}/events", content=body, headers=headers, timeout=10)
            assert r.status_code == 202, r.text
        yield {"w": w, "cfg": cfg, "version": version, "ids": ids, "proba": proba}
    finally:
        w.stop()


def metric(url: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_auth_size_and_bad_rows_record_nothing(watched: Any) -> None:
    url, model = watched["w"].url, watched["cfg"].name
    body = {"model": model, "labels": [{"id": "q-0", "label": 1}]}
    assert post_labels(url, body, token=None).status_code == 401
    r = post_labels(url, body, token="wrong")
    assert r.status_code == 401 and "invalid bearer token" in r.text
    big = {"model": model, "labels": [{"id": f"x{i}", "label": 1} for i in range(5000)]}
    r = post_labels(url, big)
    assert r.status_code == 413 and "monitoring.labels.max_body_bytes" in r.text
    for rows, where in (([{"id": "q-0", "label": 1}, {"id": "q-1", "label": 0}, {"id": "q-2", "label": 2}],
                         "labels[2].label"),
                        ([{"id": "q-0", "label": 1}, {"label": 0}], "labels[1].id"),
                        ([{"id": "q-0", "label": "1"}], "labels[0].label"),
                        ([{"id": "q-0", "label": 1, "time": "yesterday"}], "labels[0].time")):
        r = post_labels(url, {"model": model, "labels": rows})
        assert r.status_code == 400 and where in r.json()["error"], (rows, r.text)
    r = post_labels(url, {"model": "other", "labels": []})
    assert r.status_code == 400 and "'other'" in r.text
    assert post_labels(url, b"{not json").status_code == 400
    # nothing of the refused batches was recorded: q-0..q-2 are still unlabelled
    q = watched["w"].status()["quality"]
    assert q["labelled_predictions"] == 0 and q["labels"]["matched"] == 0


def test_labels_join_counts_and_realized_performance(watched: Any) -> None:
    w, cfg, v = watched["w"], watched["cfg"], str(watched["version"])
    ids, proba = watched["ids"], watched["proba"]
    rng = np.random.default_rng(1)
    truth = (rng.random(N) < proba).astype(int)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    rows = [{"id": i, "label": int(y), "time": later} for i, y in zip(ids[:30], truth[:30], strict=True)]
    rows += [{"id": ids[0], "label": 1 - int(truth[0])},              # repeated in the batch: first stands
             {"id": "never-served", "label": 1},                       # unknown
             {"id": ids[30], "label": 1, "time": "2000-01-01T00:00:00Z"},  # before its prediction: invalid
             {"id": ids[31], "label": 1,                               # past monitoring.labels.max_delay
              "time": (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).isoformat()}]
    r = post_labels(w.url, {"model": cfg.name, "labels": rows})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 30, "unknown": 1, "duplicate": 1, "expired": 1, "invalid": 1}
    # idempotent: the same labels again are all duplicates, the first label stands
    again = post_labels(w.url, {"model": cfg.name, "labels": [{"id": i, "label": 1} for i in ids[:30]]})
    assert again.json() == {"matched": 0, "unknown": 0, "duplicate": 30, "expired": 0, "invalid": 0}

    p, y = proba[:30], truth[:30]
    yhat = (p >= 0.5).astype(int)
    expect = {"accuracy": float(np.mean(yhat == y)), "roc_auc": roc_auc(p, y), "log_loss": log_loss(p, y),
              "positive_rate": float(np.mean(yhat))}
    for m, value in expect.items():
        got = metric(w.url, "ctloop_model_performance", model=cfg.name, version=v, metric=m, source="realized")
        assert got == pytest.approx(value, abs=1e-5), m
    for m, value in HOLDOUT.items():
        assert metric(w.url, "ctloop_model_reference_performance", model=cfg.name, version=v, metric=m) == value
    assert metric(w.url, "ctloop_labelled_predictions", model=cfg.name, version=v) == 30
    assert metric(w.url, "ctloop_label_coverage", model=cfg.name) == pytest.approx(30 / N)
    assert metric(w.url, "ctloop_labels_total", outcome="matched") == 30
    assert metric(w.url, "ctloop_labels_total", outcome="duplicate") == 31
    assert metric(w.url, "ctloop_labels_total", outcome="unknown") == 1
    assert metric(w.url, "ctloop_label_delay_seconds_count") == 30
    assert 7000 < (metric(w.url, "ctloop_label_delay_seconds_sum") or 0) / 30 < 7400  # about two hours
    q = w.status()["quality"]
    assert q["version"] == watched["version"] and q["labelled_in_window"] == 30
    assert q["stored_predictions"] == N and q["labelled_predictions"] == 30
    assert q["realized"]["accuracy"] == pytest.approx(expect["accuracy"], abs=1e-6)
    assert q["reference"] == HOLDOUT
    assert q["labels"]["invalid"] == 1 and q["labels"]["expired"] == 1
    # per-slice realized metrics for the gate's slice column, slices with >= min_slice_rows rows only
    assert q["slices"] and all(k.startswith("plan=") for k in q["slices"])
    assert all(not math.isnan(s["accuracy"]) for s in q["slices"].values())


def test_labels_push_cli_posts_batches_and_prints_counts(watched: Any, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    import pandas as pd

    w = watched["w"]
    f = tmp_path / "labels.csv"
    pd.DataFrame({"customer": [*watched["ids"][32:], "nope-1", ""], "churned": [1] * 8 + [0, 1]}).to_csv(
        f, index=False)
    args = [sys.executable, "-m", "ctloop.cli", "labels", "push", "--config", str(w.config), "--file", str(f),
            "--id-column", "customer", "--label-column", "churned", "--endpoint", w.url, "--json"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "labels[9].id" in r.stderr, r.stderr  # the empty id, named by row
    good = tmp_path / "good.parquet"
    pd.DataFrame({"customer": [*watched["ids"][32:], "nope-1"], "churned": [1] * 8 + [0]}).to_parquet(good)
    args[args.index(str(f))] = str(good)
    r = subprocess.run([*args, "--batch-size", "3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["matched"] == 8 and doc["unknown"] == 1 and doc["rows"] == 9
    assert TOKEN not in r.stdout
