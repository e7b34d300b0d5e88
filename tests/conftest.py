"""Fixtures shared by the test modules."""
import gzip
import hashlib
import io
import pickle
import struct
import tarfile

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


class Python2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle wrote CIFAR-10's batches (protocol 2):
    bytes and str as BINSTRING, NumPy's array rebuilder under its Python 2 name
    ``numpy.core.multiarray._reconstruct``, and no ``_codecs.encode`` (which Python 3
    uses for bytes under protocol 2, and which the real files never name)."""

    dispatch = dict(pickle._Pickler.dispatch)
    _reconstruct = np.empty(0).__reduce__()[0]

    def save_string(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string

    def save_global(self, obj, name=None):
        if obj is self._reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def python2_pickle(obj):
    """``obj`` pickled as Python 2 would have (see ``Python2Pickler``)."""
    stream = io.BytesIO()
    Python2Pickler(stream, protocol=2).dump(obj)
    return stream.getvalue()


CIFAR_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)) + ("cifar-10-batches-py/test_batch",)


def fake_cifar_archive(rng, per_batch=(2, 2, 2, 2, 2, 3), replace_members=None):
    """Bytes of a small ``cifar-10-python.tar.gz``: the real layout, ``per_batch[i]`` images in
    ``CIFAR_MEMBERS[i]``, each batch a Python-2-style pickle of a dict with b"batch_label",
    b"labels", b"data" (uint8 (n, 3072)) and b"filenames"; plus ``batches.meta`` and a folder entry.

    ``replace_members`` maps member names to raw bytes stored instead (e.g. a hostile pickle).
    Returns ``(archive bytes, {"train": (images, labels), "test": (images, labels)})``.
    """
    replace_members = replace_members or {}
    batches = []
    for name, count in zip(CIFAR_MEMBERS, per_batch):
        images = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, size=count)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": images,
                 b"filenames": [f"image_{i}.png".encode() for i in range(count)]}
        batches.append((name, images, labels, python2_pickle(batch)))
    meta = python2_pickle({b"num_cases_per_batch": 10000, b"num_vis": 3072,
                           b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                                            b"dog", b"frog", b"horse", b"ship", b"truck"]})
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w:gz") as archive:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        for name, content in [("cifar-10-batches-py/batches.meta", meta)] + [(b[0], b[3]) for b in batches]:
            content = replace_members.get(name, content)
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    train = [b for b in batches if "data_batch" in b[0]]
    arrays = {
        "train": (np.concatenate([b[1] for b in train]), [label for b in train for label in b[2]]),
        "test": (batches[-1][1], batches[-1][2]),
    }
    return stream.getvalue(), arrays


def need_data(name, split="train"):
    """Skip the calling test, naming what is missing, when a real data set is absent."""
    from numpyvae import datasets
    try:
        datasets.load(name, split, download=False)
    except datasets.DataError as error:
        pytest.skip(f"{name} data missing: {error}")


@pytest.fixture
def frey_data():
    """Tests marked with ``usefixtures("frey_data")`` need Frey Face."""
    need_data("frey")


DATA_SKIP_WORDS = ("missing", "not available", "not yet downloaded", "needs the")


def pytest_terminal_summary(terminalreporter):
    """One line when tests were skipped for want of data, so that a green run without
    the data sets does not read as if those tests had passed."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = [str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
               for report in skipped]
    missing = sum(any(word in reason for word in DATA_SKIP_WORDS) for reason in reasons)
    if missing:
        terminalreporter.write_line(
            f"numpyvae: {missing} test(s) skipped because a data set is missing; put the data "
            "where NUMPYVAE_DATA points (python data_fetch.py all) to run them.")
