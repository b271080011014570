"""``ctloop status``: one screen on the project (exit 0 healthy, 1 not: usable as a probe)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ctloop.cli.options import ConfigOpt, JsonOpt
from ctloop.console import make_console


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _rows_table(title: str, rows: list[dict[str, Any]], cols: tuple[str, ...]) -> Table:
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*(escape(str(r.get(c)) if r.get(c) is not None else "-") for c in cols))
    return t


def _print(st: Any) -> None:
    out = make_console(highlight=False)
    c = st.champion
    if c:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in c["metrics"].items() if isinstance(v, float))
        out.print(f"champion: v{c['version']} (age {_fmt_age(c['age_seconds'])}; trained for: "
                  f"{escape(c['why'])}) {metrics}")
    else:
        out.print("champion: none")
    s, w = st.server, st.watcher
    state = "ready" if s["ready"] else "NOT READY" if s["reachable"] else "UNREACHABLE"
    serving = "" if s.get("version") is None else f", serving v{s['version']}"
    out.print(f"model server: {s['url']} {state}{serving}")
    out.print(f"watcher: {w['url']} {'up' if w['reachable'] else 'UNREACHABLE'}"
              f"{'' if w.get('version') is None else ', watching v' + str(w['version'])}")
    if st.drift:
        drifted = ", ".join(st.drift["drifted_features"]) or "none"
        out.print(f"drift share: {float(st.drift['drift_share'] or 0):.2f} (alert at {st.drift['threshold']:g}); "
                  f"drifted: {escape(drifted)}")
    if st.policy:
        p = st.policy
        out.print(f"policy: active run {p.get('active_run') or '-'}; cooldown until {p.get('cooldown_until') or '-'}; "
                  f"budget left {p.get('budget_left', '-')}/{p.get('daily_budget')}")
    out.print(f"open alerts: {len(st.open_alerts)}")
    if st.open_alerts:
        out.print(_rows_table("open alerts", st.open_alerts, ("received_at", "source", "reason")))
    if st.triggers:
        out.print(_rows_table("last triggers", st.triggers,
                              ("id", "received_at", "source", "decision", "reason_code", "reason")))
    if st.runs:
        out.print(_rows_table("last runs", st.runs, ("run_id", "source", "run_status", "version", "outcome_at")))
    for p in st.problems:
        out.print(f"[red]problem:[/] {escape(p)}")
    out.print(f"status: {'healthy' if st.healthy else 'UNHEALTHY'}")


def status(config: ConfigOpt, json_out: JsonOpt = False,
           timeout: Annotated[float, typer.Option(help="Seconds to wait for each endpoint.")] = 2.0) -> None:
    """Where the project stands: champion, model server, watcher, drift, alerts, triggers and runs."""
    from ctloop.config import load_config
    from ctloop.status import collect_status

    st = collect_status(load_config(config), timeout=timeout)
    if json_out:
        typer.echo(json.dumps(st.to_dict(), default=str, sort_keys=True))
    else:
        _print(st)
    raise typer.Exit(0 if st.healthy else 1)


def register(app: typer.Typer) -> None:
    """Add ``status`` to the ``ctloop`` app."""
    app.command("status")(status)
