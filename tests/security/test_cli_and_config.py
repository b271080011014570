"""Security regressions of the CLI and config: markup in stored text is printed, not interpreted; alias
names cannot walk out of the registry; a YAML bomb is refused before it expands."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctloop.cli import app
from ctloop.config import load_config
from ctloop.errors import ConfigError, SchemaError, VersionNotFoundError
from ctloop.project import init_project
from ctloop.registry import Registry
from ctloop.schema import load_schema
from ctloop.triggers.ledger import Ledger
from tests.helpers_registry import meta, tiny_model

pytestmark = [pytest.mark.security, pytest.mark.unit]
MARKUP = "[/bold] [link=file:///etc/passwd]x[/link] [red]evil[/]"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Registry]:
    init_project(tmp_path / "p")
    cfg_path = tmp_path / "p" / "ctloop.yaml"
    cfg = load_config(cfg_path)
    reg = Registry(cfg.registry.uri, cfg.name)
    v = reg.register(tiny_model(tmp_path / "m", 1, 1),
                     meta(trigger={"cause": "alert", "reason": MARKUP, "summary": MARKUP}, run_id=MARKUP))
    reg.promote(v, MARKUP)
    return cfg_path, reg


def test_lineage_prints_markup_as_text(project: tuple[Path, Registry]) -> None:
    cfg, _ = project
    for args in (["lineage", "champion"], ["history"], ["list"]):
        res = CliRunner().invoke(app, ["registry", *args, "--config", str(cfg)])
        assert res.exit_code == 0, (args, res.output, res.exception)
        assert "[/bold]" in res.output.replace("\n", "") or "[/bo" in res.output, (args, res.output)


def test_triggers_table_prints_markup_as_text(project: tuple[Path, Registry]) -> None:
    cfg_path, _ = project
    cfg = load_config(cfg_path)
    Path(cfg.triggers.ledger).parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(cfg.triggers.ledger)
    try:
        with ledger.transaction() as conn:
            ledger.insert(conn, received_at=dt.datetime.now(dt.UTC), source="alert", model=cfg.name,
                          decision="suppressed", reason_code="cooldown", reason=MARKUP, idempotency_key="k1",
                          run_id="[/]")
    finally:
        ledger.close()
    res = CliRunner().invoke(app, ["triggers", "--config", str(cfg_path)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "[/" in res.output


def test_alias_names_are_validated(project: tuple[Path, Registry], tmp_path: Path) -> None:
    cfg, reg = project
    outside = tmp_path / "evil.json"
    outside.write_text(json.dumps({"version": 1, "secret": "outside the registry"}))
    rel = "../../../" + str(outside.with_suffix("")).lstrip("/")
    for name in (rel, "Champion", "a/b", "", "x" * 100):
        with pytest.raises(VersionNotFoundError, match="not a valid alias name"):
            reg.alias(name)
    res = CliRunner().invoke(app, ["registry", "show", rel, "--config", str(cfg)])
    assert res.exit_code != 0 and "outside the registry" not in res.output
    assert reg.alias("champion") == 1


BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: churn
"""


def test_yaml_bomb_and_oversized_config_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "ctloop.yaml"
    p.write_text(BOMB)
    with pytest.raises(ConfigError, match="aliases"):
        load_config(p)
    p.write_text("name: churn\n# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="over the limit"):
        load_config(p)
    s = tmp_path / "schema.yaml"
    s.write_text(BOMB)
    with pytest.raises(SchemaError, match="aliases"):
        load_schema(s)
