"""The AEVB Variational Autoencoder (Kingma & Welling, 2013): no condition, p(z) = N(0, I).

    ELBO(x) = 1/L sum_l log p(x | z_l) - KL(q(z|x) || N(0, I)),  z_l = mu + sigma * eps_l
    loss    = -1/N sum_n [1/L sum_l log p(x_n | z_l) - beta KL_n] + prior_scale ||theta||^2 / (2 sigma_w^2)

With beta != 1 this is the beta-VAE (Higgins et al., 2017): the objective weighs the
KL by beta, while ``metrics``/``elbo`` always report the true ELBO beside it
(tutorials/02_evidence_lower_bound.ipynb, 07_beta_vae_rate_and_distortion.ipynb).
The last loss term is optional: a Gaussian prior N(0, sigma_w^2 I) on every trainable
array (AEVB's "weight decay term corresponding to a prior"), once per data set, so a
training loop over minibatches sets ``weight_prior_scale = 1 / n_train``.
"""
from .base import LatentGaussianModel


class VAE(LatentGaussianModel):
    """A VAE with a Gaussian encoder and a Bernoulli or Gaussian decoder; see
    :class:`~numpyvae.models.base.LatentGaussianModel` for the arguments."""

    name = "vae"
