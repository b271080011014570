"""``ctloop demo``: the closed loop end to end on this machine, with a live view, a timeline and a report."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ctloop.cli.live import live_display
from ctloop.console import make_console
from ctloop.run_summary import closed_loop_line


class Alerting(StrEnum):
    """Which alerting the demo uses."""

    auto = "auto"
    on = "on"
    off = "off"


class _View:
    """The live progress view: stage, day, pipeline steps of the first run, recent events."""

    def __init__(self) -> None:
        self.mode = "?"
        self.stage = "starting"
        self.day = ""
        self.steps: dict[str, str] = {}
        self.events: list[str] = []
        self.t0 = time.monotonic()

    def update(self, kind: str, info: dict[str, Any]) -> None:
        now = f"{time.monotonic() - self.t0:6.1f}s"
        if kind == "setup":
            self.mode = info["mode"]
            self.events.append(f"{now} project at {info['out']} ({self.mode} alerting)")
        elif kind == "bootstrap":
            self.stage = "training the first champion (KFP local runner)"
            if info["state"] == "done":
                self.events.append(f"{now} first champion v{info['version']} in {info['seconds']:.0f}s")
        elif kind == "step":
            self.steps[info["task"]] = info["state"]
        elif kind == "stack":
            self.stage = "replaying traffic"
            self.events.append(f"{now} up: " + ", ".join(f"{k} {v}" for k, v in info["endpoints"].items()))
        elif kind == "day":
            self.day = f"{info['day']} ({info['index'] + 1}/{info['of']}){' drifted' if info['drifted'] else ''}"
            self.stage = "replaying traffic"
        elif kind == "drift":
            self.stage = "drift detected: waiting for the alert"
            self.events.append(f"{now} drift share {info['drift_share']:.0%} ({', '.join(info['features'][:4])} …)")
        elif kind == "alert":
            self.stage = f"retraining: run {info['run_id']}"
            self.events.append(f"{now} {info['reason']}")
        elif kind == "run":
            self.stage = "waiting for the hot-swap"
            self.events.append(f"{now} run {info['run_id']} {info['status']} → v{info['version']}")
        elif kind == "swap":
            self.stage = "replaying traffic"
            self.events.append(f"{now} model server now serves v{info['version']}")
        elif kind == "day_done":
            rec = info["record"]
            self.events.append(f"{now} {rec.day}: {rec.rows} rows, acc {rec.accuracy:.1%}, "
                               f"drift share {rec.drift_share:.0%}")
        elif kind == "done":
            self.stage = "done"
        self.events = self.events[-12:]

    def render(self) -> Panel:
        head = Table.grid(padding=(0, 2))
        head.add_row("alerting", self.mode)
        head.add_row("stage", self.stage)
        head.add_row("day", self.day or "-")
        if self.steps:
            head.add_row("first run", " ".join(f"{k}:{v}" for k, v in self.steps.items()))
        return Panel(Group(head, Text(""), Text("\n".join(self.events))), title="ctloop demo",
                     subtitle=f"{time.monotonic() - self.t0:.0f}s")


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo project, logs and report (replaced).")] = Path(
        "demo-project"),
    prometheus: Annotated[Alerting, typer.Option(
        help="auto: real Prometheus + Alertmanager where installed, else the embedded evaluator; on; off.")
    ] = Alerting.auto,
    stable_days: Annotated[int, typer.Option(min=1, help="Stable days replayed before the drift.")] = 2,
    days: Annotated[int, typer.Option(min=2, help="Drifted days to replay.")] = 5,
    rows_per_day: Annotated[int, typer.Option(min=100, help="Requests rows per day.")] = 800,
    concept_days: Annotated[int, typer.Option(
        min=0, help="Episode 2: days of pure concept drift with delayed labels (0 skips the episode).")] = 2,
    label_delay_days: Annotated[int, typer.Option(
        min=1, help="Episode 2: a day's labels arrive this many days later (POST /labels).")] = 1,
) -> None:
    """Run the closed loop: drift → alert → retrain → gate → promote → hot-swap, and report it; then
    episode 2: pure concept drift, delayed labels, the performance alert → one retrain."""
    import logging

    from ctloop.demo.loop import run_demo
    from ctloop.demo.report import timeline_table, timing_table, triggers_table, write_outputs
    from ctloop.demo.scenario import DemoSettings

    logging.basicConfig(level=logging.WARNING)
    console = make_console()
    view = _View()
    settings = DemoSettings(stable_days=stable_days, drift_days=days, rows_per_day=rows_per_day,
                            prometheus=prometheus.value)
    with live_display(view.render(), console, refresh_per_second=4) as live:

        def progress(kind: str, info: dict[str, Any]) -> None:
            view.update(kind, info)
            live.update(view.render())

        result = run_demo(out, settings, progress)
    console.print()
    console.print(timeline_table(result))
    console.print(triggers_table(result))
    console.print(timing_table(result))
    report, data = write_outputs(result, Path(result.out))
    comp = result.comparison
    if "recent_slice" in comp:
        c = comp["recent_slice"]
        console.print(f"gate's recent slice ({comp['recent_slice_day']}, {c['rows']} rows): v{comp['old']} roc_auc "
                      f"{c['old']['roc_auc']:.3f} → challenger v{comp['new']} {c['new']['roc_auc']:.3f}")
    if "later_drifted_days" in comp:
        c = comp["later_drifted_days"]
        console.print(f"on the later drifted days: v{comp['old']} accuracy {c['old']['accuracy']:.3f} → "
                      f"v{comp['new']} {c['new']['accuracy']:.3f}")
    for check in comp.get("decision_checks", []):
        mark = "[green]pass[/]" if check.get("passed") else "[red]FAIL[/]"
        console.print(f"  gate {mark} {check.get('name')}: {check.get('reason')}", highlight=False)
    champ = next((v for v in result.versions if v["version"] == result.champion), {})
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in champ.get("metrics", {}).items() if k != "rows")
    loop_line = closed_loop_line(result.timings)
    if loop_line:
        console.print(loop_line, markup=False, highlight=False)
    console.print(f"champion: v{result.champion} (served: v{result.served_version}) — {metrics}", highlight=False)
    console.print(f"report: [bold]{report}[/]  data: {data}")
    if concept_days:
        _episode_two(console, Path(result.out), prometheus.value, rows_per_day, concept_days, label_delay_days)


def _episode_two(console: Console, out: Path, prometheus: str, rows_per_day: int, concept_days: int,
                 label_delay_days: int) -> None:
    """Episode 2 in its own project folder (its own ledger: the first episode's cooldown does not apply)."""
    from ctloop.demo.concept import ConceptSettings, run_concept_episode
    from ctloop.demo.concept_report import concept_timeline_table, write_concept_outputs

    settings = ConceptSettings(concept_days=concept_days, rows_per_day=rows_per_day,
                               label_delay_days=label_delay_days, prometheus=prometheus)
    with console.status("episode 2: pure concept drift, labels a day late (training the first champion, "
                        "replaying, waiting for the performance alert)"):
        r = run_concept_episode(out / "episode-2", settings)
    console.print(concept_timeline_table(r))
    fired = [x for x in r.ledger if x["decision"] == "fired"]
    for x in fired:
        console.print(f"  trigger #{x['id']} {x['source']}: {x['reason']} → {x['run_status']} v{x['version']}",
                      markup=False, highlight=False)
    if "closed_loop_s" in r.timings:
        t = r.timings  # one grep-able line, measured from the labels that crossed the threshold
        console.print(f"episode 2 closed loop: {t['closed_loop_s']:.2f} s (alert {t.get('alert_s', 0):.2f} s + "
                      f"run {t.get('run_s', 0):.2f} s; labels crossing the threshold → new champion serving)",
                      markup=False, highlight=False)
    report, data = write_concept_outputs(r, out)
    console.print(f"[bold]episode 2 champion: v{r.champion}[/] (served: v{r.served_version}), max drift share "
                  f"{100 * r.max_drift_share:.0f}%, runs: {len(fired)}")
    console.print(f"report: [bold]{report}[/]  data: {data}")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``ctloop`` app."""
    app.command("demo")(demo)
