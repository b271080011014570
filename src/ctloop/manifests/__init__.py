"""Cluster manifests: the kustomize base (watcher and everything around it), overlays, Argo CD app.

:func:`render_cluster` renders this package's own files; :func:`render_kustomizations` runs after every
renderer and writes the ``kustomization.yaml`` files from the full set of rendered files, so objects
that other renderers add to ``base/`` (InferenceService, PrometheusRule, ...) are picked up.
"""

from __future__ import annotations

from ctloop.config import ProjectConfig
from ctloop.manifests.base import render_base
from ctloop.manifests.overlays import render_kustomizations, render_overlays

__all__ = ["render_cluster", "render_kustomizations"]


def render_cluster(cfg: ProjectConfig) -> dict[str, str]:
    """Renderer for ``ctloop manifests render``: base objects, overlay patches, Argo CD Application."""
    return {**render_base(cfg), **render_overlays(cfg)}
