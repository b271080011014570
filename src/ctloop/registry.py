"""Model registry on fsspec storage: numbered immutable versions, metadata, and aliases.

Layout under ``<registry.uri>/<model name>/``::

    versions/<n>/model/...        the model folder
    versions/<n>/metadata.json    written last: a version is visible only once this exists
    aliases/<alias>.json          {"version": n, ...}, replaced atomically

Version numbers are claimed by an exclusive ``mkdir``, so concurrent registrations get distinct
numbers; a crash before the metadata lands leaves an invisible, skipped number and nothing dangling.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ctloop.errors import RegistryError, VersionNotFoundError

ALIASES = ("champion", "previous")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: its number, metadata and where its model folder lives."""

    version: int
    metadata: dict[str, Any]
    model_uri: str


class Registry:
    """A filesystem registry for one model name."""

    def __init__(self, uri: str, model_name: str) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise RegistryError(f"registry.uri {uri!r}: cannot open this storage ({exc})") from exc
        self.uri = uri
        self.name = model_name
        self.root = f"{root.rstrip('/')}/{model_name}"
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    # -- low-level helpers -------------------------------------------------
    def _p(self, *parts: str | int) -> str:
        return "/".join([self.root, *map(str, parts)])

    def _write_atomic(self, path: str, data: bytes) -> None:
        if self._local:
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
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(path, data)  # a single PUT is atomic on object stores

    def _read_json(self, path: str) -> dict[str, Any]:
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            raise
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: corrupt registry document ({exc})") from exc
        except OSError as exc:
            raise RegistryError(f"{path}: registry unreachable ({exc})") from exc

    # -- versions ----------------------------------------------------------
    def versions(self) -> list[int]:
        """Numbers of every complete (visible) version, ascending."""
        base = self._p("versions")
        try:
            if not self.fs.exists(base):
                return []
            entries = self.fs.ls(base, detail=False)
        except OSError as exc:
            raise RegistryError(f"registry {self.uri!r}: unreachable ({exc})") from exc
        out = []
        for e in entries:
            name = e.rstrip("/").rsplit("/", 1)[-1]
            if name.isdigit() and self.fs.exists(f"{e.rstrip('/')}/metadata.json"):
                out.append(int(name))
        return sorted(out)

    def _claim(self) -> int:
        base = self._p("versions")
        self.fs.makedirs(base, exist_ok=True)
        taken = [int(e.rstrip("/").rsplit("/", 1)[-1]) for e in self.fs.ls(base, detail=False)
                 if e.rstrip("/").rsplit("/", 1)[-1].isdigit()]
        n = max(taken, default=0) + 1
        for _ in range(1000):
            path = self._p("versions", n)
            try:
                if self._local:
                    os.mkdir(path)  # exclusive: fails if another writer claimed n
                else:
                    if self.fs.exists(path):
                        raise FileExistsError(path)
                    self.fs.makedirs(path, exist_ok=False)
                return n
            except FileExistsError:
                n += 1
        raise RegistryError(f"registry {self.uri!r}: could not claim a version number")

    def register(self, model_dir: str | Path, metadata: dict[str, Any]) -> int:
        """Copy a model folder into a new version with ``metadata``; return its number."""
        src = Path(model_dir)
        if not (src / "model.json").is_file():
            raise RegistryError(f"{src}: not a model folder (model.json missing); nothing registered")
        n = self._claim()
        dest = self._p("versions", n, "model")
        try:
            self.fs.put(str(src), dest, recursive=True)
            # fsspec may nest the folder when the destination exists; normalise
            if not self.fs.exists(f"{dest}/model.json"):
                raise RegistryError(f"{dest}: model copy incomplete")
            meta = {**metadata, "version": n, "model_name": self.name, "registered_at": _now()}
            self._write_atomic(self._p("versions", n, "metadata.json"),
                               json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
        except OSError as exc:
            raise RegistryError(f"registry {self.uri!r}: registering version {n} failed ({exc})") from exc
        return n

    def get(self, ref: int | str) -> ModelVersion:
        """Look up a version by number or alias (``champion``, ``previous``)."""
        version = self.resolve(ref)
        path = self._p("versions", version, "metadata.json")
        try:
            meta = self._read_json(path)
        except FileNotFoundError as exc:
            raise VersionNotFoundError(f"registry {self.uri!r}: model {self.name!r} has no version {version}") from exc
        return ModelVersion(version, meta, self._p("versions", version, "model"))

    def resolve(self, ref: int | str) -> int:
        """Turn a version number or alias name into a version number."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return int(ref)
        alias = self.alias(str(ref))
        if alias is None:
            raise VersionNotFoundError(f"registry {self.uri!r}: model {self.name!r} has no {ref!r} alias")
        return alias

    def local_model_dir(self, ref: int | str, cache_dir: str | Path | None = None) -> Path:
        """A local folder holding the version's model (downloaded for remote storage)."""
        mv = self.get(ref)
        if self._local:
            return Path(mv.model_uri)
        target = Path(cache_dir or tempfile.mkdtemp(prefix="ctloop-model-")) / f"{self.name}-{mv.version}"
        if not (target / "model.json").exists():
            self.fs.get(mv.model_uri, str(target), recursive=True)
        return target

    # -- aliases -----------------------------------------------------------
    def alias(self, name: str) -> int | None:
        """The version an alias points at, or ``None``."""
        try:
            doc = self._read_json(self._p("aliases", f"{name}.json"))
        except FileNotFoundError:
            return None
        v = doc.get("version")
        if not isinstance(v, int):
            raise RegistryError(f"{self._p('aliases', name + '.json')}: alias has no integer version")
        return v

    def alias_doc(self, name: str) -> dict[str, Any] | None:
        """The full alias document, or ``None``."""
        try:
            return self._read_json(self._p("aliases", f"{name}.json"))
        except FileNotFoundError:
            return None

    def set_alias(self, name: str, version: int, reason: str = "") -> None:
        """Point ``name`` at ``version`` (atomically)."""
        if version not in self.versions():
            raise VersionNotFoundError(f"registry {self.uri!r}: model {self.name!r} has no version {version}")
        doc = {"alias": name, "version": version, "updated_at": _now(), "reason": reason,
               "id": uuid.uuid4().hex}
        self._write_atomic(self._p("aliases", f"{name}.json"), json.dumps(doc, indent=2).encode())

    def promote(self, version: int, reason: str = "") -> int | None:
        """Make ``version`` the champion; the old champion becomes ``previous``. Returns the old one."""
        old = self.alias("champion")
        if old == version:
            return old
        if version not in self.versions():
            raise VersionNotFoundError(f"registry {self.uri!r}: model {self.name!r} has no version {version}")
        if old is not None:
            self.set_alias("previous", old, f"replaced by version {version}")
        self.set_alias("champion", version, reason)
        return old

    def snapshot(self) -> dict[str, Any]:
        """Versions and aliases, for listing and for proving nothing changed."""
        return {"versions": self.versions(), "aliases": {a: self.alias(a) for a in ALIASES}}
