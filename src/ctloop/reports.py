"""Human-readable summaries of step outputs: Markdown and self-contained HTML (no scripts, no network).

The HTML validation report is shown by the KFP UI as an ``Output[HTML]`` artifact: one table row per
check (failing checks first) and, per feature, a reference-vs-batch histogram as inline SVG.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

REPORT_PREFIX = "CTLOOP_REPORT "  # a step announces its report files on one line: CTLOOP_REPORT {json}
_ORDER = {"error": 0, "warning": 1, "skipped": 2, "pass": 3}


def announce_report(step: str, **paths: str | None) -> str:
    """The one-line announcement of a step's report files (printed to stdout by the step)."""
    return REPORT_PREFIX + json.dumps({"step": step, **{k: v for k, v in paths.items() if v}})


def _status_line(doc: dict[str, Any]) -> str:
    return "PASSED" if doc.get("passed") else "FAILED"


def render_validation_markdown(doc: dict[str, Any]) -> str:
    """Markdown summary of a validation report (as :meth:`ValidationReport.to_dict` gives it)."""
    ref = doc.get("reference") or {}
    lines = [f"**Data validation: {_status_line(doc)}** ({doc.get('rows', 0)} rows, schema "
             f"`{doc.get('schema')}`, reference: {ref.get('note', 'none')})", ""]
    checks = [c for c in doc.get("checks", []) if c["status"] in ("error", "warning")]
    if checks:
        lines += ["| status | check | column | detail |", "|---|---|---|---|"]
        for c in sorted(checks, key=lambda c: _ORDER[c["status"]]):
            msg = c["message"].replace("|", "\\|")
            lines.append(f"| {c['status']} | {c['check']} | {c['column'] or ''} | {msg} |")
    else:
        lines.append(f"All {len(doc.get('checks', []))} checks passed.")
    if doc.get("html"):
        lines += ["", f"Full report: `{doc['html']}`"]
    return "\n".join(lines) + "\n"


def validation_markdown(report_path: str, out_path: str) -> str:
    """Write a Markdown summary of a validation report (or of its absence) and return it."""
    p = Path(report_path)
    if not p.exists():
        text = "**Validation did not produce a report** (the step failed before checking data).\n"
    else:
        text = render_validation_markdown(json.loads(p.read_text()))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(text)
    return text


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
tr.error td.status{background:#f8d7da;font-weight:bold}tr.warning td.status{background:#fff3cd}
tr.pass td.status{background:#d4edda}tr.skipped td.status{background:#eee}
.banner{padding:.6em 1em;font-size:1.2em;font-weight:bold}.banner.passed{background:#d4edda}
.banner.failed{background:#f8d7da}section.feature{display:inline-block;vertical-align:top;margin:.5em}
.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
"""


def _svg_histogram(h: dict[str, Any]) -> str:
    labels, batch, ref = h["labels"], h["batch"], h.get("reference")
    n = max(1, len(labels))
    width, height, pad = max(240, 28 * n), 140, 20
    top = max([*batch, *(ref or []), 1e-9])
    slot = (width - 2 * pad) / n
    bar = slot / (2.6 if ref is not None else 1.6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
             f'role="img" aria-label="histogram of {html.escape(h["column"])}">']
    for i, label in enumerate(labels):
        x = pad + i * slot
        series = [("#999", ref[i], "reference")] if ref is not None else []
        series.append(("#3b7dd8", batch[i], "batch"))
        for j, (color, value, name) in enumerate(series):
            bh = (height - 10) * value / top
            parts.append(f'<rect class="{name}" x="{x + j * bar:.1f}" y="{height - bh:.1f}" '
                         f'width="{bar:.1f}" '
                         f'height="{bh:.1f}" fill="{color}"><title>{html.escape(label)}: {name} '
                         f'{100 * value:.1f}%</title></rect>')
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{height + 12}" font-size="8" text-anchor="end" '
                     f'transform="rotate(-35 {x + slot / 2:.1f} {height + 12})">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_validation_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page for a validation report (as :meth:`ValidationReport.to_dict` gives it)."""
    e = html.escape
    status = _status_line(doc)
    ref = doc.get("reference") or {}
    checks = sorted(doc.get("checks", []), key=lambda c: _ORDER.get(c["status"], 9))
    counts = {s: sum(c["status"] == s for c in checks) for s in _ORDER}
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ctloop data validation: {status}</title><style>{_CSS}</style></head><body>",
        "<h1>ctloop data validation</h1>",
        f'<div class="banner {status.lower()}" id="status">{status}: {counts["error"]} error(s), '
        f'{counts["warning"]} warning(s), {counts["pass"]} passed, {counts["skipped"]} skipped</div>',
        "<dl>",
        f"<dt>batch</dt><dd>{e(str(doc.get('dataset')))} ({doc.get('rows', 0)} rows)</dd>",
        f"<dt>schema</dt><dd>{e(str(doc.get('schema')))}</dd>",
        f"<dt>reference</dt><dd id=\"reference\">{e(str(ref.get('note', 'none')))}</dd>",
        "</dl>",
        '<h2>Checks</h2><table id="checks"><thead><tr><th>status</th><th>check</th><th>column</th>'
        "<th>value</th><th>threshold</th><th>detail</th></tr></thead><tbody>",
    ]
    for c in checks:
        val = "" if c.get("value") is None else f"{c['value']:.4g}"
        thr = "" if c.get("threshold") is None else f"{c['threshold']:.4g}"
        out.append(
            f'<tr class="{e(c["status"])}" data-check="{e(c["check"])}" data-column="{e(c["column"] or "")}">'
            f'<td class="status">{e(c["status"])}</td><td>{e(c["check"])}</td><td>{e(c["column"] or "")}</td>'
            f"<td>{val}</td><td>{thr}</td><td>{e(c['message'])}</td></tr>")
    out.append("</tbody></table>")
    hists = doc.get("histograms", [])
    if hists:
        out.append('<h2>Features: reference vs batch</h2><p class="legend">'
                   '<span style="background:#999"></span>reference (champion)'
                   '<span style="background:#3b7dd8"></span>batch</p>')
        for h in hists:
            note = "" if h.get("reference") is not None else " <small>(no reference)</small>"
            out.append(f'<section class="feature" id="feature-{e(h["column"])}"><h3>{e(h["column"])} '
                       f"<small>{e(h['kind'])}</small>{note}</h3>{_svg_histogram(h)}</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
