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
object stores the same protocol runs on conditional writes (:mod:`ctloop.registry_cas`): a version
number is claimed by creating ``versions/<n>/.claim`` only if absent (S3 ``If-None-Match: *``, GCS
``ifGenerationMatch=0``); the pending record is created only if absent (one transaction at a time) and
names the alias documents it expects (``base``); each alias document is replaced only if unchanged
(S3 ``If-Match``, GCS generation), so a transaction whose base went stale is dropped, never applied.
A store without conditional writes is refused unless ``registry.single_writer`` is set.

A deploy claims a promotion first: the pending record carries an ``intent`` that readers do not roll
forward; the deploy delivers, then commits (the intent is cleared and the aliases move) or aborts it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ctloop.errors import ArtifactIntegrityError, RegistryError, VersionNotFoundError
from ctloop.registry_cas import cas_store

ALIASES = ("champion", "previous")
ALIAS_NAME_RE = re.compile(r"[a-z0-9-]{1,63}")
PENDING = ".pending.json"
_UNSET: Any = object()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode()


def _parse_doc(path: str, raw: bytes) -> dict[str, Any]:
    """A registry document's JSON object.

    Raises:
        RegistryError: When ``raw`` is not JSON, or not a JSON object.
    """
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: corrupt registry document ({exc}); restore it from a backup "
                            f"or remove it") from exc
    if not isinstance(doc, dict):
        raise RegistryError(f"{path}: corrupt registry document (expected a JSON object)")
    return doc


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

    def __init__(self, uri: str, model_name: str, single_writer: bool = False) -> None:
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
        self.cas = cas_store(self.fs, uri, single_writer)

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
        return _parse_doc(path, raw)

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
        self._fresh()
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

    def _fresh(self) -> None:
        """Forget cached listings (object-store filesystems cache them per process)."""
        if not self._local:
            self.fs.invalidate_cache()

    def _claim(self) -> int:
        base = self._p("versions")
        self._fresh()
        try:
            self.fs.makedirs(base, exist_ok=True)
            try:
                listing = self.fs.ls(base, detail=False)
            except FileNotFoundError:  # an object store has no empty folders
                listing = []
            taken = [int(n) for e in listing if (n := e.rstrip("/").rsplit("/", 1)[-1]).isdigit()]
        except OSError as exc:
            raise RegistryError(f"{self._where()}: cannot create {base} ({exc}); check the registry URI "
                                f"and permissions") from exc
        n = max(taken, default=0) + 1
        for _ in range(10_000):
            path = self._p("versions", n)
            try:
                if self._local:
                    os.mkdir(path)  # exclusive: fails if another writer claimed n
                elif not self.cas.create(f"{path}/.claim", uuid.uuid4().hex.encode()):
                    raise FileExistsError(path)  # conditional create: another writer claimed n
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

    def _pending_path(self) -> str:
        return self._p("aliases", PENDING)

    def _read_doc(self, path: str) -> tuple[dict[str, Any], str] | None:
        """A JSON document with its write token (ETag, generation or content hash), or ``None``."""
        try:
            got = self.cas.read(path)
        except OSError as exc:
            raise RegistryError(f"{path}: {self._where()} unreachable ({exc})") from exc
        if got is None:
            return None
        raw, token = got
        return _parse_doc(path, raw), token

    @staticmethod
    def _ident(doc: dict[str, Any] | None) -> str | None:
        """What identifies one write of an alias document (its id, else its content)."""
        if doc is None:
            return None
        return str(doc.get("id") or hashlib.sha256(_dumps(doc)).hexdigest())

    def _apply(self, pending: dict[str, Any]) -> bool:
        """Move the aliases to the pending record's target; False when its base went stale."""
        base = pending.get("base")
        for name, target in sorted(pending.get("aliases", {}).items()):  # champion before previous
            path = self._alias_path(name)
            if not isinstance(base, dict):  # a record written before conditional writes: roll forward
                self._write_atomic(path, _dumps(target))
                continue
            for _ in range(20):
                cur = self._read_doc(path)
                ident = self._ident(cur[0] if cur else None)
                if ident == self._ident(target):
                    break  # already applied (by us or by another reader)
                if ident != base.get(name):
                    return False  # the aliases moved since the record was written: drop it
                data = _dumps(target)
                if self.cas.create(path, data) if cur is None else self.cas.replace(path, data, cur[1]):
                    break
            else:
                raise RegistryError(f"{path}: alias document keeps changing; retry")
        event = pending.get("event")
        if isinstance(event, dict):
            self._write_atomic(self._p("events", f"{event['at']}-{event['id']}.json"), _dumps(event))
        return True

    def _recover(self) -> None:
        """Roll a pending alias transaction forward, or drop it when stale (call with the lock held).

        A pending record that carries a deploy ``intent`` is left alone: its deploy commits or aborts it.
        """
        got = self._read_doc(self._pending_path())
        if got is None or got[0].get("intent"):
            return
        pending, token = got
        self._apply(pending)
        self.cas.delete(self._pending_path(), token)  # False: another reader finished it first

    def _recover_if_pending(self) -> None:
        got = self._read_doc(self._pending_path())
        if got is not None and not got[0].get("intent"):
            with self._locked():
                self._recover()

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

    def _state(self) -> tuple[dict[str, int | None], dict[str, str | None]]:
        """Current alias versions and the identity of each alias document (the transaction base)."""
        versions: dict[str, int | None] = {}
        base: dict[str, str | None] = {}
        for name in ALIASES:
            cur = self._read_doc(self._alias_path(name))
            doc = cur[0] if cur else None
            v = doc.get("version") if doc else None
            if doc is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise RegistryError(f"{self._alias_path(name)}: corrupt alias document (no integer version)")
            versions[name] = v
            base[name] = self._ident(doc)
        return versions, base

    def _applied(self, aliases: dict[str, dict[str, Any]]) -> bool:
        for name, target in aliases.items():
            cur = self._read_doc(self._alias_path(name))
            if self._ident(cur[0] if cur else None) != self._ident(target):
                return False
        return True

    def _busy(self) -> RegistryError | None:
        """An error naming the deploy whose promotion claim is in flight, if one is."""
        got = self._read_doc(self._pending_path())
        if got is None or not got[0].get("intent"):
            return None
        intent = got[0]["intent"]
        return RegistryError(f"{self._where()}: a deploy of v{intent.get('version')} claimed the promotion at "
                             f"{intent.get('at')} and has not finished; retry after it, or run "
                             f"`ctloop registry recover` if that deploy died")

    def _transaction(self, plan: Any, intent: dict[str, Any] | None = None) -> Any:
        """Run ``plan(versions) -> (aliases, event, result)`` as a compare-and-swap transaction.

        ``plan`` sees the current aliases and raises to refuse; a transaction that loses a race is
        re-planned on the new state. With ``intent`` the record is left as a deploy claim (not applied).
        """
        with self._locked():
            for attempt in range(50):
                self._recover()
                busy = self._busy()
                if busy is not None:
                    raise busy
                versions, base = self._state()
                aliases, event, result = plan(versions)
                if not aliases:
                    return result
                doc: dict[str, Any] = {"aliases": aliases, "event": event, "base": base}
                if intent is not None:
                    doc["intent"] = {**intent, "at": _now(), "id": uuid.uuid4().hex}
                    for target in aliases.values():
                        target["claim"] = doc["intent"]["id"]
                if self.cas.create(self._pending_path(), _dumps(doc)):
                    if intent is not None:
                        if self._state()[1] == base:
                            return result, doc["intent"]["id"]
                        self._drop_intent(doc["intent"]["id"])  # the aliases moved before our claim landed
                    else:
                        self._recover()
                        if self._applied(aliases):
                            return result
                time.sleep(random.uniform(0.005, 0.02) * min(attempt + 1, 10))
            raise RegistryError(f"{self._where()}: too many concurrent alias changes; nothing changed, retry")

    def set_alias(self, name: str, version: int, reason: str = "") -> None:
        """Point ``name`` at ``version`` (atomically)."""
        def plan(_cur: dict[str, int | None]) -> tuple[Any, Any, None]:
            self._require_visible(version)
            return ({name: self._alias_body(name, version, reason)},
                    self._event("set_alias", version, reason, alias=name), None)

        self._transaction(plan)

    def _require_visible(self, version: int) -> ModelVersion:
        if version not in self.versions():
            raise VersionNotFoundError(f"{self._where()}: no version {version}; nothing changed")
        return self.get(version)

    def _event(self, action: str, version: int, reason: str, **extra: Any) -> dict[str, Any]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return {"action": action, "version": version, "reason": reason, "at": stamp,
                "id": uuid.uuid4().hex[:12], "user": _user(), **extra}

    def _promote_plan(self, version: int, reason: str, force: bool, expected_champion: Any) -> Any:
        def plan(cur: dict[str, int | None]) -> tuple[Any, Any, int | None]:
            mv = self._require_visible(version)
            old = cur["champion"]
            if expected_champion is not _UNSET and old != expected_champion:
                raise RegistryError(f"{self._where()}: champion is v{old}, not v{expected_champion} as "
                                    f"expected; v{version} was not promoted (re-evaluate it against v{old})")
            if old == version:
                return {}, None, old
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
            return aliases, self._event("promote", version, reason, forced=force, gate_passed=gate,
                                        replaced=old), old

        return plan

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
            RegistryError: Gate failed without ``force``/reason, the champion moved meanwhile, or a
                deploy's promotion claim is in flight.
        """
        old: int | None = self._transaction(self._promote_plan(version, reason, force, expected_champion))
        return old

    def rollback(self, reason: str = "") -> tuple[int, int]:
        """Swap ``champion`` and ``previous``: the previous champion serves again.

        Returns ``(restored, rolled_back)``.

        Raises:
            RegistryError: When there is no champion or no previous version.
        """
        def plan(cur: dict[str, int | None]) -> tuple[Any, Any, tuple[int, int]]:
            champion, previous = cur["champion"], cur["previous"]
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
            return aliases, self._event("rollback", previous, why, replaced=champion), (previous, champion)

        result: tuple[int, int] = self._transaction(plan)
        return result

    # -- deploy claims (promotion intents) --------------------------------------
    def claim_promotion(self, version: int, reason: str, expected_champion: int | None,
                        intent: dict[str, Any]) -> tuple[str | None, int | None]:
        """Claim the promotion of ``version`` before delivering it.

        Returns:
            ``(claim id, current champion)``; the claim id is ``None`` when ``version`` already is the
            champion (nothing to claim).

        Raises:
            RegistryError: The champion is not ``expected_champion`` (the claim is lost; deliver
                nothing), or another claim is in flight.
        """
        out = self._transaction(self._promote_plan(version, reason, False, expected_champion),
                                intent={**intent, "version": version})
        if isinstance(out, tuple):
            return out[1], out[0]
        return None, out

    def pending_intent(self) -> dict[str, Any] | None:
        """The promotion claim in flight (its ``intent`` plus target ``aliases``), or ``None``."""
        got = self._read_doc(self._pending_path())
        return got[0] if got and got[0].get("intent") else None

    def _drop_intent(self, claim_id: str) -> bool:
        got = self._read_doc(self._pending_path())
        if got is None or (got[0].get("intent") or {}).get("id") != claim_id:
            return False
        return self.cas.delete(self._pending_path(), got[1])

    def abort_promotion(self, claim_id: str) -> bool:
        """Withdraw a claim (delivery failed): the aliases stay as they were. False if not found."""
        with self._locked():
            return self._drop_intent(claim_id)

    def commit_promotion(self, claim_id: str) -> bool:
        """Move the aliases as claimed (after delivery). False when the claim is gone (aborted)."""
        with self._locked():
            got = self._read_doc(self._pending_path())
            if got is not None and (got[0].get("intent") or {}).get("id") == claim_id:
                pending, token = got
                target = pending["aliases"]
                committed = {k: v for k, v in pending.items() if k != "intent"}
                if self.cas.replace(self._pending_path(), _dumps(committed), token):
                    self._recover()
                    return self._applied(target)
            return self._committed(claim_id)

    def _committed(self, claim_id: str) -> bool:
        """Whether the champion document was written by the commit of claim ``claim_id``."""
        got = self._read_doc(self._alias_path("champion"))
        return bool(got and got[0].get("claim") == claim_id)

    # -- history, lineage, diff ------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """The promotion/rollback audit log, oldest first."""
        self._recover_if_pending()
        base = self._p("events")
        self._fresh()
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
