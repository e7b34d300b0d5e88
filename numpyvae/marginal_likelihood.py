"""Importance-sampled marginal log-likelihood, in chunks so memory stays bounded.

With K draws z_k ~ q(z|x) and log weights log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

    log p(x) ~ log (1/K sum_k w_k) = logsumexp_k(log w_k) - log K

(Rezende et al. 2014; Burda et al. 2016, "IWAE", use K = 5000). By Jensen's inequality
its expectation is a lower bound on log p(x) that never falls below the ELBO
(K = 1 gives the ELBO itself) and rises to log p(x) as K grows.

K = 5000 weights for N examples are never held at once: examples are taken in
batches and the K draws in chunks sized so that one chunk's decoder output
(chunk x batch x width floats) stays under ``max_floats``; a running logsumexp
per example combines the chunks exactly:

    m' = max(m, max_k log w_k),   s' = s * exp(m - m') + sum_k exp(log w_k - m')
    logsumexp = m + log s
"""
import contextlib
import math

import numpy

from . import backend
from .fused_weights import FusedLogWeights, unsupported
from .models.base import as_generator
from .reparameterize import box_muller

DEFAULT_MAX_FLOATS = 10_000_000  # ~40 MB per float32 array of one chunk's activations
IMPORTANCE_NOISE = "box-muller"  # how the z's noise is drawn; evaluate records it with results


def chunk_sizes(n_examples, samples, width, max_floats=DEFAULT_MAX_FLOATS, batch_size=None):
    """(examples per batch, draws per chunk) so that batch * chunk * width <= max_floats.

    Examples per batch default to all of them, capped where even one draw per example
    would not fit; then as many draws per chunk as fit, at most ``samples``.
    """
    if batch_size is None:
        batch_size = n_examples
    batch_size = max(1, min(batch_size, n_examples, max_floats // max(width, 1)))
    chunk = max(1, min(samples, max_floats // (batch_size * max(width, 1))))
    return batch_size, chunk


def _widest(model):
    if hasattr(model, "widest_layer"):
        return int(model.widest_layer())
    return max((model.x_dim,) + tuple(model.hidden))


def _rows(condition, start, stop):
    return None if condition is None else condition[start:stop]


def log_marginal_likelihood(model, x, rng, samples=5000, max_floats=DEFAULT_MAX_FLOATS,
                            batch_size=None, progress=None, condition=None, local=None,
                            threads=None, fused=True):
    """Per-example importance-sampled log p(x) (log p(x|c) with a ``condition``) with
    K = ``samples``: (N,) float64 on host.

    model: any member of the family (``log_importance_weights(x, condition=, eps=,
    samples=)`` and ``widest_layer()``); x: (N, x_dim) host or device array; rng: numpy
    Generator (or seed; None: the model's own) whose uniforms make the z's noise, by
    ``reparameterize.box_muller``. ``local`` (head name -> (N, width)): the proposal is the q
    of these local parameters (a refined q*) instead of the encoder's. ``progress(done)``
    is called after each chunk with the number of (example, draw) pairs done so far, out
    of N * K.

    The plain Bernoulli VAE's weights (``vae``, ``iwae``) are computed by
    numpyvae.fused_weights on ``threads`` cores (default: those this process may use),
    from the same noise as the general path and equal to it to float rounding (not for a
    ``local`` proposal: the fused path reads the encoder's q).
    ``fused``: False takes the general path for every model; a FusedLogWeights instance
    is used as given (benchmarks compare its settings).
    """
    generator = as_generator(rng, model.rng)
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"The number of importance samples K must be >= 1, got {samples}.")
    n_examples = int(x.shape[0])
    width = _widest(model)
    batch_size, chunk = chunk_sizes(n_examples, samples, width, max_floats, batch_size)
    if fused is True:
        fused = (FusedLogWeights(model, threads)
                 if local is None and unsupported(model) is None else None)
    result = numpy.empty(n_examples, dtype=numpy.float64)
    done = 0
    with fused or contextlib.nullcontext():
        for start in range(0, n_examples, batch_size):
            batch = x[start:start + batch_size]
            batch_condition = _rows(condition, start, start + batch_size)
            conditioned = {} if batch_condition is None else {"condition": batch_condition}
            if local is not None:
                conditioned["local"] = {name: value[start:start + batch_size]
                                        for name, value in local.items()}
            n = int(batch.shape[0])
            counts = [min(chunk, samples - first) for first in range(0, samples, chunk)]
            # Drawn lazily, chunk by chunk: the fused path draws the next chunk's noise
            # while its threads compute this one's weights.
            noise = (box_muller(generator, (count, n, model.z_dim), model.dtype)
                     for count in counts)
            if fused:
                weights = fused.log_weights(batch, noise)
            else:
                weights = (model.log_importance_weights(batch, eps=eps, samples=eps.shape[0],
                                                        **conditioned) for eps in noise)
            running_max = numpy.full(n, -numpy.inf)
            running_sum = numpy.zeros(n)
            for count, chunk_weights in zip(counts, weights):
                log_weights = numpy.asarray(backend.to_numpy(chunk_weights),
                                            dtype=numpy.float64)            # (count, n)
                new_max = numpy.maximum(running_max, log_weights.max(axis=0))
                # exp(-inf - finite) = 0 handles the first chunk; a NaN weight stays NaN.
                with numpy.errstate(invalid="ignore"):
                    running_sum = (running_sum * numpy.exp(running_max - new_max)
                                   + numpy.exp(log_weights - new_max).sum(axis=0))
                running_max = new_max
                done += count * n
                if progress is not None:
                    progress(done)
            result[start:start + n] = running_max + numpy.log(running_sum) - math.log(samples)
    return result


def batched_metrics(model, x, condition, rng, batch_size=1000, beta=None):
    """``model.metrics`` over x in batches: name -> host float64 (N,) arrays. ``beta``:
    the KL weight of the "objective" metric (a warm-up's current one)."""
    result = {}
    n = int(x.shape[0])
    for start in range(0, n, batch_size):
        conditioned = {} if condition is None else {"condition": condition[start:start + batch_size]}
        if beta is not None:
            conditioned["beta"] = beta
        values = model.metrics(x[start:start + batch_size], rng=rng, **conditioned)
        for name, value in values.items():
            result.setdefault(name, numpy.zeros(n))[start:start + batch_size] = backend.to_numpy(value)
    return result


def metric_draws(model, x, condition, rng, draws=10, batch_size=1000):
    """Every metric averaged over ``draws`` independent noise draws: name -> (N,)."""
    total = None
    for _ in range(int(draws)):
        values = batched_metrics(model, x, condition, rng, batch_size)
        total = values if total is None else {k: total[k] + v for k, v in values.items()}
    return {name: value / int(draws) for name, value in total.items()}


def elbo_draws(model, x, rng, draws=10, batch_size=1000):
    """Per-example ELBO averaged over ``draws`` independent noise draws: (N,) float64.

    One-sample ELBOs are noisy; averaging draws estimates E_q[ELBO] itself.
    """
    return metric_draws(model, x, None, rng, draws, batch_size)["elbo"]
