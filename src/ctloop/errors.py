"""Typed errors. Each says what was wrong, where, and what to do."""

from __future__ import annotations


class CtloopError(Exception):
    """Base of every ctloop error."""

    exit_code: int = 1


class ConfigError(CtloopError, ValueError):
    """The project configuration is missing or invalid."""

    exit_code = 2


class DataError(CtloopError, ValueError):
    """The data source is empty, unreadable or malformed."""

    exit_code = 3


class DataValidationError(DataError):
    """A batch failed the data validation gate."""

    exit_code = 3


class SchemaError(ConfigError):
    """The schema file is missing or invalid."""

    exit_code = 2


class ModelError(CtloopError, RuntimeError):
    """A model artifact could not be trained, saved or loaded."""


class RegistryError(CtloopError, RuntimeError):
    """The model registry is unreachable, corrupt, or the request cannot be met."""


class VersionNotFoundError(RegistryError, LookupError):
    """A registry version or alias does not exist."""


class PipelineRunError(CtloopError, RuntimeError):
    """A pipeline run failed for a reason other than bad data."""


class TriggerError(CtloopError, RuntimeError):
    """A trigger could not be recorded, decided or submitted."""


class SubmitError(TriggerError):
    """A pipeline run could not be submitted (the trigger stays in the ledger with the error)."""


class TriggerNotFoundError(TriggerError, LookupError):
    """No trigger with this id in the ledger (HTTP 404)."""


class CancelConflictError(TriggerError):
    """The trigger has no run to cancel: it was suppressed, or its run already ended (HTTP 409)."""


class DeployError(CtloopError, RuntimeError):
    """A promoted version could not be delivered to serving (GitOps push, Kubernetes patch)."""


class DriftError(CtloopError, RuntimeError):
    """The drift watcher cannot build or use its reference (profile missing, corrupt or mismatched)."""


class EventError(CtloopError, ValueError):
    """A payload event is malformed (bad CloudEvent, unknown body layout, wrong types)."""


class TrainingInterrupted(ModelError):
    """Training stopped on SIGTERM after writing a checkpoint; a retry resumes from it."""

    exit_code = 143


class DemoError(CtloopError, RuntimeError):
    """``ctloop demo``: a process did not start, or the loop did not close in time (see the named log)."""


class RegistryStoreError(RegistryError, ConfigError):
    """``registry.uri`` names a store the registry cannot keep consistent (no conditional writes)."""

    exit_code = 2


class StoreError(CtloopError, RuntimeError):
    """The prediction store cannot be opened, read or written (nothing of the failed batch is recorded)."""


class LabelError(CtloopError, ValueError):
    """A batch of labels is malformed (the message names the row index); nothing of it is recorded."""

    exit_code = 3


class FastPathError(ModelError):
    """A model cannot be compiled to the fast inference path (it is served on the reference path)."""


class ArtifactIntegrityError(RegistryError, ModelError):
    """A model artifact does not match the digest recorded for it; it was not deserialised."""


class PartitionTypeError(DataError):
    """Partition files hold columns whose type differs from the schema (``mismatches`` lists each one:
    partition, file, column, expected and found types, a sample value)."""

    def __init__(self, message: str, mismatches: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.mismatches = mismatches


class BacktestError(ConfigError):
    """``ctloop backtest``: a bad policy spec, date range or stream (e.g. without labels); names the bad part."""

    exit_code = 2
