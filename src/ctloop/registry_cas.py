"""Conditional writes for the registry: create-if-absent and replace-if-unchanged on each store.

A :class:`CasStore` reads a document together with a *token* (S3 ETag, GCS generation, or a content hash
on a local folder) and writes only when the document is still absent or still carries that token:

- S3 (``s3://``): ``PutObject`` with ``If-None-Match: *`` and ``If-Match: <etag>``; ``DeleteObject``
  with ``If-Match`` (boto3, configured like s3fs from the environment and ``AWS_ENDPOINT_URL``).
- GCS (``gs://``, ``gcs://``): ``ifGenerationMatch`` (0 for create) through google-cloud-storage.
- Local folders: the registry's ``flock`` serialises writers; these operations run under it.
- Anything else only with ``registry.single_writer: true`` (check-then-write, documented as unsafe
  for concurrent writers); otherwise :func:`cas_store` refuses the URI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from ctloop.errors import RegistryError, RegistryStoreError

S3_PROTOCOLS = ("s3", "s3a")
GCS_PROTOCOLS = ("gs", "gcs")
LOCAL_PROTOCOLS = ("file", "local")


class CasStore(Protocol):
    """Conditional document operations on one store (paths as fsspec gives them, without protocol)."""

    kind: str

    def read(self, path: str) -> tuple[bytes, str] | None:
        """The document and its token, or ``None`` when absent."""
        ...

    def create(self, path: str, data: bytes) -> bool:
        """Write ``data`` only if ``path`` is absent; False when it exists."""
        ...

    def replace(self, path: str, data: bytes, token: str) -> bool:
        """Write ``data`` only if ``path`` still carries ``token``; False otherwise."""
        ...

    def delete(self, path: str, token: str) -> bool:
        """Delete ``path`` only if it still carries ``token``; False otherwise (also when absent)."""
        ...


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return tuple(p) if isinstance(p, tuple | list) else (str(p),)


def cas_store(fs: Any, uri: str, single_writer: bool = False) -> CasStore:
    """The conditional-write store for an fsspec filesystem.

    Raises:
        RegistryStoreError: The store offers no conditional writes and ``single_writer`` is not set
            (a configuration error: exit 2).
    """
    protos = _protocols(fs)
    if any(p in LOCAL_PROTOCOLS for p in protos):
        return LocalCas(fs)
    if any(p in S3_PROTOCOLS for p in protos):
        return S3Cas(fs)
    if any(p in GCS_PROTOCOLS for p in protos):
        return GcsCas(fs)
    if single_writer:
        return SingleWriterCas(fs)
    raise RegistryStoreError(
        f"registry.uri {uri!r}: this store ({'/'.join(protos)}) offers no conditional writes, so "
        "concurrent registrations and promotions could overwrite each other; use a local folder, s3:// "
        "or gs://, or set registry.single_writer: true if only one process ever writes this registry")


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class _HashCas(ABC):
    """Check-then-write with the content's SHA-256 as the token: safe only while the caller is the one
    writer (the registry's flock on a local folder, or ``registry.single_writer``)."""

    kind: str

    @abstractmethod
    def _load(self, path: str) -> bytes:
        """The document's bytes (FileNotFoundError when absent)."""

    @abstractmethod
    def _exists(self, path: str) -> bool:
        """Whether ``path`` exists."""

    @abstractmethod
    def _write(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` (replacing it)."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Delete ``path`` (FileNotFoundError when already gone)."""

    def read(self, path: str) -> tuple[bytes, str] | None:
        """The document and the SHA-256 of its bytes."""
        try:
            data = self._load(path)
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def _holds(self, path: str, token: str) -> bool:
        cur = self.read(path)
        return cur is not None and cur[1] == token

    def create(self, path: str, data: bytes) -> bool:
        """Write unless present."""
        if self._exists(path):
            return False
        self._write(path, data)
        return True

    def replace(self, path: str, data: bytes, token: str) -> bool:
        """Write when the content hash still matches."""
        if not self._holds(path, token):
            return False
        self._write(path, data)
        return True

    def delete(self, path: str, token: str) -> bool:
        """Delete when the content hash still matches."""
        if not self._holds(path, token):
            return False
        with contextlib.suppress(FileNotFoundError):
            self._remove(path)
        return True


class LocalCas(_HashCas):
    """Local folder: the caller holds the registry's flock (which makes check-then-write safe)."""

    kind = "local"

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def _load(self, path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def _exists(self, path: str) -> bool:
        return os.path.exists(path)

    def _write(self, path: str, data: bytes) -> None:
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename survives a power loss
        finally:
            os.close(dfd)

    def _remove(self, path: str) -> None:
        os.unlink(path)


class S3Cas:
    """S3 conditional requests through boto3 (configured from the s3fs filesystem and environment)."""

    kind = "s3"

    def __init__(self, fs: Any) -> None:
        try:
            import boto3
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as exc:
            raise RegistryError("s3:// registries need boto3 for conditional writes "
                                "(pip install boto3 s3fs)") from exc
        self._error = ClientError
        self._boto_error = BotoCoreError
        ck = dict(getattr(fs, "client_kwargs", None) or {})
        endpoint = ck.get("endpoint_url") or getattr(fs, "endpoint_url", None) or os.environ.get(
            "AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, Any] = {k: v for k, v in ck.items() if k in ("region_name", "verify")}
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if getattr(fs, "key", None):
            kwargs.update(aws_access_key_id=fs.key, aws_secret_access_key=fs.secret,
                          aws_session_token=getattr(fs, "token", None))
        self.client = boto3.session.Session().client("s3", **kwargs)

    def _code(self, exc: Any) -> tuple[str, int]:
        err = exc.response.get("Error", {})
        return str(err.get("Code", "")), int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))

    def _fail(self, what: str, path: str, exc: Exception) -> RegistryError:
        return RegistryError(f"s3://{path}: {what} failed ({exc}); check the bucket, credentials and "
                             "AWS_ENDPOINT_URL")

    def read(self, path: str) -> tuple[bytes, str] | None:
        """GetObject: body and ETag in one response."""
        bucket, key = _split(path)
        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
            return resp["Body"].read(), str(resp["ETag"])
        except self._error as exc:
            if self._code(exc)[0] in ("NoSuchKey", "404") or self._code(exc)[1] == 404:
                return None
            raise self._fail("read", path, exc) from exc
        except self._boto_error as exc:
            raise self._fail("read", path, exc) from exc

    def _conditional(self, what: str, path: str, call: Callable[[], object],
                     lost: Callable[[str, int], bool]) -> bool:
        """Send one conditional request: True when S3 took it, False when ``lost(code, status)`` says
        its precondition no longer holds; any other failure is a RegistryError."""
        try:
            call()
            return True
        except self._error as exc:
            if lost(*self._code(exc)):
                return False
            raise self._fail(what, path, exc) from exc
        except self._boto_error as exc:
            raise self._fail(what, path, exc) from exc

    def _put(self, path: str, data: bytes, **cond: str) -> bool:
        bucket, key = _split(path)

        def lost(code: str, status: int) -> bool:
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return True
            return "IfMatch" in cond and (status == 404 or code == "NoSuchKey")

        return self._conditional("conditional write", path,
                                 lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data, **cond), lost)

    def create(self, path: str, data: bytes) -> bool:
        """PutObject with ``If-None-Match: *``."""
        return self._put(path, data, IfNoneMatch="*")

    def replace(self, path: str, data: bytes, token: str) -> bool:
        """PutObject with ``If-Match: <etag>``."""
        return self._put(path, data, IfMatch=token)

    def delete(self, path: str, token: str) -> bool:
        """DeleteObject with ``If-Match: <etag>``."""
        bucket, key = _split(path)
        return self._conditional(
            "conditional delete", path, lambda: self.client.delete_object(Bucket=bucket, Key=key, IfMatch=token),
            lambda code, status: status in (404, 409, 412) or code in ("PreconditionFailed", "NoSuchKey"))


class GcsCas:
    """GCS preconditions (``ifGenerationMatch``) through google-cloud-storage."""

    kind = "gcs"

    def __init__(self, fs: Any) -> None:
        try:
            from google.api_core import exceptions as gexc
            from google.cloud import storage
        except ImportError as exc:
            raise RegistryError("gs:// registries need google-cloud-storage for conditional writes "
                                "(pip install google-cloud-storage gcsfs)") from exc
        self._gexc = gexc
        project = getattr(fs, "project", None)
        self.client = storage.Client(project=project) if project else storage.Client()

    def _blob(self, path: str) -> Any:
        bucket, key = _split(path)
        return self.client.bucket(bucket).blob(key)

    def read(self, path: str) -> tuple[bytes, str] | None:
        """The object's bytes at its current generation (re-read when it changes meanwhile)."""
        bucket, key = _split(path)
        for _ in range(10):
            try:
                blob = self.client.bucket(bucket).get_blob(key)
                if blob is None:
                    return None
                data = blob.download_as_bytes(if_generation_match=blob.generation)
                return data, str(blob.generation)
            except (self._gexc.NotFound, self._gexc.PreconditionFailed):
                continue  # deleted or replaced between the two requests: look again
            except self._gexc.GoogleAPIError as exc:
                raise RegistryError(f"gs://{path}: read failed ({exc})") from exc
        raise RegistryError(f"gs://{path}: the object keeps changing while being read; retry")

    def _conditional(self, what: str, path: str, call: Callable[[], bool]) -> bool:
        """``call()``; False when GCS says its precondition no longer holds (or the object is gone);
        any other failure is a RegistryError."""
        try:
            return call()
        except (self._gexc.PreconditionFailed, self._gexc.NotFound):
            return False
        except self._gexc.GoogleAPIError as exc:
            raise RegistryError(f"gs://{path}: {what} failed ({exc})") from exc

    def _upload(self, path: str, data: bytes, generation: int) -> bool:
        def upload() -> bool:
            self._blob(path).upload_from_string(data, if_generation_match=generation)
            return True

        return self._conditional("conditional write", path, upload)

    def create(self, path: str, data: bytes) -> bool:
        """Upload with ``ifGenerationMatch=0``."""
        return self._upload(path, data, 0)

    def replace(self, path: str, data: bytes, token: str) -> bool:
        """Upload with ``ifGenerationMatch=<generation>``."""
        return self._upload(path, data, int(token))

    def delete(self, path: str, token: str) -> bool:
        """Delete with ``ifGenerationMatch=<generation>`` (after checking it, for emulators that ignore it)."""
        bucket, key = _split(path)

        def delete() -> bool:
            blob = self.client.bucket(bucket).get_blob(key)
            if blob is None or str(blob.generation) != token:
                return False
            blob.delete(if_generation_match=int(token))
            return True

        return self._conditional("conditional delete", path, delete)


class SingleWriterCas(_HashCas):
    """Check-then-write through fsspec: correct only when one process writes the registry (not atomic
    against other writers)."""

    kind = "single_writer"

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def _load(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(path)
        return data

    def _exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def _write(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def _remove(self, path: str) -> None:
        self.fs.rm_file(path)
