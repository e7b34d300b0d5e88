"""Getting data files into a data directory: download, import from a folder, verify.

Both ways in end the same: the bytes are written to a temporary file
``<final name>.part-<random>`` in the destination folder, flushed to disk,
verified (size and SHA-256 of the original content), and only then renamed to
the final name with ``os.replace``, which is atomic.  On any failure --
unreachable host, HTTP error, checksum mismatch, transfer cut short, Ctrl-C --
the temporary file is deleted, so the data directory never holds a
half-written or unverified file under a name the loader would read, and the
folders the failed call created (e.g. ``frey/``) are removed again if empty.

Downloads use ``urllib`` with a timeout and try the file's URLs in order
(canonical first, then mirrors); the first URL that yields a verified file wins.
"""

import contextlib
import errno
import http.client
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .errors import ChecksumError, DataError, DownloadError
from .integrity import CHUNK_BYTES, ContentDigest, is_gzip_copy, locate, mismatch_message, verify
from .paths import resolve_data_dir
from .progress import Progress, Silent
from .registry import get_dataset

DEFAULT_TIMEOUT_SECONDS = 30.0
USER_AGENT = "numpyvae-data-fetch/0.1 (Python urllib)"
# A temporary file older than this belongs to a process that died without
# cleaning up (e.g. killed with SIGKILL); younger ones may be in use.
STALE_PART_SECONDS = 3600


class _AttemptFailed(Exception):
    """One URL did not give a verified file; the next URL may still work."""

    def __init__(self, reason, network_unreachable=False):
        super().__init__(reason)
        self.network_unreachable = network_unreachable


@dataclass(frozen=True)
class FetchResult:
    """Outcome for one file: where it is and how it got there.

    ``action`` is "present" (already there and verified), "downloaded" or
    "imported"; ``replaced`` lists files that failed verification and were
    replaced by the good copy.
    """

    filename: str
    path: Path
    action: str
    replaced: tuple = ()


def _progress_factory(progress):
    if progress is False:
        return Silent
    if progress is None or progress is True:
        return Progress
    stream = progress
    return lambda label, total=None: Progress(label, total, stream=stream)


def _manual_instructions(dataset_name, spec, directory):
    data_dir = directory.parent
    return (
        f"To install it by hand: download {spec.urls[0] if spec.urls else spec.filename} on a machine "
        f"with internet access (expected size {spec.size} bytes, SHA-256 {spec.sha256}), copy it into "
        f"a folder DIR and run `python data_fetch.py {dataset_name} --from DIR --data-dir {data_dir}` "
        f"(or put it at {directory / spec.filename} yourself). If the data sets are already "
        f"in another folder, point NUMPYVAE_DATA at it."
    )


def _unwritable_message(dataset_name, spec, directory, error):
    """Say which file could not be written where, and how to get it into a writable data directory."""
    present = locate(spec, directory)
    if present is None:
        what = f"{spec.filename} is not in {directory} (looked for {' or '.join(spec.stored_names())})"
    else:
        what = f"{present} fails verification"
    return (
        f"{dataset_name}: {what} and cannot be written there ({error.strerror or error}). "
        f"Fetch it into a writable directory DIR with `python data_fetch.py {dataset_name} --data-dir DIR` "
        f"and use that one (NUMPYVAE_DATA=DIR, --data-dir DIR or data_dir=DIR), "
        f"or ask whoever can write to {directory.parent} to run `python data_fetch.py {dataset_name} "
        f"--data-dir {directory.parent}`."
    )


@contextlib.contextmanager
def _leaving_no_empty_folders(directory):
    """On failure, remove the folders of ``directory``'s path that did not exist before
    (deepest first, only while empty): a failed call leaves the data directory as it found it."""
    created = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        created.append(folder)
    try:
        yield
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty (another process put a file there) or already gone
                break
        raise


def _prepare_directory(directory, spec, dataset_name):
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(_unwritable_message(dataset_name, spec, directory, error)) from None


def _remove_stale_parts(directory, stored_name):
    now = time.time()
    for leftover in directory.glob(stored_name + ".part-*"):
        try:
            if now - leftover.stat().st_mtime > STALE_PART_SECONDS:
                leftover.unlink()
        except OSError:
            pass


def _open_temporary(final_path, spec, dataset_name):
    """Create ``<final>.part-<random>`` exclusively; return (path, binary file object)."""
    temporary = final_path.with_name(f"{final_path.name}.part-{secrets.token_hex(8)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise DownloadError(_unwritable_message(dataset_name, spec, final_path.parent, error)) from None
    return temporary, os.fdopen(descriptor, "wb")


def _sync_directory(directory):
    # Makes the rename itself durable; not possible on every platform.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _commit(temporary, final_path, digest):
    os.replace(temporary, final_path)
    _sync_directory(final_path.parent)
    cache.record_digest(final_path, digest)


def _is_unreachable(reason):
    """Whether a URLError reason means the network or host cannot be reached at all."""
    if isinstance(reason, (socket.gaierror, socket.timeout, TimeoutError, ConnectionRefusedError)):
        return True
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED):
        return True
    return False


def _download_from(url, spec, final_path, timeout, make_progress, dataset_name):
    """Download ``url`` into ``final_path`` atomically; raise ``_AttemptFailed`` on failure."""
    temporary, output = _open_temporary(final_path, spec, dataset_name)
    progress = None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise _AttemptFailed(f"HTTP error {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise _AttemptFailed(f"cannot connect: {error.reason}", _is_unreachable(error.reason)) from None
        except (socket.timeout, TimeoutError):
            raise _AttemptFailed(f"no answer within {timeout:g} s", True) from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise _AttemptFailed(f"cannot connect: {error!r}") from None
        with response, output:
            announced = response.headers.get("Content-Length")
            announced = int(announced) if announced and announced.isdigit() else None
            progress = make_progress(f"{spec.filename} from {url}", announced or spec.size)
            digest = ContentDigest(limit=spec.size, where=url)
            received = 0
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (socket.timeout, TimeoutError):
                    raise _AttemptFailed(f"transfer stalled for {timeout:g} s after {received} bytes") from None
                except (OSError, ValueError, http.client.HTTPException) as error:
                    raise _AttemptFailed(f"transfer interrupted after {received} bytes: {error!r}") from None
                if not chunk:
                    break
                received += len(chunk)
                digest.feed(chunk)
                if digest.oversize:
                    raise _AttemptFailed(f"server sent more than the expected {spec.size} bytes")
                try:
                    output.write(chunk)
                except OSError as error:
                    raise DownloadError(f"cannot write {temporary}: {error.strerror or error}") from None
                progress.update(len(chunk))
            if announced is not None and received < announced:
                raise _AttemptFailed(f"transfer interrupted: received {received} of {announced} bytes")
            output.flush()
            os.fsync(output.fileno())
        sha256, size, _ = digest.finish()
        if size != spec.size or sha256 != spec.sha256:
            if size != spec.size:
                raise _AttemptFailed(f"wrong size: expected {spec.size} bytes, received {size}")
            raise _AttemptFailed(f"checksum mismatch: expected SHA-256 {spec.sha256}, got {sha256}")
        _commit(temporary, final_path, sha256)
        progress.close("done, verified")
        progress = None
    finally:
        # Remove the temporary file before anything else can raise (a second
        # Ctrl-C, a broken progress stream).
        output.close()
        if temporary.exists():
            temporary.unlink()
        if progress is not None:
            progress.close("failed")


def download_file(spec, directory, dataset_name="<data set>", urls=None, timeout=DEFAULT_TIMEOUT_SECONDS,
                  progress=None):
    """Download ``spec``'s file into ``directory`` and verify it; return the final path.

    ``urls`` overrides ``spec.urls`` (canonical first, then mirrors).  Each URL
    is tried until one yields a file with the registered size and SHA-256.
    ``progress``: None/True shows progress on standard error, False shows
    nothing, a stream shows it there.  Raises ``DownloadError`` naming every
    URL tried, what went wrong with each, and how to install the file by hand,
    or naming the file and folder when the folder cannot be written.
    """
    directory = Path(directory)
    urls = tuple(spec.urls if urls is None else urls)
    with _leaving_no_empty_folders(directory):
        return _download_into(spec, directory, dataset_name, urls, timeout, progress)


def _download_into(spec, directory, dataset_name, urls, timeout, progress):
    """``download_file`` without the clean-up of the folders it created."""
    _prepare_directory(directory, spec, dataset_name)
    _remove_stale_parts(directory, spec.filename)
    final_path = directory / spec.filename
    make_progress = _progress_factory(progress)
    failures = []
    unreachable = True
    for url in urls:
        try:
            _download_from(url, spec, final_path, timeout, make_progress, dataset_name)
            return final_path
        except _AttemptFailed as failure:
            failures.append(f"  {url}: {failure}")
            unreachable = unreachable and failure.network_unreachable
    offline = (
        "No server could be reached: you seem to be offline, or a proxy or firewall blocks these hosts. "
        if failures and unreachable
        else ""
    )
    tried = "\n".join(failures) if failures else "  (no URL registered)"
    raise DownloadError(
        f"could not download {dataset_name}/{spec.filename}. Tried:\n{tried}\n"
        f"Nothing was written to {final_path}. {offline}"
        f"{_manual_instructions(dataset_name, spec, directory)}"
    )


def _import_folders(dataset, source_dir):
    return list(dict.fromkeys([source_dir / dataset.directory, source_dir / dataset.name, source_dir]))


def _import_candidates(dataset, spec, source_dir):
    folders = _import_folders(dataset, source_dir)
    seen = set()
    for folder in folders:
        for stored_name in spec.stored_names():
            candidate = folder / stored_name
            if candidate.is_file() and candidate not in seen:
                seen.add(candidate)
                yield candidate


def _copy_verified(spec, source, final_path, dataset_name):
    """Copy ``source`` to ``final_path`` through a verified temporary file."""
    temporary, output = _open_temporary(final_path, spec, dataset_name)
    try:
        digest = ContentDigest(is_gzip_copy(spec, source), limit=spec.size, where=str(source))
        with output, open(source, "rb") as handle:
            digest.feed_file(handle, copy_to=output)
            output.flush()
            os.fsync(output.fileno())
        sha256, size, _ = digest.finish()
        if size != spec.size or sha256 != spec.sha256:
            raise ChecksumError(mismatch_message(spec, source, sha256, size, dataset_name))
        # Keep the source's modification time (not its permissions: a
        # read-only shared copy must not make the imported file read-only).
        source_status = os.stat(source)
        os.utime(temporary, ns=(source_status.st_atime_ns, source_status.st_mtime_ns))
        _commit(temporary, final_path, sha256)
    finally:
        output.close()
        if temporary.exists():
            temporary.unlink()


def import_file(dataset, spec, source_dir, directory):
    """Import ``spec``'s file from the local folder ``source_dir`` into ``directory``; return its path.

    The file is looked for in ``source_dir/<data set folder>``, then
    ``source_dir/<data set name>``, then ``source_dir`` itself.  A gzip copy of
    an ``.amat`` file is imported as it is (still compressed, verified on its
    decompressed content).  Importing a file onto itself only verifies it.
    """
    source_dir = Path(os.path.abspath(Path(source_dir).expanduser()))
    directory = Path(directory)
    with _leaving_no_empty_folders(directory):
        return _import_into(dataset, spec, source_dir, directory)


def _import_into(dataset, spec, source_dir, directory):
    """``import_file`` without the clean-up of the folders it created."""
    problems = []
    for source in _import_candidates(dataset, spec, source_dir):
        final_path = directory / source.name
        try:
            if final_path.exists() and os.path.samefile(source, final_path):
                verify(spec, final_path, dataset.name)
                return final_path
            _prepare_directory(directory, spec, dataset.name)
            _remove_stale_parts(directory, source.name)
            _copy_verified(spec, source, final_path, dataset.name)
            return final_path
        except ChecksumError as error:
            problems.append(str(error))
    if problems:
        raise ChecksumError("\n".join(problems))
    looked_in = ", ".join(str(folder) for folder in _import_folders(dataset, source_dir))
    raise DataError(
        f"{dataset.name}/{spec.filename}: not found in {source_dir} (looked for "
        f"{' or '.join(spec.stored_names())} in {looked_in}). "
        f"{_manual_instructions(dataset.name, spec, directory)}"
    )


def fetch_file(dataset, spec, data_dir=None, source_dir=None, urls=None, timeout=DEFAULT_TIMEOUT_SECONDS,
               progress=None, replace_corrupt=True):
    """Make sure ``spec``'s file of ``dataset`` is in the data directory and verified.

    A file already present and verified is left alone.  Otherwise it is
    imported from ``source_dir`` if given, else downloaded.  A present file
    that fails verification is replaced by the good copy when
    ``replace_corrupt`` is true; otherwise its ``ChecksumError`` is raised.
    Returns a ``FetchResult``.
    """
    directory = resolve_data_dir(data_dir) / dataset.directory
    corrupt = []
    for stored_name in spec.stored_names():
        path = directory / stored_name
        if not path.is_file():
            continue
        try:
            verify(spec, path, dataset.name)
            return FetchResult(spec.filename, path, "present")
        except ChecksumError:
            if not replace_corrupt:
                raise
            corrupt.append(path)
    if source_dir is not None:
        path, action = import_file(dataset, spec, source_dir, directory), "imported"
    else:
        path, action = download_file(spec, directory, dataset.name, urls, timeout, progress), "downloaded"
    for stale in corrupt:
        if stale != path:
            stale.unlink(missing_ok=True)
    return FetchResult(spec.filename, path, action, tuple(corrupt))


def fetch(name, data_dir=None, source_dir=None, timeout=DEFAULT_TIMEOUT_SECONDS, progress=None):
    """Fetch every file of data set ``name`` (download, or import from ``source_dir``).

    Tries all files even when one fails, then raises one ``DataError`` that
    lists every failure.  Returns the list of ``FetchResult`` on success.
    """
    dataset = get_dataset(name)
    results, failures = [], []
    for spec in dataset.files:
        try:
            results.append(fetch_file(dataset, spec, data_dir, source_dir, timeout=timeout, progress=progress))
        except DataError as error:
            failures.append(str(error))
    if failures:
        raise DataError("\n".join(failures))
    return results


def locate_file(dataset, spec, data_dir=None):
    """Path holding ``spec``'s file in the data directory, or None (no verification)."""
    return locate(spec, resolve_data_dir(data_dir) / dataset.directory)
