"""Model registry on fsspec storage: numbered immutable versions, metadata, lineage and aliases.

Layout under ``<registry.uri>/<model name>/``::

    versions/<n>/model/...        the model folder (files read-only once registered)
    versions/<n>/metadata.json    written last, atomically: a version is visible only once this exists
    aliases/<alias>.json          {"alias", "version", "reason", "forced", ...}, replaced atomically
    aliases/.pending.json         an alias transaction in flight (rolled forward by the next access)
    events/<stamp>-<id>.json      one audit record per promotion / rollback
    .lock                         advisory lock for alias transactions (local storage)

Crash safety:
- Version numbers are claimed by an exclusive ``mkdir``, so concurrent registrations get distinct
  numbers; a crash before the metadata lands leaves an invisible, skipped number and nothing dangling.
- A promotion moves two aliases (``champion`` and ``previous``). It first writes the complete target
  state to ``aliases/.pending.json`` (atomic), then each alias document (atomic), then removes the
  pending record. Whoever touches the aliases next rolls a leftover pending record forward, so after a
  crash at any point the aliases are either all before or all after the promotion.

On local storage alias transactions hold an ``flock`` (released by the kernel when a process dies). On
object stores (``s3://``, ``gs://``) each document is a single atomic PUT, and the trigger policy's
"one run per model at a time" is the writer exclusion; version claims there are not race-free between
simultaneous writers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ctloop.errors import ArtifactIntegrityError, RegistryError, VersionNotFoundError

ALIASES = ("champion", "previous")
ALIAS_NAME_RE = re.compile(r"[a-z0-9-]{1,63}")
PENDING = ".pending.json"
_UNSET: Any = object()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: its number, metadata and where its model folder lives."""

    version: int
    metadata: dict[str, Any]
    model_uri: str

    @property
    def gate_passed(self) -> bool | None:
        """Whether the recorded gate decision passed (``None`` when no decision was recorded)."""
        decision = self.metadata.get("decision")
        if not isinstance(decision, dict) or "passed" not in decision:
            return None
        return bool(decision["passed"])


def tree_digest(folder: str | Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``folder``."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class Registry:
    """A filesystem registry for one model name."""

    def __init__(self, uri: str, model_name: str) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise RegistryError(f"registry.uri {uri!r}: cannot open this storage ({exc}); "
                                f"install its fsspec driver or fix the URI") from exc
        self.uri = uri
        self.name = model_name
        self.root = f"{root.rstrip('/')}/{model_name}"
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._local = "file" in protocols or "local" in protocols
        self._lock_depth = 0

    # -- low-level helpers -------------------------------------------------
    def _p(self, *parts: str | int) -> str:
        return "/".join([self.root, *map(str, parts)])

    def _where(self) -> str:
        return f"registry {self.uri!r} model {self.name!r}"

    def _write_atomic(self, path: str, data: bytes) -> None:
        if not self._local:
            self.fs.pipe_file(path, data)  # a single PUT is atomic on object stores
            return
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _read_json(self, path: str) -> dict[str, Any]:
        """Read a registry document; FileNotFoundError passes through, anything else is RegistryError."""
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}: {self._where()} unreachable ({exc})") from exc
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: corrupt registry document ({exc}); restore it from a backup "
                                f"or remove it") from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"{path}: corrupt registry document (expected a JSON object)")
        return doc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive alias transactions (flock on local storage; the kernel drops it if we die)."""
        if not self._local or self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        import fcntl

        try:
            os.makedirs(self.root, exist_ok=True)
            fh = open(self._p(".lock"), "a+")  # noqa: SIM115 (held for the block)
        except OSError as exc:
            raise RegistryError(f"{self._where()}: cannot open the registry lock ({exc})") from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            self._lock_depth += 1
            yield
        finally:
            self._lock_depth = max(0, self._lock_depth - 1)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    # -- versions ----------------------------------------------------------
    def versions(self) -> list[int]:
        """Numbers of every complete (visible) version, ascending."""
        base = self._p("versions")
        try:
            if not self.fs.exists(base):
                if self.fs.exists(self.root) and not self.fs.isdir(self.root):
                    raise RegistryError(f"{self._where()}: {self.root} is not a folder")
                return []
            entries = self.fs.ls(base, detail=False)
            out = []
            for e in entries:
                name = e.rstrip("/").rsplit("/", 1)[-1]
                if name.isdigit() and self.fs.exists(f"{e.rstrip('/')}/metadata.json"):
                    out.append(int(name))
        except OSError as exc:
            raise RegistryError(f"{self._where()}: unreachable ({exc})") from exc
        return sorted(out)

    def _claim(self) -> int:
        base = self._p("versions")
        try:
            self.fs.makedirs(base, exist_ok=True)
            taken = [int(n) for e in self.fs.ls(base, detail=False)
                     if (n := e.rstrip("/").rsplit("/", 1)[-1]).isdigit()]
        except OSError as exc:
            raise RegistryError(f"{self._where()}: cannot create {base} ({exc}); check the registry URI "
                                f"and permissions") from exc
        n = max(taken, default=0) + 1
        for _ in range(10_000):
            path = self._p("versions", n)
            try:
                if self._local:
                    os.mkdir(path)  # exclusive: fails if another writer claimed n
                else:
                    if self.fs.exists(path):
                        raise FileExistsError(path)
                    self.fs.pipe_file(f"{path}/.claim", uuid.uuid4().hex.encode())
                return n
            except FileExistsError:
                n += 1
            except OSError as exc:
                raise RegistryError(f"{self._where()}: cannot claim version {n} ({exc})") from exc
        raise RegistryError(f"{self._where()}: could not claim a version number")

    def register(self, model_dir: str | Path, metadata: dict[str, Any]) -> int:
        """Copy a model folder into a new, immutable version with ``metadata``; return its number.

        The metadata document is written last and atomically, so a crash at any point leaves either a
        complete version or an invisible, skipped number.
        """
        src = Path(model_dir)
        if not (src / "model.json").is_file():
            raise RegistryError(f"{src}: not a model folder (model.json missing); nothing registered")
        try:
            json.dumps(metadata, default=str)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"metadata for {src} is not JSON-serialisable ({exc}); nothing registered") \
                from exc
        digest = tree_digest(src)
        n = self._claim()
        dest = self._p("versions", n, "model")
        try:
            if self._local:
                shutil.copytree(src, dest)
                for p in Path(dest).rglob("*"):
                    if p.is_file():
                        p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # immutable once registered
            else:
                self.fs.put(str(src), dest, recursive=True)
            if not self.fs.exists(f"{dest}/model.json"):
                raise RegistryError(f"{dest}: model copy incomplete; version {n} left invisible")
            meta = {**metadata, "version": n, "model_name": self.name, "registered_at": _now(),
                    "artifact": {"sha256": digest,
                                 "profile": (src / "profile.json").is_file()}}
            self._write_atomic(self._p("versions", n, "metadata.json"), _dumps(meta))
            if self._local:
                os.chmod(self._p("versions", n, "metadata.json"), 0o444)
        except OSError as exc:
            raise RegistryError(f"{self._where()}: registering version {n} failed ({exc}); the version "
                                f"stays invisible") from exc
        return n

    def get(self, ref: int | str) -> ModelVersion:
        """Look up a version by number or alias (``champion``, ``previous``).

        Raises:
            VersionNotFoundError: Unknown version or unset alias.
            RegistryError: Corrupt metadata or unreachable storage.
        """
        version = self.resolve(ref)
        path = self._p("versions", version, "metadata.json")
        try:
            meta = self._read_json(path)
        except FileNotFoundError as exc:
            known = self.versions()
            raise VersionNotFoundError(
                f"{self._where()}: no version {version} (known: {known or 'none'})") from exc
        if meta.get("version") != version:
            raise RegistryError(f"{path}: corrupt registry document (records version "
                                f"{meta.get('version')!r}, expected {version})")
        return ModelVersion(version, meta, self._p("versions", version, "model"))

    def resolve(self, ref: int | str) -> int:
        """Turn a version number or alias name into a version number."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            return int(ref)
        alias = self.alias(str(ref))
        if alias is None:
            raise VersionNotFoundError(f"{self._where()}: no {ref!r} alias (aliases: {', '.join(ALIASES)}; "
                                       f"or give a version number)")
        return alias

    def local_model_dir(self, ref: int | str, cache_dir: str | Path | None = None) -> Path:
        """A local folder holding the version's model (downloaded for remote storage).

        The folder is checked against the ``artifact.sha256`` recorded at registration before it is
        returned, so nothing in it is deserialised unverified.

        Raises:
            ArtifactIntegrityError: The folder's digest differs from the recorded one (or none is recorded).
        """
        from ctloop.artifacts import verify_tree

        mv = self.get(ref)
        if self._local:
            target = Path(mv.model_uri)
        else:
            target = Path(cache_dir or tempfile.mkdtemp(prefix="ctloop-model-")) / f"{self.name}-{mv.version}"
            if not (target / "model.json").exists():
                self.fs.get(mv.model_uri, str(target), recursive=True)
        expected = (mv.metadata.get("artifact") or {}).get("sha256")
        if not isinstance(expected, str) or not expected:
            raise ArtifactIntegrityError(f"{self._where()}: version {mv.version} records no artifact.sha256; "
                                         "refusing to load an unverifiable model")
        verify_tree(target, expected, f"{self._where()} version {mv.version}")
        return target

    # -- aliases -----------------------------------------------------------
    def _alias_path(self, name: str) -> str:
        if not isinstance(name, str) or not ALIAS_NAME_RE.fullmatch(name):
            raise VersionNotFoundError(f"{self._where()}: {name!r} is not a valid alias name (aliases are "
                                       "lowercase letters, digits and '-', e.g. champion)")
        return self._p("aliases", f"{name}.json")

    def _recover(self) -> None:
        """Roll a pending alias transaction forward (call with the lock held)."""
        try:
            pending = self._read_json(self._p("aliases", PENDING))
        except FileNotFoundError:
            return
        for name, doc in sorted(pending.get("aliases", {}).items()):
            self._write_atomic(self._alias_path(name), _dumps(doc))
        event = pending.get("event")
        if isinstance(event, dict):
            self._write_atomic(self._p("events", f"{event['at']}-{event['id']}.json"), _dumps(event))
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._p("aliases", PENDING))

    def _recover_if_pending(self) -> None:
        try:
            if self.fs.exists(self._p("aliases", PENDING)):
                with self._locked():
                    self._recover()
        except OSError as exc:
            raise RegistryError(f"{self._where()}: unreachable ({exc})") from exc

    def alias_doc(self, name: str) -> dict[str, Any] | None:
        """The full alias document, or ``None``."""
        self._recover_if_pending()
        try:
            return self._read_json(self._alias_path(name))
        except FileNotFoundError:
            return None

    def alias(self, name: str) -> int | None:
        """The version an alias points at, or ``None``."""
        doc = self.alias_doc(name)
        if doc is None:
            return None
        v = doc.get("version")
        if not isinstance(v, int) or isinstance(v, bool):
            raise RegistryError(f"{self._alias_path(name)}: corrupt alias document (no integer version)")
        return v

    def _alias_body(self, name: str, version: int, reason: str, **extra: Any) -> dict[str, Any]:
        return {"alias": name, "model_name": self.name, "version": version, "updated_at": _now(),
                "reason": reason, "id": uuid.uuid4().hex, **extra}

    def _transact(self, aliases: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
        """Apply several alias documents as one crash-safe transaction (lock held by the caller)."""
        self._write_atomic(self._p("aliases", PENDING), _dumps({"aliases": aliases, "event": event}))
        self._recover()

    def set_alias(self, name: str, version: int, reason: str = "") -> None:
        """Point ``name`` at ``version`` (atomically)."""
        with self._locked():
            self._recover()
            self._require_visible(version)
            body = self._alias_body(name, version, reason)
            event = self._event("set_alias", version, reason, alias=name)
            self._transact({name: body}, event)

    def _require_visible(self, version: int) -> ModelVersion:
        if version not in self.versions():
            raise VersionNotFoundError(f"{self._where()}: no version {version}; nothing changed")
        return self.get(version)

    def _event(self, action: str, version: int, reason: str, **extra: Any) -> dict[str, Any]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return {"action": action, "version": version, "reason": reason, "at": stamp,
                "id": uuid.uuid4().hex[:12], "user": _user(), **extra}

    def promote(self, version: int, reason: str = "", force: bool = False,
                expected_champion: int | None = _UNSET) -> int | None:
        """Make ``version`` the champion; the old champion becomes ``previous``. Returns the old one.

        Args:
            version: The version to promote.
            reason: Why (recorded in the alias document and the event log).
            force: Required (with a reason) to promote a version whose gate decision failed.
            expected_champion: When given, promote only if the champion is still this version
                (compare-and-swap); otherwise raise :class:`RegistryError` and change nothing.

        Raises:
            VersionNotFoundError: ``version`` is not a visible version.
            RegistryError: Gate failed without ``force``/reason, or the champion moved meanwhile.
        """
        with self._locked():
            self._recover()
            mv = self._require_visible(version)
            old = self.alias("champion")
            if expected_champion is not _UNSET and old != expected_champion:
                raise RegistryError(f"{self._where()}: champion is v{old}, not v{expected_champion} as "
                                    f"expected; v{version} was not promoted (re-evaluate it against v{old})")
            if old == version:
                return old
            gate = mv.gate_passed
            if gate is False and not force:
                raise RegistryError(f"{self._where()}: v{version} failed its evaluation gate; promote it "
                                    f"only with --force and --reason")
            if force and not reason.strip():
                raise RegistryError("a forced promotion needs a reason (--reason TEXT)")
            aliases = {"champion": self._alias_body("champion", version, reason, forced=force,
                                                    gate_passed=gate, replaced=old)}
            if old is not None:
                aliases["previous"] = self._alias_body("previous", old, f"replaced by v{version}")
            self._transact(aliases, self._event("promote", version, reason, forced=force,
                                                gate_passed=gate, replaced=old))
            return old

    def rollback(self, reason: str = "") -> tuple[int, int]:
        """Swap ``champion`` and ``previous``: the previous champion serves again.

        Returns ``(restored, rolled_back)``.

        Raises:
            RegistryError: When there is no champion or no previous version.
        """
        with self._locked():
            self._recover()
            champion, previous = self.alias("champion"), self.alias("previous")
            if champion is None or previous is None:
                raise RegistryError(f"{self._where()}: nothing to roll back to (champion={champion}, "
                                    f"previous={previous})")
            self._require_visible(previous)
            why = reason or f"rollback from v{champion}"
            aliases = {
                "champion": self._alias_body("champion", previous, why, forced=False, rollback=True,
                                             replaced=champion),
                "previous": self._alias_body("previous", champion, f"rolled back in favour of v{previous}"),
            }
            self._transact(aliases, self._event("rollback", previous, why, replaced=champion))
            return previous, champion

    # -- history, lineage, diff ------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """The promotion/rollback audit log, oldest first."""
        self._recover_if_pending()
        base = self._p("events")
        try:
            if not self.fs.exists(base):
                return []
            names = sorted(e for e in self.fs.ls(base, detail=False) if e.endswith(".json")
                           and not e.rsplit("/", 1)[-1].startswith("."))
        except OSError as exc:
            raise RegistryError(f"{self._where()}: unreachable ({exc})") from exc
        return [self._read_json(n) for n in names]

    def lineage(self, ref: int | str, depth: int = 20) -> dict[str, Any]:
        """Why a version was trained: trigger, run, data window, config/code, decision, parent chain."""
        mv = self.get(ref)
        m = mv.metadata
        decision = m.get("decision") or {}
        chain: list[dict[str, Any]] = []
        seen = {mv.version}
        parent = m.get("parent")
        while isinstance(parent, int) and parent not in seen and len(chain) < depth:
            seen.add(parent)
            try:
                pm = self.get(parent).metadata
            except VersionNotFoundError:
                chain.append({"version": parent, "missing": True})
                break
            chain.append({"version": parent, "run_id": pm.get("run_id"),
                          "trigger": (pm.get("trigger") or {}).get("cause"),
                          "registered_at": pm.get("registered_at")})
            parent = pm.get("parent")
        return {
            "version": mv.version,
            "model_name": self.name,
            "registered_at": m.get("registered_at"),
            "trigger": m.get("trigger"),
            "run_id": m.get("run_id"),
            "data": m.get("data"),
            "config_hash": m.get("config_hash"),
            "code_version": m.get("code_version"),
            "parent": m.get("parent"),
            "ancestors": chain,
            "decision": {
                "passed": decision.get("passed"),
                "compared_with": (decision.get("champion") or {}).get("version"),
                "failed_checks": [c.get("reason") for c in decision.get("checks", []) if not c.get("passed")],
                "notes": decision.get("notes", []),
            },
            "metrics": m.get("metrics", {}),
            "recent_metrics": m.get("recent_metrics", {}),
            "events": [e for e in self.events() if mv.version in (e.get("version"), e.get("replaced"))],
            "aliases": [a for a in ALIASES if self.alias(a) == mv.version],
        }

    def diff(self, a: int | str, b: int | str) -> dict[str, Any]:
        """Side by side: metrics (with b - a), data window, config/code, trigger and parent."""
        ma, mb = self.get(a), self.get(b)

        def pick(m: dict[str, Any]) -> dict[str, Any]:
            data = m.get("data") or {}
            return {
                "run_id": m.get("run_id"),
                "trigger": (m.get("trigger") or {}).get("cause"),
                "parent": m.get("parent"),
                "config_hash": m.get("config_hash"),
                "code_version": json.dumps(m.get("code_version"), sort_keys=True, default=str),
                "data.source": data.get("source"),
                "data.window": f"{data.get('first_day')}..{data.get('last_day')}",
                "data.content_hash": data.get("content_hash"),
                "data.rows": data.get("rows"),
                "gate_passed": (m.get("decision") or {}).get("passed"),
                "artifact.sha256": (m.get("artifact") or {}).get("sha256"),
            }

        fa, fb = pick(ma.metadata), pick(mb.metadata)
        out: dict[str, Any] = {"a": ma.version, "b": mb.version, "fields": {}, "metrics": {}}
        for k in fa:
            out["fields"][k] = {"a": fa[k], "b": fb[k], "same": fa[k] == fb[k]}
        for section in ("metrics", "recent_metrics"):
            xa, xb = ma.metadata.get(section) or {}, mb.metadata.get(section) or {}
            for k in sorted(set(xa) | set(xb)):
                va, vb = xa.get(k), xb.get(k)
                delta = vb - va if isinstance(va, int | float) and isinstance(vb, int | float) else None
                out["metrics"][f"{section}.{k}" if section != "metrics" else k] = {"a": va, "b": vb,
                                                                                    "delta": delta}
        return out

    def snapshot(self) -> dict[str, Any]:
        """Versions and aliases, for listing and for proving nothing changed."""
        return {"versions": self.versions(), "aliases": {a: self.alias(a) for a in ALIASES}}


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
