"""Turning verified data files into arrays: ``load``, ``image_shape``, ``binarize``.

Pixel scaling: grey levels (and CIFAR-10's colour levels) are divided by
**255**, so 0 maps to 0.0 and 255 to 1.0.  (``anglepy``, Kingma's original
code, divides the Frey faces by 256; that shrinks every pixel by 255/256 and
shifts a continuous-likelihood bound on the 560-pixel Frey faces by
560 * log(256/255), about 2.2 nats.  Multiply ``x`` by 255/256 to reproduce it.)
"""

import numpy as np

from . import cache, cifar
from .amat import read_binarized_amat
from .errors import DataError, DataNotFoundError, FormatError
from .fetch import download_file
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .integrity import check, locate, read_content, verify
from .matfile import read_mat_variable
from .paths import resolve_data_dir
from .registry import get_dataset

FREY_SPLIT_SEED = 0
FREY_TRAIN_SIZE = 1600
FREY_FRAMES = 1965
FREY_PIXELS = 560


def frey_split():
    """Indices of the Frey frames in each split: ``{"train": 1600 ints, "test": 365 ints}``.

    ``numpy.random.default_rng(0).permutation(1965)``; its first 1600 entries,
    sorted, are the training frames and the other 365, sorted, the test frames.
    Sorting keeps the frames of each split in video order.
    """
    permutation = np.random.default_rng(FREY_SPLIT_SEED).permutation(FREY_FRAMES)
    return {
        "train": np.sort(permutation[:FREY_TRAIN_SIZE]),
        "test": np.sort(permutation[FREY_TRAIN_SIZE:]),
    }


def _parse_frey(content, where, spec):
    faces = read_mat_variable(content, "ff", where=where)
    if faces.shape != (FREY_PIXELS, FREY_FRAMES) or faces.dtype != np.uint8:
        raise FormatError(f"{where}: variable 'ff' is {faces.dtype} {faces.shape}, expected uint8 (560, 1965)")
    return faces


def _parse_amat(content, where, spec):
    return read_binarized_amat(content, columns=784, where=where)


def _parse_idx(content, where, spec):
    # The magic number check catches an images file saved under a labels name.
    magic = LABELS_MAGIC if "-labels-" in spec.filename else IMAGES_MAGIC
    return read_idx(content, expected_magic=magic, where=where)


def _parse_cifar(content, where, spec):
    return cifar.read_cifar10_archive(content, where)


# reader -> (name of its parsed-array cache entries, parse function)
_PARSERS = {
    "frey": ("frey-mat", _parse_frey),
    "binarized-amat": ("amat", _parse_amat),
    "idx": ("idx", _parse_idx),
    "cifar-python": ("cifar-python", _parse_cifar),
}


def _missing_message(dataset, spec, directory):
    looked_for = " or ".join(spec.stored_names())
    return (
        f"{dataset.name}: file {spec.filename} is not in {directory} (looked for {looked_for}) "
        f"and download=False. Get it with `python data_fetch.py {dataset.name} --data-dir {directory.parent}` "
        f"(downloads from {spec.urls[0] if spec.urls else 'its source'}), or download it by hand and "
        f"run `python data_fetch.py {dataset.name} --from DIR --data-dir {directory.parent}`, "
        f"or call load(..., download=True), or point NUMPYVAE_DATA (--data-dir) at a data directory that has it."
    )


def _load_file(dataset, spec, directory, download):
    """Return the parsed raw array of one file, downloading it first if allowed and needed."""
    path = locate(spec, directory)
    if path is None:
        if not download:
            raise DataNotFoundError(_missing_message(dataset, spec, directory))
        path = download_file(spec, directory, dataset.name)
    reader, parse = _PARSERS[dataset.reader]
    digest, content = verify(spec, path, dataset.name, keep=True)
    array = cache.cached_array(digest, reader)
    if array is None:
        if content is None:
            # Verified earlier (recorded), but the bytes are needed now: hash
            # them again while reading, at no extra I/O cost.
            digest, size, content = read_content(spec, path)
            check(spec, path, digest, size, dataset.name)
        array = parse(content, str(path), spec)
        cache.store_array(digest, reader, array)
    return array


def _as_float(raw, dtype, scale):
    result = raw.astype(dtype)
    if scale != 1:
        result /= dtype.type(scale)
    return result


def load(name, split="train", data_dir=None, download=True, dtype=np.float32):
    """Load a split of a data set as ``(x, labels)``.

    ``x`` is a C-contiguous float array of shape (examples, pixels) with values
    in [0, 1]: grey levels divided by 255, or exactly 0/1 for binarized MNIST.
    Each row is an image flattened row-major; ``x.reshape(-1, *image_shape(name))``
    gives upright images (channel-first (3, 32, 32) for CIFAR-10: the red,
    green and blue planes one after the other).  ``labels`` is an int64 array
    of class indices (MNIST, Fashion-MNIST, CIFAR-10) or None (Frey, binarized
    MNIST).

    ``split`` is "train" or "test" for every data set, and also "valid" for
    binarized MNIST.  Split sizes: frey 1600/365 (see ``frey_split``),
    binarized-mnist 50000/10000/10000, mnist and fashion-mnist 60000/10000,
    cifar10 50000/10000.

    The data directory is ``data_dir``, else ``$NUMPYVAE_DATA``, else the
    per-user default (``resolve_data_dir``).  Every file is checked against the
    registered size and SHA-256 (the result is remembered while the file is
    unchanged).  A missing file is downloaded when ``download`` is true;
    otherwise ``DataNotFoundError`` says how to get it.  A file that fails
    verification raises ``ChecksumError`` and is never replaced behind the
    user's back (``python data_fetch.py NAME`` replaces it).  ``dtype`` is
    float32 (default) or float64.

    Dynamic binarization is deliberately not done here: call ``binarize`` on
    every minibatch so that each pass sees fresh Bernoulli draws.
    """
    dataset = get_dataset(name)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type such as float32 or float64, not {dtype}")
    specs = dataset.files_for_split(split)
    directory = resolve_data_dir(data_dir) / dataset.directory
    arrays = [_load_file(dataset, spec, directory, download) for spec in specs]

    if dataset.reader == "frey":
        faces = arrays[0].T  # one row per frame; MATLAB column j is frame j
        x = _as_float(faces[frey_split()[split]], dtype, 255)
        labels = None
    elif dataset.reader == "binarized-amat":
        x = _as_float(arrays[0], dtype, 1)
        labels = None
    elif dataset.reader == "cifar-python":
        records = cifar.split_records(arrays[0], split)
        x = _as_float(records["image"], dtype, 255)
        labels = records["label"].astype(np.int64)
    else:
        images, label_values = arrays
        if images.ndim != 3 or label_values.ndim != 1 or len(images) != len(label_values):
            raise FormatError(
                f"{dataset.name} {split}: images {images.shape} and labels {label_values.shape} do not match"
            )
        x = _as_float(images.reshape(len(images), -1), dtype, 255)
        labels = label_values.astype(np.int64)

    expected = dataset.split_sizes[split]
    if len(x) != expected:
        raise FormatError(f"{dataset.name} {split}: {len(x)} examples, expected {expected}")
    return np.ascontiguousarray(x), labels


def image_shape(name):
    """The shape of one image of data set ``name``, as the rows of ``load``'s ``x`` are laid out.

    (rows, columns) for grey data sets -- (28, 20) for Frey, (28, 28) for the
    MNIST family -- and channel-first (channels, rows, columns) for colour ones:
    (3, 32, 32) for CIFAR-10.  ``channels_and_size`` gives (C, H, W) for all.
    """
    return tuple(get_dataset(name).image_shape)


def class_names(name):
    """The names of data set ``name``'s labels 0, 1, ... (Fashion-MNIST's "T-shirt/top",
    "Trouser", ...), or None for a data set without labels or not in the registry."""
    try:
        names = get_dataset(name).class_names
    except DataError:    # a user's own data: its labels have no names
        return None
    return tuple(names) or None


def channels_and_size(name):
    """(channels, rows, columns) of one image of data set ``name``, for every data set.

    (1, H, W) for grey data sets, (3, 32, 32) for CIFAR-10: what a convolutional
    network needs whatever the data set.  ``x.reshape(-1, *channels_and_size(name))``
    turns ``load``'s rows into (N, C, H, W) images.
    """
    shape = image_shape(name)
    return shape if len(shape) == 3 else (1, *shape)


def splits(name):
    """Names of the splits of data set ``name`` (e.g. ``("train", "valid", "test")``)."""
    return tuple(get_dataset(name).splits)


def binarize(x, rng):
    """Draw binary images: each value is 1 with probability ``x`` (Bernoulli), else 0.

    Call it on every minibatch of grey-level data (MNIST, Fashion-MNIST) so each
    pass sees a fresh binarization ("dynamic binarization"); a Bernoulli
    likelihood is only a likelihood for binary data.  ``rng`` must be a
    ``numpy.random.Generator``.  Returns a float array of ``x``'s shape and
    float dtype (float64 for non-float input) holding exactly 0.0 and 1.0.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), not {type(rng).__name__}")
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if x.size and not (np.all(x >= 0) and np.all(x <= 1)):
        raise ValueError("binarize needs probabilities: every value of x must lie in [0, 1]")
    uniform_dtype = np.float32 if dtype == np.float32 else np.float64
    return (rng.random(x.shape, dtype=uniform_dtype) < x).astype(dtype)


def available(name, split="train", data_dir=None):
    """Whether every file of ``split`` is present in the data directory (not verified)."""
    dataset = get_dataset(name)
    directory = resolve_data_dir(data_dir) / dataset.directory
    try:
        return all(locate(spec, directory) is not None for spec in dataset.files_for_split(split))
    except DataError:
        return False


def fixed_subset(n_examples, count, seed, stream):
    """Sorted indices of a fixed random subset of ``count`` of ``n_examples`` rows, drawn
    by ``default_rng([seed, stream])`` (every row when count is None or >= n_examples).

    Random, not the first rows: data sets are ordered (binarized MNIST's test set by
    class, MNIST's starts with 5000 cleaner digits), so a prefix is a biased sample.
    """
    if count is None or count >= n_examples:
        return np.arange(n_examples)
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n_examples, size=count, replace=False))


TRAINING_ROWS_SEED = 11   # one --train-examples subset for every seed and run


def training_rows(n_examples, count):
    """Sorted rows of the training split that a run trained on ``count`` examples keeps
    (numpyvae.train --train-examples): the same subset for every seed."""
    if count > n_examples:
        raise ValueError(f"--train-examples {count}, but the training split has {n_examples} "
                         f"examples: use at most {n_examples}.")
    return fixed_subset(n_examples, count, TRAINING_ROWS_SEED, stream=0)
