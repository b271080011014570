"""``ctloop registry ...``: list, show, promote, rollback, diff, lineage, recover (``--json`` on each)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctloop.cli.options import ConfigOpt, JsonOpt
from ctloop.console import make_console
from ctloop.lineage import describe_trigger
from ctloop.run_summary import gate_summary

registry_app = typer.Typer(help="Inspect and move the model registry (versions, aliases, lineage).",
                           no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Version number or alias (champion, previous).")]


def _registry(config: Path):  # type: ignore[no-untyped-def]
    from ctloop.config import load_config
    from ctloop.registry import Registry

    cfg = load_config(config)
    return Registry(cfg.registry.uri, cfg.name, cfg.registry.single_writer)


def _out() -> Console:
    return make_console(highlight=False)


def _echo_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, default=float, sort_keys=True))


def _answer(doc: dict[str, Any], json_out: bool, line: str) -> None:
    """Print ``doc`` as JSON with ``--json``, else the one-line summary ``line`` (rich markup)."""
    if json_out:
        _echo_json(doc)
        return
    _out().print(line)


def _f(v: Any) -> str:
    """A value as table text; stored text is markup-escaped (rich must print it, not interpret it)."""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return "-" if v is None else escape(str(v))


def _e(v: Any) -> str:
    """Stored text, escaped for rich markup."""
    return escape(str(v))


@registry_app.command("list")
def registry_list(config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """List registered versions with aliases, trigger and holdout metrics."""
    reg = _registry(config)
    champion, previous = reg.alias("champion"), reg.alias("previous")
    rows = []
    for v in reg.versions():
        m = reg.get(v).metadata
        aliases = [a for a, x in (("champion", champion), ("previous", previous)) if x == v]
        rows.append({"version": v, "aliases": aliases, "registered_at": m.get("registered_at"),
                     "run_id": m.get("run_id"), "trigger": (m.get("trigger") or {}).get("cause"),
                     "parent": m.get("parent"), "gate_passed": (m.get("decision") or {}).get("passed"),
                     "metrics": m.get("metrics", {})})
    if json_out:
        _echo_json(rows)
        return
    t = Table(title=f"registry {reg.uri} / {reg.name}")
    cols = ("version", "aliases", "registered", "trigger", "parent", "gate", "roc_auc", "accuracy", "run")
    for col in cols:
        t.add_column(col)
    for r in rows:
        gate = {True: "passed", False: "FAILED", None: "-"}[r["gate_passed"]]
        t.add_row(str(r["version"]), ",".join(r["aliases"]), _e(r["registered_at"]), _e(r["trigger"]),
                  _f(r["parent"]), gate, _f(r["metrics"].get("roc_auc")), _f(r["metrics"].get("accuracy")),
                  _e(r["run_id"]))
    _out().print(t)


@registry_app.command("show")
def registry_show(ref: RefArg, config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """Show one version's metadata (by number, or ``champion`` / ``previous``)."""
    reg = _registry(config)
    mv = reg.get(ref)
    doc = {"version": mv.version, "model_uri": mv.model_uri, **mv.metadata,
           "gate": gate_summary(mv.metadata.get("decision"))}
    if json_out:
        _echo_json(doc)
        return
    _out().print_json(json.dumps(doc, default=float))


@registry_app.command("champion")
def registry_champion(config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """Show the champion version (same as ``show champion``)."""
    registry_show("champion", config, json_out)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[int, typer.Argument(help="Version number to make the champion.")],
    config: ConfigOpt,
    force: Annotated[bool, typer.Option(help="Promote although its gate failed (needs --reason).")] = False,
    reason: Annotated[str, typer.Option(help="Why; recorded in the alias document and event log.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Make VERSION the champion; the old champion becomes ``previous``."""
    reg = _registry(config)
    why = reason if (reason or force) else "manual promotion"  # a forced promotion must say why
    old = reg.promote(version, reason=why, force=force)
    doc = {"champion": version, "previous": reg.alias("previous"), "replaced": old, "forced": force,
           "reason": why}
    _answer(doc, json_out, f"champion is now v{version} (was {_f(old)}){escape(' [forced]') if force else ''}")


@registry_app.command("rollback")
def registry_rollback(
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="Why; recorded in the alias document and event log.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Restore the previous champion (swaps ``champion`` and ``previous``)."""
    reg = _registry(config)
    restored, rolled_back = reg.rollback(reason)
    _answer({"champion": restored, "previous": rolled_back}, json_out,
            f"rolled back: champion is v{restored} again (v{rolled_back} is now previous)")


@registry_app.command("diff")
def registry_diff(
    a: Annotated[str, typer.Argument(help="First version or alias.")],
    b: Annotated[str, typer.Argument(help="Second version or alias.")],
    config: ConfigOpt,
    json_out: JsonOpt = False,
) -> None:
    """Compare two versions: metrics (b - a), data window and hash, config, code, trigger, parent."""
    d = _registry(config).diff(a, b)
    if json_out:
        _echo_json(d)
        return
    t = Table(title=f"v{d['a']} → v{d['b']}")
    for col in ("field", f"v{d['a']}", f"v{d['b']}", "Δ / same"):
        t.add_column(col)
    for k, m in d["metrics"].items():
        t.add_row(k, _f(m["a"]), _f(m["b"]), f"{m['delta']:+.4f}" if m["delta"] is not None else "-")
    for k, f in d["fields"].items():
        t.add_row(k, _f(f["a"]), _f(f["b"]), "same" if f["same"] else "[yellow]differs[/]")
    _out().print(t)


@registry_app.command("lineage")
def registry_lineage(ref: RefArg, config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """Why was this model trained: trigger, run, data window, parent, decision, promotions."""
    lin = _registry(config).lineage(ref)
    if json_out:
        _echo_json(lin)
        return
    data = lin.get("data") or {}
    dec = lin["decision"]
    code = lin.get("code_version") or {}
    out = _out()
    out.print(f"[bold]v{lin['version']}[/] of {_e(lin['model_name'])} (registered {_e(lin['registered_at'])})"
              + (f" — aliases: {_e(', '.join(lin['aliases']))}" if lin["aliases"] else ""))

    def say(text: str) -> None:  # stored text: printed as it is, never as markup
        out.print(text, markup=False, highlight=False)

    say(f"  trigger : {describe_trigger(lin.get('trigger'))}")
    say(f"  run     : {lin.get('run_id')}")
    say(f"  data    : {data.get('source')} {data.get('first_day')}..{data.get('last_day')} "
        f"({data.get('rows')} rows, sha256 {str(data.get('content_hash'))[:12]})")
    say(f"  config  : sha256 {str(lin.get('config_hash'))[:12]}; code ctloop {code.get('ctloop')} "
        f"(sources {str(code.get('source_sha256'))[:12]})")
    chain = " ← ".join(f"v{a['version']}" for a in lin["ancestors"]) or "none (first champion)"
    say(f"  parent  : {chain}")
    outcome = "passed" if dec["passed"] else "FAILED"
    vs = f" against champion v{dec['compared_with']}" if dec.get("compared_with") else ""
    say(f"  gate    : {outcome}{vs}")
    for r in dec["failed_checks"]:
        say(f"    - {r}")
    for e in lin["events"]:
        extra = " [forced]" if e.get("forced") else ""
        say(f"  event   : {e['at']} {e['action']} v{e['version']}{extra} — {e.get('reason', '')}")


@registry_app.command("history")
def registry_history(config: ConfigOpt, json_out: JsonOpt = False) -> None:
    """The promotion / rollback audit log."""
    events = _registry(config).events()
    if json_out:
        _echo_json(events)
        return
    t = Table(title="alias events")
    for col in ("at", "action", "version", "replaced", "forced", "user", "reason"):
        t.add_column(col)
    for e in events:
        t.add_row(_e(e["at"]), _e(e["action"]), str(e["version"]), _f(e.get("replaced")),
                  str(bool(e.get("forced"))), _e(e.get("user")), _e(e.get("reason", "")))
    _out().print(t)


@registry_app.command("recover")
def registry_recover(
    config: ConfigOpt,
    older_than: Annotated[float, typer.Option(help="Only settle a claim older than this many seconds.")] = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Settle a promotion claim left by a deploy that died: commit it if the cluster serves the version
    (GitOps repository or InferenceService), else withdraw it."""
    from ctloop.config import load_config
    from ctloop.deploy.recovery import recover_promotion

    cfg = load_config(config)
    doc = recover_promotion(cfg, min_age_s=older_than)
    _answer(doc, json_out, "no promotion claim in flight" if doc["claim"] is None
            else f"claim for v{doc['version']} (age {doc['age_s']} s): {doc['action']}")


def register(app: typer.Typer) -> None:
    """Add the ``registry`` group to the ``ctloop`` app."""
    app.add_typer(registry_app, name="registry")
