"""The plain VAE's importance weights computed for evaluation alone: what K = 5000 costs.

``log_marginal_likelihood`` needs log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for
K draws per example, chunk after chunk. The general path (``model.log_importance_weights``)
is a training pass without its backward: it runs the encoder again for every chunk,
makes a new array at every step over chunks far larger than a cache (up to 40 MB), and
leaves the element-wise work (tanh, the Bernoulli log-likelihood: half of the time) on
one core whatever BLAS does. For the members whose weights are the plain VAE's (a
diagonal Gaussian q, p(z) = N(0, I), an MLP decoder without batch norm onto Bernoulli
logits, no condition: ``vae`` and ``iwae``), :class:`FusedLogWeights` computes the same
numbers from the same noise another way:

* q's heads once per batch of examples, not once per chunk of draws;
* the decoder in blocks of at most ``BLOCK_ROWS`` (draw, example) rows, whose activations
  stay in a core's cache, in buffers made once per thread; each bias folded into its
  product (h W + b = [h, 1] [W; b]: no pass of its own), activations in place;
* log p(x|z) = sum_d [x_d a_d - log(1 + exp(a_d))] from the logits a, nothing kept for a
  backward pass: x.a = [h, 1].([W; b] x) over the last hidden width, with [W; b] x once
  per batch; exp and log1p written over a; the sum over pixels a product with a vector
  of ones (BLAS, faster than a reduction). A row where exp(a_d) overflows (a_d > 88 in
  float32) comes out -inf and is computed again by the general path's decoder;
* the blocks shared out to ``threads`` Python threads, each multiplying with one BLAS
  thread: NumPy releases the GIL in products and ufuncs, so every core runs products
  *and* element-wise work (BLAS threads would leave the latter on one core), and a
  thread that another process slows takes fewer blocks. The next chunk's noise is drawn
  while the threads compute. A block is computed the same way whichever thread takes
  it, so the result does not depend on the thread count.

log p(z), log q(z|x) and z itself come from the general path's own pieces (z-sized, cheap).
The two paths agree to float rounding: tests/test_fused_weights.py checks them against
each other to 1e-12 in float64; in float32 log p(x) moves in its sixth or seventh
significant digit (the sums over pixels run in another order).
"""
import concurrent.futures
import contextlib
import threading

import numpy

from . import threads as thread_control
from .densities import ReparameterizedLogDensity, StandardNormalLogDensity
from .parts.objectives import LogWeights
from .parts.posteriors import DiagonalGaussianPosterior
from .parts.priors import StandardNormalPrior
from .reparameterize import Reparameterize

BLOCK_ROWS = 512   # (draw, example) rows per block: 512 x 784 float32 logits = 1.6 MB


def unsupported(model):
    """Why ``model``'s weights take the general path, or None where they need not."""
    from .models.base import LatentGaussianModel   # noqa: PLC0415 (the models import us)
    if not isinstance(model, LatentGaussianModel) or model.xp is not numpy:
        return "not a NumPy LatentGaussianModel"
    own = ("log_importance_weights", "_forward", "_posterior_on_tape", "_log_likelihood",
           "_prepare", "_noise", "encode")
    if any(getattr(type(model), name) is not getattr(LatentGaussianModel, name) for name in own):
        return "a member with its own pass"
    if model.condition_kind is not None:
        return "a conditional model"
    if type(model.posterior) is not DiagonalGaussianPosterior:
        return "a posterior other than the diagonal Gaussian"
    if type(model.prior) is not StandardNormalPrior:
        return "a prior other than N(0, I)"
    if model.net != "mlp" or model.batch_norm:
        return "a conv net or batch norm"
    if model.likelihood != "bernoulli":
        return "a Gaussian decoder"
    return None


class FusedLogWeights:
    """log w (count, N) of a plain Bernoulli VAE (see the module docstring), on
    ``threads`` Python threads (default: the cores this process may use) of
    ``blas_threads`` BLAS threads each. A context manager (it owns a thread pool):

        with FusedLogWeights(model) as weights:
            for log_w in weights.log_weights(x, noise):   # noise: eps (count, N, z_dim) ...
                ...                                       # log_w: (count, N), one per eps
    """

    def __init__(self, model, threads=None, blas_threads=1):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"FusedLogWeights computes the plain Bernoulli VAE's weights, "
                             f"not those of {reason}: use model.log_importance_weights.")
        self.model = model
        self.threads = max(1, int(thread_control.ceiling() if threads is None else threads))
        self.blas_threads = blas_threads
        network = model._pieces(training=False).decoder.network
        self.dense = [(dense, activation.overwrite) for dense, activation in network.trunk.layers]
        (self.head,) = network.heads
        self.local = threading.local()
        self.pool = None
        self._limits = contextlib.ExitStack()

    def __enter__(self):
        if thread_control.threadpool_limits is not None:
            self._limits.enter_context(
                thread_control.threadpool_limits(self.blas_threads, user_api="blas"))
        if self.threads > 1:
            self.pool = concurrent.futures.ThreadPoolExecutor(self.threads)
        return self

    def __exit__(self, *error):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        self._limits.close()

    # ------------------------------------------------------------ the weights
    def log_weights(self, x, noise):
        """log w (count, N) for the examples x (N, x_dim) and each eps (count, N, z_dim)
        of the iterable ``noise`` in turn; the next eps is taken from ``noise`` (drawn,
        for a generator) while the threads compute the current one."""
        self.x = self.model._data(x)
        mu, logvar = self.model.encode(self.x)                  # once for every chunk
        self.layers = [(folded(dense), activation) for dense, activation in self.dense]
        self.head_weight = folded(self.head)
        # x.a = x.([h, 1] [W; b]) = [h, 1].([W; b] x): the x.a term over the hidden width.
        self.head_times_x = self.x @ self.head_weight.T
        chunks = (self._latent(mu, logvar, eps) for eps in noise)
        # Two chunks in flight: the threads go on to the next chunk's blocks as soon as
        # they finish this one's, while this one's weights are read.
        current = self._start(next(chunks, None))
        while current is not None:
            following = self._start(next(chunks, None))
            (z, log_prior, log_q), log_likelihood, running = current
            for future in running:
                future.result()
            self._overflowed_again(z, log_likelihood)
            yield LogWeights().forward(log_likelihood, log_prior, log_q)
            current = following

    @staticmethod
    def _latent(mu, logvar, eps):
        """z (count, N, D), log p(z) and log q(z|x) (count, N) of one chunk's noise, by
        the general path's pieces; None for no noise."""
        if eps is None:
            return None
        z = Reparameterize().forward(mu, logvar, eps)
        log_q = ReparameterizedLogDensity().forward(eps, logvar)
        return z, StandardNormalLogDensity().forward(z), log_q

    def _start(self, latent):
        """Start log p(x|z) of one chunk, block by block: (``latent``, its array, the
        futures to wait for before reading it); None for no chunk."""
        if latent is None:
            return None
        z = latent[0]
        count, n = z.shape[:2]
        out = numpy.empty((count, n), dtype=self.model.dtype)
        draws, examples = block_shape(count, n)
        blocks = iter([(slice(k, k + draws), slice(e, e + examples))
                       for k in range(0, count, draws) for e in range(0, n, examples)])
        if self.pool is None:
            self._drain(blocks, z, out)
            return latent, out, []
        # One queue for all threads: each takes the next block when it is free.
        return latent, out, [self.pool.submit(self._drain, blocks, z, out)
                             for _ in range(self.threads)]

    def _drain(self, blocks, z, out):
        for draws, examples in blocks:
            block = z[draws, examples]
            out[draws, examples] = self._log_likelihood(block.reshape(-1, block.shape[-1]),
                                                        examples).reshape(block.shape[:2])

    def _overflowed_again(self, z, log_likelihood):
        """Rows whose exp(a_d) overflowed (-inf) computed again by the general path's
        decoder, whose form is finite for any logits."""
        rows = numpy.nonzero(numpy.isneginf(log_likelihood))
        if rows[0].size:
            decoder = self.model._pieces(training=False).decoder
            log_likelihood[rows] = decoder.log_likelihood(self.x[rows[1]], z[rows])

    def _buffers(self, rows):
        """This thread's buffers, made once: each layer's input with a last column of
        ones (for the folded bias), and the logits."""
        local = self.local
        if getattr(local, "inputs", None) is None:
            widths = [weight.shape[0] for weight, _ in self.layers] + [self.head_weight.shape[0]]
            local.inputs = [numpy.ones((BLOCK_ROWS, width), dtype=self.model.dtype)
                            for width in widths]
            pixels = self.head_weight.shape[1]
            local.logits = numpy.empty((BLOCK_ROWS, pixels), dtype=self.model.dtype)
            local.ones = numpy.ones(pixels, dtype=self.model.dtype)
        return [buffer[:rows] for buffer in local.inputs], local.logits[:rows]

    def _log_likelihood(self, z, examples):
        """log p(x|z) = sum_d x_d a_d - log(1 + exp(a_d)) for rows z (R, D), draws of
        the examples ``examples`` in turn (R a multiple of their count): (R,), -inf
        where exp(a_d) overflowed."""
        inputs, logits = self._buffers(z.shape[0])
        inputs[0][:, :-1] = z
        for (weight, activation), h, out in zip(self.layers, inputs, inputs[1:]):
            numpy.matmul(h, weight, out=out[:, :-1])
            activation(out)          # the whole rows at once: twice as fast as the
            out[:, -1] = 1           # strided columns without the ones
        h = inputs[-1]
        numpy.matmul(h, self.head_weight, out=logits)
        head_times_x = self.head_times_x[examples]
        x_dot_logits = numpy.einsum("keh,eh->ke", h.reshape((-1,) + head_times_x.shape),
                                    head_times_x).reshape(-1)
        with numpy.errstate(over="ignore"):
            numpy.exp(logits, out=logits)
        numpy.log1p(logits, out=logits)
        x_dot_logits -= numpy.matmul(logits, self.local.ones)
        return x_dot_logits


def block_shape(count, n):
    """(draws, examples) per block of a (count, n) chunk: at most BLOCK_ROWS rows, the
    chunk cut into equal parts (300 examples: one block of 300, not 256 and 44)."""
    parts = -(-n // BLOCK_ROWS)
    if parts > 1:
        return 1, -(-n // parts)
    blocks = -(-count // max(1, BLOCK_ROWS // n))
    return -(-count // blocks), n


def folded(dense):
    """[W; b]: a Dense layer's weights with its bias as one more row, so that
    [h, 1] [W; b] = h W + b."""
    return numpy.concatenate([dense.params["W"], dense.params["b"][None]])
