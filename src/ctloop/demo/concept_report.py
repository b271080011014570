"""Render the model-quality episode (:class:`~ctloop.demo.concept.ConceptResult`): the timeline with
realized and estimated accuracy, and an HTML page with the realized-vs-estimated plot and the markers."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from ctloop.demo.concept import ConceptResult
from ctloop.demo.report import _svg_lines


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{100 * v:.1f}%"


def concept_timeline_table(r: ConceptResult) -> Table:
    """Day, served versions, labels joined, realized and estimated accuracy, drift share, events."""
    t = Table(title=f"episode 2: pure concept drift, delayed labels ({r.mode} alerting)")
    for col in ("day", "served", "labels for", "matched", "realized acc", "estimated acc", "drift share", "events"):
        t.add_column(col, overflow="fold")
    for d in r.days:
        t.add_row(d["day"] + (" [yellow]concept[/]" if d["concept"] else ""),
                  ",".join(f"v{v}" for v in d.get("versions", [])), d.get("labels_for", ""),
                  str(d.get("labels", {}).get("matched", "")), _pct(d.get("realized_accuracy")),
                  _pct(d.get("estimated_accuracy")), f"{100 * d['drift_share']:.0f}%", "; ".join(d.get("events", [])))
    return t


def _markers(r: ConceptResult) -> list[tuple[float, str, str]]:
    out = []
    for i, d in enumerate(r.days):
        for e in d.get("events", []):
            kind = "alert" if e.startswith("alert") else "promotion" if e.startswith("promoted") else "run"
            out.append((float(i), kind, e))
    return out


def concept_html(r: ConceptResult) -> str:
    """The episode's HTML section (self-contained)."""
    labels = [d["day"][5:] for d in r.days]
    plot = _svg_lines({"realized accuracy (labels)": [d.get("realized_accuracy") for d in r.days],
                       "estimated accuracy (no labels)": [d.get("estimated_accuracy") for d in r.days]},
                      labels, "realized vs estimated accuracy of the serving version", "accuracy", _markers(r),
                      y_max=1.0)
    rows = "".join(
        f"<tr><td>{d['day']}{' (concept)' if d['concept'] else ''}</td><td>{d.get('labels_for', '')}</td>"
        f"<td>{_pct(d.get('realized_accuracy'))}</td><td>{_pct(d.get('estimated_accuracy'))}</td>"
        f"<td>{100 * d['drift_share']:.0f}%</td><td>{html.escape('; '.join(d.get('events', [])))}</td></tr>"
        for d in r.days)
    timings = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.2f} s</td></tr>" for k, v in r.timings.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ctloop demo — episode 2</title>
<style>body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; }}</style>
</head><body>
<h1>Episode 2: pure concept drift, delayed labels ({html.escape(r.mode)} alerting)</h1>
<p>The inputs never drift (max drift share {100 * r.max_drift_share:.0f}%); labels arrive a day late through
<code>POST /labels</code>. The estimate (calibrated probabilities, no labels) cannot see concept drift; the
realized accuracy does, and <code>CtloopPerformanceDrop</code> retrains. Champion now: v{r.champion}
(served: v{r.served_version}).</p>
<h2>Closed-loop latency (from the labels that crossed the threshold)</h2><table>{timings}</table>
{plot}
<h2>Timeline</h2><table><tr><th>day</th><th>labels for</th><th>realized</th><th>estimated</th>
<th>drift share</th><th>events</th></tr>{rows}</table>
</body></html>
"""


def write_concept_outputs(r: ConceptResult, out: Path) -> tuple[Path, Path]:
    """Write ``report-quality.html`` and ``quality.json`` under ``out``."""
    report, data = out / "report-quality.html", out / "quality.json"
    report.write_text(concept_html(r))
    doc: dict[str, Any] = asdict(r)
    data.write_text(json.dumps(doc, indent=2, default=str))
    return report, data
