"""Objectives: what training maximizes per example, as pieces on the tape.

    Elbo(beta):  1/S sum_s log p(x|z_s) - beta KL,  the KL in closed form where the
                 posterior/prior pair has one (``prior.kl``), else Monte Carlo:
                 KL ~ 1/S sum_s (log q(z_s|x) - log p(z_s))        (beta = 1: the ELBO;
                 with the mixture prior, VaDE's bound)
    IwaeBound:   log 1/K sum_k w_k,  log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)

``kl_term`` and ``log_weights`` put the terms on the tape; the objectives only combine
them. Tutorials: 02 (the ELBO), 07 (beta), 08 (the IWAE bound and its gradient).
"""
from .. import backend
from ..densities import LogMeanExp


def spread_over_draws(grad, draws):
    """grad / S for each of S draws, (N,) -> (S, N): a read-only view (no piece writes
    into its upstream gradient); with one draw, a fresh array."""
    share = grad / draws
    if draws == 1:
        return share[None]
    return backend.namespace_of(grad).broadcast_to(share, (draws,) + grad.shape)


class MonteCarloKL:
    """KL ~ 1/S sum_s (log q(z_s|x) - log p(z_s)): (S, N), (S, N) -> (N,).
    Backward: d/dlog q = g / S, d/dlog p = -g / S."""

    params = grads = {}

    def forward(self, log_q, log_prior):
        self.draws = log_q.shape[0]
        return (log_q - log_prior).mean(axis=0)

    def backward(self, grad_out):
        grad = spread_over_draws(grad_out, self.draws)
        return grad, -grad


class LogWeights:
    """log w = log p(x|z) + log p(z) - log q(z|x), each (S, N). Backward: (g, g, -g)."""

    params = grads = {}

    def forward(self, log_likelihood, log_prior, log_q):
        return log_likelihood + log_prior - log_q

    def backward(self, grad_out):
        return grad_out, grad_out, -grad_out


class WeightedElbo:
    """1/S sum_s log p(x|z_s) - beta KL: (S, N), (N,) -> (N,).
    Backward: d/dlog p(x|z_s) = g / S, d/dKL = -beta g."""

    params = grads = {}

    def __init__(self, beta):
        self.beta = beta

    def forward(self, log_likelihood, kl):
        self.draws = log_likelihood.shape[0]
        return log_likelihood.mean(axis=0) - self.beta * kl

    def backward(self, grad_out):
        return spread_over_draws(grad_out, self.draws), -self.beta * grad_out


def kl_term(tape, posterior, prior_pass, out="kl"):
    """Put a KL(q || p) estimate (N,) on the tape: the pair's closed form where it has
    one, else 1/S sum_s (log q - log p). Once per tape: a second call reads the first."""
    if out in tape:
        return tape[out]
    if posterior.gaussian_heads is not None:
        names = tuple(f"q.{name}" for name in posterior.gaussian_heads)
        closed = prior_pass.kl(tape, names, "z", out)
        if closed is not None:
            return closed
    _log_prior(tape, prior_pass)
    return tape.apply(MonteCarloKL(), ("log_q", "log_prior"), (out,),
                      grads_for=("log_q", "log_prior"))


def _log_prior(tape, prior_pass):
    """log p(z) of the tape's z, put on it once."""
    if "log_prior" not in tape:
        prior_pass.log_density(tape, "z")


def log_weights(tape, prior_pass, out="log_weights"):
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) on the tape: (S, N)."""
    _log_prior(tape, prior_pass)
    names = ("log_likelihood", "log_prior", "log_q")
    return tape.apply(LogWeights(), names, (out,), grads_for=names)


class Elbo:
    """The (beta-weighted) ELBO; ``draws`` are L, the z samples per example."""

    name = "elbo"

    @staticmethod
    def needs_log_q(posterior):
        """log q(z|x) is read only by a Monte-Carlo KL (no closed form for the pair)."""
        return posterior.gaussian_heads is None

    def __init__(self, beta=1.0, draws=1):
        self.beta, self.draws = beta, draws

    def record(self, tape, posterior, prior_pass, beta=None):
        kl_term(tape, posterior, prior_pass)
        weight = self.beta if beta is None else beta
        return tape.apply(WeightedElbo(weight), ("log_likelihood", "kl"), ("objective",),
                          grads_for=("log_likelihood", "kl"))


class IwaeBound:
    """L_K = log 1/K sum_k w_k (Burda et al., 2016); ``draws`` are K. Its gradient,
    sum_k w~_k grad log w_k, is LogMeanExp's backward replayed through log w."""

    name = "iwae"

    @staticmethod
    def needs_log_q(posterior):
        return True

    def __init__(self, draws=1):
        self.draws = draws
        self.beta = 1.0

    def record(self, tape, posterior, prior_pass, beta=None):
        log_weights(tape, prior_pass)
        return tape.apply(LogMeanExp(), ("log_weights",), ("objective",),
                          grads_for=("log_weights",))


class MeanOverDraws:
    """1/S sum_s a_s: (S, N) -> (N,). Backward: g / S to every draw."""

    params = grads = {}

    def forward(self, a):
        self.draws = a.shape[0]
        return a.mean(axis=0)

    def backward(self, grad_out):
        return spread_over_draws(grad_out, self.draws)


class Reconstruction:
    """1/S sum_s log p(x|z_s): an autoencoder's objective when the noise is zero
    (z = the posterior's mean), how VaDE's networks are pretrained."""

    name = "reconstruction"

    @staticmethod
    def needs_log_q(posterior):
        return False

    def record(self, tape, posterior, prior_pass, beta=None):
        return tape.apply(MeanOverDraws(), ("log_likelihood",), ("objective",),
                          grads_for=("log_likelihood",))


class VectorQuantizedLoss:
    """1/S sum_s log p(x|z_q) - codebook loss - commitment * commitment loss, (N,);
    without the codebook term when moving averages train the codebook.
    Backward: g / S to each draw, -g to the codebook loss, -commitment g to the other."""

    params = grads = {}

    def __init__(self, commitment, with_codebook):
        self.commitment, self.with_codebook = commitment, with_codebook

    def forward(self, log_likelihood, codebook_loss, commitment_loss):
        self.draws = log_likelihood.shape[0]
        value = log_likelihood.mean(axis=0) - self.commitment * commitment_loss
        if self.with_codebook:
            value -= codebook_loss
        return value

    def backward(self, grad_out):
        return (spread_over_draws(grad_out, self.draws),
                -grad_out if self.with_codebook else None, -self.commitment * grad_out)


class VectorQuantizedObjective:
    """VQ-VAE's objective (van den Oord et al., 2017): the reconstruction log-likelihood
    at z_q, less the codebook loss ||sg(z_e) - e||^2 and commitment * ||z_e - sg(e)||^2
    (the paper's beta, 0.25); the gradient reaches the encoder straight through z_q."""

    name = "vq"

    @staticmethod
    def needs_log_q(posterior):
        return False

    def __init__(self, commitment=0.25, with_codebook=True):
        self.commitment, self.with_codebook = commitment, with_codebook
        self.beta, self.draws = 1.0, 1

    def record(self, tape, posterior, prior_pass, beta=None):
        names = ("log_likelihood", "codebook_loss", "commitment_loss")
        return tape.apply(VectorQuantizedLoss(self.commitment, self.with_codebook), names,
                          ("objective",), grads_for=names)
