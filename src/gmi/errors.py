"""Typed errors. Every GmiError is a user-facing problem: the CLI prints its message on one
line and exits non-zero; anything else is a bug and keeps its traceback."""


class GmiError(Exception):
    """Base class for errors whose message is meant for the user."""

    exit_code = 1


class InvalidInputError(GmiError):
    """Bad images, metadata, names or arguments given by the user."""

    exit_code = 2


class PayloadTooLargeError(InvalidInputError):
    """An upload over a size limit (HTTP 413)."""


class NotFoundError(GmiError):
    """A model, registry or file that does not exist."""

    exit_code = 3


class ConflictError(GmiError):
    """The action clashes with the registry's state (name taken, other encoder preset)."""

    exit_code = 4


class CorruptSpecError(GmiError):
    """A specification file that cannot be read or fails its checksum."""

    exit_code = 5


class CorruptRegistryError(GmiError):
    """A registry database that is not one gmi can read (garbage, foreign, newer schema)."""

    exit_code = 5


class StorageError(GmiError):
    """The registry could not be written (full or read-only disk, permissions); the registry
    is left as it was."""

    exit_code = 7


class SearchEngineError(GmiError):
    """The registry's external vector database (Milvus) is unreachable or refused a request;
    the message names its URI. Identification waits for it; nothing is half-written."""

    exit_code = 8


class StoreUnavailableError(GmiError):
    """The registry's database server (PostgreSQL, `--store`) is unreachable or refused the
    connection; the message names it (without its password). Nothing was changed."""

    exit_code = 9


class ClusterUnavailableError(GmiError):
    """The Ray cluster named by `--ray` cannot be reached; nothing was submitted."""

    exit_code = 10


class TaskLostError(GmiError):
    """The process running a submission task died (killed, out of memory) and its retries
    are spent: that model failed, the others go on."""


class UnknownPluginError(GmiError):
    """An encoder / interrogator / generator name that is not registered."""

    exit_code = 2


def already_exists(name: str) -> ConflictError:
    """The one message for a name clash, right for the CLI and for HTTP clients alike."""
    return ConflictError(
        f"model {name!r} already exists (to overwrite it: --replace on the command line, "
        "replace=true over HTTP)"
    )
