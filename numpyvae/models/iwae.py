"""The importance-weighted autoencoder (Burda, Grosse & Salakhutdinov, 2016).

The VAE's networks, trained on the K-sample bound

    L_K(x) = log 1/K sum_k w_k,  w_k = p(x|z_k) p(z_k) / q(z_k|x),  z_k = mu + sigma * eps_k,

whose gradient is sum_k w~_k grad log w_k with the normalized weights
w~_k = w_k / sum_j w_j (tutorials/08_importance_weighted_bounds.ipynb). K = 1 is the
ELBO with a sampled KL; L_K rises with K to log p(x).
"""
from .base import LatentGaussianModel


class IWAE(LatentGaussianModel):
    """``nv.VAE``'s options, objective ``"iwae"`` and ``k`` samples (5 by default)."""

    name = "iwae"

    def __init__(self, x_dim, k=5, **options):
        options.setdefault("objective", "iwae")
        super().__init__(x_dim, k=k, **options)

    def config(self):
        config = super().config()
        config.update(objective=self.objective, k=self.k)
        return config
