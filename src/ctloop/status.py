"""``ctloop status``: one screen on where a project stands — champion, services, drift, alerts, triggers
and runs — gathered from the registry and the configured endpoints; healthy or not, as a probe."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ctloop.config import ProjectConfig
from ctloop.errors import CtloopError
from ctloop.lineage import describe_trigger
from ctloop.registry import Registry

ALERT_SOURCES = ("alert", "performance")


@dataclass
class Status:
    """Everything ``ctloop status`` shows; ``problems`` lists why it is not healthy."""

    model: str
    champion: dict[str, Any] | None = None
    server: dict[str, Any] = field(default_factory=dict)
    watcher: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] | None = None
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when everything configured answered and a champion exists."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**self.__dict__, "healthy": self.healthy}


def _age(stamp: str | None, now: dt.datetime) -> float | None:
    if not stamp:
        return None
    try:
        t = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return round((now - t).total_seconds(), 1)


def champion_info(cfg: ProjectConfig, now: dt.datetime) -> dict[str, Any] | None:
    """The champion's version, age, metrics and why it was trained (``None`` without a champion)."""
    reg = Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)
    version = reg.alias("champion")
    if version is None:
        return None
    meta = reg.get(version).metadata
    return {"version": version, "registered_at": meta.get("registered_at"),
            "age_seconds": _age(meta.get("registered_at"), now),
            "metrics": meta.get("metrics", {}), "trigger": meta.get("trigger"),
            "why": describe_trigger(meta.get("trigger")), "run_id": meta.get("run_id")}


def _token(cfg: ProjectConfig) -> str | None:
    path = Path(cfg.triggers.token_file)
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def server_info(client: httpx.Client, cfg: ProjectConfig) -> dict[str, Any]:
    """Whether the model server answers at ``serving.host:port`` and which version it serves."""
    base = f"http://{cfg.serving.host}:{cfg.serving.port}"
    doc: dict[str, Any] = {"url": base, "reachable": False, "ready": False, "version": None}
    try:
        ready = client.get(f"{base}/v2/models/{cfg.name}/ready")
        doc.update(reachable=True, ready=ready.status_code == 200)
        metrics = client.get(f"{base}/metrics")
        for fam in text_string_to_metric_families(metrics.text):
            if fam.name == "ctloop_serving_model_version":
                values = [int(s.value) for s in fam.samples if s.value]
                doc["version"] = max(values) if values else None
    except httpx.HTTPError as exc:
        doc["error"] = f"{type(exc).__name__}: {exc}"
    return doc


def _get_json(client: httpx.Client, url: str, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.get(url, headers=headers)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def open_alerts(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """``model``'s alert episodes whose newest ledger row is not a resolution (rows newest first, as the
    API sends them)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):
        if row.get("source") in ALERT_SOURCES and row.get("model") == model:
            latest[str(row.get("idempotency_key"))] = row
    return [r for r in latest.values() if r.get("reason_code") != "resolved"]


def watcher_info(client: httpx.Client, cfg: ProjectConfig, st: Status) -> None:
    """Fill the watcher, drift, alert, trigger and run parts of ``st`` from the watcher's endpoints."""
    base = cfg.triggers.endpoint.rstrip("/")
    st.watcher = {"url": base, "reachable": False, "version": None}
    token = _token(cfg)
    try:
        w = _get_json(client, f"{base}/status", token)
        st.watcher.update(reachable=True, version=w.get("version"), state=w.get("state"))
        st.drift = {"drift_share": w.get("drift_share"), "drifted_features": w.get("drifted_features", []),
                    "threshold": cfg.drift.drift_share_alert}
        t = _get_json(client, f"{base}/triggers/status", token)
    except (httpx.HTTPError, ValueError) as exc:
        st.watcher["error"] = f"{type(exc).__name__}: {exc}"
        return
    rows: list[dict[str, Any]] = [r for r in t.get("triggers", []) if r.get("model") == cfg.name]
    st.policy = {k: t.get(k) for k in ("active_run", "active_status", "cooldown_until", "budget_used_today",
                                       "daily_budget")}
    if isinstance(st.policy.get("daily_budget"), int) and isinstance(st.policy.get("budget_used_today"), int):
        st.policy["budget_left"] = max(0, st.policy["daily_budget"] - st.policy["budget_used_today"])
    st.open_alerts = open_alerts(rows, cfg.name)
    st.triggers = rows[:5]
    st.runs = [r for r in rows if r.get("run_id")][:5]


def collect_status(cfg: ProjectConfig, timeout: float = 2.0, now: dt.datetime | None = None) -> Status:
    """Gather the status of ``cfg``'s project; each unreachable or unhealthy part adds a problem."""
    now = now or dt.datetime.now(dt.UTC)
    st = Status(model=cfg.name)
    try:
        st.champion = champion_info(cfg, now)
    except CtloopError as exc:
        st.problems.append(f"registry: {exc}")
    if st.champion is None and not st.problems:
        st.problems.append(f"registry {cfg.registry.uri}: no champion yet (run `ctloop run`)")
    with httpx.Client(timeout=timeout) as client:
        st.server = server_info(client, cfg)
        watcher_info(client, cfg, st)
    if not st.server["reachable"]:
        st.problems.append(f"model server {st.server['url']}: not reachable")
    elif not st.server["ready"]:
        st.problems.append(f"model server {st.server['url']}: not ready")
    if not st.watcher["reachable"]:
        st.problems.append(f"watcher {st.watcher['url']}: not reachable")
    champ = st.champion["version"] if st.champion else None
    if champ is not None and st.server.get("version") not in (None, champ):
        st.problems.append(f"model server serves v{st.server['version']}, champion is v{champ}")
    return st
