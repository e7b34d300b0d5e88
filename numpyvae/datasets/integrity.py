"""Finding a data file in a data directory and checking its size and SHA-256.

A file is verified against its ``FileSpec``: the byte count and SHA-256 of its
*original* content.  For a gzip copy of an ``.amat`` file, the content is the
decompressed stream.  Verified digests are remembered (``cache.py``) so an
unchanged file is not hashed again on the next load.
"""

import hashlib
import zlib

from . import cache
from .errors import ChecksumError

CHUNK_BYTES = 1 << 20
_DECOMPRESSED_CHUNK_BYTES = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"


class ContentDigest:
    """Incremental SHA-256 and size of a file's original content.

    Feed it the bytes as stored.  For a gzip copy they are decompressed on the
    fly (several gzip members in a row are allowed, as ``gzip`` writes them).
    Decompression stops once the content exceeds ``limit`` bytes, so a wrong
    or hostile file cannot fill the memory.  With ``keep=True`` the content is
    also collected and returned by ``finish``.
    """

    def __init__(self, gzip_copy=False, limit=None, keep=False, where="<data>"):
        self._hash = hashlib.sha256()
        self._gzip_copy = gzip_copy
        self._decompressor = zlib.decompressobj(wbits=31) if gzip_copy else None
        self._limit = limit
        self._kept = bytearray() if keep else None
        self._where = where
        self.size = 0
        self.oversize = False

    def _take(self, content):
        if not content:
            return
        if self._limit is not None and self.size + len(content) > self._limit:
            self.oversize = True
        self.size += len(content)
        self._hash.update(content)
        if self._kept is not None and not self.oversize:
            self._kept += content

    def feed(self, stored):
        """Add the next chunk of the file as stored."""
        if self.oversize:
            return
        if not self._gzip_copy:
            self._take(stored)
            return
        while stored and not self.oversize:
            try:
                # Bounded output per call: a highly compressed input cannot
                # inflate past the size limit before it is noticed.
                self._take(self._decompressor.decompress(stored, _DECOMPRESSED_CHUNK_BYTES))
            except zlib.error as error:
                raise ChecksumError(f"{self._where}: corrupt gzip data ({error}); delete the file and fetch it again") from None
            if not self._decompressor.eof:
                stored = self._decompressor.unconsumed_tail
                continue
            stored = self._decompressor.unused_data
            if stored and not stored.startswith(_GZIP_MAGIC[: len(stored)]):
                raise ChecksumError(f"{self._where}: unexpected bytes after the end of the gzip data")
            if stored:
                self._decompressor = zlib.decompressobj(wbits=31)

    def feed_file(self, handle, copy_to=None):
        """Feed the whole open file ``handle`` in chunks, writing each chunk to
        ``copy_to`` as well when given; stops early once the content is oversize."""
        while True:
            chunk = handle.read(CHUNK_BYTES)
            if not chunk:
                return
            self.feed(chunk)
            if self.oversize:
                return
            if copy_to is not None:
                copy_to.write(chunk)

    def finish(self):
        """Return (hex SHA-256, content size, content as a bytearray or None)."""
        if self._gzip_copy and not self.oversize:
            if not self._decompressor.eof:
                raise ChecksumError(
                    f"{self._where}: truncated gzip file (the compressed stream ends early); "
                    "delete the file and fetch it again"
                )
        # The bytearray itself, not a copy: the readers accept it as it is.
        content = self._kept if self._kept is not None and not self.oversize else None
        return self._hash.hexdigest(), self.size, content


def is_gzip_copy(spec, path):
    """Whether ``path`` holds a gzip copy of ``spec``'s file rather than the file itself."""
    return spec.accepts_gzip_copy and str(path).endswith(".gz") and not spec.filename.endswith(".gz")


def locate(spec, directory):
    """The path in ``directory`` that holds ``spec``'s file (original preferred), or None."""
    for stored_name in spec.stored_names():
        candidate = directory / stored_name
        if candidate.is_file():
            return candidate
    return None


def read_content(spec, path, keep=True):
    """Read ``path`` and return (digest, size, content) of the original content."""
    digest = ContentDigest(is_gzip_copy(spec, path), limit=spec.size, keep=keep, where=str(path))
    with open(path, "rb") as handle:
        digest.feed_file(handle)
    return digest.finish()


def mismatch_message(spec, path, actual_digest, actual_size, dataset_name=None):
    """Explain a failed verification and what to do about it."""
    fetch_hint = f"python data_fetch.py {dataset_name}" if dataset_name else "python data_fetch.py <data set>"
    if actual_size != spec.size:
        found = f"{actual_size} bytes" if actual_size <= spec.size else f"more than {spec.size} bytes"
        what = f"size mismatch: expected {spec.size} bytes, found {found}"
    else:
        what = f"SHA-256 mismatch: expected {spec.sha256}, got {actual_digest}"
    content = " (after decompression)" if is_gzip_copy(spec, path) else ""
    return (
        f"{path}: {what}{content}. The file is corrupt, truncated or a different version. "
        f"Delete it and run `{fetch_hint}` to download it again, or import a good copy "
        f"with `{fetch_hint} --from DIR`."
    )


def check(spec, path, digest, size, dataset_name=None):
    """Raise ``ChecksumError`` unless (digest, size) match ``spec``."""
    if size != spec.size or digest != spec.sha256:
        raise ChecksumError(mismatch_message(spec, path, digest, size, dataset_name))


def verify(spec, path, dataset_name=None, keep=False):
    """Verify ``path`` against ``spec``; return (digest, content or None).

    Uses the verification record when the file is unchanged since it was last
    hashed (then no content is returned even with ``keep=True``; the caller
    reads the file if it needs the bytes).
    """
    recorded = cache.recorded_digest(path)
    if recorded == spec.sha256:
        return recorded, None
    digest, size, content = read_content(spec, path, keep=keep)
    check(spec, path, digest, size, dataset_name)
    cache.record_digest(path, digest)
    return digest, content
