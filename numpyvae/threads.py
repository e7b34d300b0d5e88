"""Element-wise work split across CPU threads.

NumPy runs a ufunc on one thread, but it releases the GIL while the loop runs, so
two Python threads each working on half of a long array run truly in parallel. The
optimizer update (a few element-wise passes over every parameter) is the longest
element-wise work in a training step, and it is split this way.

The number of threads comes from ``NUMPYVAE_NUM_THREADS``, else ``OMP_NUM_THREADS``,
else the number of CPUs (at most 8); :func:`set_num_threads` changes it. Arrays
shorter than ``MIN_CHUNK`` elements per thread are not split: below that, handing
work to a thread costs more than it saves.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy

MIN_CHUNK = 32_768

_pool = None
_num_threads = None


def _default_threads():
    for variable in ("NUMPYVAE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


def get_num_threads():
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(count):
    """Use ``count`` threads (>= 1) for split element-wise work."""
    global _num_threads, _pool
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"The number of threads must be a positive integer, got {count!r}.")
    _num_threads = count
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def run_in_chunks(function, *arrays):
    """Call ``function(*chunks)`` on matching contiguous slices of 1-D arrays.

    With one thread, or short arrays, or arrays that are not host NumPy arrays
    (a GPU parallelises on its own), this is just ``function(*arrays)``.
    """
    global _pool
    size = arrays[0].shape[0]
    threads = min(get_num_threads(), size // MIN_CHUNK)
    if threads < 2 or not isinstance(arrays[0], numpy.ndarray):
        function(*arrays)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=get_num_threads(),
                                   thread_name_prefix="numpyvae")
    bounds = numpy.linspace(0, size, threads + 1).astype(int)
    # The calling thread does the first chunk itself: one hand-off fewer.
    futures = [_pool.submit(function, *(array[start:stop] for array in arrays))
               for start, stop in zip(bounds[1:-1], bounds[2:])]
    function(*(array[:bounds[1]] for array in arrays))
    for future in futures:
        future.result()  # re-raises an exception from a worker
