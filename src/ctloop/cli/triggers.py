"""``ctloop trigger`` (post a manual trigger) and ``ctloop triggers`` (show the ledger)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ctloop.cli.options import ConfigOpt
from ctloop.console import make_console
from ctloop.errors import TriggerError


def trigger(
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="Why: recorded in the ledger and the model's lineage.")],
    source: Annotated[str, typer.Option(help="manual, schedule or volume.")] = "manual",
    key: Annotated[
        str | None, typer.Option(help="Idempotency key (default: reason + current minute).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Watcher base URL (default: triggers.endpoint).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Post a trigger to the watcher's POST /trigger; it goes through the trigger policy."""
    from ctloop.config import load_config
    from ctloop.triggers.service import read_token

    cfg = load_config(config)
    token = read_token(cfg.triggers.token_file)
    base = (url or cfg.triggers.endpoint).rstrip("/")
    body = {"source": source, "reason": reason, **({"key": key} if key else {})}
    req = urllib.request.Request(
        f"{base}/trigger",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise TriggerError(f"{base}/trigger answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TriggerError(
            f"{base}/trigger: cannot reach the watcher ({exc}); is it running? "
            "(set triggers.endpoint or pass --url)"
        ) from exc
    if json_out:
        typer.echo(json.dumps(doc))
        return
    fired = doc.get("decision") == "fired"
    make_console().print(
        f"[{'green' if fired else 'yellow'}]{escape(str(doc.get('decision')))}[/] trigger "
        f"#{escape(str(doc.get('trigger_id')))}: {escape(str(doc.get('reason')))}"
        + (f" → run {escape(str(doc['run_id']))}" if doc.get("run_id") else ""),
        soft_wrap=True,
        highlight=False,
    )


def triggers(
    config: ConfigOpt,
    limit: Annotated[int, typer.Option(min=1, help="Newest N rows.")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Show the trigger ledger: every trigger, fired or suppressed, with its reason and run outcome."""
    from ctloop.config import load_config
    from ctloop.triggers.ledger import Ledger

    cfg = load_config(config)
    path = Path(cfg.triggers.ledger)
    if not path.exists():
        raise TriggerError(
            f"triggers.ledger {path}: no ledger yet (the watcher creates it on its first trigger)"
        )
    ledger = Ledger(path)
    try:
        rows = ledger.rows(limit=limit)
        counts = ledger.counts()
    finally:
        ledger.close()
    if json_out:
        typer.echo(
            json.dumps({"ledger": str(path), "counts": counts, "triggers": [r.to_dict() for r in rows]})
        )
        return
    t = Table(title=escape(f"trigger ledger {path}"))
    for col in ("#", "received", "source", "decision", "reason", "run", "orchestrator run", "status", "version"):
        t.add_column(col)
    for r in rows:
        style = "green" if r.decision == "fired" else "yellow"
        t.add_row(
            str(r.id),
            escape(r.received_at[:19]),
            escape(r.source),
            f"[{style}]{escape(r.decision)}[/]",
            escape(r.reason),
            escape(r.run_id or "-"),
            escape(r.external_id or "-"),
            escape(r.run_status or "-"),
            str(r.version) if r.version is not None else "-",
        )
    make_console().print(t)


def register(app: typer.Typer) -> None:
    """Add the commands to the main ``ctloop`` app."""
    app.command("trigger")(trigger)
    app.command("triggers")(triggers)
