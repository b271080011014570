"""Headline lines and the gate object, on hand-written decisions; console width when piped."""

from __future__ import annotations

import io

import pytest

from ctloop.console import PIPED_WIDTH, piped_width
from ctloop.run_summary import closed_loop_line, gate_line, gate_summary

pytestmark = pytest.mark.unit

DECISION = {
    "passed": False,
    "checks": [
        {"name": "min_roc_auc", "value": 0.81, "threshold": 0.9, "passed": False, "reason": "0.810 < 0.900"},
        {"name": "beat_champion", "value": 0.01, "threshold": 0.0, "passed": True, "reason": "+0.010"},
    ],
    "champion": {"version": 3, "metrics": {"roc_auc": 0.8}},
}


def test_gate_summary_and_line() -> None:
    g = gate_summary(DECISION)
    assert g is not None and g["passed"] is False and g["champion_compared"] == 3
    assert [c["name"] for c in g["checks"] if not c["passed"]] == ["min_roc_auc"]
    assert gate_line(DECISION) == ("gate: rejected (failed: min_roc_auc; 1/2 passed; "
                                   "compared with champion v3)")
    ok = {**DECISION, "passed": True, "champion": None,
          "checks": [{**c, "passed": True} for c in DECISION["checks"]]}
    assert gate_line(ok) == "gate: passed (2/2 checks; no champion to compare)"
    assert gate_summary(None) is None and gate_line(None) == "gate: not reached"


def test_closed_loop_line() -> None:
    t = {"closed_loop_s": 14.754, "alert_s": 2.641, "pipeline_s": 11.99, "swap_s": 0.111, "window_fill_s": 3.0}
    assert closed_loop_line(t) == "closed loop: 14.75 s (alert 2.64 s + pipeline 11.99 s + swap 0.11 s)"
    assert closed_loop_line({"alert_s": 1.0}) is None


def test_piped_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert piped_width(io.StringIO()) == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "132")
    assert piped_width(io.StringIO()) == 132

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert piped_width(Tty()) is None
