"""Human-readable summaries of step outputs."""

from __future__ import annotations

import json
from pathlib import Path


def validation_markdown(report_path: str, out_path: str) -> str:
    """Write a Markdown summary of a validation report (or of its absence) and return it."""
    p = Path(report_path)
    if not p.exists():
        text = "**Validation did not produce a report** (the step failed before checking data).\n"
    else:
        r = json.loads(p.read_text())
        status = "PASSED" if r.get("passed") else "FAILED"
        lines = [f"**Data validation: {status}** ({r.get('rows', 0)} rows, schema `{r.get('schema')}`)", ""]
        lines += [f"- error: {e}" for e in r.get("errors", [])]
        lines += [f"- warning: {w}" for w in r.get("warnings", [])]
        text = "\n".join(lines) + "\n"
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(text)
    return text
