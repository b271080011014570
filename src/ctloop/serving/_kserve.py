"""Import ``kserve`` so that its import-time argument parser does not see the ctloop command line.

KServe 0.21 runs ``argparse.parse_known_args()`` on ``sys.argv`` when ``kserve.model_server`` is first
imported; with abbreviations allowed, ctloop's ``--config F`` would be taken for its
``--configure_logging`` and abort. Call :func:`import_kserve` before any ``kserve`` import in ctloop.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_kserve() -> ModuleType:
    """Import ``kserve`` (and ``kserve.model_server``) with a neutral ``sys.argv``; return ``kserve``."""
    if "kserve.model_server" not in sys.modules:
        argv = sys.argv
        sys.argv = argv[:1]
        try:
            import kserve.model_server  # noqa: F401
        finally:
            sys.argv = argv
    return sys.modules["kserve"]
