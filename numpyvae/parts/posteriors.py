"""Posterior families q(z|x): what the encoder's heads mean, and how noise becomes z.

A posterior part declares the encoder heads it needs (``heads``) and, per pass, gives
a piece whose forward turns those heads and the noise into samples and their
log-density,

    forward(*heads, eps) -> z (S, N, D), log q(z|x) (S, N)
    backward(dL/dz, dL/dlog q) -> dL/d(each head)      (either upstream may be None)

``bind(log_q, params, grads, buffers, training)`` skips log q (None) where no part of
the pass reads it (an ELBO with a closed-form KL): the AEVB step then costs what it did
before the parts. A family with parameters of its own (a VQ codebook) declares them in
``layout``/``buffer_layout`` and finds them in ``params``/``buffers``.

so every objective (a closed-form or Monte-Carlo KL, the IWAE bound) works with every
family. ``gaussian_heads`` names the heads that are the mean and log-variance of a
diagonal Gaussian q when there are such (a closed-form KL needs them), else None.
A deterministic or vector-quantized posterior fits the same shape: heads in, z out,
no noise and no log-density term.
"""
from .. import backend
from ..densities import ReparameterizedLogDensity
from ..quantize import MovingAverageCodebook, VectorQuantize
from ..reparameterize import Reparameterize


class _NoParameters:
    outputs = ("z", "log_q")     # the tape names of what the pass's forward returns

    def layout(self):
        return []

    def buffer_layout(self):
        return []


class DiagonalGaussianPosterior(_NoParameters):
    """q(z|x) = N(mu, diag exp(logvar)): z = mu + exp(logvar / 2) eps and
    log q(z|x) = -1/2 sum_d (eps_d^2 + logvar_d + log 2 pi), written in eps, exact
    where (z - mu) / sigma would round (tutorials/04, 05)."""

    gaussian_heads = ("mu", "logvar")

    def __init__(self, z_dim):
        self.z_dim = int(z_dim)

    def heads(self):
        return (("mu", self.z_dim), ("logvar", self.z_dim))

    def bind(self, log_q=True, *state):
        return _DiagonalGaussianPass(log_q)


class _DiagonalGaussianPass:
    params = grads = {}
    step_updates = ()     # nothing a training step moves besides the parameters

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


class PlanarFlowPosterior(_NoParameters):
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

    def bind(self, log_q=True, *state):
        return _PlanarFlowPass(self.z_dim, self.length)   # log q costs nothing extra here


class _PlanarFlowPass:
    params = grads = {}
    step_updates = ()

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


CODEBOOK = "quantizer.codebook"
EMA_NAMES = ("quantizer.ema_count", "quantizer.ema_sum")


class VectorQuantizedPosterior:
    """VQ-VAE's q: one-hot on the nearest code, z = z_q = e_k (numpyvae.quantize), the
    same for every draw (no noise; log q = 0). Besides z and log q the pass gives each
    example's codebook and commitment losses, which VQ-VAE's objective reads. The
    codebook (K, D) is a parameter, or with ``ema_decay`` a buffer moved by moving
    averages after each training step."""

    gaussian_heads = None
    outputs = ("z", "log_q", "codebook_loss", "commitment_loss")

    def __init__(self, codebook_size, code_dim, z_dim, ema_decay=None):
        self.codebook_size, self.code_dim, self.z_dim = codebook_size, code_dim, z_dim
        self.ema_decay = ema_decay

    def heads(self):
        return (("z_e", self.z_dim),)

    def layout(self):
        return [] if self.ema_decay else [(CODEBOOK, (self.codebook_size, self.code_dim))]

    def buffer_layout(self):
        if not self.ema_decay:
            return []
        k, d = self.codebook_size, self.code_dim
        return [(CODEBOOK, (k, d)), (EMA_NAMES[0], (k,)), (EMA_NAMES[1], (k, d))]

    def codebook(self, params, buffers):
        return (buffers if self.ema_decay else params)[CODEBOOK]

    def bind(self, log_q, params, grads, buffers, training):
        if self.ema_decay:
            quantize = VectorQuantize(buffers[CODEBOOK])
            update = MovingAverageCodebook(quantize, buffers[EMA_NAMES[0]], buffers[EMA_NAMES[1]],
                                           self.ema_decay)
            return _VectorQuantizedPass(quantize, (update,) if training else ())
        return _VectorQuantizedPass(VectorQuantize(params[CODEBOOK], grads[CODEBOOK]), ())


class _VectorQuantizedPass:
    def __init__(self, quantize, updates):
        self.quantize = quantize
        self.params, self.grads = quantize.params, quantize.grads
        self.step_updates = updates   # stepped after a training step, like running statistics

    def forward(self, z_e, eps):
        z_q, codebook_loss, commitment_loss = self.quantize.forward(z_e)
        xp = backend.namespace_of(z_q)
        draws = eps.shape[0]
        z = xp.broadcast_to(z_q, (draws,) + z_q.shape)
        return z, xp.zeros(z.shape[:2], dtype=z_q.dtype), codebook_loss, commitment_loss

    def backward(self, grad_z, grad_log_q=None, grad_codebook_loss=None, grad_commitment=None):
        grad_z_q = None if grad_z is None else grad_z.sum(axis=0)
        return self.quantize.backward(grad_z_q, grad_codebook_loss, grad_commitment)
