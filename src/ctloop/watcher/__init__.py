"""Drift watcher service: payload events in, drift metrics out."""

from ctloop.watcher.app import build_app
from ctloop.watcher.state import WatcherState, load_reference

__all__ = ["WatcherState", "build_app", "load_reference"]
