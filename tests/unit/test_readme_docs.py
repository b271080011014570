"""The README stays a newcomer's page and the reference lives in docs/: every topic keeps a short README
section that links to its page, every relative link resolves, the commands shown exist, and the
documented ``ctloop run --json`` schema matches what the command prints."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.main import get_command

from ctloop.cli import app
from ctloop.run_summary import RUN_RESULT_FORMAT, gate_summary, run_result_json

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

# README heading (a regex) → the docs page its short section must link to
SECTIONS = {
    r"closed loop: `ctloop demo`": "docs/demo.md",
    r"Episode 2": "docs/demo.md",
    r"From scripts and CI": "docs/cli.md",
    r"JSON result of `ctloop run --json`": "docs/cli.md",
    r"`ctloop status`": "docs/cli.md",
    r"`ctloop check`": "docs/cli.md",
    r"Derived features \(`features:`\)": "docs/features.md",
    r"What runs where on a cluster": "docs/cluster.md",
    r"Data validation gate": "docs/data-validation.md",
    r"Training on GPU spot pools": "docs/training.md",
    r"Evaluation gate and model registry": "docs/registry.md",
    r"Serving: fast path, micro-batching, workers": "docs/serving.md",
    r"fleet mode": "docs/drift.md",
    r"Model quality: ids, delayed labels, realized and estimated metrics, performance alert": "docs/model-quality.md",
    r"^Triggers$": "docs/triggers.md",
    r"Choosing a retraining policy: `ctloop backtest`": "docs/backtest.md",
    r"Security boundaries": "docs/security.md",
    r"Running the pipeline elsewhere \(Airflow, Prefect, Dagster\)": "docs/orchestrators.md",
}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _sections(text: str) -> dict[str, str]:
    """Heading text → body, for every ``##``/``###`` heading outside code blocks."""
    out: dict[str, str] = {}
    current, fence = None, False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{2,3}\s+(.*)$", line)
        if m:
            current = m.group(1).strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text, fence, out = page.read_text(), False, set()
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"^#+\s+(.*)$", line)):
            out.add(_slug(m.group(1)))
    return out


def test_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 320, "move reference material to docs/, link it from README"


@pytest.mark.parametrize("heading,page", SECTIONS.items())
def test_readme_keeps_a_short_section_linking_to_its_page(heading: str, page: str) -> None:
    sections = _sections(README.read_text())
    found = [h for h in sections if re.search(heading, h)]
    assert found, f"README lost its section {heading!r}"
    body = sections[found[0]]
    assert page in LINK.findall(body) or any(t.startswith(page + "#") for t in LINK.findall(body)), \
        f"README section {found[0]!r} does not link to {page}"
    assert (ROOT / page).is_file(), f"{page} is missing"
    assert len((ROOT / page).read_text().splitlines()) > 10, f"{page} is empty"


def test_reference_index_lists_every_page() -> None:
    index = _sections(README.read_text()).get("Reference")
    assert index is not None, "README has no Reference index"
    listed = set(LINK.findall(index))
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert pages <= listed, f"not in the README's Reference index: {sorted(pages - listed)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
        assert dest.exists(), f"{page.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading for #{anchor} in {rel}"


def _commands(text: str) -> list[list[str]]:
    """``ctloop`` invocations in the bash blocks: the words up to the first option or placeholder."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.split("\n"):
            words = line.split()
            if words[:1] == ["ctloop"]:
                out.append([w for w in words[1:3] if re.match(r"^[a-z][a-z|-]*$", w)])
    return out


def test_commands_shown_exist() -> None:
    root = get_command(app)
    assert hasattr(root, "commands")
    seen = 0
    for page in PAGES:
        for words in _commands(page.read_text()):
            assert words and words[0] in root.commands, f"{page.name}: unknown command ctloop {' '.join(words)}"
            cmd = root.commands[words[0]]
            if hasattr(cmd, "commands"):  # a group
                assert len(words) > 1, f"{page.name}: ctloop {words[0]} needs a subcommand"
                for sub in words[1].split("|"):
                    assert sub in cmd.commands, f"{page.name}: unknown command ctloop {words[0]} {sub}"
            seen += 1
    assert seen >= 20


def _documented_run_keys() -> dict[str, str]:
    """First-column keys of the ``ctloop run --json`` table in docs/cli.md → their row."""
    body = _sections((DOCS / "cli.md").read_text())["JSON result of `ctloop run --json`"]
    rows = {}
    for line in body.split("\n"):
        if line.startswith("| `"):
            first, rest = line[2:].split(" | ", 1)
            for key in re.findall(r"`([a-z_]+)`", first):
                rows[key] = rest
    return rows


def test_run_json_schema_is_documented() -> None:
    result = SimpleNamespace(run_id="r", status="succeeded", reason=None, promoted=True, version=1, champion=1,
                             metrics={}, decision={"passed": True, "checks": []}, decision_path="d",
                             model_uri="m", log_path="l", reports={}, error=None, wall_seconds=1.0)
    out = run_result_json(result)
    doc = (DOCS / "cli.md").read_text()
    assert f"format: {RUN_RESULT_FORMAT}" in doc
    rows = _documented_run_keys()
    assert set(rows) == set(out) - {"format"}, "docs/cli.md and ctloop run --json disagree on the keys"
    for key in gate_summary({"passed": True, "checks": []}):
        assert f"`{key}`" in rows["gate"], f"gate.{key} is not documented"
    for key in out["paths"]:
        assert f"`{key}`" in rows["paths"], f"paths.{key} is not documented"
    readme = README.read_text()
    assert RUN_RESULT_FORMAT in readme and "docs/cli.md#json-result-of-ctloop-run---json" in readme
