"""``serving.logger.sender: process``: the payload sender in a child process, fed through a pipe.

The server's :meth:`ProcessPayloadLogger.emit` writes each pair as one length-prefixed frame (five
little-endian uint32 lengths, then the id, time, original id, request and response bytes) to the
non-blocking write end of a pipe. A child process (``spawn``) reads the frames and runs the ordinary
:class:`~ctloop.serving.payload.PayloadLogger` (the same batching, ``_send``, bearer token and counted
drops), so building batches and POSTing them costs another core, not the server's. A full pipe drops the
pair (``events_dropped{reason="queue_full"}``), a dead child drops it as ``sender_down``; neither blocks nor
fails a request. The child reports its counters' totals back over a second pipe (at most every
:data:`REPORT_SECONDS` and when it ends); a thread of the server adds the differences to the server's own
counters, so ``/metrics`` shows them. :meth:`ProcessPayloadLogger.stop` closes the pipe: the child drains it,
flushes, reports and exits (killed if it outlives the timeout).

This module imports no ``prometheus_client`` at import time: the child drops ``PROMETHEUS_MULTIPROC_DIR``
(set in ``serving.workers`` processes) before importing it, so its private counters never reach the shared
multiprocess folder (the worker that owns the child counts what it reports).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import struct
import threading
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ctloop.config import PayloadLoggerConfig

if TYPE_CHECKING:
    from ctloop.serving.metrics import ServingMetrics
    from ctloop.serving.payload import EventContext

log = logging.getLogger("ctloop.serving.payload")

HEADER = struct.Struct("<IIIII")  # lengths: id, time, original id (NO_ORIGINAL: none), request, response
NO_ORIGINAL = 0xFFFFFFFF
REPORT_SECONDS = 0.25
PIPE_BYTES = 1 << 20  # asked for with F_SETPIPE_SZ (Linux); the kernel's default (64 KiB) otherwise
_READ_BYTES = 1 << 20


def encode_frame(event_id: str, time_: str, original_id: str | None, request: bytes, response: bytes) -> bytes:
    """One pair as a frame: the five lengths, then the bytes."""
    i, t = event_id.encode(), time_.encode()
    o = b"" if original_id is None else original_id.encode()
    head = HEADER.pack(len(i), len(t), NO_ORIGINAL if original_id is None else len(o), len(request), len(response))
    return b"".join((head, i, t, o, request, response))


def decode_frames(buf: bytearray) -> list[tuple[str, str, str | None, bytes, bytes]]:
    """The complete frames at the start of ``buf`` (removed from it); a partial frame stays."""
    out = []
    pos = 0
    while len(buf) - pos >= HEADER.size:
        li, lt, lo, lq, lr = HEADER.unpack_from(buf, pos)
        size = HEADER.size + li + lt + (0 if lo == NO_ORIGINAL else lo) + lq + lr
        if len(buf) - pos < size:
            break
        p = pos + HEADER.size
        fields = []
        for n in (li, lt, 0 if lo == NO_ORIGINAL else lo, lq, lr):
            fields.append(bytes(buf[p:p + n]))
            p += n
        out.append((fields[0].decode(), fields[1].decode(), None if lo == NO_ORIGINAL else fields[2].decode(),
                    fields[3], fields[4]))
        pos += size
    del buf[:pos]
    return out


class ProcessPayloadLogger:
    """The server's side of the process sender: frames into a pipe, counters back from the child."""

    def __init__(self, cfg: PayloadLoggerConfig, ctx: EventContext, metrics: ServingMetrics,
                 token: str | None = None) -> None:
        if not cfg.url:
            raise ValueError("serving.logger.url is not set; payload logging needs a sink URL")
        from ctloop.serving.payload import stamp

        self.cfg, self.ctx, self.metrics, self._token = cfg, ctx, metrics, token
        self._stamp = stamp
        self._fd = -1
        self._pending: memoryview | None = None
        self._proc: Any = None
        self._results: Connection | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return None if self._proc is None else int(self._proc.pid)

    def start(self) -> ProcessPayloadLogger:
        """Start the child and the thread that reads its counters."""
        ctx = multiprocessing.get_context("spawn")
        frames_r, frames_w = ctx.Pipe(duplex=False)
        results_r, results_w = ctx.Pipe(duplex=False)
        c = self.ctx
        self._proc = ctx.Process(
            target=child_main, name="ctloop-payload-sender", daemon=True,
            args=(frames_r, results_w, self.cfg.model_dump_json(),
                  (c.inferenceservicename, c.namespace, c.component, c.endpoint), self._token))
        self._proc.start()
        frames_r.close()
        results_w.close()
        self._fd = os.dup(frames_w.fileno())
        frames_w.close()
        os.set_blocking(self._fd, False)
        _grow_pipe(self._fd)
        self._results = results_r
        self._reader = threading.Thread(target=self._read_results, name="ctloop-payload-results", daemon=True)
        self._reader.start()
        return self

    def emit(self, event_id: str, request: bytes, response: bytes, original_id: str | None = None) -> None:
        """Write one pair to the pipe; never blocks (a full pipe or a dead child drops and counts)."""
        try:
            safe_id, original, now = self._stamp(event_id, original_id)
            if self._pending is not None and not self._drain():
                self._drop("queue_full")
                return
            frame = encode_frame(safe_id, now, original, request, response)
            n = os.write(self._fd, frame)
        except BlockingIOError:
            self._drop("queue_full")
            return
        except OSError:  # the child is gone (EPIPE) or the logger stopped (EBADF)
            self._drop("sender_down")
            return
        except Exception:  # never fail a request
            self._drop("error")
            log.exception("payload logger: cannot frame id %r", event_id)
            return
        if n < len(frame):
            self._pending = memoryview(frame)[n:]

    def _drain(self) -> bool:
        """Write what is left of a partly written frame; True when nothing is left."""
        assert self._pending is not None
        try:
            n = os.write(self._fd, self._pending)
        except BlockingIOError:
            return False
        except OSError:
            self._pending = None
            self._drop("sender_down")
            return True
        self._pending = self._pending[n:] if n < len(self._pending) else None
        return self._pending is None

    def _drop(self, reason: str) -> None:
        self.metrics.events_dropped.labels(reason=reason).inc(2)

    def _read_results(self) -> None:
        """Add the child's counter totals (their growth since the last report) to the server's counters."""
        assert self._results is not None
        last: dict[str, float] = {}
        while True:
            try:
                totals: dict[str, float] = json.loads(self._results.recv_bytes())
            except (EOFError, OSError, ValueError):
                return
            for key, value in totals.items():
                delta = value - last.get(key, 0.0)
                if delta > 0:
                    self._counter(key).inc(delta)
            last = totals

    def _counter(self, key: str) -> Any:
        if key == "sent":
            return self.metrics.events_sent
        if key == "posts":
            return self.metrics.payload_posts
        return self.metrics.events_dropped.labels(reason=key.removeprefix("dropped:"))

    def stop(self, timeout: float = 5.0) -> None:
        """Close the pipe so that the child flushes and exits; kill it if it outlives ``timeout`` + 5 s."""
        if self._fd < 0:
            return
        deadline = time.monotonic() + timeout
        while self._pending is not None and not self._drain() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._pending is not None:
            self._pending = None
            self._drop("sender_down")
        os.close(self._fd)
        self._fd = -1
        self._proc.join(timeout + 5)
        if self._proc.is_alive():
            log.warning("payload sender (pid %s) did not stop in time; killed", self._proc.pid)
            self._proc.kill()
            self._proc.join(5)
        if self._reader is not None:
            self._reader.join(2)
        if self._results is not None:
            self._results.close()


def _grow_pipe(fd: int) -> None:
    """Ask for a :data:`PIPE_BYTES` pipe buffer (Linux only; best effort)."""
    import fcntl

    setsz = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsz is not None:
        try:
            fcntl.fcntl(fd, setsz, PIPE_BYTES)
        except OSError:
            log.debug("payload logger: kept the default pipe size")


def child_main(frames: Connection, results: Connection, cfg_json: str, ctx_fields: tuple[str, str, str, str],
               token: str | None) -> None:
    """The child: read frames into a :class:`PayloadLogger`, report its counters, flush at end of input."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # before prometheus_client is first imported
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop (it closes the pipe)
    from prometheus_client import CollectorRegistry

    from ctloop.serving.metrics import ServingMetrics
    from ctloop.serving.payload import EventContext, PayloadLogger, make_pair

    cfg = PayloadLoggerConfig.model_validate_json(cfg_json)
    metrics = ServingMetrics.create(CollectorRegistry())
    logger = PayloadLogger(cfg, EventContext(*ctx_fields), metrics, token=token).start()
    done = threading.Event()
    reporter = threading.Thread(target=_report_loop, args=(metrics, results, done), daemon=True)
    reporter.start()
    fd = frames.fileno()
    buf = bytearray()
    while chunk := os.read(fd, _READ_BYTES):
        buf += chunk
        for fields in decode_frames(buf):
            logger.put(make_pair(*fields))
    logger.stop(cfg.timeout_seconds + 5)
    done.set()
    reporter.join()
    _report(metrics, results, {})
    results.close()


def _report_loop(metrics: ServingMetrics, results: Connection, done: threading.Event) -> None:
    last: dict[str, float] = {}
    while not done.wait(REPORT_SECONDS):
        last = _report(metrics, results, last)


def _report(metrics: ServingMetrics, results: Connection, last: dict[str, float]) -> dict[str, float]:
    """Send the counters' totals when they changed since ``last``; the totals."""
    totals = {"sent": _total(metrics.events_sent), "posts": _total(metrics.payload_posts)}
    for family in metrics.events_dropped.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                totals[f"dropped:{s.labels['reason']}"] = s.value
    if totals != last:
        try:
            results.send_bytes(json.dumps(totals).encode())
        except OSError:
            pass  # the server is gone; nothing to report to
    return totals


def _total(counter: Any) -> float:
    return float(sum(s.value for f in counter.collect() for s in f.samples if s.name.endswith("_total")))
