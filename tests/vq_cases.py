"""Gradient-check cases for VQ-VAE's pieces (numpyvae.quantize, the VQ objective), in
the registry's format (tests/test_gradients_registry.py).

The quantizer's gradients are checked where they are derivatives: the codebook loss's
with respect to the codebook, the commitment loss's with respect to z_e (each with the
assignment fixed: z_e lies near well-separated codes, far from any tie). The
straight-through copy is not a derivative; tests/test_vq_vae.py checks its formula.
"""
import numpy as np
from hypothesis import strategies as st

from numpyvae.parts import objectives
from numpyvae.quantize import VectorQuantize


sizes = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def generator(data):
    return np.random.default_rng(data.draw(seeds))


def _codebook_and_vectors(data, rng):
    n, positions, code_dim = data.draw(sizes), data.draw(sizes), data.draw(sizes)
    codes = 2 + data.draw(sizes)
    codebook = rng.normal(size=(codes, code_dim)) + 3.0 * np.eye(codes, code_dim)
    codebook += 3.0 * np.arange(codes)[:, None]          # codes at least ~3 apart
    chosen = rng.integers(0, codes, size=(n, positions))
    z_e = codebook[chosen] + rng.normal(0.0, 0.2, size=(n, positions, code_dim))
    return codebook, z_e.reshape(n, -1), n


class _CodebookLoss:
    """The quantizer seen through its codebook loss: gradient to the codebook only."""

    def __init__(self, codebook):
        self.quantize = VectorQuantize(codebook, np.zeros_like(codebook))
        self.params, self.grads = self.quantize.params, self.quantize.grads

    def forward(self, z_e):
        return self.quantize.forward(z_e)[1]

    def backward(self, grad):
        self.quantize.backward(None, grad, None)
        return ()


class _CommitmentLoss:
    """The quantizer seen through its commitment loss: gradient to z_e only."""

    def __init__(self, codebook):
        self.quantize = VectorQuantize(codebook)

    def forward(self, z_e):
        return self.quantize.forward(z_e)[2]

    def backward(self, grad):
        return self.quantize.backward(None, None, grad)


def vector_quantize(kind):
    def factory(data):
        rng = generator(data)
        codebook, z_e, n = _codebook_and_vectors(data, rng)
        grad = rng.normal(size=(n,))
        if kind == "codebook":
            return _CodebookLoss(codebook), {"z_e": z_e}, grad, []
        return _CommitmentLoss(codebook), {"z_e": z_e}, grad, None
    return factory


def vq_loss(draws):
    def factory(data):
        rng = generator(data)
        n = data.draw(sizes)
        piece = objectives.VectorQuantizedLoss(float(rng.uniform(0.0, 2.0)), with_codebook=True)
        inputs = {"log_likelihood": rng.normal(size=(draws, n)),
                  "codebook_loss": rng.random(n), "commitment_loss": rng.random(n)}
        return piece, inputs, rng.normal(size=(n,)), None
    return factory


VQ_PIECE_CASES = [
    ("VectorQuantize-codebook-loss", vector_quantize("codebook")),
    ("VectorQuantize-commitment-loss", vector_quantize("commitment")),
    ("VectorQuantizedLoss-S1", vq_loss(1)),
    ("VectorQuantizedLoss-S3", vq_loss(3)),
]
