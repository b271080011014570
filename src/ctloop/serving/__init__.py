"""Model serving: the champion behind a KServe model server with hot-swap and payload logging.

Modules: :mod:`.decode` (V1/V2 request parsing with field-naming errors), :mod:`.model` (the
``kserve.Model`` subclass and atomic swap), :mod:`.watcher` (follows the registry's champion alias),
:mod:`.payload` (CloudEvents payload logger), :mod:`.middleware` (body limit, status counter, event
capture), :mod:`.server` (the server main) and :mod:`.isvc` (the rendered InferenceService).
Nothing here imports ``kserve`` at import time of this package.
"""
