"""The VAE with a planar normalizing flow posterior (Rezende & Mohamed, 2015).

The encoder gives, per example, a diagonal Gaussian q_0(z_0|x) and the K flow steps'
parameters (u_k, w_k, b_k); z_K = f_K(...f_1(z_0)) with f_k(z) = z + u^_k tanh(w_k^T z + b_k),

    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|1 + u^_k^T psi_k(z_{k-1})|,
    ELBO(x) = E_q0[log p(x|z_K) + log p(z_K) - log q_K(z_K|x)],

the KL in Monte Carlo (no closed form), or the IWAE bound over the same q_K
(tutorials/10_normalizing_flows.ipynb; numpyvae.flows for the pieces).
"""
from ..cli import positive_int
from ..parts.posteriors import PlanarFlowPosterior
from .base import LatentGaussianModel, Option


class PlanarFlowVAE(LatentGaussianModel):
    """``nv.VAE``'s options plus ``flow_length`` K, the number of planar steps."""

    name = "planar-flow"
    OPTIONS = (Option("flow_length", 10, "planar flow steps K of q(z|x) (planar-flow)",
                      positive_int),)

    def posterior_part(self):
        return PlanarFlowPosterior(self.z_dim, self.flow_length)
