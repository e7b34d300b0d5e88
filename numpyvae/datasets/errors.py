"""Exceptions raised by the data layer.

Every message says what was wrong *and* what the user can do about it, because
the usual reader of these errors is someone whose training script stopped
before the first epoch.
"""


class DataError(Exception):
    """Base class of every error raised by ``numpyvae.datasets``."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data file is not in the data directory and downloading was not allowed."""


class ChecksumError(DataError):
    """A file's size or SHA-256 differs from the value recorded in the registry."""


class FormatError(DataError, ValueError):
    """A file does not follow the format its reader expects (wrong magic, truncated...)."""


class DownloadError(DataError):
    """No URL of a file could be fetched and verified."""


def read_source(source, where=None):
    """The bytes of ``source`` (a path, or bytes already in memory) and the name to
    use for it in error messages; shared by the file-format readers."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source.tobytes() if isinstance(source, memoryview) else source
        return data, where or "<bytes>"
    with open(source, "rb") as handle:
        return handle.read(), where or str(source)
