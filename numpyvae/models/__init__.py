"""The family of models, one file each, and the registry that names them.

    numpyvae.models.names()                 -> ("cvae", "cvae-quadrant", "iwae", "planar-flow", "vade", "vae", "vq-vae")
    numpyvae.models.create(name, **options) -> a model implementing the contract of
                                               numpyvae.models.base

A new member is one file here and one line in ``REGISTRY`` (and one in the gradient
check's registry of cases, tests/test_gradients_registry.py).
"""
from .base import ElboParts, LatentGaussianModel
from .cvae import CVAE
from .cvae_quadrant import QuadrantCVAE
from .iwae import IWAE
from .planar_flow import PlanarFlowVAE
from .vade import VaDE
from .vae import VAE
from .vq_vae import VQVAE

REGISTRY = {
    "vae": VAE,
    "iwae": IWAE,
    "cvae": CVAE,
    "cvae-quadrant": QuadrantCVAE,
    "planar-flow": PlanarFlowVAE,
    "vade": VaDE,
    "vq-vae": VQVAE,
}


def names():
    """The registered model names, sorted."""
    return tuple(sorted(REGISTRY))


def model_class(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(names())}.") from None


def create(name, **options):
    """A new model of the registered kind ``name``, built with ``options``."""
    return model_class(name)(**options)
