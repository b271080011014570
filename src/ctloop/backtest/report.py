"""``backtest.html``: accuracy over time per policy (retrain markers), cost vs accuracy, the table.

Plain HTML with inline SVG: no script, no external asset, opens anywhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
W, H, PAD = 900, 360, 50


def _scale(lo: float, hi: float, a: float, b: float):  # type: ignore[no-untyped-def]
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _bounds(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.01
    return lo - pad, hi + pad


def accuracy_svg(doc: dict[str, Any]) -> str:
    """Daily accuracy of every policy on one plot; ● promoted retrain, ✕ rejected candidate."""
    runs = doc["runs"]
    days = [d["day"] for d in runs[0]["days"]] if runs else []
    accs = [d["accuracy"] for r in runs for d in r["days"] if d["accuracy"] is not None]
    if not days or not accs:
        return "<p>no days replayed</p>"
    lo, hi = _bounds(accs)
    x = _scale(0, max(len(days) - 1, 1), PAD, W - 10)
    y = _scale(lo, hi, H - PAD, 10)
    idx = {d: i for i, d in enumerate(days)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
             'aria-label="daily accuracy per policy">',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#999"/>',
             f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{H - PAD}" stroke="#999"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<text x="4" y="{y(v) + 4:.1f}" font-size="11">{v:.3f}</text>')
    for i in range(0, len(days), max(1, len(days) // 8)):
        parts.append(f'<text x="{x(i) - 30:.1f}" y="{H - PAD + 18}" font-size="11">{days[i]}</text>')
    floor = doc.get("gate_floor", {}).get("accuracy")
    if floor is not None and lo <= floor <= hi:
        parts.append(f'<line x1="{PAD}" y1="{y(floor):.1f}" x2="{W - 10}" y2="{y(floor):.1f}" stroke="#aaa" '
                     f'stroke-dasharray="4 3"/><text x="{W - 120}" y="{y(floor) - 4:.1f}" font-size="11">'
                     f'gate floor {floor:g}</text>')
    for n, r in enumerate(runs):
        c = COLORS[n % len(COLORS)]
        pts = " ".join(f"{x(idx[d['day']]):.1f},{y(d['accuracy']):.1f}" for d in r["days"]
                       if d["accuracy"] is not None)
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{pts}"><title>'
                     f'{escape(r["policy"])}</title></polyline>')
        acc_by_day = {d["day"]: d["accuracy"] for d in r["days"]}
        for rt in r["retrains"]:
            if rt["day"] not in idx or acc_by_day.get(rt["day"]) is None:
                continue
            px, py = x(idx[rt["day"]]), y(acc_by_day[rt["day"]])
            what = f"promoted v{rt['version']}" if rt["promoted"] else f"rejected: {rt['rejected']}"
            tip = escape(f"{r['policy']}: {rt['day']} {rt['cause']} {what}")
            if rt["promoted"]:
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{c}"><title>{tip}</title></circle>')
            else:
                parts.append(f'<text x="{px - 4:.1f}" y="{py + 4:.1f}" fill="{c}" font-size="12">✕<title>{tip}'
                             '</title></text>')
        parts.append(f'<rect x="{PAD + 10 + 150 * (n % 5)}" y="{14 + 14 * (n // 5)}" width="10" height="10" '
                     f'fill="{c}"/><text x="{PAD + 24 + 150 * (n % 5)}" y="{23 + 14 * (n // 5)}" '
                     f'font-size="11">{escape(r["policy"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def cost_svg(doc: dict[str, Any]) -> str:
    """Cost (training seconds) against mean accuracy, one point per policy."""
    pts = [s for s in doc["summary"] if s["mean_accuracy"] is not None]
    if not pts:
        return "<p>no policy scored</p>"
    w, h = 520, 320
    xs = [s["training_seconds"] for s in pts]
    lo, hi = _bounds([s["mean_accuracy"] for s in pts])
    x = _scale(0, max(max(xs), 1e-9) * 1.05, PAD, w - 110)
    y = _scale(lo, hi, h - PAD, 24)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             'aria-label="cost against accuracy">',
             f'<line x1="{PAD}" y1="{h - PAD}" x2="{w - 20}" y2="{h - PAD}" stroke="#999"/>',
             f'<line x1="{PAD}" y1="14" x2="{PAD}" y2="{h - PAD}" stroke="#999"/>',
             f'<text x="{w / 2 - 60}" y="{h - 12}" font-size="12">training seconds (cost)</text>',
             '<text x="4" y="12" font-size="12">mean accuracy (y) against training seconds (x)</text>',
             f'<text x="4" y="{y(lo) + 4:.1f}" font-size="11">{lo:.3f}</text>',
             f'<text x="4" y="{y(hi) + 4:.1f}" font-size="11">{hi:.3f}</text>']
    for n, s in enumerate(doc["summary"]):
        if s["mean_accuracy"] is None:
            continue
        c = COLORS[n % len(COLORS)]
        px, py = x(s["training_seconds"]), y(s["mean_accuracy"])
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{c}"><title>{escape(s["policy"])}: '
                     f'{s["retrains"]} retrains, {s["training_seconds"]:.1f}s</title></circle>'
                     f'<text x="{px + 8:.1f}" y="{py + 4:.1f}" font-size="11">{escape(s["policy"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else escape(str(v))


COLUMNS = (("policy", "policy"), ("mean_accuracy", "mean acc"), ("worst_accuracy", "worst acc"),
           ("mean_roc_auc", "mean AUC"), ("worst_roc_auc", "worst AUC"), ("days_below_floor", "days < floor"),
           ("retrains", "retrains"), ("rejected", "rejected"), ("training_seconds", "train s"),
           ("gpu_hours", "GPU-h"), ("gpu_cost", "cost"))


def table_html(doc: dict[str, Any]) -> str:
    """The results table, plus the retrain dates with their causes."""
    rec = (doc.get("recommendation") or {}).get("policy")
    head = "".join(f"<th>{escape(t)}</th>" for _, t in COLUMNS)
    rows = []
    for s in doc["summary"]:
        mark = ' class="rec"' if s["policy"] == rec else ""
        cells = "".join(f"<td>{_fmt(s[k])}</td>" for k, _ in COLUMNS)
        rows.append(f"<tr{mark}>{cells}</tr>")
    dates = "".join(
        f"<li><b>{escape(s['policy'])}</b>: " + (", ".join(
            f"{r['day']} ({escape(r['cause'])}{'' if r['promoted'] else ', rejected'})" for r in s["retrain_dates"])
            or "none") + "</li>" for s in doc["summary"])
    return f"<table><tr>{head}</tr>{''.join(rows)}</table><h3>Retrain dates</h3><ul>{dates}</ul>"


def render_html(doc: dict[str, Any]) -> str:
    """The whole report page."""
    rec = doc.get("recommendation")
    rec_html = f"<p class=rec-line><b>Recommended:</b> {escape(rec['policy'])} — {escape(rec['why'])}</p>" \
        if rec else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ctloop backtest</title><style>"
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "tr.rec{background:#e8f5e9}</style></head><body>"
        f"<h1>ctloop backtest: {escape(doc['model'])}</h1>"
        f"<p>{escape(doc['start'])} → {escape(doc['end'])}, label delay {doc['label_delay_days']} d, "
        f"stream {escape(doc['stream'])}</p>{rec_html}"
        "<h2>Daily accuracy (● promoted retrain, ✕ rejected candidate)</h2>" + accuracy_svg(doc) +
        "<h2>Cost vs accuracy</h2>" + cost_svg(doc) + "<h2>Results</h2>" + table_html(doc) + "</body></html>")
