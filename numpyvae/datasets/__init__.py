"""Data sets of the AEVB paper and its successors, verified and parsed with NumPy only.

>>> from numpyvae import datasets
>>> x, labels = datasets.load("frey", "train")          # (1600, 560) float32 in [0, 1], None
>>> x.reshape(-1, *datasets.image_shape("frey"))        # upright 28 x 20 faces
>>> datasets.channels_and_size("cifar10")                # (3, 32, 32): (C, H, W) for conv nets

Data sets (``names()``): ``frey``, ``binarized-mnist``, ``mnist``,
``fashion-mnist``, ``cifar10``; ``DATASETS[name]`` holds each one's files
(canonical URL, mirrors, size, SHA-256), splits and citation.

* ``load(name, split="train", data_dir=None, download=True, dtype=float32)``
  returns ``(x, labels)``; missing files are downloaded and every file is
  verified against its SHA-256.
* ``image_shape(name)``: (H, W) for grey data sets, channel-first (C, H, W) for
  colour ones; ``channels_and_size(name)``: (C, H, W) for every data set;
  ``class_names(name)``: the names of the labels (None without labels).
* ``binarize(x, rng)`` draws a fresh Bernoulli binarization (per minibatch).
* ``resolve_data_dir(data_dir=None)``: ``data_dir``, else ``$NUMPYVAE_DATA``,
  else ``<user cache>/numpyvae/data`` (e.g. ``~/.cache/numpyvae/data``).
* ``fetch(name, data_dir=None, source_dir=None)`` downloads (or imports from a
  local folder) and verifies all files of a data set; ``data_fetch.py`` is the
  command-line front end.

* ``files``: a data set from one's own ``.npy``, ``.npz`` or ``.csv`` file
  (``python -m numpyvae.train --dataset PATH``): ``files.read(path)`` checks it,
  ``files.load_split(config["data_file"], split)`` gives a run's rows scaled as it
  trained on them, ``files.scale(rows, config["data_file"])`` scales new rows alike.

All errors derive from ``DataError`` and say what to do.
"""

from . import files
from .errors import ChecksumError, DataError, DataNotFoundError, DownloadError, FormatError
from .fetch import FetchResult, download_file, fetch, fetch_file, import_file
from .loading import (available, binarize, channels_and_size, class_names, fixed_subset,
                      frey_split, image_shape, load, splits, training_rows)
from .paths import cache_dir, default_data_dir, resolve_data_dir
from .registry import DATASETS, Dataset, FileSpec, get_dataset, names

__all__ = [
    "fixed_subset", "training_rows",
    "files",
    "DATASETS",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "DownloadError",
    "FetchResult",
    "FileSpec",
    "FormatError",
    "available",
    "binarize",
    "cache_dir",
    "channels_and_size",
    "class_names",
    "default_data_dir",
    "download_file",
    "fetch",
    "fetch_file",
    "frey_split",
    "get_dataset",
    "image_shape",
    "import_file",
    "load",
    "names",
    "resolve_data_dir",
    "splits",
]
