"""Latency from the drift gauge crossing its threshold to the run being submitted, through a real
Prometheus and Alertmanager (Debian packages), against a baseline measured in the same run: the same
webhook posted straight to ``/alerts`` (the trigger service alone).

Run: ``.venv/bin/python benchmarks/bench_triggers.py [--episodes 5]`` (from the repository root).
Settings: scrape 1s, rule evaluation 1s, ``for: 0s``, Alertmanager ``group_wait: 0s``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctloop.config import load_config  # noqa: E402
from ctloop.render import render_all  # noqa: E402
from ctloop.triggers.api import build_trigger_app  # noqa: E402
from ctloop.triggers.service import TriggerService  # noqa: E402
from ctloop.triggers.submitters import RunRequest, RunUpdate  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.helpers_triggers import (  # noqa: E402
    TOKEN,
    RecordingSubmitter,
    serve_in_thread,
    trigger_project,
    wait_for,
    webhook,
)
from tests.integration.test_triggers_prometheus import PromStack  # noqa: E402


class FinishingSubmitter(RecordingSubmitter):
    """Records the submission and reports the run finished at once, so the next episode may fire."""

    def submit(self, req: RunRequest) -> RunUpdate:
        super().submit(req)
        return RunUpdate("succeeded", external_id=req.run_id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=5)
    args = ap.parse_args()
    from prometheus_client import CollectorRegistry

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        port = free_port()
        cfg_path = trigger_project(
            tmp / "p",
            port=port,
            cooldown_minutes=0,
            daily_budget=1000,
            evaluation_interval="1s",
            group_wait="0s",
            group_interval="1s",
            prometheus=True,
        )
        text = cfg_path.read_text().replace("alert_for: 2s", "alert_for: 0s")
        cfg_path.write_text(text)
        cfg = load_config(cfg_path)
        render_all(cfg, tmp / "out")
        subs = FinishingSubmitter(tmp / "subs.sqlite")
        svc = TriggerService.create(cfg, CollectorRegistry(), submitter=subs)
        e2e: list[float] = []
        direct: list[float] = []
        with serve_in_thread(build_trigger_app(svc), port) as base, PromStack(tmp, tmp / "out") as stack:
            # warm: Prometheus has scraped the gauge and discovered the Alertmanager
            def ready() -> bool:
                q = json.load(urllib.request.urlopen(f"{stack.prom}/api/v1/query?query=ctloop_drift_share"))
                am = json.load(urllib.request.urlopen(f"{stack.prom}/api/v1/alertmanagers"))
                return bool(q["data"]["result"]) and bool(am["data"]["activeAlertmanagers"])

            wait_for(ready, 60, "prometheus warm")
            for i in range(args.episodes):
                n = len(subs.submissions())
                t0 = time.time()
                stack.gauge.labels("churn").set(0.9)
                wait_for(lambda n=n: len(subs.submissions()) > n, 60, "submission", interval=0.01)
                e2e.append(subs.submissions()[-1]["at"] - t0)
                stack.gauge.labels("churn").set(0.0)
                wait_for(
                    lambda i=i: sum(r.reason_code == "resolved" for r in svc.ledger.rows()) > i,
                    60,
                    "resolved",
                    interval=0.05,
                )
                # baseline: the same kind of notification posted straight to the service
                n = len(subs.submissions())
                body = json.dumps(
                    webhook(group_key=f"direct-{i}", starts_at=f"2026-01-01T00:00:{i:02d}Z")
                ).encode()
                t0 = time.time()
                req = urllib.request.Request(
                    f"{base}/alerts", data=body, method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                urllib.request.urlopen(req, timeout=10).read()
                assert len(subs.submissions()) == n + 1
                direct.append(subs.submissions()[-1]["at"] - t0)
    med_e2e, med_direct = statistics.median(e2e), statistics.median(direct)
    print(f"episodes: {args.episodes}")
    print(
        "gauge crossing -> run submitted via Prometheus+Alertmanager (s): "
        + ", ".join(f"{x:.3f}" for x in e2e)
    )
    print(f"  median {med_e2e:.3f} s, max {max(e2e):.3f} s (goal <= 3 s)")
    print(f"baseline: webhook posted straight to /alerts -> run submitted: median {med_direct * 1000:.1f} ms")
    print(
        f"ratio e2e/baseline: {med_e2e / med_direct:.0f}x  (the rest is scrape + evaluation + notification)"
    )


if __name__ == "__main__":
    main()
