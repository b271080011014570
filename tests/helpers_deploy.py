"""A deploy child process for crash-ordering tests.

``python -m tests.helpers_deploy CONFIG VERSION RUN_ID PAUSE_AT`` runs the real ``deploy_version`` and
prints ``CLAIMED``, ``DELIVERED`` and ``COMMITTED`` as it passes each step; at ``PAUSE_AT`` (one of
``claimed``, ``delivered``, ``committed``) it stops there (sleeps) so the test can kill it with SIGKILL.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def main(config: str, version: str, run_id: str, pause_at: str) -> None:
    """Deploy ``version`` with markers (and a pause) between the steps."""
    import ctloop.deploy as deploy
    from ctloop.config import load_config
    from ctloop.registry import Registry

    def mark(step: str) -> None:
        print(step.upper(), flush=True)
        if step == pause_at:
            time.sleep(3600)

    real_deliver = deploy.deliver
    real_commit = Registry.commit_promotion

    def deliver(*args: Any, **kwargs: Any) -> dict[str, Any]:
        mark("claimed")
        out = real_deliver(*args, **kwargs)
        mark("delivered")
        return out

    def commit(self: Registry, claim_id: str) -> bool:
        out = real_commit(self, claim_id)
        mark("committed")
        return out

    deploy.deliver = deliver  # type: ignore[assignment]
    Registry.commit_promotion = commit  # type: ignore[method-assign]
    print("DONE", deploy.deploy_version(load_config(config), int(version), run_id), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
