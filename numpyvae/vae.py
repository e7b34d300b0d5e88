"""``numpyvae.VAE``, the AEVB model (kept importable from here; it lives in
numpyvae/models/vae.py with the rest of the family)."""
from .models.base import ElboParts
from .models.vae import VAE

__all__ = ["VAE", "ElboParts"]
