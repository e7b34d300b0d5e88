"""Fixtures shared by the test modules."""
import gzip
import hashlib
import struct

import numpy as np
import pytest


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Point the parsed-array and verification cache at a temporary folder for the
    module that uses it (``pytestmark = pytest.mark.usefixtures("isolated_cache")``)."""
    folder = tmp_path_factory.mktemp("numpyvae-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NUMPYVAE_CACHE", str(folder))
        yield folder


def sha256(data):
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def idx_bytes(array, type_code=0x08, dimensions=None):
    """Serialize ``array`` as an IDX file (uncompressed)."""
    array = np.asarray(array)
    dimensions = array.shape if dimensions is None else dimensions
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, len(dimensions)]) + struct.pack(f">{len(dimensions)}I", *dimensions)
    return header + array.astype(dtype).tobytes()


def tiny_idx_files(rng, counts, image_shape):
    """The four gzip IDX files of a tiny MNIST-like data set.

    ``counts`` = (train, test). Returns ``(files, arrays)``: files is a list of
    (filename, gzip content); arrays maps "train"/"t10k" to (images, labels).
    """
    files, arrays = [], {}
    for prefix, count in zip(("train", "t10k"), counts):
        images = rng.integers(0, 256, size=(count, *image_shape), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            files.append((f"{prefix}-{kind}-ubyte.gz", gzip.compress(idx_bytes(array), mtime=0)))
    return files, arrays
