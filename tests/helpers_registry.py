"""Helpers for the registry tests: tiny model folders and a crash-trial child process.

Run as ``python -m tests.helpers_registry REGISTRY_URI MODEL_DIR`` the child loops forever over
register → promote (→ rollback every second round), printing one line after each completed operation
with the aliases it left, so the parent can kill it at a random point and check what survived.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def tiny_model(folder: Path, blob_kb: int = 64, files: int = 4, passed: bool | None = True) -> Path:
    """A model folder the registry accepts (``model.json`` plus a few blobs, so copies take a while)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"format": "ctloop-model/v1", "trainer": "sklearn"}))
    for i in range(files):
        (folder / f"blob-{i}.bin").write_bytes(os.urandom(blob_kb * 1024))
    return folder


def meta(passed: bool = True, **extra: Any) -> dict[str, Any]:
    """Minimal version metadata with a gate decision."""
    return {"decision": {"passed": passed, "checks": [], "notes": []}, "metrics": {"roc_auc": 0.8}, **extra}


def _child(uri: str, model_dir: str) -> None:
    from ctloop.registry import Registry

    reg = Registry(uri, "crash")
    print("READY", flush=True)
    i = 0
    while True:
        v = reg.register(model_dir, meta(run_id=f"child-{os.getpid()}-{i}"))
        print("R", v, json.dumps([reg.alias("champion"), reg.alias("previous")]), flush=True)
        reg.promote(v, reason="crash trial")
        print("P", v, json.dumps([reg.alias("champion"), reg.alias("previous")]), flush=True)
        if i % 2 == 1:
            reg.rollback("crash trial rollback")
            print("B", 0, json.dumps([reg.alias("champion"), reg.alias("previous")]), flush=True)
        i += 1


def _register_many(uri: str, model_dir: str, count: str) -> None:
    from ctloop.registry import Registry

    reg = Registry(uri, "crash")
    print("READY", flush=True)
    sys.stdin.readline()  # start together
    for _ in range(int(count)):
        print(reg.register(model_dir, meta()), flush=True)


def _promote_from(uri: str, expected: str, version: str) -> None:
    """Promote ``version`` only if the champion is still ``expected``; print won/lost."""
    from ctloop.errors import RegistryError
    from ctloop.registry import Registry

    reg = Registry(uri, "crash")
    print("READY", flush=True)
    sys.stdin.readline()
    try:
        reg.promote(int(version), reason="race", expected_champion=int(expected))
        print("won", version, flush=True)
    except RegistryError:
        print("lost", flush=True)


def _race(uri: str, model_dir: str, count: str) -> None:
    """Register ``count`` versions on "go", print them and ``REGISTERED``; then on a line naming the
    expected champion, promote the last of them only if the champion is still that one (won/lost)."""
    from ctloop.errors import RegistryError
    from ctloop.registry import Registry

    reg = Registry(uri, "crash")
    print("READY", flush=True)
    sys.stdin.readline()
    mine = [reg.register(model_dir, meta()) for _ in range(int(count))]
    print(*mine, flush=True)
    print("REGISTERED", flush=True)
    expected = int(sys.stdin.readline())
    try:
        reg.promote(mine[-1], reason="race", expected_champion=expected)
        print("won", mine[-1], flush=True)
    except RegistryError:
        print("lost", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "register-many":
        _register_many(*sys.argv[2:])
    elif sys.argv[1] == "promote-from":
        _promote_from(*sys.argv[2:])
    elif sys.argv[1] == "race":
        _race(*sys.argv[2:])
    else:
        _child(sys.argv[1], sys.argv[2])
