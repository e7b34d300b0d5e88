"""Two small on-disk caches in the user's cache directory (see ``paths.cache_dir``).

* Verification records: the SHA-256 computed for a file, keyed by the file's
  absolute path, size, modification time, change time and inode, so a file
  that changes in any way is hashed again.  This makes repeated loads skip
  hashing the 78 MB binarized MNIST training file.
* Parsed arrays: the array a reader produced from a source file, stored as
  ``.npy`` and keyed by the SHA-256 of the source content plus the reader's
  name and version.  A changed source file has a different hash, so its old
  entry is simply never used again.

Caching is an optimisation only: every failure to read or write the cache is
swallowed and the data is parsed from the source instead.  Writes go to a
temporary file that is renamed into place, so concurrent processes never see
half-written entries.
"""

import hashlib
import os
import secrets

import numpy as np

from .paths import cache_dir

# Bump when a reader's output for the same input changes.
READER_VERSION = 1


def _file_key(path):
    status = os.stat(path)
    identity = f"{os.path.abspath(path)}|{status.st_size}|{status.st_mtime_ns}|{status.st_ctime_ns}|{status.st_ino}"
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


def _write_atomically(path, write):
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{secrets.token_hex(6)}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def recorded_digest(path):
    """The SHA-256 recorded for ``path`` in its current state, or None."""
    root = cache_dir()
    if root is None:
        return None
    try:
        record = root / "verified" / _file_key(path)
        digest = record.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return digest if len(digest) == 64 else None


def record_digest(path, digest):
    """Remember that ``path`` in its current state has content SHA-256 ``digest``."""
    root = cache_dir()
    if root is None:
        return
    try:
        _write_atomically(root / "verified" / _file_key(path), lambda handle: handle.write(digest.encode("ascii")))
    except Exception:  # a cache that cannot be written must never stop a load
        pass


def _array_path(root, digest, reader):
    return root / "arrays" / f"{reader}-v{READER_VERSION}-{digest}.npy"


def cached_array(digest, reader):
    """The array cached for source content ``digest`` parsed by ``reader``, or None."""
    root = cache_dir()
    if root is None:
        return None
    try:
        return np.load(_array_path(root, digest, reader), allow_pickle=False)
    except Exception:  # missing, truncated or foreign file: fall back to parsing
        return None


def store_array(digest, reader, array):
    """Cache ``array`` as the result of parsing source content ``digest`` with ``reader``."""
    root = cache_dir()
    if root is None:
        return
    try:
        _write_atomically(_array_path(root, digest, reader), lambda handle: np.save(handle, array, allow_pickle=False))
    except Exception:  # a cache that cannot be written must never stop a load
        pass
