"""A data set from the user's own file: ``python -m numpyvae.train --dataset PATH``.

Formats (every array loads with ``allow_pickle=False``):

* ``.npy``: one array of examples;
* ``.npz``: arrays ``train`` and ``test`` (the split, as the file gives it); else an array
  ``x``; else its only array. Other arrays (labels, say) are ignored, and named.
* ``.csv``: numbers separated by commas, one example per line; a first line of names
  only is a header (a first line that mixes names and numbers is refused).

Layout: ``(N, D)`` is N examples (rows) of D values; ``(N, H, W)`` grey images;
``(N, C, H, W)`` or ``(N, H, W, C)`` images with C = 1 or 3 channels, told apart by
where the 1 or 3 is (both places: refused as ambiguous). Images become rows flattened
channel-first, as ``numpyvae.datasets.load`` gives the built-in ones, and keep their shape
for figures and conv nets.

Values, likelihood and scaling (the data's choice; ``--likelihood`` and
``--output-activation`` override it):

* every value 0 or 1: ``bernoulli``, the values as they are;
* every value within [0, 1]: ``gaussian`` with a sigmoid mean, as they are;
* images outside [0, 1] are mapped onto it: uint8 as x / 255, others as
  (x - min) / (max - min), min and max over the whole file; then the rules above;
* rows outside [0, 1]: ``gaussian`` with an identity mean, each column standardized,
  (x - mean) / std with the training rows' mean and std (a constant column is only
  centred). A likelihood that needs [0, 1] (Bernoulli, a sigmoid mean) is refused there.

Split: the file's own ``train``/``test``, else 10% of the rows (at least one) to test,
``numpy.random.default_rng(0).permutation(N)``: its first N - n_test entries, sorted,
train, the rest test (fixed, so runs of any seed share their test rows).

What was done is recorded in the run's config.json (``data_file``: the file's path and
SHA-256, layout, split, scaling), so that ``--resume`` and ``numpyvae.evaluate`` read the
same rows scaled the same way, and refuse a file that changed.
"""
import csv
import hashlib
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy

from .errors import DataError, DataNotFoundError, FormatError

SUFFIXES = (".npy", ".npz", ".csv")
TEST_FRACTION = 0.1
SPLIT_SEED = 0
MIN_ROWS = 2
_NUMERIC_KINDS = "biuf"            # bool, signed and unsigned integers, floats
_KIND_NAMES = {"c": "complex numbers", "U": "text", "S": "bytes", "O": "Python objects",
               "M": "dates", "m": "time spans", "V": "records"}


class ChangedFileError(DataError):
    """The file's bytes differ from those a run was trained on."""


def is_data_file(name):
    """Whether ``name`` names a file of one of the accepted formats (by its suffix)."""
    return str(name).lower().endswith(SUFFIXES)


@dataclass
class FileData:
    """What a file holds, checked: ``rows`` (N, D) in the file's own dtype (images
    flattened channel-first), the last ``given_test`` of them the file's test split."""

    path: Path
    sha256: str
    format: str
    arrays: list          # the arrays read (.npz), in order
    ignored: list         # the .npz arrays not read
    header: list          # a .csv's column names, or None
    shape: list           # the array's shape as stored (train's when the file splits)
    layout: str           # "rows", or how images were stored: "(N, H, W)", "(N, C, H, W)"...
    image_shape: tuple    # (1, D) rows, (H, W) grey or (C, H, W) images
    rows: numpy.ndarray
    given_test: int       # rows of the file's own test split (0: numpyvae splits)

    @property
    def name(self):
        return self.path.stem

    @property
    def images(self):
        return self.layout != "rows"


# ------------------------------------------------------------------------ reading
def _read_bytes(path, expected_sha256=None):
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory: give a .npy, .npz or .csv file.") from None
    except OSError as error:
        raise DataError(f"Cannot read {path} ({error.strerror}).") from None
    digest = hashlib.sha256(content).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ChangedFileError(
            f"{path} has changed since the run was trained on it (SHA-256 {expected_sha256[:12]}... "
            f"then, {digest[:12]}... now): restore that file, or train a new run on this one.")
    return content, digest


def _load_npy(content, where):
    if not content.startswith(b"\x93NUMPY"):
        what = "a Python pickle" if content[:1] == b"\x80" else "something else"
        raise FormatError(f"{where} is not a .npy array (it holds {what}): save one with "
                          "numpy.save(path, x).")
    try:
        return numpy.load(io.BytesIO(content), allow_pickle=False)
    except ValueError as error:
        raise _load_error(where, error) from None


def _load_error(where, error):
    """A one-line FormatError for numpy.load's ValueError (pickled objects, truncation)."""
    if "pickle" in str(error):
        return FormatError(f"{where} holds Python objects (an object array), which are not "
                           "loaded: unpickling can run any code. Save numbers instead, e.g. "
                           "numpy.save(path, x.astype(float)).")
    return FormatError(f"{where} cannot be read as a numpy array ({error}); is it whole?")


def _load_npz(content, where):
    """The arrays to use, by name, and the names of those ignored."""
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise FormatError(f"{where} is not a .npz archive (not a zip file): save one with "
                          "numpy.savez(path, x=x).")
    try:
        archive = numpy.load(io.BytesIO(content), allow_pickle=False)
        names = list(archive.files)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise FormatError(f"{where} cannot be read as a .npz archive ({error}).") from None
    if "train" in names or "test" in names:
        if "x" in names or not {"train", "test"} <= set(names):
            raise FormatError(
                f"{where} holds arrays {', '.join(names)}: give both 'train' and 'test' (the "
                "split, as you made it) and no 'x', or only 'x' (numpyvae splits it).")
        chosen = ["train", "test"]
    elif "x" in names:
        chosen = ["x"]
    elif len(names) == 1:
        chosen = names
    else:
        raise FormatError(
            f"{where} holds {'no arrays' if not names else 'arrays ' + ', '.join(names)}: "
            "name the examples 'x' (numpyvae splits them), or save 'train' and 'test'.")
    arrays = {}
    for name in chosen:
        try:
            arrays[name] = archive[name]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
            raise _load_error(f"{where} (array {name!r})", error) from None
    return arrays, [name for name in names if name not in chosen]


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(content, where):
    """(values (N, D) float64, the file line of each row, the header or None)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError(f"{where} is not UTF-8 text (byte {error.start}): save the table "
                          "as a UTF-8 .csv of numbers.") from None
    reader = csv.reader(io.StringIO(text))
    header, rows, lines, width = None, [], [], None
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue                            # blank lines separate nothing
            line = reader.line_num
            values = [_number(cell) for cell in cells]
            if width is None:
                width, first_line = len(cells), line
                if all(value is None for value in values):
                    header = [cell.strip() for cell in cells]
                    continue
                if header is None and any(value is None for value in values):
                    column = values.index(None)
                    raise FormatError(
                        f"{where}, line {line} mixes names and numbers (column {column + 1}: "
                        f"{cells[column]!r}): a header line holds names only, every other "
                        "line numbers only.")
            if len(cells) != width:
                raise FormatError(f"{where}, line {line} has {len(cells)} cells but line "
                                  f"{first_line} has {width}: every line needs the same columns.")
            if None in values:
                column = values.index(None)
                cell = cells[column]
                what = "is empty" if not cell.strip() else f"is {cell!r}, not a number"
                raise FormatError(f"{where}, line {line}, column {column + 1} {what}: fill or "
                                  "drop that row (every cell below the header must be a number).")
            rows.append(values)
            lines.append(line)
    except csv.Error as error:
        raise FormatError(f"{where}, line {reader.line_num}: {error}.") from None
    return numpy.array(rows, dtype=numpy.float64).reshape(len(rows), width or 0), lines, header


def _check_values(array, where, locate):
    """A numeric dtype and finite values; ``locate(index)`` names an entry."""
    kind = array.dtype.kind
    if kind not in _NUMERIC_KINDS:
        fields = f" (fields {', '.join(array.dtype.names)})" if array.dtype.names else ""
        advice = ("stack the numeric fields into one array, e.g. numpy.lib.recfunctions."
                  "structured_to_unstructured(x)" if array.dtype.names else
                  "convert it to numbers (x.astype(float)) or drop those columns")
        raise FormatError(f"{where} holds {_KIND_NAMES.get(kind, 'values')} of dtype "
                          f"{array.dtype}{fields}, not real numbers: {advice}.")
    if kind != "f":
        return
    finite = numpy.isfinite(array)
    if finite.all():
        return
    bad = array[~finite]
    nans = int(numpy.isnan(bad).sum())
    first = tuple(int(i) for i in numpy.argwhere(~finite)[0])
    value = array[first]
    plural = "s" if bad.size > 1 else ""
    raise FormatError(f"{where} holds {bad.size} non-finite value{plural} ({nans} NaN, "
                      f"{bad.size - nans} infinite); the first, {value}, is at {locate(first)}: "
                      "fill or drop those examples.")


def _check_rows(array, where, minimum):
    """At least ``minimum`` examples, each of some values, along the first axis."""
    if array.ndim == 0:
        raise FormatError(f"{where} holds a single number, not examples.")
    if array.ndim == 1:
        raise FormatError(
            f"{where} is a 1-D array of {array.shape[0]} values, but examples are rows: save "
            f"x.reshape(-1, 1) ({array.shape[0]} examples of one value) or x.reshape(1, -1) "
            "(one example), or an (N, D) array.")
    if array.shape[0] < minimum:
        raise FormatError(f"{where} holds {array.shape[0]} example(s); at least {minimum} "
                          "are needed (one or more to train on and one to test).")
    if math.prod(array.shape[1:]) == 0:
        raise FormatError(f"{where} holds examples of no values (shape {array.shape}).")


def _layout(shape, where):
    """(layout, image_shape, axes that put the stored array in (N, C, H, W) order or None)."""
    if len(shape) == 2:
        return "rows", (1, shape[1]), None
    if len(shape) == 3:
        return "(N, H, W)", tuple(shape[1:]), None
    if len(shape) == 4:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if first and last:
            raise FormatError(
                f"{where} has shape {tuple(shape)}: channels first (N, C, H, W) and last "
                "(N, H, W, C) both fit. Save grey images as (N, H, W), or colour ones with "
                "a width other than 1 or 3.")
        if first:
            return "(N, C, H, W)", tuple(shape[1:]), None
        if last:
            return "(N, H, W, C)", (shape[3],) + tuple(shape[1:3]), (0, 3, 1, 2)
        raise FormatError(f"{where} has shape {tuple(shape)}: images need 1 or 3 channels, "
                          "first (N, C, H, W) or last (N, H, W, C).")
    raise FormatError(f"{where} has {len(shape)} dimensions {tuple(shape)}: give rows (N, D) "
                      "or images (N, H, W), (N, C, H, W), (N, H, W, C).")


def _as_rows(array, axes):
    if axes is not None:
        array = array.transpose(axes)
    return numpy.ascontiguousarray(array).reshape(array.shape[0], -1)


def read(path, expected_sha256=None):
    """The checked contents of a ``.npy``, ``.npz`` or ``.csv`` file (``FileData``); a
    ``DataError`` that says what is wrong and what to do otherwise. With
    ``expected_sha256``, a file whose bytes differ is refused (``ChangedFileError``)."""
    path = Path(path).expanduser().absolute()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: give a .npy, .npz or .csv file.")
    content, digest = _read_bytes(path, expected_sha256)
    header, ignored, lines = None, [], None
    if suffix == ".csv":
        values, lines, header = _read_csv(content, str(path))
        arrays = {"x": values}
    elif suffix == ".npy":
        arrays = {"x": _load_npy(content, str(path))}
    else:
        arrays, ignored = _load_npz(content, str(path))

    def locate(name, index):
        """Where an entry is, as the user finds it: a .csv's line and column, an array's index."""
        if lines is not None:
            return f"line {lines[index[0]]}, column {index[1] + 1}"
        return f"{'index ' if suffix == '.npy' else name}[{', '.join(map(str, index))}]"

    where = {name: str(path) if suffix != ".npz" else f"{path} (array {name!r})" for name in arrays}
    minimum = 1 if "train" in arrays else MIN_ROWS
    for name, array in arrays.items():
        _check_rows(array, where[name], minimum)
        _check_values(array, where[name], lambda index, name=name: locate(name, index))
    first = arrays.get("train", arrays.get("x"))
    layout, image_shape, axes = _layout(first.shape, where.get("train", where.get("x")))
    if "train" in arrays and arrays["test"].shape[1:] != first.shape[1:]:
        raise FormatError(f"{path}: train holds examples of shape {first.shape[1:]} but test "
                          f"{arrays['test'].shape[1:]}: they must be alike.")
    rows = numpy.concatenate([_as_rows(array, axes) for array in arrays.values()])
    if rows.dtype.kind == "b":
        rows = rows.astype(numpy.uint8)
    if rows.min() == rows.max():
        raise FormatError(f"every value in {path} is {rows.flat[0]}: there is nothing to learn.")
    return FileData(path=path, sha256=digest, format=suffix[1:],
                    arrays=[] if suffix != ".npz" else list(arrays), ignored=ignored,
                    header=header, shape=list(first.shape), layout=layout,
                    image_shape=tuple(int(n) for n in image_shape), rows=rows,
                    given_test=len(arrays["test"]) if "test" in arrays else 0)


# ---------------------------------------------------------- values and likelihood
def value_summary(data):
    """min, max, the map of images onto [0, 1] (offset, width; None when not needed) and
    whether the values (so mapped) are all 0 or 1."""
    low, high = float(data.rows.min()), float(data.rows.max())
    inside = low >= 0 and high <= 1
    unit = None
    if data.images and not inside:
        unit = (0.0, 255.0) if data.rows.dtype == numpy.uint8 else (low, high - low)
    offset, width = unit or (0.0, 1.0)
    binary = bool(numpy.all((data.rows == offset) | (data.rows == offset + width)))
    return dict(min=low, max=high, inside_unit_interval=inside or unit is not None,
                unit_map=unit, binary=binary)


def likelihood_for(data):
    """The data's choice of decoder: ``{"likelihood": ..., "output_activation": ...}``."""
    values = value_summary(data)
    if values["binary"]:
        return dict(likelihood="bernoulli", output_activation="sigmoid")
    if values["inside_unit_interval"]:
        return dict(likelihood="gaussian", output_activation="sigmoid")
    return dict(likelihood="gaussian", output_activation="identity")


def split_indices(n_rows, split):
    """{"train": sorted row indices, "test": ...} as ``split`` (a record's) describes."""
    n_train = n_rows - split["test"]
    if split.get("given"):            # the file's train rows, then its test rows
        order = numpy.arange(n_rows)
    else:
        order = numpy.random.default_rng(split["seed"]).permutation(n_rows)
    indices = dict(train=numpy.sort(order[:n_train]), test=numpy.sort(order[n_train:]))
    if len(indices["train"]) != split["train"] or len(indices["test"]) != split["test"]:
        raise DataError(f"the split gives {len(indices['train'])} train / {len(indices['test'])} "
                        f"test rows but the run recorded {split['train']} / {split['test']}.")
    return indices


def _split_record(data):
    n = len(data.rows)
    if data.given_test:
        return dict(given=True, train=n - data.given_test, test=data.given_test)
    n_test = max(1, round(TEST_FRACTION * n))
    return dict(given=False, seed=SPLIT_SEED, test_fraction=TEST_FRACTION, train=n - n_test,
                test=n_test)


def _scaling(data, values, train_rows, needs_unit_interval, likelihood_text):
    """The scaling record: none, a map of images onto [0, 1], or standardized columns."""
    if values["unit_map"] is not None:
        offset, width = values["unit_map"]
        return dict(kind="unit-range", offset=offset, width=width,
                    log_jacobian=-data.rows.shape[1] * math.log(width))
    if values["inside_unit_interval"]:
        return dict(kind="none")
    if needs_unit_interval:
        raise FormatError(
            f"{data.path}'s values lie in [{values['min']:.6g}, {values['max']:.6g}], but "
            f"{likelihood_text} models values in [0, 1]: use --likelihood gaussian "
            "--output-activation identity (its columns are then standardized), or scale the "
            "values to [0, 1] yourself.")
    train = data.rows[train_rows].astype(numpy.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0                   # a constant column: only centred
    return dict(kind="standardize", mean=mean.tolist(), std=std.tolist(),
                log_jacobian=float(-numpy.log(std).sum()))


def describe(data, likelihood, output_activation):
    """The record of what a run does with ``data`` under this decoder (config.json's
    ``data_file``): file, layout, values, split and scaling. Refuses (FormatError) a
    decoder that needs [0, 1] on rows outside it."""
    values = value_summary(data)
    split = _split_record(data)
    indices = split_indices(len(data.rows), split)
    if likelihood == "bernoulli":
        needs, text = True, "--likelihood bernoulli"
    else:
        needs = output_activation == "sigmoid"
        text = f"a {likelihood} decoder with a sigmoid mean (--output-activation sigmoid)"
    scaling = _scaling(data, values, indices["train"], needs, text)
    values = {key: values[key] for key in ("min", "max", "binary")}
    return dict(path=str(data.path), name=data.name, sha256=data.sha256, format=data.format,
                arrays=data.arrays, ignored=data.ignored, header=data.header, shape=data.shape,
                layout=data.layout, image_shape=list(data.image_shape), rows=len(data.rows),
                values=values, likelihood_by_data=likelihood_for(data), split=split,
                scaling=scaling)


# ----------------------------------------------------------------------- loading
def scale(rows, record):
    """Rows (N, D) of a run's file (images flattened channel-first) scaled as the run
    scaled them (``record["scaling"]``), float64."""
    rows = numpy.asarray(rows, dtype=numpy.float64)
    scaling = record["scaling"]
    if scaling["kind"] == "unit-range":
        return (rows - scaling["offset"]) / scaling["width"]
    if scaling["kind"] == "standardize":
        return (rows - numpy.asarray(scaling["mean"])) / numpy.asarray(scaling["std"])
    return rows


def load(record, dtype=numpy.float32, data=None):
    """{"train": rows, "test": rows} of a run's file, scaled as recorded, in ``dtype``; the
    file is read again (``data`` saves that) and refused if its SHA-256 changed."""
    if data is None:
        try:
            data = read(record["path"], expected_sha256=record["sha256"])
        except DataNotFoundError as error:
            raise DataNotFoundError(
                f"{error} The run was trained on it: put it back there (to move it, "
                "--resume the run with --dataset NEWPATH, which records its new place).") from None
    elif data.sha256 != record["sha256"]:
        raise ChangedFileError(f"{data.path} is not the file the run was trained on.")
    indices = split_indices(len(data.rows), record["split"])
    scaled = scale(data.rows, record)
    return {name: numpy.ascontiguousarray(scaled[rows], dtype=dtype)
            for name, rows in indices.items()}


def load_split(record, split="test", dtype=numpy.float32):
    """One split ("train" or "test") of a run's file, scaled as recorded (``load``)."""
    if split not in ("train", "test"):
        raise DataError(f"{record['name']} has the splits 'train' and 'test', not {split!r}.")
    return load(record, dtype)[split]


def summary(record, likelihood, output_activation):
    """One line: what was read, the decoder and how it was chosen, scaling and split."""
    values, split, scaling = record["values"], record["split"], record["scaling"]
    moved = ", moved channel-first" if record["layout"] == "(N, H, W, C)" else ""
    rows_text = (f"{record['rows']} rows of {record['image_shape'][-1]} values"
                 if record["layout"] == "rows" else
                 f"{record['rows']} images of shape {tuple(record['image_shape'])} (stored "
                 f"{record['layout']}{moved})")
    read_text = (f" (arrays {', '.join(record['arrays'])}; ignored {', '.join(record['ignored'])})"
                 if record["ignored"] else "")
    header = f", header {', '.join(record['header'][:5])}{'...' if len(record['header']) > 5 else ''}" \
        if record["header"] else ""
    decoder = (likelihood if likelihood == "bernoulli" else
               f"{likelihood} with {'an' if output_activation[0] in 'aeiou' else 'a'} "
               f"{output_activation} mean")
    by_data = record["likelihood_by_data"]
    same = likelihood == by_data["likelihood"] and (
        likelihood == "bernoulli" or output_activation == by_data["output_activation"])
    how = "chosen by the data" if same else "as set"
    if scaling["kind"] == "unit-range":
        scaled = f"scaled to [0, 1] as (x - {scaling['offset']:g}) / {scaling['width']:g}"
    elif scaling["kind"] == "standardize":
        scaled = "each column standardized by the training rows' mean and std"
    else:
        scaled = "values used as they are"
    how_split = ("the file's own" if split["given"] else
                 f"{split['test_fraction']:.0%} to test, seed {split['seed']}")
    return (f"{record['path']}: {rows_text}{header}{read_text}, values in "
            f"[{values['min']:.6g}, {values['max']:.6g}]{' (all 0 or 1)' if values['binary'] else ''}; "
            f"{decoder} ({how}); {scaled}; split {split['train']} train / {split['test']} test "
            f"({how_split}). Recorded in config.json (data_file).")
