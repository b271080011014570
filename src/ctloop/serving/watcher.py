"""Follows the registry's ``champion`` alias and hot-swaps the served model when it moves."""

from __future__ import annotations

import logging
import threading

from ctloop.errors import ArtifactIntegrityError
from ctloop.registry import Registry
from ctloop.serving.model import CtloopModel

log = logging.getLogger("ctloop.serving.watcher")


class ChampionWatcher:
    """Polls ``registry.alias("champion")`` every ``poll_seconds`` in a daemon thread.

    A new champion is loaded beside the current model, smoke-tested and swapped in
    (:meth:`CtloopModel.swap`). A refused version is not retried until the alias moves again.
    """

    def __init__(self, registry: Registry, model: CtloopModel, poll_seconds: float) -> None:
        self.registry = registry
        self.model = model
        self.poll_seconds = poll_seconds
        self.refused: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> bool:
        """Look at the alias now; return True when a new version was swapped in."""
        try:
            version = self.registry.alias("champion")
        except Exception as exc:  # an unreachable registry must not stop serving
            log.warning("registry %s: cannot read the champion alias (%s); keep serving",
                        self.registry.uri, exc)
            return False
        current = self.model._served.version if self.model._served else None
        if version is None or version == current or version == self.refused:
            return False
        try:
            model_dir = self.registry.local_model_dir(version)
        except Exception as exc:
            log.error("registry %s: cannot fetch version %s (%s); keep serving %s", self.registry.uri,
                      version, exc, current)
            self.model.metrics.swap_failures.inc()
            if isinstance(exc, ArtifactIntegrityError):
                self.model.metrics.artifacts_rejected.inc()
            self.refused = version
            return False
        if self.model.swap(model_dir, version):
            self.refused = None
            return True
        self.refused = version
        return False

    def start(self) -> ChampionWatcher:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="ctloop-champion-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check_once()
