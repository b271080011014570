"""``ctloop trigger`` (post a manual trigger), ``ctloop cancel`` (cancel a fired trigger's run) and
``ctloop triggers`` (show the ledger)."""

from __future__ import annotations

import getpass
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ctloop.cli.options import ConfigOpt
from ctloop.console import make_console
from ctloop.errors import TriggerError

if TYPE_CHECKING:
    from ctloop.config import ProjectConfig

UrlOpt = Annotated[str | None, typer.Option(help="Watcher base URL (default: triggers.endpoint).")]


def _post(cfg: ProjectConfig, url: str | None, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to the watcher with the trigger token; its JSON answer, or a TriggerError that
    carries the watcher's message (4xx/5xx) or says it cannot be reached."""
    from ctloop.triggers.service import read_token

    token = read_token(cfg.triggers.token_file)
    where = f"{(url or cfg.triggers.endpoint).rstrip('/')}{path}"
    req = urllib.request.Request(
        where,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        try:
            detail = str(json.loads(detail).get("error") or detail)
        except (ValueError, AttributeError):
            pass
        raise TriggerError(f"{where} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TriggerError(
            f"{where}: cannot reach the watcher ({exc}); is it running? (set triggers.endpoint or pass --url)"
        ) from exc


def trigger(
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="Why: recorded in the ledger and the model's lineage.")],
    source: Annotated[str, typer.Option(help="manual, schedule or volume.")] = "manual",
    key: Annotated[
        str | None, typer.Option(help="Idempotency key (default: reason + current minute).")
    ] = None,
    url: UrlOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Post a trigger to the watcher's POST /trigger; it goes through the trigger policy."""
    from ctloop.config import load_config

    cfg = load_config(config)
    body = {"source": source, "reason": reason, **({"key": key} if key else {})}
    doc = _post(cfg, url, "/trigger", body)
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


def _who() -> str:
    """``user@host`` of whoever runs the command, for the ledger."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def cancel(
    config: ConfigOpt,
    trigger_id: Annotated[int, typer.Argument(min=1, help="The trigger's ledger id (# in `ctloop triggers`).")],
    reason: Annotated[str | None, typer.Option(help="Why: recorded on the ledger row with who canceled.")] = None,
    url: UrlOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the updated ledger row as JSON.")] = False,
) -> None:
    """Cancel a fired trigger's run through the watcher's POST /triggers/{id}/cancel.

    A run still pending (or whose submission failed) is marked canceled and never submitted; a running
    one is stopped on its orchestrator. Exits 1 with the watcher's message when it refuses (unknown id,
    a suppressed trigger, a run that already ended).
    """
    from ctloop.config import load_config

    cfg = load_config(config)
    by = f"ctloop cancel by {_who()}"
    doc = _post(cfg, url, f"/triggers/{trigger_id}/cancel", {"reason": f"{reason} ({by})" if reason else by})
    if json_out:
        typer.echo(json.dumps(doc))
        return
    ext = doc.get("external_id")
    make_console().print(
        f"[green]{escape(str(doc.get('run_status')))}[/] trigger #{escape(str(doc.get('id')))} → run "
        f"{escape(str(doc.get('run_id')))}"
        + (f" ({escape(str(doc.get('submitter')))} run {escape(str(ext))})" if ext else ""),
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
            escape(_status_cell(r.run_status, r.detail)),
            str(r.version) if r.version is not None else "-",
        )
    make_console().print(t)


def _status_cell(status: str | None, detail: dict[str, Any]) -> str:
    """The run status; a canceled run's also says who canceled it and why."""
    why = (detail.get("cancel") or {}).get("reason") if status == "canceled" else None
    return f"{status}: {why}" if why else status or "-"


def register(app: typer.Typer) -> None:
    """Add the commands to the main ``ctloop`` app."""
    app.command("trigger")(trigger)
    app.command("cancel")(cancel)
    app.command("triggers")(triggers)
