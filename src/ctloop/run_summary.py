"""Machine-readable run results: the gate object of ``ctloop run --json`` and ``registry show --json``,
and the one-line headline facts that stay grep-able in CI logs."""

from __future__ import annotations

from typing import Any

RUN_RESULT_FORMAT = "ctloop-run-result/v1"


def gate_summary(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's verdict: passed, every check (value, threshold, pass/fail, reason) and the champion
    compared against (``None`` when there was none). ``None`` when no decision was made."""
    if not decision:
        return None
    champion = decision.get("champion") or None
    return {
        "passed": bool(decision.get("passed")),
        "checks": [
            {"name": c.get("name"), "value": c.get("value"), "threshold": c.get("threshold"),
             "passed": bool(c.get("passed")), "reason": c.get("reason")}
            for c in decision.get("checks", [])
        ],
        "notes": list(decision.get("notes", [])),
        "champion_compared": champion.get("version") if isinstance(champion, dict) else None,
        "champion_metrics": champion.get("metrics", {}) if isinstance(champion, dict) else {},
    }


def gate_line(decision: dict[str, Any] | None) -> str:
    """``gate: passed (7/7 checks; compared with champion v1)`` or ``gate: rejected (failed: min_roc_auc)``."""
    g = gate_summary(decision)
    if g is None:
        return "gate: not reached"
    checks = g["checks"]
    against = (f"compared with champion v{g['champion_compared']}" if g["champion_compared"] is not None
               else "no champion to compare")
    if g["passed"]:
        return f"gate: passed ({len(checks)}/{len(checks)} checks; {against})"
    failed = [str(c["name"]) for c in checks if not c["passed"]]
    return f"gate: rejected (failed: {', '.join(failed)}; {len(checks) - len(failed)}/{len(checks)} passed; {against})"


def closed_loop_line(timings: dict[str, float]) -> str | None:
    """``closed loop: 14.75 s (alert 2.64 s + pipeline 11.99 s + swap 0.11 s)``, or ``None`` when the loop
    did not close."""
    if "closed_loop_s" not in timings:
        return None
    parts = [f"{name} {timings[key]:.2f} s" for key, name in
             (("alert_s", "alert"), ("pipeline_s", "pipeline"), ("swap_s", "swap")) if key in timings]
    return f"closed loop: {timings['closed_loop_s']:.2f} s ({' + '.join(parts)})"


def run_result_json(result: Any) -> dict[str, Any]:
    """The documented JSON of ``ctloop run --json`` (schema: docs/cli.md)."""
    return {
        "format": RUN_RESULT_FORMAT,
        "run_id": result.run_id,
        "status": result.status,
        "reason": result.reason,
        "promoted": result.promoted,
        "version": result.version,
        "champion": result.champion,
        "metrics": result.metrics,
        "gate": gate_summary(result.decision),
        "paths": {
            "decision_record": result.decision_path,
            "model_folder": result.model_uri,
            "log": result.log_path,
            "reports": result.reports,
        },
        "error": result.error,
        "wall_seconds": result.wall_seconds,
    }
