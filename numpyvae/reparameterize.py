"""The reparameterization trick: z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

Derived in tutorials/04_gradient_estimators.ipynb; its backward pass in
tutorials/05_backpropagation_by_hand.ipynb, "Reparameterization".
"""
from . import backend


class Reparameterize:
    """z = mu + sigma * eps with sigma = exp(logvar / 2) -- the standard deviation,
    not the variance exp(logvar).

    Shapes: mu, logvar (N, D); eps (N, D) or (L, N, D) for L samples per example;
    z has eps's shape. Backward sums over the L samples:
        dL/dmu     = sum_l g_l
        dL/dlogvar = sum_l g_l * eps_l * sigma / 2
    """

    params = grads = {}

    def forward(self, mu, logvar, eps):
        if eps.shape[-2:] != mu.shape:
            raise ValueError(
                f"eps has shape {tuple(eps.shape)} but must be (N, z_dim) = "
                f"{tuple(mu.shape)} or (L, N, z_dim) = (L, {mu.shape[0]}, {mu.shape[1]})."
            )
        xp = backend.namespace_of(mu)
        self.eps = eps
        self.sigma = xp.multiply(logvar, 0.5)
        xp.exp(self.sigma, out=self.sigma)
        z = eps * self.sigma
        z += mu
        return z

    def backward(self, grad_z):
        if grad_z.ndim == 3:
            grad_mu = grad_z.sum(axis=0)
            grad_logvar = (grad_z * self.eps).sum(axis=0)
        else:
            grad_mu = grad_z
            grad_logvar = grad_z * self.eps
        grad_logvar *= self.sigma
        grad_logvar *= 0.5
        return grad_mu, grad_logvar
