"""The reparameterization trick: z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

Derived in tutorials/04_gradient_estimators.ipynb; its backward pass in
tutorials/05_backpropagation_by_hand.ipynb, "Reparameterization".
"""
import math

import numpy

from . import backend


def box_muller(rng, shape, dtype=numpy.float64):
    """Standard normal draws of ``shape`` (host NumPy, ``dtype`` float32 or float64) from the
    uniforms of the Generator ``rng``: with u, v ~ U[0, 1) independent,

        r = sqrt(-2 log(1 - u)),   r cos(2 pi v) and r sin(2 pi v)

    are two independent N(0, 1) draws (Box & Muller, 1958; tutorial 08, "Drawing the noise").

    log p(x)'s K draws per example are made with it: NumPy's ziggurat (``standard_normal``)
    takes about 12 ns a float32 draw on the machine of the README's figures and this 5,
    and the ziggurat's draws were a tenth of the evaluation's time. u is drawn
    in float64 whatever ``dtype``: 1 - u >= 2^-53 bounds r by 8.6, leaving out a tail of
    mass 2^-53 per pair (float32's 2^-24 would cut at 5.8, mass 6e-8). v is drawn in
    ``dtype``.
    """
    dtype = numpy.dtype(dtype)
    size = math.prod(shape)
    half = (size + 1) // 2
    radius = rng.random(half)
    numpy.subtract(1.0, radius, out=radius)
    numpy.log(radius, out=radius)
    radius *= -2.0
    numpy.sqrt(radius, out=radius)
    radius = radius.astype(dtype, copy=False)
    angle = rng.random(half, dtype=dtype)
    angle *= dtype.type(2 * math.pi)
    draws = numpy.empty(2 * half, dtype=dtype)
    numpy.sin(angle, out=draws[half:])
    numpy.cos(angle, out=draws[:half])
    draws[:half] *= radius
    draws[half:] *= radius
    return draws[:size].reshape(shape)


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
