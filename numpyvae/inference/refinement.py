"""Per-example refinement of q, and the gaps of inference (Cremer, Li & Duvenaud, 2018;
the survey's section 6.1).

An amortized posterior takes each example's local parameters lambda(x) from one encoder:
mu and logvar, and a planar flow's u, w and b, which numpyvae's encoder also gives per
example. The best q of the same family for one x maximizes that example's ELBO over its
lambda alone, the model held fixed,

    L[q*] = max_lambda E_{q_lambda}[log p(x, z) - log q_lambda(z|x)].

``refine`` climbs towards it with Adam (numpyvae.optim) on lambda, every step through
fresh reparameterized noise, the gradient from the parts' own backward passes
(``model.local_elbo(..., grads=True)``; no finite differences). Started at the encoder's
lambda(x) it is amortized inference + refinement; started at the prior (``prior_start``)
it is SVI from scratch. Then, per example,

    log p(x) - L[q] = (log p(x) - L[q*]) + (L[q*] - L[q])
                       approximation gap    amortization gap

the first what the family cannot do, the second what the encoder does not do
(``inference_gaps``; log p(x) importance-sampled with the refined q* as the proposal).
"""
from typing import NamedTuple

import numpy

from .. import backend
from ..marginal_likelihood import DEFAULT_MAX_FLOATS, chunk_sizes, log_marginal_likelihood
from ..optim import Adam

DEFAULT_STEPS = 3000
DEFAULT_LR = 1e-3        # Adam's step on the local parameters
DEFAULT_DRAWS = 100      # noise draws per ELBO estimate of L[q] and L[q*]


def _condition_rows(condition, start, stop):
    return None if condition is None else condition[start:stop]


def encoder_start(model, x, condition=None):
    """The encoder's local parameters for x (name -> (N, width)): amortized inference,
    where refinement starts."""
    return {name: model.xp.asarray(value, dtype=model.dtype).copy()
            for name, value in model.local_parameters(x, condition).items()}


def prior_start(model, x, condition=None):
    """Local parameters that make q the prior, mu = mu_p and logvar = logvar_p (0 and 0
    under N(0, I)), for each row of x: where SVI from scratch starts. Only a diagonal
    Gaussian q has such a point (a flow's steps have no neutral setting to start from)."""
    names = list(model.local_parameters(x[:1], _condition_rows(condition, 0, 1)))
    if sorted(names) != ["logvar", "mu"]:
        raise ValueError(f"SVI from the prior needs a diagonal Gaussian q (mu, logvar); "
                         f"the {model.name} model's q also has {sorted(set(names) - {'mu', 'logvar'})}: "
                         "start from the encoder (encoder_start) instead.")
    mu, logvar = model.prior_parameters(condition, int(x.shape[0]))
    return {"mu": model.xp.asarray(mu, dtype=model.dtype).copy(),
            "logvar": model.xp.asarray(logvar, dtype=model.dtype).copy()}


def refine(model, x, start, steps=DEFAULT_STEPS, rng=None, condition=None, lr=DEFAULT_LR,
           samples=1, max_floats=DEFAULT_MAX_FLOATS, progress=None):
    """Maximize each example's ELBO over its local parameters by ``steps`` Adam steps
    from ``start`` (name -> (N, width), left unchanged), L = ``samples`` fresh draws per
    step. Adam works element by element, so every example is refined on its own, whatever
    the batch. Returns (refined local parameters, the mean over examples of each step's
    ELBO estimate before its update: (steps,) float64). ``progress(done)``: after each
    step of each batch, the example-steps done of N * steps."""
    rng = numpy.random.default_rng() if rng is None else rng
    n = int(x.shape[0])
    batch, _ = chunk_sizes(n, samples, model.widest_layer(), max_floats)
    refined = {name: model.xp.asarray(value, dtype=model.dtype).copy()
               for name, value in start.items()}
    history = numpy.zeros(steps)
    for first in range(0, n, batch):
        stop = min(first + batch, n)
        # Views of ``refined``: the optimizer's in-place steps land there.
        rows = {name: value[first:stop] for name, value in refined.items()}
        told = None if progress is None else (lambda done, first=first:
                                              progress(first * steps + done))
        history += _climb(model, x[first:stop], rows, steps, rng,
                          _condition_rows(condition, first, stop), lr, samples, told)
    return refined, history / n


def _climb(model, x, local, steps, rng, condition, lr, samples, progress):
    """Adam ascent of the ELBO on ``local`` in place; returns each step's ELBO sum."""
    optimizer = Adam(lr)
    sums = numpy.empty(steps)
    for step in range(steps):
        elbo, grads = model.local_elbo(x, local, condition, rng=rng, samples=samples, grads=True)
        sums[step] = float(backend.to_numpy(elbo.sum()))
        if not numpy.isfinite(sums[step]):
            raise ValueError(f"the refinement diverged at step {step} (a non-finite ELBO): "
                             f"use a smaller learning rate than {lr:g}.")
        # Adam minimizes: its gradient is that of -ELBO.
        optimizer.step(local, {name: -grad for name, grad in grads.items()})
        if progress is not None:
            progress((step + 1) * int(x.shape[0]))
    return sums


def elbo_estimate(model, x, local, rng, draws=DEFAULT_DRAWS, condition=None,
                  max_floats=DEFAULT_MAX_FLOATS):
    """Each example's ELBO under the q of ``local`` (None: the encoder's), averaged over
    ``draws`` independent noise draws, in chunks that keep memory bounded: (N,) float64."""
    n = int(x.shape[0])
    local = encoder_start(model, x, condition) if local is None else local
    batch, chunk = chunk_sizes(n, draws, model.widest_layer(), max_floats)
    total = numpy.zeros(n)
    for first in range(0, n, batch):
        stop = min(first + batch, n)
        rows = {name: value[first:stop] for name, value in local.items()}
        for done in range(0, draws, chunk):
            count = min(chunk, draws - done)
            elbo = model.local_elbo(x[first:stop], rows, _condition_rows(condition, first, stop),
                                    rng=rng, samples=count)
            total[first:stop] += count * numpy.asarray(backend.to_numpy(elbo), dtype=numpy.float64)
    return total / draws


class Gaps(NamedTuple):
    """Per-example (N,) float64 arrays of the decomposition, and the refinement's trace."""

    amortized: object       # L[q]: the encoder's q
    refined: object         # L[q*]: q after refinement
    log_likelihood: object  # log p(x), importance-sampled from q*
    history: object         # (steps,): mean ELBO over the examples during refinement

    @property
    def approximation(self):
        """log p(x) - L[q*]: what the family cannot reach."""
        return self.log_likelihood - self.refined

    @property
    def amortization(self):
        """L[q*] - L[q]: what the encoder leaves on the table."""
        return self.refined - self.amortized


def inference_gaps(model, x, rng, steps=DEFAULT_STEPS, k=5000, draws=DEFAULT_DRAWS,
                   condition=None, lr=DEFAULT_LR, samples=1, max_floats=DEFAULT_MAX_FLOATS,
                   refine_progress=None, weights_progress=None):
    """L[q], L[q*] (each averaged over ``draws``) and log p(x) (K = ``k`` importance
    samples from q*, a better proposal than the encoder's q) of every row of x: a Gaps."""
    start = encoder_start(model, x, condition)
    amortized = elbo_estimate(model, x, start, rng, draws, condition, max_floats)
    refined_local, history = refine(model, x, start, steps, rng, condition, lr, samples,
                                    max_floats, refine_progress)
    refined = elbo_estimate(model, x, refined_local, rng, draws, condition, max_floats)
    log_px = log_marginal_likelihood(model, x, rng, samples=k, max_floats=max_floats,
                                     progress=weights_progress, condition=condition,
                                     local=refined_local)
    return Gaps(amortized, refined, log_px, history)
