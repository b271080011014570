"""KFP components of the training pipeline: thin wrappers over :mod:`ctloop.steps`.

Component functions are plain module-level functions; :func:`build_components` turns them into KFP
components for a given runtime image, so the image comes from the project config.
"""

from components.training import DEFAULT_IMAGE, Components, build_components

__all__ = ["DEFAULT_IMAGE", "Components", "build_components"]
