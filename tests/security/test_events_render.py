"""The events credential on a cluster: with ``drift.events_token_file`` set, the watcher Deployment and the
ServingRuntime mount the ``drift.events_token_secret`` Secret where the shared config expects it."""

from __future__ import annotations

from typing import Any

import pytest

from ctloop.config import parse_config
from ctloop.manifests.base import deployment, network_policy
from ctloop.serving.isvc import build_servingruntime

pytestmark = [pytest.mark.security, pytest.mark.unit]
TOKEN_FILE = "/var/run/secrets/ctloop-events/token"


def _cfg(**drift: Any) -> Any:
    return parse_config({"name": "churn", "data": {"source": "s3://b/data"}, "drift": drift})


def test_watcher_and_runtime_mount_the_events_token() -> None:
    cfg = _cfg(events_token_file=TOKEN_FILE, events_token_secret="churn-events")
    pod = deployment(cfg)["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert mounts["events-token"] == {"name": "events-token", "mountPath": "/var/run/secrets/ctloop-events",
                                      "readOnly": True}
    assert vols["events-token"]["secret"]["secretName"] == "churn-events"
    rt = build_servingruntime(cfg)
    c = rt.spec.containers[0]
    assert [m.mount_path for m in c.volume_mounts if m.name == "events-token"] == ["/var/run/secrets/ctloop-events"]
    assert [v.secret.secret_name for v in rt.spec.volumes if v.name == "events-token"] == ["churn-events"]


def test_without_events_token_nothing_is_mounted_and_the_policy_stays_tight() -> None:
    cfg = _cfg()
    pod = deployment(cfg)["spec"]["template"]["spec"]
    assert "events-token" not in {v["name"] for v in pod["volumes"]}
    assert "events-token" not in {v.name for v in build_servingruntime(cfg).spec.volumes}
    policy = network_policy(cfg)["spec"]
    assert policy["policyTypes"] == ["Ingress"] and len(policy["ingress"]) == 1
    sources = policy["ingress"][0]["from"]
    assert all("podSelector" in s for s in sources)  # no open namespace- or IP-wide sources
