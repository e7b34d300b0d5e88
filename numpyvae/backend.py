"""The one place that decides which array module numpyvae computes with.

numpyvae's math is written against the NumPy API. CuPy implements the same API on
a CUDA GPU, so swapping the module is all a GPU run needs. The choice is made here
and nowhere else:

* ``numpyvae.backend.set_backend("cupy")`` in Python,
* the environment variable ``NUMPYVAE_BACKEND=cupy``,
* ``--backend cupy`` on the command-line tools (which call ``set_backend``).

Objects (models, optimizers) remember the module that was current when they were
built; free functions ask :func:`namespace_of` their arguments, so a NumPy array is
always computed with NumPy and a CuPy array with CuPy.

Random numbers are always drawn on the host by a ``numpy.random.Generator`` and then
moved to the device (:func:`to_device`), so a CPU run and a GPU run from the same seed
see the same noise and can be compared number for number.
"""
import importlib
import os

import numpy

_BACKENDS = ("numpy", "cupy")
_current = None  # the array module in use; resolved lazily from NUMPYVAE_BACKEND
_extra_namespaces = {}  # module name prefix -> namespace, for test doubles


class BackendError(RuntimeError):
    """The requested array backend cannot be used here."""


def _load(name):
    if name == "numpy":
        return numpy
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
        except ImportError as error:
            raise BackendError(
                "The 'cupy' backend was requested but CuPy is not installed "
                f"({error}). Install it with `pip install numpyvae[gpu]` (or the "
                "cupy-cudaXXx wheel matching your CUDA version), or use the default "
                "backend: unset NUMPYVAE_BACKEND / drop --backend cupy."
            ) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # CUDA driver missing or broken
            raise BackendError(
                f"The 'cupy' backend was requested but CUDA is not usable: {error}. "
                "Check `nvidia-smi`, or use the default 'numpy' backend."
            ) from None
        if count < 1:
            raise BackendError(
                "The 'cupy' backend was requested but no CUDA GPU is present. "
                "Use the default 'numpy' backend."
            )
        return cupy
    raise BackendError(
        f"Unknown backend {name!r}: choose one of {', '.join(_BACKENDS)}."
    )


def set_backend(name_or_module):
    """Select the array module: ``"numpy"`` (default) or ``"cupy"``.

    A module object is accepted too (used by the tests to run the generic code
    against a strict stand-in for CuPy). Returns the module now in use.
    """
    global _current
    if isinstance(name_or_module, str):
        _current = _load(name_or_module.strip().lower())
    else:
        _current = name_or_module
    return _current


def get_backend():
    """The array module in use (``numpy`` unless changed)."""
    global _current
    if _current is None:
        _current = _load(os.environ.get("NUMPYVAE_BACKEND", "numpy").strip().lower() or "numpy")
    return _current


def backend_name():
    """``"numpy"``, ``"cupy"`` or the name of a stand-in module."""
    return getattr(get_backend(), "__name__", "numpy").split(".")[0]


def register_namespace(type_module_prefix, namespace):
    """Tell :func:`namespace_of` which module computes on arrays whose type lives in
    a module starting with ``type_module_prefix`` (for test doubles)."""
    _extra_namespaces[type_module_prefix] = namespace


def namespace_of(*arrays):
    """The array module that owns ``arrays`` (NumPy for NumPy arrays and scalars)."""
    for array in arrays:
        module = type(array).__module__
        if module.startswith("cupy"):
            return importlib.import_module("cupy")
        for prefix, namespace in _extra_namespaces.items():
            if module.startswith(prefix):
                return namespace
    return numpy


def to_device(array, xp=None, dtype=None):
    """Move a host (NumPy) array to the array module ``xp`` (default: current)."""
    xp = xp or get_backend()
    return xp.asarray(array, dtype=dtype)


def to_numpy(array):
    """A host NumPy copy (or view) of any backend's array; explicit, never implicit."""
    if isinstance(array, numpy.ndarray) or numpy.isscalar(array):
        return numpy.asarray(array)
    if hasattr(array, "get"):  # CuPy (and the strict test double) copy to host this way
        return array.get()
    return numpy.asarray(array)


def to_float(value):
    """A Python float from a 0-d array of any backend (this synchronises a GPU)."""
    return float(to_numpy(value))
