"""Model serving: the champion behind a KServe model server with hot-swap and payload logging.

Modules: :mod:`.decode` (V1/V2 request parsing with field-naming errors), :mod:`.model` (the
``kserve.Model`` subclass and atomic swap), :mod:`.watcher` (follows the registry's champion alias),
:mod:`.payload` (batched CloudEvents payload logger), :mod:`.middleware` (body limit, status counter, event
capture), :mod:`.fast` (the compiled fast path beside the model), :mod:`.batching` (micro-batching),
:mod:`.server` (the server main), :mod:`.workers` (several server processes on one port) and
:mod:`.isvc` (the rendered InferenceService).
Nothing here imports ``kserve`` at import time of this package.
"""
