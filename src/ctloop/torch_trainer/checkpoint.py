"""Checkpoints on any fsspec URI (local folder, PVC path, object store), written atomically.

A checkpoint file is ``MAGIC + sha256(payload) + payload`` where the payload is ``torch.save`` of a
dict of tensors and plain values. Local files are written to a temp file, fsynced and renamed; object
stores get one ``put`` of the whole object (atomic per object). On load, the newest file whose digest
verifies wins; a corrupt or partial one is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fsspec

from ctloop.errors import ModelError

log = logging.getLogger(__name__)

MAGIC = b"CTLCKPT1"
NAME_RE = re.compile(r"ckpt-(\d{10})\.pt$")


def _encode(state: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def _decode(data: bytes) -> dict[str, Any]:
    import torch

    if len(data) < len(MAGIC) + 32 or not data.startswith(MAGIC):
        raise ValueError("bad header (not a ctloop checkpoint, or truncated)")
    digest, payload = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError("checksum mismatch (partial or corrupt write)")
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError("payload is not a mapping")
    return state


def snapshot(obj: Any) -> Any:
    """A deep copy of a state tree with every tensor cloned to CPU (safe to write in the background)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snapshot(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(snapshot(v) for v in obj)
    return obj


@dataclass
class Loaded:
    """A checkpoint read back: its step, where it came from and its state."""

    step: int
    path: str
    state: dict[str, Any]


class CheckpointStore:
    """Numbered checkpoints in one folder of an fsspec file system.

    Args:
        uri: Folder URI or path (``/mnt/checkpoints/run``, ``s3://bucket/ckpt/run``).
        keep: How many newest checkpoints to keep (at least 2, so a corrupt newest one has a fallback).
    """

    def __init__(self, uri: str, keep: int = 3) -> None:
        try:
            self.fs, self.root = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise ModelError(f"training.checkpoint_uri {uri!r}: unsupported location ({exc})") from exc
        self.uri = uri
        self.keep = max(2, keep)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[str] | None = None

    def _path(self, step: int) -> str:
        return f"{self.root.rstrip('/')}/ckpt-{step:010d}.pt"

    def steps(self) -> list[int]:
        """Steps of the checkpoints present, newest first."""
        try:
            names = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        found = [int(m.group(1)) for n in names if (m := NAME_RE.search(str(n)))]
        return sorted(found, reverse=True)

    def save_async(self, step: int, state: dict[str, Any]) -> None:
        """Snapshot ``state`` now and write it on a background thread (one write in flight at most).

        A kill during the write leaves at most a temp file or a partial object that fails its digest;
        the previous checkpoint stays valid. Errors surface on the next save or :meth:`flush`.
        """
        self.flush()
        frozen = snapshot(state)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctloop-ckpt")
        self._pending = self._pool.submit(self.save, step, frozen)

    def flush(self) -> None:
        """Wait for the background write, if any; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Flush and stop the writer thread."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def save(self, step: int, state: dict[str, Any]) -> str:
        """Write the checkpoint for ``step`` atomically and prune old ones; return its path.

        Raises:
            ModelError: When the location cannot be written.
        """
        data = _encode(state)
        path = self._path(step)
        try:
            if self.local:
                os.makedirs(self.root, exist_ok=True)
                tmp = f"{self.root.rstrip('/')}/.ckpt-{step:010d}.{os.getpid()}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            else:
                self.fs.makedirs(self.root, exist_ok=True)
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise ModelError(
                f"training.checkpoint_uri {self.uri!r}: cannot write checkpoint ({exc})") from exc
        self._prune()
        return path

    def _prune(self) -> None:
        for old in self.steps()[self.keep:]:
            try:
                self.fs.rm(self._path(old))
            except OSError as exc:  # pruning is best effort; the next save retries
                log.warning("could not remove old checkpoint %s: %s", self._path(old), exc)

    def load_latest(self) -> Loaded | None:
        """The newest checkpoint that verifies, or ``None``; corrupt ones are skipped with a warning."""
        for step in self.steps():
            path = self._path(step)
            try:
                data = self.fs.cat_file(path)
                return Loaded(step, path, _decode(data))
            except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is skipped, never fatal
                log.warning("skipping corrupt checkpoint %s: %s", path, exc)
        return None
