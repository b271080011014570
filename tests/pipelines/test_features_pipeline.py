"""The features step under the KFP local runner: declared features are fitted on the training split,
travel into the model folder, and the model server computes them identically on decoded requests
(the step's feature table and the server agree on the same rows)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from ctloop.config import load_config
from ctloop.datagen import generate_day
from ctloop.model import load_model, prepare_frame
from ctloop.registry import Registry
from ctloop.runner import run_local
from ctloop.serving.decode import frame_from_v1
from tests.conftest import make_project, run_cli
from tests.helpers_serving import ServerProcess, records, write_config
from tests.integration.test_watcher_service import Watcher, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

FEATURES = """
features:
  - {name: log_income, transform: log1p, column: income}
  - {name: balance_per_product, transform: ratio, numerator: balance, denominator: num_products}
  - {name: score_band, transform: bucketize, column: credit_score, boundaries: [500, 650, 750]}
  - {name: login_capped, transform: clip, column: days_since_login, max: 60}
  - {name: plan_top, transform: one_hot_top_k, column: plan, k: 2}
"""


def test_features_step_runs_and_serving_computes_the_same_features(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "p", days=5, rows_per_day=300, edit=lambda t: t + FEATURES)
    cfg = load_config(cfg_path)
    events: list[tuple[str, str]] = []
    result = run_local(cfg, on_event=lambda t, s: events.append((t, s)))
    assert result.status == "succeeded" and result.promoted, result.error
    assert ("features", "succeeded") in events
    model_dir = Registry(cfg.registry.uri, cfg.name).local_model_dir(result.version)
    model = load_model(model_dir)
    derived = ["log_income", "balance_per_product", "score_band", "login_capped", "plan_top=basic",
               "plan_top=plus"]
    assert model.derived_features == derived
    assert not set(derived) & set(model.features)  # requests carry raw inputs only
    profile = json.loads((Path(model_dir) / "profile.json").read_text())
    assert "log_income" in json.dumps(profile)  # the reference profile covers derived features

    (table_file,) = [p for p in Path(cfg.kfp.pipeline_root).rglob("table") if p.parent.name == "features"]
    table = pd.read_parquet(table_file).head(40)  # the features step's output rows
    body = {"instances": records(table, model.features)}
    served = model.prepare(frame_from_v1(json.dumps(body).encode(), model.numeric_features,
                                         model.categorical_features))
    step = prepare_frame(table, list(model.manifest["numeric_features"]), model.categorical_features)
    pd.testing.assert_frame_equal(served.reset_index(drop=True)[derived], step.reset_index(drop=True)[derived])

    drift = cfg.drift.model_copy(update={"window_rows": 200, "min_rows": 100})
    with Watcher(cfg.model_copy(update={"drift": drift})) as watcher:
        wait_until(lambda: watcher.status().get("version") == result.version, "champion to load")
        write_config(cfg_path, {"logger": {"url": f"{watcher.url}/events", "flush_seconds": 0.05}})
        server = ServerProcess(cfg_path, model_dir=Path(model_dir))
        try:
            server.wait_ready(cfg.name)
            r = httpx.post(f"{server.base}/v1/models/{cfg.name}:predict", json=body, timeout=30)
            assert r.status_code == 200, r.text
            expected = np.asarray(model.predictor.predict_proba(step))[:, 1]
            np.testing.assert_allclose(r.json()["predictions"], expected, rtol=0, atol=1e-12)
            clean = generate_day(dt.date(2026, 1, 3), 400, 77)  # same distribution as training
            for a in range(0, 400, 100):
                r = httpx.post(f"{server.base}/v1/models/{cfg.name}:predict",
                               json={"instances": records(clean.iloc[a:a + 100], model.features)}, timeout=30)
                assert r.status_code == 200, r.text
            wait_until(lambda: watcher.status()["windows"]["evaluated"] >= 2, "two drift windows", limit=60)
        finally:
            server.stop()
        # the watcher computed the derived features from the raw requests: watched, and not drifted
        assert not watcher.metric("ctloop_watcher_events_total", outcome="malformed")
        assert watcher.metric("ctloop_watcher_events_total", outcome="joined") >= 4
        for name in derived:
            assert watcher.metric("ctloop_drift_detected", model=cfg.name, feature=name) == 0, name
        assert watcher.metric("ctloop_drift_score", model=cfg.name, feature="log_income", method="psi") < 0.1


def test_unknown_feature_column_is_exit_2_naming_it(tmp_path: Path) -> None:
    cfg = make_project(tmp_path / "p", days=3, rows_per_day=200,
                       edit=lambda t: t + "\nfeatures:\n  - {name: x, transform: log1p, column: incme}\n")
    r = run_cli("run", "--config", str(cfg), "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "config_error" and "features[0].column: unknown column 'incme'" in out["error"]["message"]
    r = run_cli("run", "--config", str(make_project(
        tmp_path / "q", days=3, rows_per_day=200,
        edit=lambda t: t + "\nfeatures:\n  - {name: x, transform: exec, column: income}\n")))
    assert r.returncode == 2 and "features.0.transform" in r.stderr
