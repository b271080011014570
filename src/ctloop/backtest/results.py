"""Per-policy results of a backtest (quality and cost) and the recommended policy."""

from __future__ import annotations

import math
from typing import Any

from ctloop.config import ProjectConfig


def _vals(days: list[dict[str, Any]], key: str) -> list[float]:
    return [float(d[key]) for d in days if d.get(key) is not None and math.isfinite(float(d[key]))]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarise_policy(run: dict[str, Any], cfg: ProjectConfig, gpu_hour_cost: float) -> dict[str, Any]:
    """Quality (mean/worst daily accuracy and AUC, days below the gate's floor) and cost (retrains,
    rejected candidates, training seconds, GPU-hours from ``training.accelerator_limit``, money)."""
    days = run["days"]
    acc, auc = _vals(days, "accuracy"), _vals(days, "roc_auc")
    floor = cfg.gate.min_metric
    below = sum(1 for d in days
                if (floor.accuracy is not None and d["accuracy"] is not None and d["accuracy"] < floor.accuracy)
                or (floor.roc_auc is not None and d["roc_auc"] is not None and d["roc_auc"] < floor.roc_auc))
    retrains = run["retrains"]
    seconds = sum(float(r["seconds"]) for r in retrains)
    gpu_hours = cfg.training.accelerator_limit * seconds / 3600.0
    return {
        "policy": run["policy"],
        "kind": run["kind"],
        "days": len(days),
        "mean_accuracy": _mean(acc),
        "worst_accuracy": min(acc) if acc else None,
        "mean_roc_auc": _mean(auc),
        "worst_roc_auc": min(auc) if auc else None,
        "days_below_floor": below,
        "retrains": len(retrains),
        "promoted": sum(1 for r in retrains if r["promoted"]),
        "rejected": sum(1 for r in retrains if not r["promoted"]),
        "training_seconds": round(seconds, 3),
        "gpu_hours": gpu_hours,
        "gpu_cost": gpu_hours * gpu_hour_cost,
        "suppressed": dict(run["suppressed"]),
        "retrain_dates": [{"day": r["day"], "cause": r["cause"], "promoted": r["promoted"],
                           "rejected": r["rejected"]} for r in retrains],
        "replay_seconds": run["seconds"],
    }


def recommend(summaries: list[dict[str, Any]], tolerance: float) -> dict[str, Any] | None:
    """The cheapest policy (fewest retrains, then least training time) whose mean accuracy is within
    ``tolerance`` (absolute) of the best mean accuracy."""
    scored = [s for s in summaries if s["mean_accuracy"] is not None]
    if not scored:
        return None
    best = max(s["mean_accuracy"] for s in scored)
    ok = [s for s in scored if s["mean_accuracy"] >= best - tolerance]
    pick = min(ok, key=lambda s: (s["retrains"], s["training_seconds"], -s["mean_accuracy"]))
    return {"policy": pick["policy"], "tolerance": tolerance, "best_mean_accuracy": best,
            "mean_accuracy": pick["mean_accuracy"], "retrains": pick["retrains"],
            "why": (f"cheapest policy ({pick['retrains']} retrains) with mean accuracy "
                    f"{pick['mean_accuracy']:.4f} within {tolerance:g} of the best ({best:.4f})")}


def build_results(cfg: ProjectConfig, raw: dict[str, Any], meta: dict[str, Any], gpu_hour_cost: float,
                  tolerance: float) -> dict[str, Any]:
    """The whole ``backtest.json`` document."""
    summaries = [summarise_policy(r, cfg, gpu_hour_cost) for r in raw["runs"]]
    return {"format": "ctloop.backtest/v1", **meta, "champion": raw["champion"],
            "gate_floor": cfg.gate.min_metric.model_dump(exclude_none=True),
            "accelerator_limit": cfg.training.accelerator_limit, "gpu_hour_cost": gpu_hour_cost,
            "summary": summaries, "recommendation": recommend(summaries, tolerance), "runs": raw["runs"]}
