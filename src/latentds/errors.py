"""Errors a user can act on. The CLI prints the message alone and exits with code 2."""


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
