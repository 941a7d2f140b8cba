"""Every exception the library raises on purpose.

Library code raises these and never prints or exits; the CLIs (``audit.cli``, ``redteam.cli``)
catch ``AuditError`` in one place, print one line to stderr and exit with ``exit_code``.

    AuditError                      exit 2: anything the user must fix or know
    ├── InvalidParameterError       a parameter out of its allowed range / set
    ├── UnknownNameError            a registry lookup of a name that is not registered
    ├── DataError                   input data that cannot be used
    │   ├── EmptyDatasetError       nothing readable where images were expected
    │   ├── UnsupportedFormatError  a path whose format no reader understands
    │   ├── UnsafePickleError       a pickle that asks for anything but plain arrays
    │   └── ShapeMismatchError      image sets whose shapes/channels/ids do not agree
    ├── CheckpointError             a checkpoint or stored index that is missing or corrupt
    ├── PredictionsError            a recorded-predictions file that cannot be scored
    ├── OutputError                 an output path that must not or cannot be written (also an OSError)
    └── RunInterrupted              exit 130: Ctrl-C / SIGTERM, after saving what resumes the run
                                    (also a KeyboardInterrupt)

Exit codes (documented in docs/cli.md): 0 success / gate passed, 1 gate failed (findings at or
above ``--fail-on``), 2 usage or runtime error, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class AuditError(Exception):
    """Base class: a message meant for the user, and the exit code the CLI uses for it."""

    exit_code = EXIT_ERROR


class InvalidParameterError(AuditError, ValueError):
    """A parameter outside what is allowed.

    Build messages with :func:`invalid_parameter` so they all read the same way.
    """


class UnknownNameError(AuditError, KeyError):
    """A registry lookup of an unregistered name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(AuditError):
    """Input data that cannot be used as it is."""


class EmptyDatasetError(DataError):
    """No readable image where at least one was expected."""


class UnsupportedFormatError(DataError):
    """No reader understands this path."""


class UnsafePickleError(DataError):
    """A pickle stream asked for a global outside the allow-list of the real file format."""


class ShapeMismatchError(DataError):
    """Image sets that must agree in shape, channels or ids do not."""


class CheckpointError(AuditError):
    """A checkpoint or stored index that is missing, truncated or written by something else."""


class PredictionsError(AuditError):
    """Recorded predictions that cannot be scored honestly (NaNs, wrong shape, too few records)."""


class OutputError(AuditError, OSError):
    """An output that would land on an audited input or replace something that is not a regular
    file, or a write that failed (disk full, read-only folder). The message names the target the
    user gave, never a temporary file; still an ``OSError`` for callers that catch those."""


class RunInterrupted(AuditError, KeyboardInterrupt):
    """SIGINT/SIGTERM stopped a run at a clean point, after saving what resumes it (the message
    says where). Still a ``KeyboardInterrupt`` for callers that catch those."""

    exit_code = EXIT_INTERRUPTED


def invalid_parameter(name: str, owner: str, allowed: str, got: object) -> InvalidParameterError:
    """scikit-learn style message: ``The 'ratio' parameter of inject must be a float in (0, 0.5]. Got 2.0 instead.``"""
    return InvalidParameterError(
        f"The '{name}' parameter of {owner} must be {allowed}. Got {got!r} instead."
    )
