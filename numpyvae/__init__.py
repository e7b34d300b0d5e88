"""numpyvae: the Variational Autoencoder (Kingma & Welling, 2013) in pure NumPy.

Every gradient is derived by hand, written as an explicit backward pass and checked
against central finite differences (``numpyvae.gradcheck``).
"""
from . import backend, datasets, gradcheck, linear_gaussian, optim
from .kl import KLDiagonalGaussians, KLStandardNormal, kl_diagonal_gaussians, kl_standard_normal
from .layers import MLP, Dense, Identity, ReLU, Sigmoid, Softplus, Tanh, sigmoid, softplus
from .likelihoods import (BernoulliLogLikelihood, FixedVarianceGaussianLogLikelihood,
                          GaussianLogLikelihood, bernoulli_log_likelihood,
                          fixed_variance_gaussian_log_likelihood, gaussian_log_likelihood)
from .parameters import ParameterDict
from .reparameterize import Reparameterize
from .vae import VAE, ElboParts

__version__ = "0.1.0"
