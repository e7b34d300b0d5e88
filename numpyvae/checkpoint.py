"""Atomic checkpoints: every array and every piece of state a run needs to continue.

A checkpoint is one ``.npz`` file holding

    param/<name>     the model's parameters (host copies), e.g. param/encoder.mu.W
    optim/<key>      the optimizer's state_dict(), e.g. optim/sum_of_squares/encoder.mu.W
    array/<name>     any other arrays (the current epoch's permutation; buffer.<name>, a
                     model's buffers such as batch norm statistics)
    meta             a JSON string: samples seen, step, epoch, RNG states, config, ...

It is written to a temporary file in the same directory, flushed to disk (fsync) and
then renamed over the old one with ``os.replace``. A rename inside one directory is
atomic, so a crash, a Ctrl-C or a full disk mid-write leaves either the old complete
checkpoint or the new complete one, never a torn file.
"""
import json
import math
import os
import tempfile
from pathlib import Path

import numpy

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 1
# What the meta of a training run's checkpoint holds (train.Run.save), by what it must be.
META_FIELDS = {"samples_seen": "a count", "step": "a count", "position": "a count",
               "wall_seconds": "a number", "rng": "an object of generator states"}
DAMAGED = ("the checkpoint is damaged or was edited: restore it from a copy, or start a "
           "new run")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the model."""


def _json_default(value):
    # numpy scalars and arrays inside metadata (e.g. a bit generator's state).
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.floating):
        return float(value)
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save(path, params, optimizer_state, meta, arrays=None):
    """Write a checkpoint atomically to ``path``.

    params: name -> host array; optimizer_state: ``opt.state_dict()``;
    meta: a JSON-serializable dict; arrays: extra name -> host array.
    """
    path = Path(path)
    payload = {f"param/{name}": numpy.asarray(value) for name, value in params.items()}
    payload.update({f"optim/{key}": numpy.asarray(value) for key, value in optimizer_state.items()})
    payload.update({f"array/{name}": numpy.asarray(value) for name, value in (arrays or {}).items()})
    meta = dict(meta, format_version=FORMAT_VERSION)
    payload["meta"] = numpy.asarray(json.dumps(meta, default=_json_default))
    return write_atomically(path, lambda handle: numpy.savez(handle, **payload),
                            prefix=".checkpoint-", suffix=".npz.tmp")


def write_atomically(path, write, binary=True, prefix=None, suffix=".tmp"):
    """``write(handle)`` into a temporary file beside ``path``, fsync, then rename it over
    ``path``: a crash, a signal or a full disk leaves the old file or the new one, and
    never a half-written temporary (it is removed whatever interrupted the write)."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=suffix,
                                             dir=path.parent)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes it private; these are normal files
        with os.fdopen(descriptor, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path


def load(path):
    """Read a checkpoint: returns (params, optimizer_state, meta, arrays) as host data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except Exception as error:  # zip errors, truncated files, permissions
        raise CheckpointError(f"Cannot read checkpoint {path}: {error}") from None
    if "meta" not in contents:
        raise CheckpointError(f"{path} is not a numpyvae checkpoint (no 'meta' entry).")
    meta = read_meta(str(contents.pop("meta")), path)
    params, optimizer_state, arrays = {}, {}, {}
    for key, value in contents.items():
        kind, _, name = key.partition("/")
        {"param": params, "optim": optimizer_state, "array": arrays}.get(kind, arrays)[name] = value
    return params, optimizer_state, meta, arrays


def _is(value, what):
    """Whether a meta value read from JSON is ``what`` (META_FIELDS' words)."""
    if isinstance(value, bool):
        return False
    if what == "a count":
        return isinstance(value, int) and value >= 0
    if what == "a number":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, dict)


def read_meta(text, path):
    """The metadata of the checkpoint at ``path`` from its JSON ``text`` (an object), or
    a one-line CheckpointError."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: its metadata is not JSON ({error}); {DAMAGED}.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is {type(meta).__name__}, not a JSON "
                              f"object; {DAMAGED}.")
    return meta


def load_run_checkpoint(path):
    """``load`` of a training run's checkpoint, whose meta must hold every field of
    META_FIELDS, each of its kind (else a one-line CheckpointError naming it)."""
    params, optimizer_state, meta, arrays = load(path)
    for name, what in META_FIELDS.items():
        if name not in meta:
            raise CheckpointError(f"{path}: its metadata lacks {name}, which every checkpoint "
                                  f"of a run holds; {DAMAGED}.")
        if not _is(meta[name], what):
            raise CheckpointError(f"{path}: its metadata's {name} is {json.dumps(meta[name])}, "
                                  f"but it must be {what}; {DAMAGED}.")
    return params, optimizer_state, meta, arrays


BUFFER_PREFIX = "buffer."   # a model's buffers (batch norm statistics) among the arrays


def buffer_arrays(buffers):
    """A model's buffers as checkpoint arrays."""
    return {f"{BUFFER_PREFIX}{name}": value for name, value in buffers.items()}


def buffers_from(arrays):
    """The model buffers among a loaded checkpoint's arrays."""
    return {name[len(BUFFER_PREFIX):]: value for name, value in arrays.items()
            if name.startswith(BUFFER_PREFIX)}


def generator_state(generator):
    """A JSON-friendly copy of a numpy.random.Generator's state."""
    return generator.bit_generator.state


def restore_generator(state):
    """A numpy.random.Generator continuing exactly from ``generator_state``'s result."""
    bit_generator_class = getattr(numpy.random, state["bit_generator"])
    bit_generator = bit_generator_class()
    bit_generator.state = state
    return numpy.random.Generator(bit_generator)


def set_generator_state(generator, state):
    """Put ``state`` into an existing generator (e.g. a model's ``rng``) in place."""
    generator.bit_generator.state = state
