"""Tests of numpyvae.datasets: the readers, verification, caching and the real data files.

Real-data tests read the data directory given by ``NUMPYVAE_DATA`` (for example
``NUMPYVAE_DATA=/work/shared/data``) with ``download=False``; a test whose file
is missing is skipped with the file's name.  Reader tests write their own small
files, including malformed ones.  The parsed-array cache is redirected to a
temporary folder so the tests never touch the user's cache.
"""

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpyvae import datasets
from numpyvae.datasets import ChecksumError, DataError, DataNotFoundError, FileSpec, FormatError, cifar, registry
from numpyvae.datasets.amat import read_binarized_amat
from numpyvae.datasets.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from numpyvae.datasets.integrity import locate, verify
from numpyvae.datasets.matfile import read_mat, read_mat_variable


from conftest import fake_cifar_archive, idx_bytes, python2_pickle, sha256, tiny_idx_files  # noqa: E402

pytestmark = pytest.mark.usefixtures("isolated_cache")


# --------------------------------------------------------------------------
# Real data (skipped, naming the file, when it is not in the data directory)
# --------------------------------------------------------------------------


def require(name, split):
    """Skip unless every file of ``split`` of ``name`` is in the data directory."""
    dataset = datasets.get_dataset(name)
    directory = datasets.resolve_data_dir() / dataset.directory
    missing = [spec for spec in dataset.files_for_split(split) if locate(spec, directory) is None]
    if missing:
        why = ""
        if (directory.parent / "SOURCES.md").is_file():
            why = " (the shared copy leaves out files over its 4 MiB size cap; see SOURCES.md)"
        elif "NUMPYVAE_DATA" not in os.environ:
            why = " (set NUMPYVAE_DATA to a folder holding the data files)"
        names = ", ".join(" or ".join(str(directory / stored) for stored in spec.stored_names()) for spec in missing)
        verb = "is" if len(missing) == 1 else "are"
        pytest.skip(f"{name} {split} needs {names}, which {verb} missing{why}; "
                    f"get it with `python data_fetch.py {name}`")


@pytest.fixture(scope="module")
def frey_train():
    require("frey", "train")
    return datasets.load("frey", "train", download=False)


@pytest.fixture(scope="module")
def frey_test():
    require("frey", "test")
    return datasets.load("frey", "test", download=False)


@pytest.fixture(scope="module")
def frey_all_frames(frey_train, frey_test):
    """All 1965 frames in video order, rebuilt from the two splits."""
    split = datasets.frey_split()
    frames = np.empty((1965, 560), np.float32)
    frames[split["train"]] = frey_train[0]
    frames[split["test"]] = frey_test[0]
    return frames


def test_frey_shapes_dtypes_and_ranges(frey_train, frey_test, frey_all_frames):
    (x_train, labels_train), (x_test, labels_test) = frey_train, frey_test
    assert x_train.shape == (1600, 560) and x_test.shape == (365, 560)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert labels_train is None and labels_test is None
    assert x_train.flags["C_CONTIGUOUS"]
    # SOURCES.md: grey levels 8..238 with mean 154.46 over the whole array; scaled by 1/255.
    grey = np.rint(frey_all_frames.astype(np.float64) * 255)
    np.testing.assert_allclose(frey_all_frames * 255, grey, atol=1e-4)  # x = grey level / 255
    assert grey.min() == 8 and grey.max() == 238
    assert grey.mean() == pytest.approx(154.46, abs=0.005)
    assert 0.0 <= frey_all_frames.min() and frey_all_frames.max() <= 1.0
    assert frey_all_frames.min() == np.float32(8 / 255)


def test_frey_float64(frey_train):
    x64, _ = datasets.load("frey", "train", download=False, dtype=np.float64)
    assert x64.dtype == np.float64
    np.testing.assert_allclose(x64, frey_train[0], rtol=1e-6)
    assert np.array_equal(np.rint(x64 * 255), np.rint(frey_train[0].astype(np.float64) * 255))


def test_frey_has_no_valid_split():
    with pytest.raises(DataError, match="no split 'valid'.*'train', 'test'"):
        datasets.load("frey", "valid", download=False)


def frey_orientation_problems(images):
    """What is wrong with the orientation of a stack of Frey faces (empty if upright).

    Facts of the real file, read off its mean face (28 rows x 20 columns, see
    SOURCES.md): the darkest rows of the upper half are the eyes (rows 5-8),
    below a bright forehead (rows 0-2); the nose bridge between the eyes
    (column 10) is bright; and the face is lit from the viewer's right, so the
    five right-most columns are brighter than the five left-most.  The last
    fact tells a mirror image apart.
    """
    if images.shape[1:] != (28, 20):
        return [f"images are {images.shape[1:]}, not 28 rows x 20 columns"]
    mean = images.mean(axis=0)
    row_means, column_means = mean.mean(axis=1), mean.mean(axis=0)
    problems = []
    if not 4 <= np.argmin(row_means[:14]) <= 9:
        problems.append(f"darkest upper row is {np.argmin(row_means[:14])}, eyes expected in rows 4-9")
    if row_means[0:3].mean() - row_means[5:9].mean() < 0.15:
        problems.append("forehead (rows 0-2) not clearly brighter than the eyes (rows 5-8)")
    if mean[5:9, 10].mean() - mean[5:9, [6, 14]].mean() < 0.2:
        problems.append("no bright nose bridge between dark eyes")
    if column_means[15:].mean() - column_means[:5].mean() < 0.04:
        problems.append("right side not brighter than left side (mirrored?)")
    return problems


def test_frey_faces_are_upright(frey_all_frames):
    faces = frey_all_frames.reshape(-1, *datasets.image_shape("frey"))
    assert frey_orientation_problems(faces) == []


def test_frey_orientation_criterion_rejects_wrong_layouts(frey_all_frames):
    faces = frey_all_frames.reshape(-1, 28, 20)
    count = len(faces)
    wrong = {
        "upside down": faces[:, ::-1, :],
        "mirrored": faces[:, :, ::-1],
        "rotated 180": faces[:, ::-1, ::-1],
        "rotated 90": np.rot90(faces, 1, axes=(1, 2)),
        "rotated 270": np.rot90(faces, -1, axes=(1, 2)),
        "rotated 90, reshaped": np.ascontiguousarray(np.rot90(faces, 1, axes=(1, 2))).reshape(count, 28, 20),
        "transposed, reshaped": np.ascontiguousarray(faces.transpose(0, 2, 1)).reshape(count, 28, 20),
        # What a reader that ignores MATLAB's column-major order would produce.
        "ff read in C order": frey_all_frames.reshape(-1).reshape(560, 1965).T.reshape(count, 28, 20),
    }
    for name, images in wrong.items():
        assert frey_orientation_problems(images), f"criterion accepted the {name} faces"


def test_frey_mean_face_matches_the_real_file(frey_all_frames):
    # Row and column means of the mean face, in grey levels, computed from
    # frey_rawface.mat with ff[:, i].reshape(28, 20) (the layout SOURCES.md
    # checked by rendering).  A flip, rotation or frame mix-up changes them.
    row_means = [189, 191, 191, 183, 156, 125, 121, 112, 117, 152, 179, 189, 184, 168,
                 157, 160, 165, 162, 148, 138, 142, 144, 142, 145, 149, 146, 138, 131]
    column_means = [128, 144, 152, 151, 150, 147, 147, 147, 148, 154, 161, 156, 151, 154,
                    157, 164, 171, 176, 171, 158]
    mean = frey_all_frames.reshape(-1, 28, 20).astype(np.float64).mean(axis=0) * 255
    np.testing.assert_allclose(mean.mean(axis=1), row_means, atol=0.51)
    np.testing.assert_allclose(mean.mean(axis=0), column_means, atol=0.51)


def test_frey_first_frame_is_the_first_column_of_ff(frey_all_frames):
    # Independent of the MAT reader: in this uncompressed file the 560 bytes of
    # ff(:, 1) start right after the 128-byte header and 56 bytes of element tags.
    path = locate(datasets.get_dataset("frey").files[0], datasets.resolve_data_dir() / "frey")
    raw = path.read_bytes()
    assert raw[176:184] == struct.pack("<II", 2, 560 * 1965)  # miUINT8 real part of ff
    first_column = np.frombuffer(raw, np.uint8, count=560, offset=184)
    assert np.array_equal(np.rint(frey_all_frames[0] * 255), first_column)


def test_frey_split_is_fixed_and_documented():
    split = datasets.frey_split()
    assert len(split["train"]) == 1600 and len(split["test"]) == 365
    assert np.array_equal(np.union1d(split["train"], split["test"]), np.arange(1965))
    permutation = np.random.default_rng(0).permutation(1965)
    assert np.array_equal(split["test"], np.sort(permutation[1600:]))
    # Pinned so that a change in NumPy's permutation algorithm cannot silently move frames.
    assert split["test"][:12].tolist() == [1, 3, 4, 6, 7, 9, 16, 29, 30, 50, 51, 57]
    assert sha256(split["test"].astype("<i8").tobytes()) == (
        "d337ddd804cce51ad3cdeea0f828ce69730491041b58518fd5ad8ac7f950ae4a")


@pytest.mark.parametrize("split, size, ones", [
    ("train", 50000, 5118041),
    ("valid", 10000, 1028036),
    ("test", 10000, 1038896),
])
def test_binarized_mnist_splits(split, size, ones):
    require("binarized-mnist", split)
    x, labels = datasets.load("binarized-mnist", split, download=False)
    assert x.shape == (size, 784) and x.dtype == np.float32 and labels is None
    assert np.array_equal(np.unique(x), [0.0, 1.0])  # exactly 0 and 1
    assert int(x.sum(dtype=np.float64)) == ones


def test_binarized_mnist_digit_is_upright():
    require("binarized-mnist", "test")
    x, _ = datasets.load("binarized-mnist", "test", download=False)
    images = x.reshape(-1, *datasets.image_shape("binarized-mnist"))
    mean = images.mean(axis=0)
    # Digits are centred in a 20x20 box: the outer rows and columns are empty.
    border = np.concatenate([mean[:3].ravel(), mean[-1], mean[:, :3].ravel(), mean[:, -3:].ravel()])
    assert border.mean() < 0.002 < 0.1 < mean[8:20, 8:20].mean()
    # Handwritten digits are taller than wide: ink spans more rows than
    # columns (18 against 14); a transposed reader would swap the two.
    rows_with_ink = np.sum(mean.mean(axis=1) > 0.1)
    columns_with_ink = np.sum(mean.mean(axis=0) > 0.1)
    assert rows_with_ink >= columns_with_ink + 3


def test_mnist_test_split():
    require("mnist", "test")
    x, labels = datasets.load("mnist", "test", download=False)
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(x * 255, np.rint(x * 255), atol=1e-4)  # grey levels / 255


def test_mnist_train_split():
    require("mnist", "train")
    x, labels = datasets.load("mnist", "train", download=False)
    assert x.shape == (60000, 784) and labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("split, size", [("train", 60000), ("test", 10000)])
def test_fashion_mnist_splits(split, size):
    require("fashion-mnist", split)
    x, labels = datasets.load("fashion-mnist", split, download=False)
    assert x.shape == (size, 784) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [size // 10] * 10
    assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("split, first_labels, mean", [
    # First labels and the mean of all pixels / 255, as other loaders' tests of the same archive pin them.
    ("train", [6, 9, 9, 4, 1, 1, 2, 7, 8, 3], 0.4733630004850899),
    ("test", [3, 8, 8, 0, 6, 6, 1, 6, 3, 1], 0.4765849205984478),
])
def test_cifar10_real_archive(split, first_labels, mean):
    require("cifar10", split)
    x, labels = datasets.load("cifar10", split, download=False)
    size = {"train": 50000, "test": 10000}[split]
    assert x.shape == (size, 3072) and x.dtype == np.float32 and labels.dtype == np.int64
    assert labels[:10].tolist() == first_labels and np.bincount(labels).tolist() == [size // 10] * 10
    assert x.min() == 0.0 and x.max() == 1.0
    assert x.mean(dtype=np.float64) == pytest.approx(mean, abs=1e-5)


@pytest.mark.parametrize("path, counts", [
    ("mnist/train-labels-idx1-ubyte.gz", [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    ("fashion-mnist/train-labels-idx1-ubyte.gz", [6000] * 10),
    ("fashion-mnist/t10k-labels-idx1-ubyte.gz", [1000] * 10),
])
def test_real_labels_files(path, counts):
    file = datasets.resolve_data_dir() / path
    if not file.is_file():
        pytest.skip(f"needs {file}, which is missing")
    labels = read_idx(file, expected_magic=LABELS_MAGIC)
    assert labels.dtype == np.uint8 and np.bincount(labels).tolist() == counts


def test_loading_never_writes_into_the_data_directory(frey_train):
    require("binarized-mnist", "test")
    root = datasets.resolve_data_dir()

    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))

    before = snapshot()
    datasets.load("frey", "test", download=False)
    datasets.load("binarized-mnist", "test", download=False)
    assert snapshot() == before


def test_repeated_load_uses_the_caches(monkeypatch):
    require("binarized-mnist", "valid")
    first, _ = datasets.load("binarized-mnist", "valid", download=False)

    def no_reading(*arguments, **keywords):
        raise AssertionError("the file was read again although it did not change")

    monkeypatch.setattr("numpyvae.datasets.integrity.read_content", no_reading)
    monkeypatch.setattr("numpyvae.datasets.loading.read_content", no_reading)
    second, _ = datasets.load("binarized-mnist", "valid", download=False)
    assert np.array_equal(first, second)


# --------------------------------------------------------------------------
# A tiny synthetic data set in the registry, for end-to-end tests of load()
# --------------------------------------------------------------------------


def make_tiny_dataset(directory, rng, train=5, test=3):
    """Write a tiny IDX data set (3x2 images) into ``directory``; return (Dataset, arrays)."""
    directory.mkdir(parents=True, exist_ok=True)
    files, arrays = tiny_idx_files(rng, (train, test), (3, 2))
    specs = []
    for filename, content in files:
        (directory / filename).write_bytes(content)
        specs.append(FileSpec(filename, len(content), sha256(content), ()))
    dataset = replace(
        registry.MNIST, name="tiny", title="tiny", directory=directory.name, image_shape=(3, 2),
        files=tuple(specs), split_sizes={"train": train, "test": test},
    )
    return dataset, arrays


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    dataset, arrays = make_tiny_dataset(tmp_path / "data" / "tiny", np.random.default_rng(1))
    monkeypatch.setitem(registry.DATASETS, "tiny", dataset)
    return tmp_path / "data", dataset, arrays


def test_load_tiny_dataset(tiny):
    data_dir, dataset, arrays = tiny
    x, labels = datasets.load("tiny", "train", data_dir=data_dir, download=False)
    images, expected_labels = arrays["train"]
    assert x.shape == (5, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x.reshape(-1, 3, 2), images / np.float32(255))
    assert labels.dtype == np.int64 and labels.tolist() == expected_labels.tolist()


def test_changed_source_file_is_rejected(tiny):
    data_dir, dataset, _ = tiny
    datasets.load("tiny", "train", data_dir=data_dir, download=False)
    path = data_dir / "tiny" / "train-images-idx3-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[-9] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(content))
    with pytest.raises(ChecksumError) as error:
        datasets.load("tiny", "train", data_dir=data_dir, download=False)
    message = str(error.value)
    assert str(path) in message and dataset.files[0].sha256 in message and sha256(bytes(content)) in message
    assert "data_fetch.py tiny" in message and "--from" in message


def test_parsed_cache_follows_a_new_version_of_the_source(tiny, monkeypatch):
    data_dir, dataset, _ = tiny
    old, _ = datasets.load("tiny", "train", data_dir=data_dir, download=False)
    # A legitimately new file (registry updated to its checksum) must not be
    # served from the cache of the old one.
    new_images = np.full((5, 3, 2), 7, np.uint8)
    content = gzip.compress(idx_bytes(new_images), mtime=0)
    (data_dir / "tiny" / "train-images-idx3-ubyte.gz").write_bytes(content)
    new_spec = replace(dataset.files[0], size=len(content), sha256=sha256(content))
    monkeypatch.setitem(registry.DATASETS, "tiny", replace(dataset, files=(new_spec,) + dataset.files[1:]))
    new, _ = datasets.load("tiny", "train", data_dir=data_dir, download=False)
    assert not np.array_equal(old, new)
    assert np.all(new == np.float32(7 / 255))


def test_corrupt_or_unwritable_cache_is_ignored(tiny, monkeypatch, tmp_path):
    data_dir, _, arrays = tiny
    expected, _ = datasets.load("tiny", "test", data_dir=data_dir, download=False)
    cache = datasets.cache_dir()
    for cached in (cache / "arrays").glob("*.npy"):
        cached.write_bytes(b"garbage")
    again, _ = datasets.load("tiny", "test", data_dir=data_dir, download=False)
    assert np.array_equal(expected, again)
    # A cache "directory" that is a regular file cannot be written, even by root.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("NUMPYVAE_CACHE", str(blocker))
    assert np.array_equal(datasets.load("tiny", "test", data_dir=data_dir, download=False)[0], expected)
    monkeypatch.setenv("NUMPYVAE_CACHE", "off")
    assert datasets.cache_dir() is None
    assert np.array_equal(datasets.load("tiny", "test", data_dir=data_dir, download=False)[0], expected)


def test_missing_file_error_names_file_url_and_manual_route(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        datasets.load("frey", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert "frey_rawface.mat" in message and str(tmp_path / "frey") in message
    assert "https://cs.nyu.edu/~roweis/data/frey_rawface.mat" in message
    assert "data_fetch.py frey --from DIR" in message


def test_missing_file_in_a_read_only_data_directory_says_what_to_do(tmp_path):
    # download=False never writes, so chmod makes the situation real even for root.
    data_dir = tmp_path / "shared"
    (data_dir / "frey").mkdir(parents=True)
    for folder in (data_dir / "frey", data_dir):
        folder.chmod(0o555)
    try:
        with pytest.raises(DataNotFoundError) as error:
            datasets.load("frey", data_dir=data_dir, download=False)
    finally:
        for folder in (data_dir, data_dir / "frey"):
            folder.chmod(0o755)
    message = str(error.value)
    assert "\n" not in message
    assert "frey_rawface.mat" in message and str(data_dir / "frey") in message
    assert "python data_fetch.py frey" in message and "NUMPYVAE_DATA" in message
    assert sorted(p.name for p in data_dir.rglob("*")) == ["frey"]


def test_amat_gzip_copy_is_verified_on_decompressed_content(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(4, 784), dtype=np.uint8)
    text = amat_text(bits)
    spec = FileSpec("binarized_mnist_test.amat", len(text), sha256(text), (), accepts_gzip_copy=True)
    dataset = replace(registry.BINARIZED_MNIST, name="tiny-binarized", files=(spec,),
                      splits={"test": (spec.filename,), "train": (spec.filename,)},
                      split_sizes={"test": 4, "train": 4})
    monkeypatch.setitem(registry.DATASETS, "tiny-binarized", dataset)
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    (folder / "binarized_mnist_test.amat.gz").write_bytes(gzip.compress(text, 9))
    x, labels = datasets.load("tiny-binarized", "test", data_dir=tmp_path, download=False)
    assert labels is None and np.array_equal(x, bits)
    # A gzip copy of different content fails, reporting the decompressed checksum.
    other = amat_text(1 - bits)
    (folder / "binarized_mnist_test.amat.gz").write_bytes(gzip.compress(other))
    with pytest.raises(ChecksumError, match="after decompression"):
        datasets.load("tiny-binarized", "test", data_dir=tmp_path, download=False)
    # A truncated gzip copy fails too.
    (folder / "binarized_mnist_test.amat.gz").write_bytes(gzip.compress(text)[:-20])
    with pytest.raises(ChecksumError, match="truncated gzip"):
        verify(spec, folder / "binarized_mnist_test.amat.gz")


def test_verify_reports_size_mismatch(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    spec = FileSpec("file.bin", 4, sha256(b"abcd"), ())
    with pytest.raises(ChecksumError, match="expected 4 bytes, found 3 bytes"):
        verify(spec, path)
    path.write_bytes(b"abcX")
    with pytest.raises(ChecksumError, match=f"expected {spec.sha256}, got {sha256(b'abcX')}"):
        verify(spec, path)


# --------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------


def test_registry_and_image_shapes():
    assert datasets.names() == ["frey", "binarized-mnist", "mnist", "fashion-mnist", "cifar10"]
    assert set(datasets.DATASETS) == set(datasets.names())
    assert datasets.image_shape("frey") == (28, 20)
    assert datasets.channels_and_size("frey") == (1, 28, 20)
    for name in ("binarized-mnist", "mnist", "fashion-mnist"):
        assert datasets.image_shape(name) == (28, 28)
        assert datasets.channels_and_size(name) == (1, 28, 28)
    assert datasets.image_shape("cifar10") == datasets.channels_and_size("cifar10") == (3, 32, 32)
    assert datasets.splits("cifar10") == ("train", "test")
    archive = datasets.get_dataset("cifar10").files[0]
    assert archive.urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert archive.size == 170498071
    assert archive.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert datasets.splits("binarized-mnist") == ("train", "valid", "test")
    assert datasets.splits("mnist") == ("train", "test")
    for dataset in datasets.DATASETS.values():
        assert set(dataset.split_sizes) == set(dataset.splits)
        for spec in dataset.files:
            assert len(spec.sha256) == 64 and spec.size > 0 and spec.urls
            assert all(url.startswith(("http://", "https://")) for url in spec.urls)
    mnist_urls = datasets.get_dataset("mnist").files[0].urls
    assert mnist_urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/") and len(mnist_urls) == 3
    with pytest.raises(DataError, match="unknown data set 'cifar'.*frey"):
        datasets.image_shape("cifar")


# --------------------------------------------------------------------------
# CIFAR-10 on small fake archives with the real layout
# --------------------------------------------------------------------------


def install_cifar(data_dir, monkeypatch, content, registered=None, sizes=(10, 3)):
    """Put ``content`` at ``data_dir/cifar10/cifar-10-python.tar.gz`` and make the registry's
    cifar10 entry expect the size and SHA-256 of ``registered`` (default: ``content`` itself)."""
    folder = data_dir / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar-10-python.tar.gz").write_bytes(content)
    registered = content if registered is None else registered
    spec = replace(registry.CIFAR10.files[0], size=len(registered), sha256=sha256(registered))
    monkeypatch.setitem(registry.DATASETS, "cifar10", replace(
        registry.CIFAR10, files=(spec,), split_sizes={"train": sizes[0], "test": sizes[1]}))
    return folder / "cifar-10-python.tar.gz"


def hostile_pickle(marker):
    """A protocol-0 pickle that, unpickled by plain ``pickle.loads``, runs ``touch marker``."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make any use of the restricted unpickler fail the test."""
    def refuse(self):
        raise AssertionError("a pickle was loaded from an archive that failed verification")
    monkeypatch.setattr(cifar.RestrictedUnpickler, "load", refuse)


def test_cifar10_loads_rows_labels_and_channel_order(tmp_path, monkeypatch):
    content, arrays = fake_cifar_archive(np.random.default_rng(5))
    install_cifar(tmp_path, monkeypatch, content)
    for split, count in (("train", 10), ("test", 3)):
        x, labels = datasets.load("cifar10", split, data_dir=tmp_path, download=False)
        images, expected_labels = arrays[split]
        assert x.shape == (count, 3072) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert labels.dtype == np.int64 and labels.tolist() == expected_labels
        # Rows keep the archive's order: training batches 1-5, then the test batch.
        np.testing.assert_array_equal(x, images / np.float32(255))
        # Channel-first: the first 1024 values are the red plane, 32 x 32 row-major.
        planes = x.reshape(-1, *datasets.channels_and_size("cifar10"))
        np.testing.assert_array_equal(planes[:, 0].reshape(count, -1), images[:, :1024] / np.float32(255))
        np.testing.assert_array_equal(planes[:, 2, 5, 7], images[:, 2 * 1024 + 5 * 32 + 7] / np.float32(255))


def test_cifar10_second_load_uses_the_caches(tmp_path, monkeypatch):
    install_cifar(tmp_path, monkeypatch, fake_cifar_archive(np.random.default_rng(6))[0])
    first = datasets.load("cifar10", "test", data_dir=tmp_path, download=False)

    def no_reading(*arguments, **keywords):
        raise AssertionError("the archive was read again although it did not change")

    monkeypatch.setattr("numpyvae.datasets.integrity.read_content", no_reading)
    monkeypatch.setattr("numpyvae.datasets.loading.read_content", no_reading)
    second = datasets.load("cifar10", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_cifar10_tampered_archive_is_refused_before_any_unpickling(tmp_path, monkeypatch, no_unpickling):
    rng = np.random.default_rng(7)
    good, _ = fake_cifar_archive(rng)
    # Same size, one byte changed.
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0x01
    path = install_cifar(tmp_path, monkeypatch, bytes(tampered), registered=good)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch") as error:
        datasets.load("cifar10", "train", data_dir=tmp_path, download=False)
    assert str(path) in str(error.value) and "data_fetch.py cifar10" in str(error.value)
    # An archive whose batch would run a command: refused on its checksum, nothing runs.
    marker = tmp_path / "marker"
    hostile, _ = fake_cifar_archive(rng, replace_members={cifar.TRAIN_MEMBERS[0]: hostile_pickle(marker)})
    install_cifar(tmp_path, monkeypatch, hostile, registered=good)
    with pytest.raises(ChecksumError):
        datasets.load("cifar10", "train", data_dir=tmp_path, download=False)
    assert not marker.exists()


def test_cifar10_hostile_pickle_is_refused_by_the_restricted_unpickler(tmp_path, monkeypatch):
    # Even a hostile archive that matched the registry would run nothing.
    marker = tmp_path / "marker"
    hostile, _ = fake_cifar_archive(np.random.default_rng(8),
                                    replace_members={cifar.TRAIN_MEMBERS[2]: hostile_pickle(marker)})
    install_cifar(tmp_path, monkeypatch, hostile)
    with pytest.raises(FormatError) as error:
        datasets.load("cifar10", "train", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert "\n" not in message and "refused to unpickle os.system" in message
    assert "data_batch_3" in message and "python data_fetch.py cifar10" in message
    assert not marker.exists()


@pytest.mark.parametrize("payload, refused", [
    (b"cos\nsystem\n(S'true'\ntR.", "os.system"),
    (b"cposix\nsystem\n(S'true'\ntR.", "posix.system"),
    (b"cbuiltins\neval\n(S'1'\ntR.", "builtins.eval"),
    (b"c__builtin__\neval\n(S'1'\ntR.", "__builtin__.eval"),  # the Python 2 name, not mapped to builtins
    (b"csubprocess\nPopen\n(S'true'\ntR.", "subprocess.Popen"),
    (b"cnumpy\nload\n(S'x'\ntR.", "numpy.load"),
    (pickle.dumps(os.system, protocol=4), "posix.system"),  # STACK_GLOBAL goes through find_class too
    (pickle.dumps(b"bytes", protocol=2), "_codecs.encode"),  # how Python 3 writes bytes at protocol 2
])
def test_restricted_unpickler_refuses_every_other_global(payload, refused):
    with pytest.raises(FormatError) as error:
        cifar.unpickle(payload, "archive:member")
    message = str(error.value)
    assert message.startswith(f"archive:member: refused to unpickle {refused} (nothing was run)")
    assert "\n" not in message


def test_restricted_unpickler_rebuilds_a_python2_numpy_batch():
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = cifar.unpickle(python2_pickle({b"data": images, b"labels": [3, 9], b"filenames": [b"a.png", b"b.png"]}),
                           "member")
    assert set(batch) == {b"data", b"labels", b"filenames"} and batch[b"labels"] == [3, 9]
    assert batch[b"data"].dtype == np.uint8 and np.array_equal(batch[b"data"], images)


def test_cifar10_malformed_archives_are_reported(tmp_path):
    rng = np.random.default_rng(9)
    with pytest.raises(FormatError, match="^a.tgz: not a readable .tar.gz archive"):
        cifar.read_cifar10_archive(b"not an archive", "a.tgz")
    complete, _ = fake_cifar_archive(rng)
    # An archive without test_batch: a copy that leaves it out.
    stream = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(complete), mode="r:gz") as source, \
            tarfile.open(fileobj=stream, mode="w:gz") as target:
        for info in source:
            if info.name != cifar.TEST_MEMBERS[0]:
                target.addfile(info, source.extractfile(info) if info.isfile() else None)
    with pytest.raises(FormatError, match="lacks cifar-10-batches-py/test_batch"):
        cifar.read_cifar10_archive(stream.getvalue(), "a.tgz")
    wrong_dtype = python2_pickle({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]})
    content, _ = fake_cifar_archive(rng, replace_members={cifar.TRAIN_MEMBERS[0]: wrong_dtype})
    with pytest.raises(FormatError, match="data_batch_1: b'data' is float32 \\(2, 3072\\), expected uint8"):
        cifar.read_cifar10_archive(content, "a.tgz")
    bad_labels = python2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    content, _ = fake_cifar_archive(rng, replace_members={cifar.TEST_MEMBERS[0]: bad_labels})
    with pytest.raises(FormatError, match="test_batch: b'labels' must be a list of 2 ints in 0..9"):
        cifar.read_cifar10_archive(content, "a.tgz")


def test_cifar10_missing_archive_says_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        datasets.load("cifar10", "train", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert str(tmp_path / "cifar10") in message and "data_fetch.py cifar10 --from DIR" in message
    assert "\n" not in message


def test_load_rejects_integer_dtype(tmp_path):
    with pytest.raises(ValueError, match="floating-point"):
        datasets.load("frey", data_dir=tmp_path, download=False, dtype=np.uint8)


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMPYVAE_DATA", str(tmp_path / "from-env"))
    assert datasets.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert datasets.resolve_data_dir() == tmp_path / "from-env"
    monkeypatch.delenv("NUMPYVAE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert datasets.resolve_data_dir() == tmp_path / "xdg" / "numpyvae" / "data"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert str(datasets.resolve_data_dir("~/d")) == str(tmp_path / "home" / "d")


def test_binarize_draws_bernoulli_values():
    x = np.linspace(0, 1, 101, dtype=np.float32)[None, :].repeat(2000, axis=0)
    sample = datasets.binarize(x, np.random.default_rng(3))
    assert sample.dtype == np.float32 and sample.shape == x.shape
    assert set(np.unique(sample)) <= {0.0, 1.0}
    assert np.all(sample[:, 0] == 0) and np.all(sample[:, -1] == 1)
    np.testing.assert_allclose(sample.mean(axis=0), x[0], atol=0.05)
    again = datasets.binarize(x, np.random.default_rng(3))
    assert np.array_equal(sample, again)  # reproducible from the generator
    assert not np.array_equal(sample, datasets.binarize(x, np.random.default_rng(4)))
    assert datasets.binarize(x.astype(np.float64), np.random.default_rng(3)).dtype == np.float64


def test_binarize_rejects_bad_arguments():
    with pytest.raises(TypeError, match="Generator"):
        datasets.binarize(np.zeros(3), np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        datasets.binarize(np.array([0.5, 1.5]), np.random.default_rng(0))


# --------------------------------------------------------------------------
# MAT reader on files written here
# --------------------------------------------------------------------------

_MI_TYPES = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 9, "i8": 12, "u8": 13}
_CLASSES = {"f8": 6, "f4": 7, "i1": 8, "u1": 9, "i2": 10, "u2": 11, "i4": 12, "u4": 13, "i8": 14, "u8": 15}


def mat_element(order, mi_type, payload, small=True):
    """One data element: tag plus data padded to 8 bytes, or the 8-byte small form."""
    if small and len(payload) <= 4:
        return struct.pack(order + "I", (len(payload) << 16) | mi_type) + payload.ljust(4, b"\0")
    return struct.pack(order + "II", mi_type, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def mat_matrix(order, name, array, stored=None, logical=False, small_name=True, class_code=None):
    """An miMATRIX element for a numeric array (column-major data, as MATLAB writes)."""
    array = np.asarray(array)
    is_complex = np.iscomplexobj(array)
    real = array.real if is_complex else array
    kind = real.dtype.str[1:]
    flags = (class_code or _CLASSES[kind]) | (0x0800 if is_complex else 0) | (0x0200 if logical else 0)
    stored = stored or kind
    body = mat_element(order, 6, struct.pack(order + "II", flags, 0), small=False)
    body += mat_element(order, 5, np.asarray(array.shape, order + "i4").tobytes(), small=False)
    body += mat_element(order, 1, name.encode("ascii"), small=small_name)
    for part in ([real, array.imag] if is_complex else [real]):
        data = np.asarray(part).astype(order + stored).tobytes(order="F")
        body += mat_element(order, _MI_TYPES[stored], data)
    return struct.pack(order + "II", 14, len(body)) + body


def mat_file(elements, order="<", version=0x0100, compress=False):
    """A complete level-5 MAT file from miMATRIX elements."""
    text = b"MATLAB 5.0 MAT-file, written by the numpyvae tests".ljust(116, b" ")
    header = text + b"\0" * 8 + struct.pack(order + "H", version) + (b"IM" if order == "<" else b"MI")
    body = b""
    for element in elements:
        if compress:
            packed = zlib.compress(element)
            body += struct.pack(order + "II", 15, len(packed)) + packed
        else:
            body += element
    return header + body


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_mat_reader_keeps_matlab_column_major_semantics(order, compress):
    # MATLAB's A = [0 1 2; 3 4 5] is stored column by column: 0 3 1 4 2 5.
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    content = mat_file([mat_matrix(order, "A", a)], order=order, compress=compress)
    if not compress:
        assert bytes([0, 3, 1, 4, 2, 5]) in content
    result = read_mat(content)
    assert list(result) == ["A"] and result["A"].dtype == np.uint8
    np.testing.assert_array_equal(result["A"], a)
    assert result["A"][:, 1].tolist() == [1, 4]  # a MATLAB column


def test_mat_reader_frey_layout():
    # A miniature frey_rawface.mat: 3 frames of 4 rows x 2 columns, one per MATLAB column.
    frames = np.arange(24, dtype=np.uint8).reshape(3, 4, 2)
    ff = frames.reshape(3, 8).T  # (8 pixels, 3 frames), as in the real file
    content = mat_file([mat_matrix("<", "ff", ff)])
    # The file stores frame after frame, each row-major: the raw pixel bytes in order.
    assert frames.tobytes() in content
    read = read_mat_variable(content, "ff")
    assert read.shape == (8, 3)
    np.testing.assert_array_equal(read.T.reshape(3, 4, 2), frames)


def test_mat_reader_classes_storage_types_and_several_variables():
    double = np.array([[1.5, -2.0], [np.pi, 1e300]])
    small_double = np.array([[1.0, 2.0, 250.0]])  # MATLAB stores these as miUINT8
    complex_values = np.array([[1 + 2j, -3.5j]])
    logical = np.array([[True, False], [False, True]])
    cube = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    content = mat_file([
        mat_matrix("<", "double", double),
        mat_matrix("<", "small", small_double, stored="u1"),
        mat_matrix("<", "z", complex_values),
        mat_matrix("<", "mask", logical.astype(np.uint8), logical=True),
        mat_matrix("<", "cube", cube, small_name=False),
    ])
    result = read_mat(content)
    np.testing.assert_array_equal(result["double"], double)
    assert result["small"].dtype == np.float64 and result["small"].tolist() == [[1.0, 2.0, 250.0]]
    np.testing.assert_array_equal(result["z"], complex_values)
    assert result["mask"].dtype == bool and np.array_equal(result["mask"], logical)
    np.testing.assert_array_equal(result["cube"], cube)


def test_mat_reader_skips_unsupported_classes():
    char = mat_matrix("<", "label", np.array([[72, 105]], np.uint16), class_code=4)
    content = mat_file([char, mat_matrix("<", "x", np.ones((1, 1), np.uint8))])
    assert list(read_mat(content)) == ["x"]
    with pytest.raises(FormatError, match="'label' is a MATLAB char array"):
        read_mat_variable(content, "label")
    with pytest.raises(FormatError, match=r"no variable 'ff'.*\['label', 'x'\]"):
        read_mat_variable(content, "ff")


def test_mat_reader_rejects_malformed_files(tmp_path):
    good = mat_file([mat_matrix("<", "ff", np.ones((4, 5), np.uint8))])
    path = tmp_path / "bad.mat"
    path.write_bytes(good[:100])
    with pytest.raises(FormatError, match=r"bad\.mat.*shorter than the 128-byte header"):
        read_mat(path)
    with pytest.raises(FormatError, match="truncated MAT file"):
        read_mat(good[:-8])
    with pytest.raises(FormatError, match="truncated MAT file"):
        read_mat(good[:132])
    html = b"<!DOCTYPE html><html>" + b" " * 200
    with pytest.raises(FormatError, match="not a MATLAB 5 MAT file.*'IM' or 'MI'"):
        read_mat(html)
    with pytest.raises(FormatError, match="7.3"):
        read_mat(mat_file([], version=0x0200))
    with pytest.raises(FormatError, match="corrupt compressed variable"):
        read_mat(good[:128] + struct.pack("<II", 15, 8) + b"notzlib!")
    wrong_count = bytearray(good)
    # Claim 21 values in the dimensions (4 x 5 = 20 stored).
    position = good.index(struct.pack("<ii", 4, 5))
    wrong_count[position:position + 8] = struct.pack("<ii", 3, 7)
    with pytest.raises(FormatError, match="should hold 21 values, its data holds 20"):
        read_mat(bytes(wrong_count))


_MAT_KINDS = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(_MAT_KINDS),
    shape=st.lists(st.integers(0, 4), min_size=2, max_size=4).map(tuple),
    order=st.sampled_from(["<", ">"]),
    compress=st.booleans(),
    data=st.data(),
)
def test_mat_reader_round_trip(kind, shape, order, compress, data):
    array = data.draw(hnp.arrays(np.dtype(kind), shape))
    result = read_mat(mat_file([mat_matrix(order, "v", array)], order=order, compress=compress))
    assert result["v"].dtype == np.dtype(kind) and result["v"].shape == shape
    np.testing.assert_array_equal(result["v"], array)


# --------------------------------------------------------------------------
# IDX reader on files written here
# --------------------------------------------------------------------------


def test_idx_reader_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 9], np.uint8)
    (tmp_path / "images.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "images.gz", expected_magic=IMAGES_MAGIC), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", expected_magic=LABELS_MAGIC), labels)


def test_idx_reader_rejects_malformed_files(tmp_path):
    images = np.zeros((2, 3, 4), np.uint8)
    good = idx_bytes(images)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(FormatError, match=r"t10k-images-idx3-ubyte: not an IDX file: magic number 0x12340803"):
        read_idx(path)
    with pytest.raises(FormatError, match="wrong IDX magic number 0x00000803, expected 0x00000801"):
        read_idx(good, expected_magic=LABELS_MAGIC)
    with pytest.raises(FormatError, match=r"truncated IDX file: dimensions \(2, 3, 4\) need 24 data bytes, found 23"):
        read_idx(good[:-1])
    with pytest.raises(FormatError, match="truncated IDX file: header needs 16 bytes"):
        read_idx(good[:10])
    with pytest.raises(FormatError, match="no room for the magic number"):
        read_idx(b"\x00\x00")
    with pytest.raises(FormatError, match="1 extra"):
        read_idx(good + b"\0")
    with pytest.raises(FormatError, match="truncated gzip"):
        read_idx(gzip.compress(good)[:-12])
    with pytest.raises(FormatError, match="corrupt gzip"):
        read_idx(b"\x1f\x8b" + b"\xff" * 30)


@settings(max_examples=60, deadline=None)
@given(
    type_code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    compressed=st.booleans(),
    data=st.data(),
)
def test_idx_reader_round_trip(type_code, shape, compressed, data):
    kind = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}[type_code]
    array = data.draw(hnp.arrays(np.dtype(kind), shape))
    content = idx_bytes(array, type_code)
    result = read_idx(gzip.compress(content) if compressed else content)
    assert result.dtype == np.dtype(kind) and result.shape == shape
    np.testing.assert_array_equal(result, array)


# --------------------------------------------------------------------------
# .amat reader on files written here
# --------------------------------------------------------------------------


def amat_text(bits):
    return b"".join(b" ".join(b"01"[v:v + 1] for v in row) + b"\n" for row in bits)


def test_amat_reader_round_trip(tmp_path):
    bits = np.random.default_rng(5).integers(0, 2, size=(7, 784), dtype=np.uint8)
    path = tmp_path / "x.amat"
    path.write_bytes(amat_text(bits))
    result = read_binarized_amat(path)
    assert result.dtype == np.uint8 and np.array_equal(result, bits)
    assert np.array_equal(read_binarized_amat(amat_text(bits)[:-1]), bits)  # no final newline


@settings(max_examples=30, deadline=None)
@given(bits=hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=st.integers(0, 1)))
def test_amat_reader_round_trip_any_width(bits):
    assert np.array_equal(read_binarized_amat(amat_text(bits), columns=bits.shape[1]), bits)


def test_amat_reader_rejects_malformed_lines(tmp_path):
    bits = np.zeros((4, 784), np.uint8)
    lines = amat_text(bits).split(b"\n")
    cases = {
        "a value 2": (2, lines[2][:10] + b"2" + lines[2][11:], r"line 3, value 6: expected 0 or 1, found b'2'"),
        "a short line": (1, lines[1][:-2], r"line 2: expected 784 values .* found 783 fields"),
        "two spaces": (0, lines[0][:3] + b" " + lines[0][3:-2], r"line 1, value 3: expected 0 or 1, found b''"),
        "carriage return": (3, lines[3] + b"\r", r"line 4, value 784: expected 0 or 1, found b'0\\r'"),
    }
    for name, (index, replacement, pattern) in cases.items():
        broken = list(lines)
        broken[index] = replacement
        path = tmp_path / "broken.amat"
        path.write_bytes(b"\n".join(broken))
        with pytest.raises(FormatError, match=pattern):
            read_binarized_amat(path)
    with pytest.raises(FormatError, match="empty"):
        read_binarized_amat(b"")


def test_gzip_copy_limits_and_multiple_members(tmp_path):
    text = amat_text(np.ones((3, 4), np.uint8))
    spec = FileSpec("x.amat", len(text), sha256(text), (), accepts_gzip_copy=True)
    path = tmp_path / "x.amat.gz"
    # gzip may write several members in a row; their concatenation is the content.
    path.write_bytes(gzip.compress(text[:10]) + gzip.compress(text[10:]))
    verify(spec, path)
    # A copy that inflates far beyond the registered size is stopped early.
    path.write_bytes(gzip.compress(b"0" * (64 << 20)))
    with pytest.raises(ChecksumError, match=f"expected {len(text)} bytes, found more than {len(text)} bytes"):
        verify(spec, path)


def test_reader_errors_name_their_source():
    for reader, content in ((read_idx, b"\x00\x00"), (read_binarized_amat, b"2\n"), (read_mat, b"short")):
        with pytest.raises(FormatError, match="^<bytes>"):
            reader(content)
        with pytest.raises(FormatError, match="^some/file.name"):
            reader(content, where="some/file.name")
