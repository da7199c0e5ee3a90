"""Errors a user can act on. The CLI prints the message alone and exits with code 2; ``first_line`` quotes a
foreign error inside such a one-line message."""


class LatentdsError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class InvalidParameterError(LatentdsError, ValueError):
    """A parameter is out of range or of the wrong kind."""


class OutputDirectoryError(LatentdsError):
    """The output directory cannot be used (not writable, or holds other data)."""


class GLUnavailableError(LatentdsError):
    """No headless OpenGL platform could be started."""


class ShardError(LatentdsError):
    """A shard set is missing, incomplete or fails verification."""


class DatasetLayoutError(LatentdsError):
    """A dataset root is missing or not laid out as the dataset's loader expects."""


class DirectoryBusyError(OutputDirectoryError):
    """Another live process holds the lock on a directory latentds writes (see latentds.shardsets.lock)."""


class DamagedSampleError(ShardError):
    """One sample of a shard cannot be decoded (a damaged member); the stream skips it, or raises when strict."""


class CacheError(LatentdsError):
    """Saved intermediate results (such as encoded latents) are damaged or do not belong together."""


class HubError(LatentdsError):
    """A model could not be fetched from or pushed to the Hugging Face Hub."""


class DivergedError(LatentdsError):
    """Training met a NaN or infinite loss term, gradient or weight (see latentds.zoo.finite); the run keeps its last
    finite checkpoint."""


class LostRankError(LatentdsError):
    """Another rank of a torchrun job stopped answering (it died, or hangs); see latentds.zoo.agreement."""


class RegistrationError(LatentdsError, TypeError):
    """A class registers itself under an invalid or taken name (see latentds.registry). Raised while the class
    statement runs, so it is also a TypeError, as a bad class definition is."""


class UnknownNameError(InvalidParameterError):
    """A name nothing is registered under (see latentds.registry); the message lists the choices."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (its class name if it has none), at most ``limit``
    characters: how a foreign error (a library's, the OS's) is quoted inside a one-line message."""
    line = next((part.strip() for part in str(error).splitlines() if part.strip()), type(error).__name__)
    return line if len(line) <= limit else line[:limit - 1] + "…"
