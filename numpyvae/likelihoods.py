"""Log-likelihoods log p(x|z) of the decoder's output distributions, with backward.

Each takes the data x (..., X) and the decoder's outputs (..., X) (x broadcasts, so
outputs for L samples of shape (L, N, X) pair with x of shape (N, X)) and returns
the log-density summed over the X pixels, shape (...). Backward takes the upstream
gradient of that shape. Derivations: tutorials/05_backpropagation_by_hand.ipynb,
"Likelihoods".
"""
import math

import numpy

from . import backend
from .layers import sigmoid

LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_log_likelihood(x, logits):
    """sum_d x_d l_d - softplus(l_d): log Bernoulli(x | sigma(l)), finite for any l."""
    return BernoulliLogLikelihood().forward(x, logits)


def gaussian_log_likelihood(x, mean, logvar):
    """sum_d -1/2 (log 2 pi + logvar_d + (x_d - mean_d)^2 exp(-logvar_d))."""
    return GaussianLogLikelihood().forward(x, mean, logvar)


def fixed_variance_gaussian_log_likelihood(x, mean, variance):
    """sum_d -1/2 (log 2 pi variance + (x_d - mean_d)^2 / variance)."""
    return FixedVarianceGaussianLogLikelihood(variance).forward(x, mean)


class BernoulliLogLikelihood:
    """log p(x | l) = sum_d [x_d l_d - log(1 + exp(l_d))] with logits l.

    Never forms log(sigmoid(l)). With |l| and e = exp(-|l|),
        log(1 + exp(l)) = max(l, 0) + log1p(e) = (l + |l|) / 2 + log1p(e),
    so each term is  (x - 1/2) l - |l| / 2 - log1p(e),  exact and finite for any l
    (logits of +-100 or +-1e4 included), with no per-element branch. The gradient
        d log p / d l = x - sigma(l)
    needs sigma(l) (see layers.sigmoid), computed by backward from the logits kept, so
    that a pass with no backward (evaluation) never pays for it.
    """

    params = grads = {}

    def forward(self, x, logits):
        xp = backend.namespace_of(logits)
        self.x = x
        self.logits = logits                     # kept for backward
        magnitude = xp.abs(logits)
        softplus_tail = xp.negative(magnitude)
        xp.exp(softplus_tail, out=softplus_tail)
        xp.log1p(softplus_tail, out=softplus_tail)   # log1p(exp(-|l|))
        terms = x - 0.5
        terms = terms * logits                   # broadcasts x over L samples
        magnitude *= 0.5
        terms -= magnitude
        terms -= softplus_tail
        return terms.sum(axis=-1)

    def backward(self, grad_out):
        grad_logits = self.x - sigmoid(self.logits)
        grad_logits *= grad_out[..., None]
        return grad_logits


class GaussianLogLikelihood:
    """log N(x | mean, diag exp(logvar)), with a learned per-pixel log-variance.

        d/d mean   = (x - mean) exp(-logvar)
        d/d logvar = ((x - mean)^2 exp(-logvar) - 1) / 2
    """

    params = grads = {}

    def forward(self, x, mean, logvar):
        xp = backend.namespace_of(mean)
        inverse_variance = xp.negative(logvar)
        xp.exp(inverse_variance, out=inverse_variance)
        residual = x - mean
        self.scaled_residual = residual * inverse_variance   # (x - mean) / var
        residual *= self.scaled_residual                      # (x - mean)^2 / var
        self.squared = residual
        return -0.5 * (residual.sum(axis=-1) + logvar.sum(axis=-1)
                       + x.shape[-1] * LOG_2PI)

    def backward(self, grad_out):
        g = grad_out[..., None]
        grad_mean = self.scaled_residual * g
        grad_logvar = self.squared - 1
        grad_logvar *= 0.5 * g
        return grad_mean, grad_logvar


class FixedVarianceGaussianLogLikelihood:
    """log N(x | mean, variance I) for a fixed variance (a hyperparameter).

        d/d mean = (x - mean) / variance
    """

    params = grads = {}

    def __init__(self, variance=1.0):
        if not variance > 0:
            raise ValueError(f"The Gaussian decoder's variance must be > 0, got {variance}.")
        self.variance = float(variance)

    def forward(self, x, mean):
        residual = x - mean
        self.scaled_residual = residual / self.variance
        residual *= self.scaled_residual
        squared_sum = residual.sum(axis=-1)
        return -0.5 * (squared_sum + x.shape[-1] * (LOG_2PI + math.log(self.variance)))

    def backward(self, grad_out):
        return self.scaled_residual * grad_out[..., None]


def independent_pixels_log_likelihood(x, likelihood, variance=1.0):
    """Mean log-likelihood of host rows x (N, X) under the trivial model of a decoder
    family with independent pixels fitted to x itself (a Bernoulli mean per pixel, a
    Gaussian mean and variance per pixel, or a mean at the fixed ``variance``): the
    level any trained model should reach, which tells a diverged run from a slow one."""
    x = numpy.asarray(x, dtype=numpy.float64)
    if likelihood == "bernoulli":
        p = numpy.clip(x.mean(axis=0), 1e-3, 1 - 1e-3)
        return float((x * numpy.log(p) + (1 - x) * numpy.log1p(-p)).sum(axis=1).mean())
    if likelihood == "gaussian":
        spread = numpy.maximum(x.var(axis=0), 1e-6)
        return float(-0.5 * (numpy.log(2 * math.pi * spread) + 1).sum())
    residual = ((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()
    return float(-0.5 * (x.shape[1] * math.log(2 * math.pi * variance) + residual / variance))
