"""The table of data sets: files, URLs, sizes, checksums, splits and citations.

The entries are plain frozen data objects so that tests (and users with their
own mirror) can build modified copies with ``dataclasses.replace`` -- for
example to point the URLs at a local HTTP server.

Sizes and SHA-256 values are those of the *original* files as served by the
canonical URLs (they match the checksums recorded by TensorFlow Datasets and,
through MD5, torchvision; for CIFAR-10, whose python archive TensorFlow
Datasets does not use, the SHA-256 is the one Keras pins and the MD5
torchvision's).  For the binarized MNIST ``.amat`` text files a gzip-compressed
copy ``<name>.amat.gz`` is accepted as well; its checksum is
computed over the decompressed bytes, so it is the same recorded value.
"""

from dataclasses import dataclass, field

from .errors import DataError


@dataclass(frozen=True)
class FileSpec:
    """One original file of a data set.

    ``urls`` lists the canonical URL first and then mirrors, in the order they
    are tried.  ``accepts_gzip_copy`` means that ``filename + ".gz"`` (a gzip
    copy of the original) may stand in for the file; ``size`` and ``sha256``
    always describe the original, uncompressed bytes.
    """

    filename: str
    size: int
    sha256: str
    urls: tuple
    accepts_gzip_copy: bool = False

    def stored_names(self):
        """File names that may hold this file in a data directory, preferred first."""
        if self.accepts_gzip_copy:
            return (self.filename, self.filename + ".gz")
        return (self.filename,)


@dataclass(frozen=True)
class Dataset:
    """A data set: its files, how they form splits, and where it comes from.

    ``splits`` maps a split name to the file names it needs (images first,
    then labels if any); ``split_sizes`` gives the number of examples per split.
    ``reader`` selects the parsing code in ``loading.py``.  ``image_shape`` is
    (rows, columns) for grey images and channel-first (channels, rows, columns)
    for colour ones -- the order of the values in one row of ``load``'s ``x``.
    ``class_names`` names the labels 0, 1, ... of a labelled data set, in order.
    """

    name: str
    title: str
    directory: str
    reader: str
    image_shape: tuple
    files: tuple
    splits: dict
    split_sizes: dict
    has_labels: bool
    homepage: str
    citation: str
    notes: str = ""
    class_names: tuple = ()
    _by_name: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {spec.filename: spec for spec in self.files})

    def file(self, filename):
        """The ``FileSpec`` with this original file name."""
        return self._by_name[filename]

    def files_for_split(self, split):
        """The ``FileSpec`` objects that loading ``split`` reads."""
        if split not in self.splits:
            raise DataError(
                f"data set {self.name!r} has no split {split!r}; "
                f"its splits are {', '.join(repr(s) for s in self.splits)}"
            )
        return tuple(self.file(filename) for filename in self.splits[split])


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


def _mnist_file(filename, size, sha256):
    return FileSpec(filename, size, sha256, tuple(base + filename for base in _MNIST_MIRRORS))


def _fashion_file(filename, size, sha256):
    return FileSpec(filename, size, sha256, (_FASHION_MNIST_URL + filename,))


def _binarized_file(split, size, sha256):
    filename = f"binarized_mnist_{split}.amat"
    return FileSpec(filename, size, sha256, (_BINARIZED_MNIST_URL + filename,), accepts_gzip_copy=True)


_IDX_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

FREY = Dataset(
    name="frey",
    title="Frey Face",
    directory="frey",
    reader="frey",
    image_shape=(28, 20),
    files=(
        FileSpec(
            "frey_rawface.mat",
            1100584,
            "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
            ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
        ),
    ),
    splits={"train": ("frey_rawface.mat",), "test": ("frey_rawface.mat",)},
    split_sizes={"train": 1600, "test": 365},
    has_labels=False,
    homepage="https://cs.nyu.edu/~roweis/data.html",
    citation=(
        "Data from Sam Roweis' data page, with thanks to Brendan Frey. "
        "B. J. Frey, A. Colmenarez, T. S. Huang, 'Mixtures of Local Linear Subspaces "
        "for Face Recognition', Proc. IEEE CVPR 1998."
    ),
    notes=(
        "1965 video frames of one face, 28 rows x 20 columns, grey levels. "
        "Split: numpy.random.default_rng(0).permutation(1965); the first 1600 "
        "indices (sorted) are 'train', the other 365 (sorted) 'test'."
    ),
)

BINARIZED_MNIST = Dataset(
    name="binarized-mnist",
    title="Binarized MNIST (Larochelle & Murray fixed binarization)",
    directory="binarized_mnist",
    reader="binarized-amat",
    image_shape=(28, 28),
    files=(
        _binarized_file("train", 78400000, "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
        _binarized_file("valid", 15680000, "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
        _binarized_file("test", 15680000, "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
    ),
    splits={split: (f"binarized_mnist_{split}.amat",) for split in ("train", "valid", "test")},
    split_sizes={"train": 50000, "valid": 10000, "test": 10000},
    has_labels=False,
    homepage="http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
    citation=(
        "H. Larochelle and I. Murray, 'The Neural Autoregressive Distribution Estimator', "
        "AISTATS 2011 (JMLR W&CP 15:29-37); R. Salakhutdinov and I. Murray, 'On the "
        "Quantitative Analysis of Deep Belief Networks', ICML 2008."
    ),
    notes="Text files, one image per line: 784 values 0/1 separated by single spaces.",
)

MNIST = Dataset(
    name="mnist",
    title="MNIST",
    directory="mnist",
    reader="idx",
    image_shape=(28, 28),
    files=(
        _mnist_file("train-images-idx3-ubyte.gz", 9912422,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        _mnist_file("train-labels-idx1-ubyte.gz", 28881,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        _mnist_file("t10k-images-idx3-ubyte.gz", 1648877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        _mnist_file("t10k-labels-idx1-ubyte.gz", 4542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    splits=dict(_IDX_SPLITS),
    split_sizes={"train": 60000, "test": 10000},
    has_labels=True,
    homepage="http://yann.lecun.com/exdb/mnist/",
    citation=(
        "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, 'Gradient-Based Learning Applied to "
        "Document Recognition', Proc. IEEE 86(11):2278-2324, 1998; Y. LeCun, C. Cortes, "
        "C. J. C. Burges, 'The MNIST database of handwritten digits'."
    ),
    notes="Grey levels; use numpyvae.datasets.binarize per minibatch for a Bernoulli likelihood.",
    class_names=tuple(str(digit) for digit in range(10)),
)

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    directory="fashion-mnist",
    reader="idx",
    image_shape=(28, 28),
    files=(
        _fashion_file("train-images-idx3-ubyte.gz", 26421880,
                      "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        _fashion_file("train-labels-idx1-ubyte.gz", 29515,
                      "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        _fashion_file("t10k-images-idx3-ubyte.gz", 4422102,
                      "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        _fashion_file("t10k-labels-idx1-ubyte.gz", 5148,
                      "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    splits=dict(_IDX_SPLITS),
    split_sizes={"train": 60000, "test": 10000},
    has_labels=True,
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    citation=(
        "H. Xiao, K. Rasul, R. Vollgraf, 'Fashion-MNIST: a Novel Image Dataset for "
        "Benchmarking Machine Learning Algorithms', arXiv:1708.07747, 2017."
    ),
    notes="Same IDX format and file names as MNIST.",
    # The labels' names as the data set's README gives them.
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
)

CIFAR10 = Dataset(
    name="cifar10",
    title="CIFAR-10",
    directory="cifar10",
    reader="cifar-python",
    image_shape=(3, 32, 32),
    files=(
        # SHA-256 as pinned by Keras (keras/src/datasets/cifar10.py) for this URL;
        # its MD5 is c58f30108f718f92721af3b95e74349a (torchvision/datasets/cifar.py).
        FileSpec(
            _CIFAR10_ARCHIVE,
            170498071,
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            ("https://www.cs.toronto.edu/~kriz/" + _CIFAR10_ARCHIVE,),
        ),
    ),
    splits={"train": (_CIFAR10_ARCHIVE,), "test": (_CIFAR10_ARCHIVE,)},
    split_sizes={"train": 50000, "test": 10000},
    has_labels=True,
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    citation=(
        "A. Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', "
        "technical report, University of Toronto, 2009."
    ),
    notes=(
        "32 x 32 colour images of 10 classes (0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, "
        "5 dog, 6 frog, 7 horse, 8 ship, 9 truck). The 'python version' archive: train is "
        "data_batch_1..5, test is test_batch. Rows are channel-first: 1024 red, 1024 green, "
        "1024 blue values, each 32 x 32 row-major. The batches are pickles, read from the "
        "verified archive by a restricted unpickler (numpyvae/datasets/cifar.py)."
    ),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
)

DATASETS = {dataset.name: dataset for dataset in (FREY, BINARIZED_MNIST, MNIST, FASHION_MNIST, CIFAR10)}


def names():
    """Names of the registered data sets, in registry order."""
    return list(DATASETS)


def get_dataset(name):
    """The ``Dataset`` entry for ``name``; a ``DataError`` listing the names otherwise.

    Looked up at call time so that tests can patch ``DATASETS``.
    """
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}"
        ) from None
