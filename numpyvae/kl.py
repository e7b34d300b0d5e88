"""Kullback-Leibler divergences between diagonal Gaussians, in closed form.

Derived in tutorials/03_kl_divergence.ipynb; backward passes in
tutorials/05_backpropagation_by_hand.ipynb, "The KL term".
"""
from . import backend


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example.

        KL = 1/2 sum_d (mu_d^2 + exp(logvar_d) - 1 - logvar_d)

    mu, logvar: (N, D) -> (N,).
    """
    xp = backend.namespace_of(mu)
    terms = xp.exp(logvar)
    terms -= logvar
    terms -= 1
    terms += mu * mu
    return 0.5 * terms.sum(axis=-1)


def kl_diagonal_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) per example.

        KL = 1/2 sum_d (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2)
                        / exp(logvar_p) - 1)

    All inputs broadcast to (N, D) -> (N,).
    """
    return KLDiagonalGaussians().forward(mu_q, logvar_q, mu_p, logvar_p)


class KLStandardNormal:
    """Forward: kl_standard_normal. Backward, for upstream g (N,):
        dKL/dmu = g mu,  dKL/dlogvar = g (exp(logvar) - 1) / 2.
    """

    params = grads = {}

    def forward(self, mu, logvar):
        self.mu, self.logvar = mu, logvar
        return kl_standard_normal(mu, logvar)

    def backward(self, grad_out):
        xp = backend.namespace_of(self.mu)
        g = grad_out[:, None]
        grad_mu = self.mu * g
        grad_logvar = xp.exp(self.logvar)
        grad_logvar -= 1
        grad_logvar *= 0.5 * g
        return grad_mu, grad_logvar


class KLDiagonalGaussians:
    """Forward: kl_diagonal_gaussians (inputs of shape (N, D)). Backward, for g (N,):
        dKL/dmu_q = g (mu_q - mu_p) / var_p            dKL/dmu_p = -dKL/dmu_q
        dKL/dlogvar_q = g (var_q / var_p - 1) / 2
        dKL/dlogvar_p = g (1 - (var_q + (mu_q - mu_p)^2) / var_p) / 2
    """

    params = grads = {}

    def forward(self, mu_q, logvar_q, mu_p, logvar_p):
        xp = backend.namespace_of(mu_q)
        self.diff = mu_q - mu_p
        self.inv_var_p = xp.exp(-logvar_p)
        self.var_q = xp.exp(logvar_q)
        ratio = (self.var_q + self.diff * self.diff) * self.inv_var_p
        self.ratio = ratio
        return 0.5 * (logvar_p - logvar_q + ratio - 1).sum(axis=-1)

    def backward(self, grad_out):
        g = grad_out[:, None]
        grad_mu_q = g * self.diff * self.inv_var_p
        grad_logvar_q = 0.5 * g * (self.var_q * self.inv_var_p - 1)
        grad_logvar_p = 0.5 * g * (1 - self.ratio)
        return grad_mu_q, grad_logvar_q, -grad_mu_q, grad_logvar_p
