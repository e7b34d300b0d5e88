"""A reader for CIFAR-10's "python version" archive, ``cifar-10-python.tar.gz``.

The archive holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (the
50000 training images), ``test_batch`` (10000 test images) and ``batches.meta``.
Each batch is a pickle written by Python 2: a dict whose ``b"data"`` is a uint8
array (10000, 3072) -- one image per row, channel-first: 1024 red, then 1024
green, then 1024 blue values, each a 32 x 32 image stored row-major -- and whose
``b"labels"`` is a list of 10000 class indices 0-9 (plus ``b"batch_label"`` and
``b"filenames"``, not used).

Files are data, never code, but unpickling can call any function a pickle
names.  So:

* the reader only ever sees the bytes of an archive whose size and SHA-256
  matched the registry: ``loading._load_file`` verifies the file and passes on
  the very bytes it hashed;
* members are read from those bytes with ``tarfile`` by their exact names,
  never extracted to disk;
* they are unpickled by ``RestrictedUnpickler``, which admits exactly the three
  globals a pickled NumPy array needs and refuses every other one with a
  ``FormatError`` before anything is called.
"""

import io
import pickle
import tarfile
import zlib

import numpy as np

from .errors import DataError, FormatError

FOLDER = "cifar-10-batches-py"
TRAIN_MEMBERS = tuple(f"{FOLDER}/data_batch_{index}" for index in range(1, 6))
TEST_MEMBERS = (f"{FOLDER}/test_batch",)
MEMBERS = TRAIN_MEMBERS + TEST_MEMBERS
SPLIT_MEMBERS = {"train": TRAIN_MEMBERS, "test": TEST_MEMBERS}
PIXELS = 3 * 32 * 32
CLASSES = 10
# One parsed example: which member it came from (index into MEMBERS), its label
# and its pixels.  A plain structured array, so the parsed-array cache stores it
# as .npy without pickling.
RECORD = np.dtype([("member", np.uint8), ("label", np.uint8), ("image", np.uint8, (PIXELS,))])

# NumPy's array-rebuilding function, taken from NumPy itself rather than from
# numpy.core (renamed numpy._core in NumPy 2; the old name warns).
_RECONSTRUCT = np.empty(0).__reduce__()[0]
# (module, name) as a Python 2 pickle of a NumPy array names them -> the object.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_REFETCH = "delete it and run `python data_fetch.py cifar10` to fetch the archive again"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays, lists, dicts, strings and numbers, and nothing else.

    ``find_class`` is the only way a pickle reaches a function or class (the
    GLOBAL, STACK_GLOBAL and EXT opcodes all go through it), so admitting only
    ``ALLOWED_GLOBALS`` means no other code can run.  Strings written by Python 2
    come back as ``bytes`` (``encoding="bytes"``), which NumPy accepts for the
    array's raw data.
    """

    def __init__(self, file, where):
        super().__init__(file, encoding="bytes")
        self._where = where

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise FormatError(
                f"{self._where}: refused to unpickle {module}.{name} (nothing was run): a CIFAR-10 batch "
                f"needs only numpy arrays, lists, strings and numbers, so this is not a genuine batch; {_REFETCH}"
            ) from None


def unpickle(data, where):
    """Unpickle ``data`` (bytes) with ``RestrictedUnpickler``; any failure is a one-line ``FormatError``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), where).load()
    except DataError:
        raise
    except Exception as error:  # a malformed pickle can raise nearly anything
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise FormatError(f"{where}: not a readable pickle ({reason}); {_REFETCH}") from None


def _batch_arrays(batch, where):
    """(images uint8 (n, 3072), labels uint8 (n,)) of one unpickled batch, after checking its layout."""
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise FormatError(f"{where}: expected a dict with keys b'data' and b'labels', found {keys}; {_REFETCH}")
    images, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != PIXELS:
        found = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise FormatError(f"{where}: b'data' is {found}, expected uint8 (n, {PIXELS}); {_REFETCH}")
    if not isinstance(labels, list) or len(labels) != len(images) \
            or not all(type(label) is int and 0 <= label < CLASSES for label in labels):
        raise FormatError(
            f"{where}: b'labels' must be a list of {len(images)} ints in 0..{CLASSES - 1}; {_REFETCH}"
        )
    return images, np.array(labels, dtype=np.uint8)


def read_cifar10_archive(content, where="<cifar-10-python.tar.gz>"):
    """Parse the bytes of a verified ``cifar-10-python.tar.gz`` into a ``RECORD`` array.

    Reads the archive once, in order, and takes only the members named in
    ``MEMBERS`` (each must be a regular file, present once).  Rows come in the
    order of ``MEMBERS`` -- training batches 1-5, then the test batch -- and
    keep the order inside each batch.  Only call it on bytes whose SHA-256 has
    been checked: that check, not this function, is what makes the pickles
    trustworthy.
    """
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            for info in archive:
                if info.name not in MEMBERS:
                    continue
                if info.name in found or not info.isfile():
                    raise FormatError(f"{where}: member {info.name} is repeated or not a regular file; {_REFETCH}")
                found[info.name] = _batch_arrays(unpickle(archive.extractfile(info).read(), f"{where}:{info.name}"),
                                                 f"{where}:{info.name}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise FormatError(f"{where}: not a readable .tar.gz archive ({error}); {_REFETCH}") from None
    missing = [name for name in MEMBERS if name not in found]
    if missing:
        raise FormatError(f"{where}: the archive lacks {', '.join(missing)}; {_REFETCH}")
    records = np.empty(sum(len(found[name][0]) for name in MEMBERS), RECORD)
    start = 0
    for index, name in enumerate(MEMBERS):
        images, labels = found[name]
        rows = slice(start, start + len(images))
        records["member"][rows], records["label"][rows], records["image"][rows] = index, labels, images
        start = rows.stop
    return records


def split_records(records, split):
    """The rows of ``records`` that belong to ``split`` ("train" or "test"), in archive order."""
    indices = [MEMBERS.index(name) for name in SPLIT_MEMBERS[split]]
    return records[np.isin(records["member"], indices)]
