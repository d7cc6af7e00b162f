"""The one error base of the pipeline: problems a user can fix, printed as one line, never as a traceback.

Every message says what happened and what to do (free disk space, pass another path, set an
environment variable). `hsp` maps `PipelineError` once, in its root group (`pipeline.cli`): the
message on stderr as ``Error: ...`` and the class's `exit_code`. Kinds, by what the user fixes:

    PipelineError            exit 1   the base
    ├── ConfigError          exit 2   an option, config value or job YAML key that makes no sense
    ├── InputError           exit 1   the manifest, the tar input, a models file cannot be used as given
    ├── OutputError          exit 1   the output folder: another job's, in use, unwritable, not an output,
    │                                 or written by a newer version (schema_version)
    ├── ModelError           exit 1   a checkpoint, the weights or a model back end cannot be loaded
    ├── ClusterError         exit 1   the Ray cluster cannot be joined or cannot give what a stage needs
    ├── StageContractError   exit 1   a job's stages do not fit together (a key read but never written)
    └── JobFailedError       exit 1   the job stopped on an error that is not one row's (finished shards kept)

Rows that fail (undecodable audio, a text too long) are not errors of the job: they become rows of
the errors table. Classes that were ValueError/RuntimeError before keep that base too, so library
callers catching those still catch them.

This module imports nothing from the pipeline: every room may raise these.
"""

from __future__ import annotations

from typing import ClassVar


class PipelineError(Exception):
    """A problem with the user's input, options, output or environment; `str()` says what to do."""

    exit_code: ClassVar[int] = 1


class ConfigError(PipelineError, ValueError):
    """An option or config value is invalid (exit 2, like click's usage errors)."""

    exit_code: ClassVar[int] = 2


class InputError(PipelineError, ValueError):
    """The job's input (manifest, tar shards, a models file) cannot be used as given."""


class OutputError(PipelineError, RuntimeError):
    """The output folder cannot be used: another job's, in use, not writable, not a job output, or too new."""


class ModelError(PipelineError):
    """A checkpoint, the model weights or a model back end cannot be loaded on the driver."""


class ClusterError(PipelineError, RuntimeError):
    """The Ray cluster cannot be joined, or cannot give a stage what it asks for."""


class StageContractError(PipelineError):
    """A job's stage list does not fit together: a stage reads a key no earlier stage writes."""


class JobFailedError(PipelineError, RuntimeError):
    """The job stopped on an error that is not a per-row problem (e.g. a model failed to load)."""

