"""Priors p(z|c): a log-density for any z, a closed-form KL where one exists.

A prior part owns its parameters (``layout``/``buffer_layout``, named under
``prior.``) and, per pass, records its pieces on the tape:

    pass.record(tape)                 its parameters as tape values ("prior.*")
    pass.log_density(tape, "z")       log p(z|c), (S, N)
    pass.kl(tape, q_names, "z")       a KL(q(z|x) || p(z|c)) estimate (N,) in closed form,
                                      or None where the pair has none (then the
                                      objective takes the Monte-Carlo KL)
    pass.parameters(features, n)      mu_p, logvar_p of a Gaussian prior, (n, D) each
    pass.sample(eps, features, rng)   z ~ p(z|c) from standard normal draws eps (N, D)
    part.sample_label                 what a sample draws, in words (figure titles)

Tutorials: 03 (the KL), 09 (the conditional prior), 11 (the mixture prior).
"""
import numpy

from .. import backend
from ..densities import GaussianLogDensity, StandardNormalLogDensity
from ..encoder import GaussianEncoder
from ..kl import KLDiagonalGaussians, KLStandardNormal

PRIOR_NAMES = ("prior.mu", "prior.logvar")


class StandardNormalPrior:
    """p(z) = N(0, I); KL(N(mu, diag var) || N(0, I)) = 1/2 sum (mu^2 + var - 1 - logvar)."""

    sample_label = "z ~ p(z) = N(0, I)"

    def __init__(self, z_dim):
        self.z_dim = int(z_dim)

    def layout(self):
        return []

    def buffer_layout(self):
        return []

    def bind(self, params, grads, buffers, training):
        return _StandardNormalPass(self.z_dim, params.flat.dtype, params.xp)

    def widest(self):
        return 0


class _StandardNormalPass:
    step_updates = ()

    def __init__(self, z_dim, dtype, xp):
        self.z_dim, self.dtype, self.xp = z_dim, dtype, xp

    def record(self, tape):
        return ()

    def log_density(self, tape, z, out="log_prior"):
        return tape.apply(StandardNormalLogDensity(), (z,), (out,), grads_for=(z,))

    def kl(self, tape, q_names, z, out="kl"):
        return tape.apply(KLStandardNormal(), q_names, (out,), grads_for=q_names)

    def parameters(self, features, n):
        """mu = 0, logvar = 0 for each of n rows."""
        zeros = self.xp.zeros((n, self.z_dim), dtype=self.dtype)
        return zeros, zeros.copy()

    def sample(self, eps, features, rng):
        return eps


class ConditionalGaussianPrior:
    """p(z|c) = N(mu_p(c), diag exp(logvar_p(c))), a Gaussian encoder of the condition
    (Sohn et al., 2015's prior network); the KL between two diagonal Gaussians is in
    closed form."""

    sample_label = "z ~ p(z|c), the prior network's Gaussian"

    def __init__(self, condition_dim, hidden, z_dim, activation, batch_norm):
        self.sizes = (int(condition_dim),) + tuple(hidden) + (int(z_dim),)
        self.activation, self.batch_norm = activation, bool(batch_norm)

    def layout(self):
        return GaussianEncoder.layout(self.sizes, "prior", batch_norm=self.batch_norm)

    def buffer_layout(self):
        return GaussianEncoder.buffer_layout(self.sizes, "prior", batch_norm=self.batch_norm)

    def bind(self, params, grads, buffers, training):
        network = GaussianEncoder(self.sizes, self.activation, params, grads, "prior",
                                  batch_norm=self.batch_norm, buffers=buffers, training=training)
        return _ConditionalGaussianPass(network)

    def widest(self):
        return max(self.sizes)


class _ConditionalGaussianPass:
    def __init__(self, network):
        self.network = network
        self.step_updates = network.step_updates

    def record(self, tape):
        return tape.apply(self.network, ("features",), PRIOR_NAMES)

    def log_density(self, tape, z, out="log_prior"):
        return tape.apply(GaussianLogDensity(), (z,) + PRIOR_NAMES, (out,),
                          grads_for=(z,) + PRIOR_NAMES)

    def kl(self, tape, q_names, z, out="kl"):
        names = tuple(q_names) + PRIOR_NAMES
        return tape.apply(KLDiagonalGaussians(), names, (out,), grads_for=names)

    def parameters(self, features, n):
        return self.network.forward(features)

    def sample(self, eps, features, rng):
        mu, logvar = self.network.forward(features)
        xp = backend.namespace_of(mu)
        return mu + xp.exp(0.5 * logvar) * eps



MIXTURE_NAMES = ("prior.logits", "prior.means", "prior.logvars")


class GaussianMixturePrior:
    """p(z) = sum_c pi_c N(z; mu_c, diag exp(logvar_c)), pi = softmax(logits): VaDE's
    prior (Jiang et al., 2017), its parameters trained with the networks'. No closed-form
    KL against a Gaussian q; ``kl`` gives VaDE's estimate (numpyvae.mixture.VadeKL), the
    closed-form Gaussian expectations with q(c|x) = p(c|z_s) at the sampled z."""

    sample_label = "z ~ p(z), the Gaussian mixture"

    def __init__(self, z_dim, n_components):
        self.z_dim, self.n_components = int(z_dim), int(n_components)

    def layout(self):
        c, d = self.n_components, self.z_dim
        return [(MIXTURE_NAMES[0], (c,)), (MIXTURE_NAMES[1], (c, d)), (MIXTURE_NAMES[2], (c, d))]

    def buffer_layout(self):
        return []

    def bind(self, params, grads, buffers, training):
        return _GaussianMixturePass({name: params[name] for name in MIXTURE_NAMES},
                                    {name: grads[name] for name in MIXTURE_NAMES})

    def widest(self):
        return self.n_components * self.z_dim


class ParameterSource:
    """The model's own arrays as tape values: forward returns them; backward writes the
    gradients that reached them into the model's gradient buffer (zero where none)."""

    def __init__(self, params, grads):
        self.params, self.grads = params, grads      # name -> array, in output order

    def forward(self):
        return tuple(self.params.values())

    def backward(self, *upstream):
        for grad, value in zip(self.grads.values(), upstream):
            if value is None:
                grad[...] = 0
            else:
                grad[...] = value
        return ()   # no inputs: the arrays are the model's own


class _GaussianMixturePass:
    step_updates = ()

    def __init__(self, values, grads):
        self.source = ParameterSource(values, grads)

    def record(self, tape):
        return tape.apply(self.source, (), MIXTURE_NAMES)

    def log_density(self, tape, z, out="log_prior"):
        from ..mixture import GaussianMixtureLogDensity   # noqa: PLC0415
        return tape.apply(GaussianMixtureLogDensity(), (z,) + MIXTURE_NAMES, (out,),
                          grads_for=(z,) + MIXTURE_NAMES)

    def kl(self, tape, q_names, z, out="kl"):
        from ..mixture import VadeKL   # noqa: PLC0415
        names = tuple(q_names) + (z,) + MIXTURE_NAMES
        return tape.apply(VadeKL(), names, (out,), grads_for=names)

    def parameters(self, features, n):
        raise ValueError("A Gaussian mixture prior has no single mean and log-variance: "
                         "read prior.logits/means/logvars from model.params.")

    def sample(self, eps, features, rng):
        """c ~ Cat(pi) by a host draw, then z = mu_c + sigma_c eps."""
        logits, means, logvars = (backend.to_numpy(value) for value in self.source.params.values())
        pi = numpy.exp(logits - logits.max())
        pi /= pi.sum()
        components = rng.choice(len(pi), size=eps.shape[0], p=pi)
        xp = backend.namespace_of(eps)
        mu = xp.asarray(means[components], dtype=eps.dtype)
        sigma = xp.asarray(numpy.exp(0.5 * logvars[components]), dtype=eps.dtype)
        return mu + sigma * eps


class UniformCodePrior:
    """p(k) = 1/K for each of an example's M codes: VQ-VAE's prior during training. With
    a one-hot q the KL is M log K, a constant (van den Oord et al., 2017), so
    log p(x|z_q) - M log K bounds log p(x). Its codes live in the posterior's codebook,
    so the model draws samples (``VQVAE.prior_sample``)."""

    sample_label = "codes drawn uniformly (the training prior)"

    def __init__(self, code_count, codebook_size):
        self.code_count, self.codebook_size = int(code_count), int(codebook_size)

    def layout(self):
        return []

    def buffer_layout(self):
        return []

    def bind(self, params, grads, buffers, training):
        return _UniformCodePass(self.code_count * numpy.log(self.codebook_size))

    def widest(self):
        return 0


class _UniformCodePass:
    step_updates = ()

    def __init__(self, log_codes):
        self.log_codes = float(log_codes)

    def record(self, tape):
        return ()

    def log_density(self, tape, z, out="log_prior"):
        """log p(k) = -M log K for every draw, (S, N): a constant of the tape."""
        value = tape[z]
        xp = backend.namespace_of(value)
        return tape.constant(out, xp.full(value.shape[:2], -self.log_codes, dtype=value.dtype))

    def kl(self, tape, q_names, z, out="kl"):
        return None   # the objective's Monte-Carlo KL is exact here: 0 - (-M log K)

    def parameters(self, features, n):
        raise ValueError("A uniform prior over codes has no Gaussian mean and log-variance.")

    def sample(self, eps, features, rng):
        raise ValueError("Codes are drawn by the VQ-VAE model (model.prior_sample).")
