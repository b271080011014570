"""The local submitter runs the real training pipeline (KFP local runner) in a worker process; the
outcome lands in the ledger and the trigger cause in the registered model's lineage. Then new data past
the champion's watermark fires a volume trigger through the policy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ctloop.config import load_config
from ctloop.datagen import DriftSpec, write_stream
from ctloop.registry import Registry
from ctloop.triggers.policy import Trigger
from ctloop.triggers.service import TriggerService
from ctloop.triggers.sources import count_new_rows
from tests.conftest import START, make_project
from tests.helpers_triggers import TOKEN, build_service, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def _edit(text: str) -> str:
    return text.replace("cooldown_minutes: 60", "cooldown_minutes: 0\n  volume_rows: 500")


def test_local_submitter_runs_pipeline_and_records_lineage_then_volume_fires(tmp_path: Path) -> None:
    cfg_path = make_project(tmp_path / "proj", days=6, rows_per_day=250, edit=_edit)
    (tmp_path / "proj" / "secrets").mkdir()
    (tmp_path / "proj" / "secrets" / "trigger-token").write_text(TOKEN)
    cfg = load_config(cfg_path)
    svc = TriggerService.create(cfg, CollectorRegistry())
    assert svc.submitter.name == "local"
    try:
        d = svc.handle(Trigger("manual", cfg.name, episode="audit-1", reason="labels audited"))
        assert d.fired
        second = svc.handle(Trigger("manual", cfg.name, episode="audit-2", reason="again"))
        assert second.reason_code == "active_run"
        row = wait_for(
            lambda: (r := svc.ledger.get(d.trigger_id)).run_status not in ("pending", "submitted") and r,
            240,
            "the local run's outcome in the ledger",
            interval=0.5,
        )
        assert row.run_status == "succeeded", row.detail
        # nothing changed since v1: the next fired run ends early as `unchanged`, a completed run
        third = svc.handle(Trigger("manual", cfg.name, episode="audit-3", reason="nothing new"))
        assert third.fired, third.reason
        row3 = wait_for(
            lambda: (r := svc.ledger.get(third.trigger_id)).run_status not in ("pending", "submitted") and r,
            120,
            "the unchanged run's outcome in the ledger",
            interval=0.5,
        )
        assert row3.run_status == "unchanged" and row3.version is None
        assert "unchanged" in str(row3.detail.get("error"))
        assert svc.handle(Trigger("manual", cfg.name, episode="audit-4", reason="after")).reason_code != "active_run"
    finally:
        svc.stop()
    assert row.version == 1
    assert Registry(cfg.registry.uri, cfg.name).versions() == [1]
    meta = Registry(cfg.registry.uri, cfg.name).get(1).metadata
    assert meta["run_id"] == d.run_id
    assert meta["trigger"]["cause"] == "manual" and meta["trigger"]["reason"] == "labels audited"
    assert meta["trigger"]["idempotency_key"] == d.idempotency_key
    assert meta["trigger"]["trigger_id"] == d.trigger_id

    # new-data volume: nothing new past the champion's watermark yet
    c0 = count_new_rows(cfg)
    assert (c0.rows, c0.watermark, c0.champion) == (0, meta["data"]["last_day"], 1)
    vsvc = build_service(
        cfg.model_copy(
            update={"triggers": cfg.triggers.model_copy(update={"ledger": str(tmp_path / "vol.sqlite")})}
        ),
        tmp_path / "subs.sqlite",
    )
    try:
        assert vsvc.tick() == []
        write_stream(tmp_path / "proj" / "data", START + dt.timedelta(days=6), 3, 5, 250, DriftSpec(None))
        assert count_new_rows(cfg).rows == 750
        vsvc._next_volume = None  # check now rather than after triggers.volume_check_seconds
        (dv,) = vsvc.tick()
        assert dv.fired and dv.run_id.startswith(f"{cfg.name}-volume-")
        vrow = vsvc.ledger.get(dv.trigger_id)
        assert vrow.detail["rows"] == 750 and vrow.detail["watermark"] == meta["data"]["last_day"]
        vsvc._next_volume = None
        (again,) = vsvc.tick()
        assert again.reason_code == "duplicate"  # the same backlog fires once
    finally:
        vsvc.stop()
