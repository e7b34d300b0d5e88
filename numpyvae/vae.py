"""The Variational Autoencoder and its objective, the evidence lower bound (ELBO).

For an example x, with q(z|x) = N(mu, diag sigma^2) from the encoder and L samples
z_l = mu + sigma * eps_l (tutorials/02_evidence_lower_bound.ipynb):

    ELBO(x) = 1/L sum_l log p(x | z_l) - beta * KL(q(z|x) || N(0, I))
    loss    = -1/N sum_n ELBO(x_n) + prior_scale * sum_theta theta^2 / (2 sigma_w^2)

The last term is optional: a Gaussian prior N(0, sigma_w^2 I) on every trainable
array (AEVB's "weight decay term corresponding to a prior"). Its log-density belongs
to the whole data set's objective once, so a training loop that averages over
minibatches sets ``weight_prior_scale = 1 / n_train``.
"""
from typing import NamedTuple

import numpy

from . import backend
from .decoders import DECODERS
from .encoder import GaussianEncoder
from .kl import KLStandardNormal
from .layers import ACTIVATIONS
from .likelihoods import LOG_2PI
from .parameters import ParameterDict, initialize_weight
from .reparameterize import Reparameterize


class ElboParts(NamedTuple):
    """Per-example terms of the ELBO, each of shape (N,)."""

    elbo: object            # log_likelihood - beta * kl
    log_likelihood: object  # 1/L sum_l log p(x | z_l), the reconstruction term
    kl: object              # KL(q(z|x) || p(z)), closed form


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


class VAE:
    """A VAE with a Gaussian encoder and a Bernoulli or Gaussian decoder.

    Arguments
    ---------
    x_dim, z_dim : data and latent dimensions.
    hidden : widths of the encoder's hidden layers, e.g. (200,) or (500, 500); the
        decoder mirrors them. ``()`` gives a linear model (only the linear heads).
    likelihood : ``"bernoulli"`` (logits), ``"gaussian"`` (learned per-pixel
        log-variance) or ``"gaussian-fixed"`` (variance ``decoder_variance``).
    activation : hidden activation, one of tanh, sigmoid, relu, softplus, identity.
    output_activation : activation of a Gaussian decoder's mean, ``"sigmoid"`` (AEVB's
        Frey Face model, data in [0, 1]) or ``"identity"``.
    samples : L, the number of z samples per example when ``eps`` is not given.
    beta : weight of the KL term (1 gives the ELBO).
    weight_prior_std, weight_prior_scale : sigma_w of the Gaussian prior on the
        parameters (None: no prior) and the weight of its negative log-density in
        the loss (see the module docstring).
    init, init_std : ``"normal"`` with std 0.01 (AEVB) or ``"glorot"``.
    seed : seeds the initialization and the model's own noise generator ``self.rng``.
    dtype : float32 (default, for speed) or float64 (for gradient checks).
    """

    def __init__(self, x_dim, hidden=(200,), z_dim=10, likelihood="gaussian",
                 activation="tanh", seed=0, dtype=numpy.float32, output_activation="sigmoid",
                 decoder_variance=1.0, samples=1, beta=1.0, weight_prior_std=None,
                 weight_prior_scale=1.0, init="normal", init_std=0.01):
        self.x_dim = _positive_int(x_dim, "x_dim")
        self.z_dim = _positive_int(z_dim, "z_dim")
        if isinstance(hidden, (int, numpy.integer)):
            hidden = (hidden,)
        self.hidden = tuple(_positive_int(width, "Every hidden width") for width in hidden)
        if likelihood not in DECODERS:
            raise ValueError(f"Unknown likelihood {likelihood!r}: choose one of "
                             f"{', '.join(DECODERS)}.")
        for name in (activation, output_activation):
            if name not in ACTIVATIONS:
                raise ValueError(f"Unknown activation {name!r}: choose one of "
                                 f"{', '.join(ACTIVATIONS)}.")
        self.dtype = numpy.dtype(dtype)
        if self.dtype not in (numpy.float32, numpy.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        if weight_prior_std is not None and not weight_prior_std > 0:
            raise ValueError(f"weight_prior_std must be > 0 or None, got {weight_prior_std}.")
        self.likelihood = likelihood
        self.activation = activation
        self.output_activation = output_activation
        self.decoder_variance = float(decoder_variance)
        self.samples = _positive_int(samples, "samples (L)")
        self.beta = float(beta)
        self.weight_prior_std = weight_prior_std
        self.weight_prior_scale = float(weight_prior_scale)
        self.init, self.init_std, self.seed = init, init_std, seed
        self.check_finite = True  # one pass over a host batch; cheap next to the matmuls
        self.xp = backend.get_backend()

        encoder_sizes = (self.x_dim,) + self.hidden + (self.z_dim,)
        decoder_sizes = (self.z_dim,) + self.hidden[::-1] + (self.x_dim,)
        decoder_class = DECODERS[likelihood]
        layout = GaussianEncoder.layout(encoder_sizes) + decoder_class.layout(decoder_sizes)
        self.params = ParameterDict(layout, dtype=self.dtype, xp=self.xp)
        self.grads = self.params.zeros_like()

        init_rng = numpy.random.default_rng(seed)
        for name, value in self.params.items():
            if name.endswith(".W"):
                initialize_weight(value, init_rng, init, init_std)
        self.rng = numpy.random.default_rng([seed, 1])  # noise stream, separate from init

        self.encoder = GaussianEncoder(encoder_sizes, activation, self.params, self.grads)
        decoder_options = {}
        if likelihood != "bernoulli":
            decoder_options["output_activation"] = output_activation
        if likelihood == "gaussian-fixed":
            decoder_options["variance"] = self.decoder_variance
        self.decoder = decoder_class(decoder_sizes, activation, self.params, self.grads,
                                     **decoder_options)
        self.reparameterize = Reparameterize()
        self.kl = KLStandardNormal()

    # ----------------------------------------------------------------- helpers
    def config(self):
        """The constructor arguments, to rebuild the same architecture."""
        return dict(x_dim=self.x_dim, hidden=list(self.hidden), z_dim=self.z_dim,
                    likelihood=self.likelihood, activation=self.activation,
                    output_activation=self.output_activation,
                    decoder_variance=self.decoder_variance, samples=self.samples,
                    beta=self.beta, weight_prior_std=self.weight_prior_std,
                    weight_prior_scale=self.weight_prior_scale, init=self.init,
                    init_std=self.init_std, seed=self.seed, dtype=self.dtype.name)

    def _data(self, x):
        """x as a (N, x_dim) array of the model's dtype on the model's device."""
        if not hasattr(x, "shape"):
            x = numpy.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(
                f"x must have shape (batch, {self.x_dim}), got {tuple(x.shape)}. "
                "Flatten images to rows (x.reshape(len(x), -1)).")
        if x.shape[0] < 1:
            raise ValueError("x is empty: the batch needs at least one example.")
        # Host data is checked here; data already on a GPU is not, because the
        # check would wait for the GPU on every step. Check such data once, when
        # it is moved there (the training command does).
        if self.check_finite and isinstance(x, numpy.ndarray) and not numpy.isfinite(x).all():
            raise ValueError("x contains NaN or infinity; clean or drop those examples.")
        return self.xp.asarray(x, dtype=self.dtype)

    def _noise(self, n, eps, rng, samples):
        """eps of shape (L, n, z_dim): given, or drawn by a host NumPy Generator."""
        if eps is None:
            samples = self.samples if samples is None else _positive_int(samples, "samples")
            generator = self.rng if rng is None else rng
            eps = generator.standard_normal((samples, n, self.z_dim), dtype=self.dtype)
        shape = tuple(eps.shape)
        if not (len(shape) in (2, 3) and shape[-2:] == (n, self.z_dim)):
            raise ValueError(
                f"eps must have shape (N, z_dim) = ({n}, {self.z_dim}) or (L, N, z_dim) "
                f"= (L, {n}, {self.z_dim}), got {shape}.")
        eps = self.xp.asarray(eps, dtype=self.dtype)
        return eps if eps.ndim == 3 else eps[None]

    # ------------------------------------------------------------ public API
    def encode(self, x):
        """mu, logvar of q(z|x), each (N, z_dim)."""
        return self.encoder.forward(self._data(x))

    def decode(self, z):
        """E[x|z], (N, x_dim): sigma(logits) for Bernoulli, the mean for Gaussians."""
        return self.decoder.mean(self.xp.asarray(z, dtype=self.dtype))

    def sample(self, n, rng=None, mean=True):
        """n samples from the model: z ~ N(0, I), then E[x|z] (``mean=True``, what
        figures show) or a draw x ~ p(x|z)."""
        n = _positive_int(n, "n")
        generator = self.rng if rng is None else rng
        z = self.xp.asarray(generator.standard_normal((n, self.z_dim)), dtype=self.dtype)
        return self.decoder.mean(z) if mean else self.decoder.sample(z, generator)

    def _forward(self, x, eps):
        mu, logvar = self.encoder.forward(x)
        z = self.reparameterize.forward(mu, logvar, eps)
        log_likelihood = self.decoder.log_likelihood(x, z).mean(axis=0)
        kl = self.kl.forward(mu, logvar)
        return ElboParts(log_likelihood - self.beta * kl, log_likelihood, kl)

    def elbo(self, x, eps=None, rng=None, samples=None):
        """Per-example ELBO and its parts (an :class:`ElboParts` of (N,) arrays)."""
        x = self._data(x)
        return self._forward(x, self._noise(x.shape[0], eps, rng, samples))

    def weight_prior_penalty(self):
        """prior_scale * sum theta^2 / (2 sigma_w^2): the prior's share of the loss."""
        if self.weight_prior_std is None:
            return 0.0
        flat = self.params.flat
        return self.weight_prior_scale * (flat @ flat) / (2.0 * self.weight_prior_std ** 2)

    def _loss(self, parts):
        return -parts.elbo.mean() + self.weight_prior_penalty()

    def loss(self, x, eps=None, rng=None, samples=None):
        """-mean ELBO (+ the weight prior's penalty): the scalar training minimizes."""
        return self._loss(self.elbo(x, eps, rng, samples))

    def loss_and_grads(self, x, eps=None, rng=None, samples=None):
        """The loss and its gradient with respect to every array in ``params``.

        ``eps`` (N, z_dim) or (L, N, z_dim) fixes the noise, making the loss a
        deterministic function of the parameters. The returned ``grads`` is the
        model's own gradient buffer (a ParameterDict with the layout of ``params``):
        it is overwritten by the next call, so copy it to keep it.
        """
        x = self._data(x)
        eps = self._noise(x.shape[0], eps, rng, samples)
        samples, n = eps.shape[0], x.shape[0]
        loss = self._loss(self._forward(x, eps))

        # d loss / d log p(x|z_l) = -1/(L N); d loss / d KL_n = beta / N.
        grad_log_likelihood = self.xp.full((samples, n), -1.0 / (samples * n), dtype=self.dtype)
        grad_z = self.decoder.backward(grad_log_likelihood)
        grad_mu, grad_logvar = self.reparameterize.backward(grad_z)
        grad_kl = self.xp.full((n,), self.beta / n, dtype=self.dtype)
        grad_mu_kl, grad_logvar_kl = self.kl.backward(grad_kl)
        grad_mu += grad_mu_kl
        grad_logvar += grad_logvar_kl
        self.encoder.backward(grad_mu, grad_logvar)

        if self.weight_prior_std is not None:
            # d/d theta of scale * theta^2 / (2 sigma_w^2) = scale * theta / sigma_w^2
            self.grads.flat += (self.weight_prior_scale / self.weight_prior_std ** 2) * self.params.flat
        return loss, self.grads

    def log_importance_weights(self, x, eps=None, rng=None, samples=None):
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k ~ q(z|x): (K, N).

        logsumexp_k(log w_k) - log K is the importance-sampled estimate of log p(x)
        (Burda et al., 2016); its expectation is a bound that tightens as K grows.
        """
        x = self._data(x)
        eps = self._noise(x.shape[0], eps, rng, samples)
        mu, logvar = self.encoder.forward(x)
        z = self.reparameterize.forward(mu, logvar, eps)
        log_likelihood = self.decoder.log_likelihood(x, z)
        log_prior = -0.5 * (z * z + LOG_2PI).sum(axis=-1)
        # z - mu = sigma * eps, so log q(z|x) needs only eps and logvar.
        log_posterior = -0.5 * (eps * eps + logvar + LOG_2PI).sum(axis=-1)
        return log_likelihood + log_prior - log_posterior
