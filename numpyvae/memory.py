"""Whether a run fits in memory, checked before it starts.

numpy's own answer to a size that cannot fit (``--k 100000``, ``--mc-samples 1000000``,
``--z-dim 10**9``) comes mid-run, as a MemoryError naming one array, or not at all when
the kernel kills the process instead. A run first measures what it will need:

- its parameters: linear in the latent size z (every weight that touches z is a
  z-wide row or column), so two tiny builds at z = 1 and z = 2 give
  count(z) = a + b z without allocating the real model; a training step keeps
  PARAMETER_COPIES arrays of that size (parameters, gradients, the optimizer's
  moments, a checkpoint's host copy);
- one training step's activations: m(B, S) = c0 + c1 B + c2 B S bytes for a minibatch
  of B examples with S draws each (L or K), measured with tracemalloc (which sees
  numpy's allocations) on probe steps at (B, S) = (1, 1), (2, 1), (2, 2).

and refuses, naming the largest size that would fit, what needs more than the memory
the system reports available.
"""
import os
import tracemalloc

import numpy

from . import backend

PARAMETER_COPIES = 5     # parameters, gradients, two Adam moments, a checkpoint's copy
HEADROOM = 0.8           # of the available memory: the data, Python and the BLAS need some
GIB = 2.0 ** 30
DIRECT_PROBE = 20_000   # example-draws up to which one real step is measured instead


def available_bytes():
    """The memory the system can give this process now (MemAvailable on Linux, else
    physical memory), or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def parameter_bytes_per_z(model_class, options):
    """(a, b): a model of these options with latent size z holds a + b z bytes of
    parameters; None where the member cannot be built at z = 1 and 2 (its z is derived)."""
    sizes = []
    for z_dim in (1, 2):
        try:
            model = model_class(**dict(options, z_dim=z_dim))
        except (ValueError, TypeError):
            return None
        sizes.append(model.params.flat.nbytes)
    return sizes[0] - (sizes[1] - sizes[0]), sizes[1] - sizes[0]


def _traced_peak(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _slope(peak_at, largest=2 ** 16, most_bytes=256 * 2 ** 20):
    """d peak / d n where peak_at(n) has become linear in n. A step's peak is the
    largest of its phases', and at small n a phase of fixed size (the weight prior's
    and the parameters' gradients) or one that grows slowly can hide the one that
    grows fastest: n doubles until two successive increments grow as a line's do
    (the second twice the first) and the growth is seven times the size at n = 1,
    or until the probes get large."""
    n = 1
    base = low = peak_at(n)
    middle = peak_at(2 * n)
    while True:
        high = peak_at(4 * n)
        first, second = middle - low, high - middle
        linear = abs(second - 2 * first) <= 0.02 * abs(second) and high >= 8 * base
        if linear or 4 * n >= largest or high > most_bytes:
            return max(0.0, second / (2 * n)), 4 * n, high
        n, low, middle = 2 * n, middle, high


class _Probe:
    """Peak bytes of training steps on rows of ``images`` (repeated as needed), from
    its own random stream; on leaving, the model is as it was (running statistics and
    any moving-average codebook restored)."""

    def __init__(self, model, images, labels=None):
        self.model, self.images, self.labels = model, images, labels
        self.rng = numpy.random.default_rng(0)

    def __enter__(self):
        self.saved = self.model.params.flat.copy(), self.model.buffers.flat.copy()
        return self

    def __exit__(self, *exc):
        self.model.params.flat[...], self.model.buffers.flat[...] = self.saved

    def peak(self, rows, samples):
        pick = numpy.arange(rows) % self.images.shape[0]
        x, condition = self.model.inputs(self.images[pick],
                                         None if self.labels is None else self.labels[pick])
        return _traced_peak(lambda: self.model.loss_and_grads(x, condition, rng=self.rng,
                                                              samples=samples))


def step_coefficients(model, images, labels=None):
    """(c0, c1, c2): a training step on B examples with S draws each allocates about
    c0 + c1 B + c2 B S bytes, from probe steps on rows of ``images``."""
    batch = 4     # the smallest batch every member trains on (batch norm needs 2)
    with _Probe(model, images, labels) as probe:
        probe.peak(batch, 1)              # the first call may allocate what later ones reuse
        per_draw = _slope(lambda s: probe.peak(batch, s))[0] / batch
        per_example, rows, at_rows = _slope(lambda b: probe.peak(batch * b, 1))
        per_example /= batch
    c2 = per_draw
    c1 = max(0.0, per_example - c2)
    c0 = max(0.0, at_rows - (c1 + c2) * batch * rows)
    return c0, c1, c2


def _gib(count):
    return f"{count / GIB:.1f} GiB"


def check_parameters(model_class, options, z_flag="--z-dim", available=None):
    """Raise MemoryError (one line, naming the largest z that fits) when the
    parameters and their copies cannot fit."""
    available = available_bytes() if available is None else available
    per_z = parameter_bytes_per_z(model_class, options) if available else None
    if per_z is None or backend.backend_name() != "numpy":
        return
    a, b = per_z
    z_dim = int(options["z_dim"])
    need = PARAMETER_COPIES * (a + b * z_dim)
    if need <= HEADROOM * available:
        return
    fits = int((HEADROOM * available / PARAMETER_COPIES - a) // b) if b > 0 else 0
    advice = (f"at most {z_flag} {fits} fits" if fits >= 1
              else "even z = 1 does not fit: use a smaller --hidden")
    raise MemoryError(f"{z_flag} {z_dim} needs about {_gib(need)} for the parameters, their "
                      f"gradients and the optimizer's state, but this machine has "
                      f"{_gib(available)} available: {advice}.")


def check_step(model, images, labels, batch_size, draws, draws_flag, available=None):
    """Raise MemoryError (one line, naming the draws and the batch size that fit) when
    one training step on ``batch_size`` examples with ``draws`` draws each cannot fit
    (measured on rows of ``images``, with their ``labels`` for a conditional model)."""
    available = available_bytes() if available is None else available
    if not available or backend.backend_name() != "numpy" or images.shape[0] < 4:
        return
    room = HEADROOM * available - PARAMETER_COPIES * model.params.flat.nbytes
    # Evaluation passes run in batches of draws_per_batch examples; they allocate less
    # than a training step (no backward pass), so a step on as many rows bounds them.
    rows = max(batch_size, draws_per_batch(draws))
    if batch_size * draws <= DIRECT_PROBE:   # the step is cheap: measure it (scaled
        with _Probe(model, images, labels) as probe:   # to the evaluation's rows: an upper bound)
            if probe.peak(batch_size, draws) * rows / batch_size <= room:
                return
    c0, c1, c2 = step_coefficients(model, images, labels)
    need = c0 + (c1 + c2 * draws) * rows
    if need <= room:
        return
    batch_fits = int((room - c0) // (c1 + c2 * draws)) if c1 + c2 * draws > 0 else 0
    draws_fits = int((room - c0 - c1 * rows) // (c2 * rows)) if c2 > 0 else 0
    options = []
    if draws > 1 and draws_fits >= 1:
        options.append(f"at most {draws_flag} {draws_fits} fits at --batch-size {batch_size}")
    if draws_per_batch(draws) <= batch_fits < batch_size:
        options.append(f"at most --batch-size {batch_fits} fits with {draws_flag} {draws}")
    advice = "; ".join(options) if options else "use a smaller model"
    evaluation = (f" (and evaluation in batches of {rows})" if rows > batch_size else "")
    raise MemoryError(
        f"one training step at --batch-size {batch_size}{evaluation} with {draws_flag} {draws} "
        f"needs about {_gib(need)}, but this machine has {_gib(max(room, 0.0))} available "
        f"beside the parameters: {advice}.")


def draws_per_batch(draws, budget=100_000, largest=1000):
    """Examples per evaluation batch: ``largest``, or fewer when each example's
    ``draws`` would make one batch hold more than ``budget`` example-draws."""
    return max(1, min(largest, budget // max(1, int(draws))))

