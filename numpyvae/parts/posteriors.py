"""Posterior families q(z|x): what the encoder's heads mean, and how noise becomes z.

A posterior part declares the encoder heads it needs (``heads``) and, per pass, gives
a piece whose forward turns those heads and the noise into samples and their
log-density,

    forward(*heads, eps) -> z (S, N, D), log q(z|x) (S, N)
    backward(dL/dz, dL/dlog q) -> dL/d(each head)      (either upstream may be None)

``bind(log_q=False)`` skips log q (None) where no part of the pass reads it (an ELBO
with a closed-form KL): the AEVB step then costs what it did before the parts.

so every objective (a closed-form or Monte-Carlo KL, the IWAE bound) works with every
family. ``gaussian_heads`` names the heads that are the mean and log-variance of a
diagonal Gaussian q when there are such (a closed-form KL needs them), else None.
A deterministic or vector-quantized posterior fits the same shape: heads in, z out,
no noise and no log-density term.
"""
from ..densities import ReparameterizedLogDensity
from ..reparameterize import Reparameterize


class DiagonalGaussianPosterior:
    """q(z|x) = N(mu, diag exp(logvar)): z = mu + exp(logvar / 2) eps and
    log q(z|x) = -1/2 sum_d (eps_d^2 + logvar_d + log 2 pi), written in eps, exact
    where (z - mu) / sigma would round (tutorials/04, 05)."""

    gaussian_heads = ("mu", "logvar")

    def __init__(self, z_dim):
        self.z_dim = int(z_dim)

    def heads(self):
        return (("mu", self.z_dim), ("logvar", self.z_dim))

    def bind(self, log_q=True):
        return _DiagonalGaussianPass(log_q)


class _DiagonalGaussianPass:
    params = grads = {}

    def __init__(self, log_q=True):
        self.with_log_q = log_q

    def forward(self, mu, logvar, eps):
        self.reparameterize = Reparameterize()
        self.log_density = ReparameterizedLogDensity()
        z = self.reparameterize.forward(mu, logvar, eps)
        return z, (self.log_density.forward(eps, logvar) if self.with_log_q else None)

    def backward(self, grad_z, grad_log_q=None):
        # z = mu + sigma eps reaches mu and logvar; log q (in eps) reaches logvar alone.
        grad_mu, grad_logvar = self.reparameterize.backward(grad_z)
        if grad_log_q is not None:
            grad_logvar += self.log_density.backward(grad_log_q)
        return grad_mu, grad_logvar


class PlanarFlowPosterior:
    """q_K: z_0 ~ N(mu, diag exp(logvar)), then K planar steps
    z_k = z_{k-1} + u^_k tanh(w_k^T z_{k-1} + b_k) whose parameters (u_k, w_k, b_k) the
    encoder outputs per example (Rezende & Mohamed, 2015):

        log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|1 + u^_k^T psi_k(z_{k-1})|

    (numpyvae.flows; tutorials/10_normalizing_flows.ipynb). No closed-form KL: the ELBO
    takes the Monte-Carlo one."""

    gaussian_heads = None

    def __init__(self, z_dim, length):
        self.z_dim, self.length = int(z_dim), int(length)

    def heads(self):
        steps = self.length * self.z_dim
        return (("mu", self.z_dim), ("logvar", self.z_dim), ("flow_u", steps),
                ("flow_w", steps), ("flow_b", self.length))

    def bind(self, log_q=True):
        return _PlanarFlowPass(self.z_dim, self.length)   # log q costs nothing extra here


class _PlanarFlowPass:
    params = grads = {}

    def __init__(self, z_dim, length):
        self.z_dim, self.length = z_dim, length

    def forward(self, mu, logvar, flow_u, flow_w, flow_b, eps):
        n = mu.shape[0]
        self.base = _DiagonalGaussianPass()
        z0, log_q0 = self.base.forward(mu, logvar, eps)
        from ..flows import PlanarFlow   # noqa: PLC0415
        self.flow = PlanarFlow(self.length)
        shape = (n, self.length, self.z_dim)
        z, log_det = self.flow.forward(z0, flow_u.reshape(shape), flow_w.reshape(shape), flow_b)
        return z, log_q0 - log_det

    def backward(self, grad_z, grad_log_q=None):
        grad_log_det = None if grad_log_q is None else -grad_log_q
        grad_z0, grad_u, grad_w, grad_b = self.flow.backward(grad_z, grad_log_det)
        grad_mu, grad_logvar = self.base.backward(grad_z0, grad_log_q)
        n = grad_mu.shape[0]
        return grad_mu, grad_logvar, grad_u.reshape(n, -1), grad_w.reshape(n, -1), grad_b
