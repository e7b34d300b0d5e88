"""Log-densities of diagonal Gaussians and the log-mean-exp of importance weights,
each with its backward pass (tutorials/08_importance_weighted_bounds.ipynb).

Shapes: z is (..., N, D); the densities sum over D and return (..., N).
"""
import math

import numpy

from . import backend
from .likelihoods import LOG_2PI


class StandardNormalLogDensity:
    """log N(z; 0, I) = -1/2 sum_d (z_d^2 + log 2 pi).  d/dz = -z."""

    params = grads = {}

    def forward(self, z):
        self.z = z
        return -0.5 * ((z * z).sum(axis=-1) + z.shape[-1] * LOG_2PI)

    def backward(self, grad_out):
        return -self.z * grad_out[..., None]


class GaussianLogDensity:
    """log N(z; mu, diag exp(logvar)) = -1/2 sum_d ((z - mu)^2 / var + logvar + log 2 pi).

    mu, logvar (N, D) broadcast against z (..., N, D). Backward, for g (..., N):
        d/dz = -g (z - mu) / var,  d/dmu = -d/dz (summed over the leading axes),
        d/dlogvar = g ((z - mu)^2 / var - 1) / 2 (summed likewise).
    """

    params = grads = {}

    def forward(self, z, mu, logvar):
        xp = backend.namespace_of(z)
        self.inverse_variance = xp.exp(-logvar)
        self.residual = z - mu
        self.scaled = self.residual * self.inverse_variance       # (z - mu) / var
        squared = (self.residual * self.scaled).sum(axis=-1)
        return -0.5 * (squared + logvar.sum(axis=-1) + z.shape[-1] * LOG_2PI)

    def backward(self, grad_out):
        g = grad_out[..., None]
        grad_z = -self.scaled * g
        grad_logvar = 0.5 * g * (self.residual * self.scaled - 1.0)
        grad_mu = -grad_z
        lead = tuple(range(grad_z.ndim - 2))
        if lead:
            grad_mu, grad_logvar = grad_mu.sum(axis=lead), grad_logvar.sum(axis=lead)
        return grad_z, grad_mu, grad_logvar


class ReparameterizedLogDensity:
    """log q(z|x) at z = mu + sigma * eps, written in eps: -1/2 sum_d (eps_d^2 + logvar_d
    + log 2 pi), exact where (z - mu) / sigma would round.

    With eps held fixed (the reparameterized estimator) it depends on logvar alone:
        d/dlogvar = -g / 2 (summed over the leading sample axes); d/dmu = 0.
    The path through z is taken by whoever differentiates z (Reparameterize).
    """

    params = grads = {}

    def forward(self, eps, logvar):
        self.shape = eps.shape
        return -0.5 * ((eps * eps).sum(axis=-1) + logvar.sum(axis=-1) + eps.shape[-1] * LOG_2PI)

    def backward(self, grad_out):
        xp = backend.namespace_of(grad_out)
        total = grad_out.reshape(-1, self.shape[-2]).sum(axis=0)   # over the sample axes
        return xp.broadcast_to(-0.5 * total[:, None], self.shape[-2:]).copy()


class LogMeanExp:
    """log (1/K) sum_k exp(a_k) over axis 0: a (K, N) -> (N,), stable for any a.

    Backward: d/da_k = g w~_k with w~_k = exp(a_k) / sum_j exp(a_j), the normalized
    importance weights (the IWAE gradient, Burda et al. 2016, eq. 14). A weight below
    eps^2 of a's dtype is taken as 0 (see ``forward``).
    """

    params = grads = {}

    def forward(self, a):
        xp = backend.namespace_of(a)
        top = a.max(axis=0)
        shifted = xp.exp(a - top)
        total = shifted.sum(axis=0)
        normalized = shifted / total
        # Weights below eps^2 move the gradient by less than K eps^2 of the largest
        # draw's share, far below rounding, but as factors of the backward pass they
        # make subnormal numbers, and every subnormal in a matrix product costs a
        # microcode assist: 2% of them in the logits' gradient made an IWAE k = 50
        # step ten times slower (README, Speed). Zero is exact and free.
        floor = numpy.finfo(normalized.dtype).eps ** 2   # host metadata, any backend
        xp.multiply(normalized, normalized >= floor, out=normalized)   # keeps the dtype
        self.normalized = normalized
        return top + xp.log(total) - math.log(a.shape[0])

    def backward(self, grad_out):
        return self.normalized * grad_out
