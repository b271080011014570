"""Render a :class:`~ctloop.demo.loop.DemoResult`: the timeline table (rich), the closed-loop timing, and a
self-contained HTML report with inline SVG plots and each model version's lineage."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from ctloop.demo.record import DemoResult

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#637939"]
MARKER_COLORS = {"alert": "#d62728", "run": "#9467bd", "promotion": "#2ca02c", "swap": "#17becf",
                 "trigger": "#7f7f7f", "resolved": "#ff7f0e"}


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def timeline_table(r: DemoResult) -> Table:
    """Day, rows served, drift share, alerts, runs, versions, accuracy of the served model."""
    t = Table(title=f"closed loop timeline ({r.mode} alerting)", show_lines=False)
    for col in ("day", "rows", "drift share", "alerts", "runs", "served", "accuracy", "w/o retrain", "events"):
        t.add_column(col, overflow="fold")
    for d in r.days:
        share = f"{100 * d.drift_share:.0f}%"
        if d.drift_share >= 0.25:
            share = f"[red]{share}[/]"
        t.add_row(d.day + (" [yellow]drift[/]" if d.drifted else ""), str(d.rows), share, str(d.alerts or ""),
                  str(len(d.runs) or ""), ",".join(f"v{v}" for v in d.versions), _pct(d.accuracy),
                  _pct(d.accuracy_without_retraining), "; ".join(d.events))
    return t


def timing_table(r: DemoResult) -> Table:
    """Closed-loop latency (drift detected → new champion serving) and its parts."""
    t = Table(title="closed-loop latency")
    t.add_column("part")
    t.add_column("seconds", justify="right")
    names = [("window_fill_s", "window fill (first drifted request → drift detected)"),
             ("alert_s", f"alert ({r.mode}: detected → trigger fired)"),
             ("pipeline_s", "pipeline (trigger fired → new champion promoted)"),
             ("swap_s", "swap (promoted → server answers with it)"),
             ("closed_loop_s", "[bold]closed loop (detected → new champion serving)[/]"),
             ("onset_to_serving_s", "first drifted request → new champion serving")]
    for key, label in names:
        if key in r.timings:
            t.add_row(label, f"{r.timings[key]:.2f}")
    return t


def triggers_table(r: DemoResult) -> Table:
    """Every trigger the policy saw, with its decision and reason."""
    t = Table(title="trigger ledger")
    for col in ("#", "source", "decision", "reason", "run", "version"):
        t.add_column(col, overflow="fold")
    for row, n in collapse_duplicates(r.ledger):
        dec = row["decision"]
        ids = f"{row['id']}" + (f"-{row['id'] + n - 1}" if n > 1 else "")
        reason = row["reason"] + (f" (×{n})" if n > 1 else "")
        t.add_row(ids, row["source"], f"[green]{dec}[/]" if dec == "fired" else dec, reason,
                  row.get("run_id") or "", str(row.get("version") or ""))
    return t


def collapse_duplicates(ledger: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Ledger rows with runs of consecutive duplicates (same source and reason) folded into one."""
    out: list[tuple[dict[str, Any], int]] = []
    for row in ledger:
        if out and row["reason_code"] == "duplicate" and out[-1][0]["reason_code"] == "duplicate" \
                and out[-1][0]["source"] == row["source"] and out[-1][0]["reason"] == row["reason"]:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((row, 1))
    return out


# -- HTML -----------------------------------------------------------------------------------------------


def _svg_lines(series: dict[str, list[float | None]], labels: list[str], title: str, y_label: str,
               markers: list[tuple[float, str, str]] | None = None, y_max: float | None = None,
               threshold: float | None = None) -> str:
    """A small line chart as inline SVG: x = index (labelled), one polyline per series."""
    w, h, left, right, top, bottom = 860, 300, 60, 180, 30, 50
    n = max((len(v) for v in series.values()), default=0)
    vals = [x for v in series.values() for x in v if x is not None and not math.isnan(x)]
    ymax = y_max if y_max is not None else (max(vals + [threshold or 0.0]) * 1.1 if vals else 1.0) or 1.0
    pw, ph = w - left - right, h - top - bottom

    def px(i: float) -> float:
        return left + (pw * i / max(1, n - 1))

    def py(v: float) -> float:
        return top + ph - ph * min(v, ymax) / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>',
           f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})">{html.escape(y_label)}</text>']
    for k in range(5):
        v = ymax * k / 4
        out.append(f'<text x="{left - 6}" y="{py(v) + 4}" text-anchor="end">{v:.2f}</text>'
                   f'<line x1="{left}" y1="{py(v)}" x2="{left + pw}" y2="{py(v)}" stroke="#eee"/>')
    step = max(1, n // 12)
    for i, lab in enumerate(labels):
        if i % step == 0:
            out.append(f'<text x="{px(i)}" y="{top + ph + 16}" text-anchor="middle">{html.escape(lab)}</text>')
    if threshold is not None:
        out.append(f'<line x1="{left}" y1="{py(threshold)}" x2="{left + pw}" y2="{py(threshold)}" '
                   f'stroke="#d62728" stroke-dasharray="4 3"/>'
                   f'<text x="{left + pw - 4}" y="{py(threshold) - 4}" text-anchor="end" fill="#d62728">'
                   f'alert threshold</text>')
    for mx, kind, label in markers or []:
        c = MARKER_COLORS.get(kind, "#555")
        out.append(f'<line x1="{px(mx)}" y1="{top}" x2="{px(mx)}" y2="{top + ph}" stroke="{c}" '
                   f'stroke-dasharray="2 2"><title>{html.escape(label)}</title></line>')
    for j, (name, ys) in enumerate(series.items()):
        c = COLORS[j % len(COLORS)]
        pts = " ".join(f"{px(i):.1f},{py(x):.1f}" for i, x in enumerate(ys) if x is not None and not math.isnan(x))
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{pts}"/>')
        ly = top + 12 * j
        out.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 28}" y2="{ly}" stroke="{c}" '
                   f'stroke-width="2"/><text x="{left + pw + 32}" y="{ly + 4}">{html.escape(name)}</text>')
    kinds = sorted({k for _x, k, _l in markers or []})
    for j, kind in enumerate(kinds):
        ly = top + 12 * (len(series) + 1 + j)
        out.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 28}" y2="{ly}" '
                   f'stroke="{MARKER_COLORS.get(kind, "#555")}" stroke-dasharray="2 2"/>'
                   f'<text x="{left + pw + 32}" y="{ly + 4}">{kind}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _window_markers(r: DemoResult) -> list[tuple[float, str, str]]:
    """Markers placed at the index of the first window evaluated after them."""
    out = []
    for m in r.markers:
        idx = next((i for i, w in enumerate(r.windows) if w["t"] >= m["t"]), len(r.windows) - 1)
        out.append((float(max(0, idx)), m["kind"], m["label"]))
    return out


def _day_markers(r: DemoResult) -> list[tuple[float, str, str]]:
    out = []
    for m in r.markers:
        idx = max((i for i, d in enumerate(r.days) if d.started <= m["t"]), default=0)
        out.append((idx + 0.5 if idx < len(r.days) - 1 else float(idx), m["kind"], m["label"]))
    return out


def _lineage(v: dict[str, Any], r: DemoResult) -> str:
    trig = v.get("trigger", {})
    rows = [("registered", v.get("registered_at")), ("run", v.get("run_id")),
            ("trigger", f"{trig.get('cause')} — {trig.get('reason', '')}"),
            ("trigger id (ledger)", trig.get("trigger_id")), ("parent (champion it replaced)", v.get("parent")),
            ("data", f"{v.get('data', {}).get('first_day')} … {v.get('data', {}).get('last_day')}, "
                     f"{v.get('data', {}).get('rows')} rows, hash {str(v.get('data', {}).get('content_hash'))[:12]}"),
            ("metrics (holdout)", ", ".join(f"{k}={x:.3f}" for k, x in v.get("metrics", {}).items() if k != "rows")),
            ("metrics (recent slice)",
             ", ".join(f"{k}={x:.3f}" for k, x in v.get("recent_metrics", {}).items() if k != "rows")),
            ("config hash", str(v.get("config_hash"))[:16]), ("model files", v.get("model_uri"))]
    checks = "".join(f"<li>{'pass' if c.get('passed') else 'FAIL'} — {html.escape(str(c.get('reason')))}</li>"
                     for c in v.get("decision", {}).get("checks", []))
    parent = v.get("parent")
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>"
        + (f'<a href="#v{parent}">v{parent}</a>' if k.startswith("parent") and parent else
           f'<a href="{html.escape(str(val))}">{html.escape(str(val))}</a>' if k == "model files" else
           html.escape(str(val)))
        + "</td></tr>" for k, val in rows)
    alias = " (champion)" if v["version"] == r.champion else ""
    return (f'<h3 id="v{v["version"]}">v{v["version"]}{alias}</h3><table class="kv">{body}</table>'
            f"<p>gate checks:</p><ul>{checks}</ul>")


def _ledger_row(x: dict[str, Any], n: int) -> str:
    ids = str(x["id"]) + (f"-{x['id'] + n - 1}" if n > 1 else "")
    reason = x["reason"] + (f" (×{n})" if n > 1 else "")
    return (f"<tr><td>{ids}</td><td>{x['received_at'][11:23]}</td><td>{x['source']}</td><td>{x['decision']}</td>"
            f"<td>{html.escape(reason)}</td><td>{x.get('run_id') or ''}</td>"
            f"<td>{_vlink(x.get('version'))}</td></tr>")


def _vlink(version: Any) -> str:
    return f'<a href="#v{version}">v{version}</a>' if version else ""


def html_report(r: DemoResult) -> str:
    """The self-contained HTML report."""
    features = sorted({f for w in r.windows for f in w["psi"]})
    drift_plot = _svg_lines({f: [w["psi"].get(f) for w in r.windows] for f in features},
                            [str(i + 1) for i in range(len(r.windows))],
                            "drift score (PSI) per feature, per window", "PSI", _window_markers(r))
    share_plot = _svg_lines({"drift share": [w["drift_share"] for w in r.windows]},
                            [str(i + 1) for i in range(len(r.windows))], "share of drifted features, per window",
                            "share", _window_markers(r), y_max=1.0, threshold=0.25)
    acc_plot = _svg_lines({"served (with retraining)": [d.accuracy for d in r.days],
                           "first champion (without retraining)": [d.accuracy_without_retraining for d in r.days]},
                          [d.day[5:] for d in r.days], "accuracy on each day's labels", "accuracy",
                          _day_markers(r), y_max=1.0)
    rows = "".join(
        f"<tr{' class=drift' if d.drifted else ''}><td>{d.day}</td><td>{d.rows}</td><td>{100 * d.drift_share:.0f}%</td>"
        f"<td>{d.alerts or ''}</td><td>{'<br>'.join(html.escape(x) for x in d.runs)}</td>"
        f"<td>{', '.join(f'<a href=#v{v}>v{v}</a>' for v in d.versions)}</td><td>{_pct(d.accuracy)}</td>"
        f"<td>{_pct(d.accuracy_without_retraining)}</td><td>{'<br>'.join(html.escape(e) for e in d.events)}</td></tr>"
        for d in r.days)
    ledger = "".join(_ledger_row(x, n) for x, n in collapse_duplicates(r.ledger))
    timings = "".join(f"<tr><th>{k.removesuffix('_s').replace('_', ' ')}</th><td>{v:.2f} s</td></tr>"
                      for k, v in r.timings.items())
    comp = r.comparison
    comp_rows = ""
    for key, label in (("recent_slice", "gate's recent slice"), ("later_drifted_days", "later drifted days")):
        if key in comp:
            c = comp[key]
            comp_rows += (f"<tr><th>{label} ({c['rows']} rows)</th>"
                          f"<td>v{comp['old']}: acc {c['old']['accuracy']:.3f}, auc {c['old']['roc_auc']:.3f}</td>"
                          f"<td>v{comp['new']}: acc {c['new']['accuracy']:.3f}, "
                          f"auc {c['new']['roc_auc']:.3f}</td></tr>")
    lineage = "".join(_lineage(v, r) for v in r.versions)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ctloop demo report</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }}
tr.drift td:first-child {{ color: #b35900; font-weight: bold; }}
table.kv th {{ width: 230px; background: #f7f7f7; }}
</style></head><body>
<h1>ctloop closed loop — {html.escape(r.mode)} alerting</h1>
<p>Champion now: <a href="#v{r.champion}">v{r.champion}</a>; the model server answers with
v{r.served_version}. The project (<code>ctloop.yaml</code>, <code>registry/</code>, <code>data/</code>,
<code>state/ledger.sqlite</code>, <code>logs/</code>) is in the folder of this report.</p>
<h2>Closed-loop latency</h2><table>{timings}</table>
<h2>Challenger vs champion</h2><table>{comp_rows}</table>
<h2>Drift</h2>{drift_plot}{share_plot}
<h2>Served accuracy</h2>{acc_plot}
<h2>Timeline</h2>
<table><tr><th>day</th><th>rows</th><th>drift share</th><th>alerts</th><th>runs</th><th>served</th>
<th>accuracy</th><th>without retraining</th><th>events</th></tr>{rows}</table>
<h2>Trigger ledger</h2>
<table><tr><th>#</th><th>time (UTC)</th><th>source</th><th>decision</th><th>reason</th><th>run</th><th>version</th></tr>
{ledger}</table>
<h2>Model versions and lineage</h2>{lineage}
</body></html>
"""


def write_outputs(r: DemoResult, out: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``demo.json`` under ``out``; return their paths."""
    report = out / "report.html"
    report.write_text(html_report(r))
    data = out / "demo.json"
    data.write_text(json.dumps(r.to_dict(), indent=2, default=float))
    return report, data
