"""numpyvae: the Variational Autoencoder family (Kingma & Welling, 2013, and after) in pure NumPy.

Every gradient is derived by hand, written as an explicit backward pass and checked
against central finite differences (``numpyvae.gradcheck``).
"""
from . import (backend, datasets, fused_weights, gradcheck, inference, linear_gaussian, models,
               optim, parts)
from .kl import KLDiagonalGaussians, KLStandardNormal, kl_diagonal_gaussians, kl_standard_normal
from .layers import ELU, MLP, Dense, Identity, ReLU, Sigmoid, Softplus, Tanh, sigmoid, softplus
from .likelihoods import (BernoulliLogLikelihood, FixedVarianceGaussianLogLikelihood,
                          GaussianLogLikelihood, bernoulli_log_likelihood,
                          fixed_variance_gaussian_log_likelihood, gaussian_log_likelihood)
from .parameters import ParameterDict
from .reparameterize import Reparameterize
from .batchnorm import BatchNorm
from .densities import (GaussianLogDensity, LogMeanExp, ReparameterizedLogDensity,
                        StandardNormalLogDensity)
from .layers import Concatenate
from .models import CVAE, IWAE, VAE, VQVAE, ElboParts, PlanarFlowVAE, QuadrantCVAE, VaDE
from .conv import BatchNorm2D, Conv2D, ConvTranspose2D
from .flows import PlanarFlow, PlanarInvertibility, PlanarStep
from .mixture import GaussianMixtureLogDensity, VadeKL
from .latent import active_dimensions, interpolate, traverse

__version__ = "0.1.0"


def load(run_dir):
    """The trained model of a run directory written by ``python -m numpyvae.train``, any
    member: rebuilt from its config.json, with its checkpoint's parameters and batch-norm
    statistics, the checkpoint checked against the config (another model's, or non-finite
    parameters, are refused in one line: ``numpyvae.rundir.UsageError``). A config.json or
    checkpoint metadata that numpyvae did not write so (edited by hand, damaged) raises
    ``numpyvae.rundir.RunFileError``, also a ValueError, naming the file and the key. It
    only reads: a read-only run directory loads."""
    from .evaluate import load_model   # noqa: PLC0415
    return load_model(run_dir)[0]
