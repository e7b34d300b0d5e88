"""Decoders p(x|z): a network's heads (an MLP or a conv net), and a log-likelihood.

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
from .layers import make_activation, sigmoid
from .likelihoods import (BernoulliLogLikelihood, FixedVarianceGaussianLogLikelihood,
                          GaussianLogLikelihood)


class _Decoder:
    """A likelihood on a network's heads (one per name in ``head_names``, each
    (..., x_dim)): an MLP or a conv net (numpyvae.networks), built for the pass."""

    head_names = ()

    def __init__(self, network):
        self.network = network
        self.step_updates = network.step_updates

    @classmethod
    def heads(cls, x_dim):
        """((name, size), ...) of the network's heads."""
        return tuple((name, x_dim) for name in cls.head_names)

    def _forward_heads(self, z):
        return self.network.forward(z)

    def _backward_heads(self, grad_heads):
        return self.network.backward(*grad_heads, need_input_grad=True)


class BernoulliDecoder(_Decoder):
    """p(x|z) = prod_d Bernoulli(x_d | sigma(l_d)), logits l = MLP(z) W + b."""

    head_names = ("logits",)

    def __init__(self, network):
        super().__init__(network)
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

    def __init__(self, network, output_activation="sigmoid"):
        super().__init__(network)
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

    def __init__(self, network, output_activation="sigmoid", variance=1.0):
        super().__init__(network)
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
