"""Vector quantization (van den Oord, Vinyals & Kavukcuoglu, 2017) as a forward/backward pair.

The encoder's output z_e is M vectors of dimension D per example; each is replaced by
its nearest entry of a codebook e (K, D):

    k_m = argmin_j ||z_e,m - e_j||^2,    z_q,m = e_{k_m}

The argmin has no useful derivative, so VQ-VAE trains with the *straight-through*
estimator: the decoder's gradient at z_q is copied to z_e, dL/dz_e := dL/dz_q. The
codebook learns from the codebook loss ||sg(z_e) - e||^2 and the encoder is held near
its codes by the commitment loss ||z_e - sg(e)||^2 (sg: stop-gradient). Both have the
value ||z_e - z_q||^2 summed over an example's M vectors; they differ in where their
gradients go:

    codebook loss c_n:    dc_n/de_j  = 2 sum_{m: k_m = j} (e_j - z_e,m),   nothing to z_e
    commitment loss b_n:  db_n/dz_e,m = 2 (z_e,m - z_q,m),                 nothing to e

The codebook can instead follow exponential moving averages of its assigned vectors
(the paper's appendix): with n_j the vectors assigned to code j in the batch and s_j
their sum, N_j <- g N_j + (1 - g) n_j, m_j <- g m_j + (1 - g) s_j, e_j = m_j / N_j.
Tutorial 12 derives both and shows codebook collapse.
"""
import numpy

from . import backend

EMA_FLOOR = 1e-5   # N_j of a code no vector chose for long decays to 0; e_j = m_j / max(N_j, floor)


def nearest_codes(vectors, codebook):
    """argmin_j ||v - e_j||^2 for rows v (R, D): (R,) integer codes.
    ||v||^2 is the same for every j, so argmin_j (||e_j||^2 - 2 v e_j) decides."""
    scores = vectors @ codebook.T
    scores *= -2.0
    scores += (codebook * codebook).sum(axis=1)
    return scores.argmin(axis=1)


class VectorQuantize:
    """z_e (N, M D) -> z_q (N, M D) with the straight-through gradient, and the per-example
    codebook and commitment losses (N,) (see the module docstring). ``codebook`` (K, D)
    is a view of the model's parameters (or buffers, for the moving-average update), and
    ``grad_codebook`` its gradient view (None when the codebook is not trained by
    gradient)."""

    def __init__(self, codebook, grad_codebook=None):
        self.codebook = codebook
        self.params = {"codebook": codebook} if grad_codebook is not None else {}
        self.grads = {"codebook": grad_codebook} if grad_codebook is not None else {}

    def forward(self, z_e):
        n = z_e.shape[0]
        code_dim = self.codebook.shape[1]
        self.vectors = z_e.reshape(-1, code_dim)
        self.codes = nearest_codes(self.vectors, self.codebook)
        z_q = self.codebook[self.codes]
        self.residual = self.vectors - z_q                  # z_e - z_q, per vector
        squared = (self.residual * self.residual).reshape(n, -1).sum(axis=1)
        self.n = n
        return z_q.reshape(z_e.shape), squared, squared.copy()

    def backward(self, grad_z_q, grad_codebook_loss=None, grad_commitment=None):
        """Returns dL/dz_e: the straight-through copy of dL/dz_q plus the commitment
        term; fills dL/de from the codebook loss."""
        xp = backend.namespace_of(self.vectors)
        code_dim = self.codebook.shape[1]
        grad_z_e = (xp.zeros_like(self.vectors) if grad_z_q is None
                    else grad_z_q.reshape(-1, code_dim).copy())
        by_example = (self.n, -1, code_dim)          # (N, M, D): an example's M vectors
        if grad_commitment is not None:
            step = (2.0 * grad_commitment)[:, None, None] * self.residual.reshape(by_example)
            grad_z_e += step.reshape(grad_z_e.shape)
        if self.grads:
            if grad_codebook_loss is None:
                self.grads["codebook"][...] = 0
            else:                                     # d/de_{k_m} of g_n ||z_e,m - e_k||^2
                step = (-2.0 * grad_codebook_loss)[:, None, None] * self.residual.reshape(by_example)
                self.grads["codebook"][...] = self.one_hot().T @ step.reshape(-1, code_dim)
        return grad_z_e.reshape(self.n, -1)

    def one_hot(self):
        """(R, K) assignment matrix of the last forward pass."""
        xp = backend.namespace_of(self.vectors)
        matrix = xp.zeros((len(self.codes), self.codebook.shape[0]), dtype=self.vectors.dtype)
        matrix[xp.arange(len(self.codes)), self.codes] = 1
        return matrix


class MovingAverageCodebook:
    """The moving-average codebook update, run after a training step like batch norm's
    running statistics: ``update_running_statistics`` moves N, m and e = m / N."""

    def __init__(self, quantize, count, total, decay):
        self.quantize, self.count, self.total, self.decay = quantize, count, total, float(decay)

    def update_running_statistics(self):
        q = self.quantize
        one_hot = q.one_hot()
        self.count *= self.decay
        self.count += (1.0 - self.decay) * one_hot.sum(axis=0)
        self.total *= self.decay
        self.total += (1.0 - self.decay) * (one_hot.T @ q.vectors)
        xp = backend.namespace_of(self.count)
        q.codebook[...] = self.total / xp.maximum(self.count, EMA_FLOOR)[:, None]


def code_usage(codes, codebook_size):
    """(counts per code (K,), perplexity exp(H(usage)), dead codes) of integer codes:
    the perplexity is K when every code is used equally, 1 when one code takes all."""
    counts = numpy.bincount(numpy.asarray(codes).reshape(-1), minlength=codebook_size)
    usage = counts / max(counts.sum(), 1)
    used = usage[usage > 0]
    perplexity = float(numpy.exp(-(used * numpy.log(used)).sum()))
    return counts, perplexity, int((counts == 0).sum())
