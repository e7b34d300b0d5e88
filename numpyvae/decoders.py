"""Decoders p(x|z): an MLP trunk, linear heads, and a log-likelihood.

Every decoder has the same interface, used by the VAE objective:

* ``log_likelihood(x, z)``: log p(x|z) summed over pixels. z is (N, z_dim) or
  (L, N, z_dim); the result is (N,) or (L, N). Keeps what backward needs.
* ``backward(grad)``: grad has the shape of the log-likelihood; returns dL/dz and
  fills the decoder's parameter gradients.
* ``mean(z)``: E[x|z], for reconstructions and samples.
* ``sample(z, rng)``: a draw x ~ p(x|z) (noise from a host NumPy Generator).
"""
import math

from . import backend
from .encoder import head_entries
from .layers import MLP, Dense, make_activation, sigmoid
from .likelihoods import (BernoulliLogLikelihood, FixedVarianceGaussianLogLikelihood,
                          GaussianLogLikelihood)


class _Decoder:
    head_names = ()

    def __init__(self, sizes, activation, params, grads, batch_norm=False, buffers=None,
                 training=True):
        self.trunk = MLP(sizes[:-1], activation, params, grads, "decoder.hidden",
                         batch_norm=batch_norm, buffers=buffers, training=training)
        self.batch_norms = self.trunk.batch_norms
        self.heads = [Dense(params[weight], params[bias], grads[weight], grads[bias])
                      for _, weight, bias, _, _ in self._heads(sizes)]

    @classmethod
    def _heads(cls, sizes):
        return head_entries("decoder", sizes[-2], [(name, sizes[-1]) for name in cls.head_names])

    @classmethod
    def layout(cls, sizes, batch_norm=False):
        """``sizes`` = (z_dim [+ condition width], *hidden, x_dim)."""
        entries = MLP.layout(sizes[:-1], "decoder.hidden", batch_norm)
        for _, weight, bias, weight_shape, bias_shape in cls._heads(sizes):
            entries += [(weight, weight_shape), (bias, bias_shape)]
        return entries

    @staticmethod
    def buffer_layout(sizes, batch_norm=False):
        return MLP.buffer_layout(sizes[:-1], "decoder.hidden", batch_norm)

    def _forward_heads(self, z):
        """Run trunk and heads on z flattened to rows; outputs reshaped like z."""
        self.z_shape = z.shape
        rows = z.reshape(-1, z.shape[-1])
        h = self.trunk.forward(rows)
        lead = z.shape[:-1]
        return [head.forward(h).reshape(lead + (-1,)) for head in self.heads]

    def _backward_heads(self, grad_heads):
        grad_h = None
        for head, grad in zip(self.heads, grad_heads):
            part = head.backward(grad.reshape(-1, grad.shape[-1]))
            if grad_h is None:
                grad_h = part
            else:
                grad_h += part
        return self.trunk.backward(grad_h).reshape(self.z_shape)


class BernoulliDecoder(_Decoder):
    """p(x|z) = prod_d Bernoulli(x_d | sigma(l_d)), logits l = MLP(z) W + b."""

    head_names = ("logits",)

    def __init__(self, sizes, activation, params, grads, **net_options):
        super().__init__(sizes, activation, params, grads, **net_options)
        self.likelihood = BernoulliLogLikelihood()

    def log_likelihood(self, x, z):
        (logits,) = self._forward_heads(z)
        return self.likelihood.forward(x, logits)

    def backward(self, grad):
        return self._backward_heads([self.likelihood.backward(grad)])

    def mean(self, z):
        (logits,) = self._forward_heads(z)
        return sigmoid(logits)

    def sample(self, z, rng):
        mean = self.mean(z)
        xp = backend.namespace_of(mean)
        uniform = backend.to_device(rng.random(mean.shape), xp, dtype=mean.dtype)
        return (uniform < mean).astype(mean.dtype)


class GaussianDecoder(_Decoder):
    """p(x|z) = N(x | f(h W_m + b_m), diag exp(h W_v + b_v)), h = MLP(z).

    f is the output activation of the mean: ``"sigmoid"`` (AEVB's Frey Face decoder)
    or ``"identity"``. The per-pixel log-variance head is linear (unconstrained).
    """

    head_names = ("mean", "logvar")

    def __init__(self, sizes, activation, params, grads, output_activation="sigmoid",
                 **net_options):
        super().__init__(sizes, activation, params, grads, **net_options)
        self.output = make_activation(output_activation)
        self.likelihood = GaussianLogLikelihood()

    def log_likelihood(self, x, z):
        mean_preactivation, logvar = self._forward_heads(z)
        mean = self.output.forward(mean_preactivation)
        return self.likelihood.forward(x, mean, logvar)

    def backward(self, grad):
        grad_mean, grad_logvar = self.likelihood.backward(grad)
        return self._backward_heads([self.output.backward(grad_mean), grad_logvar])

    def mean(self, z):
        mean_preactivation, _ = self._forward_heads(z)
        return self.output.forward(mean_preactivation)

    def sample(self, z, rng):
        mean_preactivation, logvar = self._forward_heads(z)
        mean = self.output.forward(mean_preactivation)
        xp = backend.namespace_of(mean)
        noise = backend.to_device(rng.standard_normal(mean.shape), xp, dtype=mean.dtype)
        return mean + xp.exp(0.5 * logvar) * noise


class FixedVarianceGaussianDecoder(_Decoder):
    """p(x|z) = N(x | f(h W + b), variance I) with a fixed variance (hyperparameter)."""

    head_names = ("mean",)

    def __init__(self, sizes, activation, params, grads, output_activation="sigmoid",
                 variance=1.0, **net_options):
        super().__init__(sizes, activation, params, grads, **net_options)
        self.output = make_activation(output_activation)
        self.likelihood = FixedVarianceGaussianLogLikelihood(variance)
        self.variance = self.likelihood.variance

    def log_likelihood(self, x, z):
        (mean_preactivation,) = self._forward_heads(z)
        return self.likelihood.forward(x, self.output.forward(mean_preactivation))

    def backward(self, grad):
        grad_mean = self.likelihood.backward(grad)
        return self._backward_heads([self.output.backward(grad_mean)])

    def mean(self, z):
        (mean_preactivation,) = self._forward_heads(z)
        return self.output.forward(mean_preactivation)

    def sample(self, z, rng):
        mean = self.mean(z)
        xp = backend.namespace_of(mean)
        noise = backend.to_device(rng.standard_normal(mean.shape), xp, dtype=mean.dtype)
        # A Python float keeps a float32 model's draws float32 (numpy.sqrt would not).
        return mean + math.sqrt(self.variance) * noise


DECODERS = {
    "bernoulli": BernoulliDecoder,
    "gaussian": GaussianDecoder,
    "gaussian-fixed": FixedVarianceGaussianDecoder,
}
