"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017): a discrete latent of M codes per
example, each one of K vectors of a learned codebook.

    z_e = encoder(x)            M vectors of dimension D (a grid of h x w for a conv net)
    z_q,m = e_{k_m},  k_m = argmin_j ||z_e,m - e_j||^2          (numpyvae.quantize)
    loss = -log p(x|z_q) + ||sg(z_e) - e||^2 + commitment ||z_e - sg(e)||^2

trained with the straight-through estimator (the decoder's gradient at z_q copied to
z_e), or with the codebook following moving averages (``ema_decay``). With the uniform
prior over codes the KL of the one-hot q is M log K, so log p(x|z_q) - M log K is a
bound on log p(x) (what ``metrics``' "elbo" reports). Composed of the engine's parts:
a network with one head z_e, the quantizing posterior, the uniform prior and the VQ
objective (tutorials/12_convolutions_and_vq_vae.ipynb).
"""
from dataclasses import replace

import numpy

from .. import backend
from ..parts.objectives import VectorQuantizedObjective
from ..parts.posteriors import VectorQuantizedPosterior
from ..parts.priors import UniformCodePrior
from ..quantize import code_usage, nearest_codes
from .base import LatentGaussianModel, Option, as_generator
from .options import (BASE_OPTIONS, MLP_CODES, finite_number, number_at_least,
                      option_named, optional, positive_int)


def ema_decay(value):
    decay = finite_number(value, "ema_decay")
    if not 0 < decay < 1:
        raise ValueError(f"ema_decay must lie in (0, 1), got {value!r}.")
    return decay


class VQVAE(LatentGaussianModel):
    """``nv.VAE``'s options plus ``codebook_size`` K, ``code_dim`` D, ``commitment``
    (the paper's beta) and ``ema_decay`` (None: the codebook loss trains the codebook).
    ``z_dim`` is the width of z_q, M D: for a conv net the grid decides M."""

    name = "vq-vae"
    conv_latent = "grid"
    discrete_latent = True
    surrogate_gradients = ("encoder.", "quantizer.")   # straight-through; tests/test_vq_vae.py
    OPTIONS = (
        # The base's z_dim (its help says what it means here), with no fixed default:
        # settle_options derives it from the grid or the code size.
        replace(option_named(BASE_OPTIONS, "z_dim"), default=None,
                parse=optional(positive_int("z_dim"), off=())),
        Option("codebook_size", 128, "codes K in the codebook (vq-vae)",
               positive_int("codebook_size")),
        Option("code_dim", 16, "dimension D of each code (vq-vae)", positive_int("code_dim")),
        Option("commitment", 0.25, "weight of the commitment loss, the paper's beta (vq-vae)",
               number_at_least("commitment", 0.0)),
        Option("ema_decay", None, "train the codebook by moving averages with this decay "
               "(e.g. 0.99) instead of the codebook loss (vq-vae)",
               optional(ema_decay)),
    )
    # The Keras VQ-VAE example on MNIST: conv 32-64 (kernel 3, stride 2) to a 7 x 7 grid
    # of 16-dimensional codes, K = 128, beta = 0.25, Adam (lr 1e-3), batch 128, 30 epochs,
    # the squared error over the data variance: a Gaussian of variance var/2 with a
    # linear output (MNIST's grey-level variance is 0.0949).
    RUN_DEFAULTS = dict(net="conv", channels=[32, 64], kernel_size=3, stride=2, padding=1, z_dim=None,
                        activation="relu", batch_norm=False, likelihood="gaussian-fixed",
                        decoder_variance=0.0475, output_activation="identity",
                        optimizer="adam", lr=0.001, batch_size=128, init="glorot",
                        weight_prior_std="none", binarize=False, epochs=30, ema_decay=0.99)

    def settle_options(self):
        if self.objective != "elbo" or self.beta != 1.0 or self.samples != 1:
            raise ValueError("The vq-vae model trains on its own objective: drop --objective, "
                             "--beta and --mc-samples (its commitment weight is --commitment).")
        if self.net == "conv":
            grid = self.conv_geometry().sizes[-1]
            width = grid[0] * grid[1] * self.code_dim
            if self.z_dim not in (None, width):
                raise ValueError(f"z_dim = {self.z_dim}, but the conv net's {grid[0]}x{grid[1]} "
                                 f"grid of {self.code_dim}-dimensional codes is {width} wide: "
                                 "drop z_dim.")
            self.z_dim = width
        elif self.z_dim is None:
            self.z_dim = MLP_CODES * self.code_dim
        elif self.z_dim % self.code_dim:
            raise ValueError(f"z_dim = {self.z_dim} is not a whole number of "
                             f"{self.code_dim}-dimensional codes.")
        self.code_count = self.z_dim // self.code_dim

    def posterior_part(self):
        return VectorQuantizedPosterior(self.codebook_size, self.code_dim, self.z_dim,
                                        self.ema_decay)

    def prior_part(self):
        return UniformCodePrior(self.z_dim // self.code_dim, self.codebook_size)

    def objective_part_for(self):
        return VectorQuantizedObjective(self.commitment, with_codebook=not self.ema_decay)

    def initialize_parts(self, rng):
        """Codes uniform on [-1/K, 1/K]; moving averages start as if each code had seen
        itself once (N = 1, m = e)."""
        k = self.codebook_size
        codebook = self.posterior.codebook(self.params, self.buffers)
        codebook[...] = backend.to_device(rng.uniform(-1.0 / k, 1.0 / k, codebook.shape),
                                          self.xp, codebook.dtype)
        if self.ema_decay:
            self.buffers["quantizer.ema_count"][...] = 1
            self.buffers["quantizer.ema_sum"][...] = codebook

    def initialize_from_data(self, x, condition=None, rng=None):
        """Codes set to K of the encoder's distinct vectors z_e for a batch x, drawn
        without replacement where there are enough: every code starts where the encoder's
        outputs are, so none starts dead and the codebook need not chase an encoder that
        outgrows it (a common remedy for codebook collapse; the paper draws the codes at
        random)."""
        generator = as_generator(rng, self.rng)
        (z_e,) = self.encode(x, condition)
        # Distinct vectors only: a blank background gives many equal ones, and of equal
        # codes the nearest-code search always picks the first, leaving the copies dead.
        vectors = numpy.unique(backend.to_numpy(z_e).reshape(-1, self.code_dim), axis=0)
        chosen = generator.choice(len(vectors), self.codebook_size,
                                  replace=len(vectors) < self.codebook_size)
        codebook = self.codebook
        codebook[...] = backend.to_device(vectors[chosen], self.xp, codebook.dtype)
        if self.ema_decay:
            self.buffers["quantizer.ema_count"][...] = 1
            self.buffers["quantizer.ema_sum"][...] = codebook

    @property
    def codebook(self):
        """The codebook e (K, D)."""
        return self.posterior.codebook(self.params, self.buffers)

    @property
    def latent_label(self):
        return f"{self.code_count} codes of K = {self.codebook_size}"

    @property
    def objective_label(self):
        return f"VQ objective (commitment {self.commitment:g})"

    # --------------------------------------------------------------- codes
    def codes(self, x, condition=None):
        """The code of each of an example's M vectors: (N, M) integers."""
        (z_e,) = self.encode(x, condition)
        codes = nearest_codes(z_e.reshape(-1, self.code_dim), self.codebook)
        return backend.to_numpy(codes).reshape(z_e.shape[0], -1)

    def decode_codes(self, codes):
        """E[x|z_q] for integer codes (N, M)."""
        codes = numpy.asarray(codes)
        z_q = self.codebook[backend.to_device(codes.reshape(-1))]
        return self.decode(z_q.reshape(codes.shape[0], -1))

    def latent_path(self, x_ends, steps, condition=None):
        """From one example's codes to another's: the encoder outputs z_e of the two rows
        interpolated, t evenly spaced in [0, 1], each point quantized to its nearest codes
        (every point a z_q the decoder was trained on): (steps, z_dim)."""
        (z_e,) = self.encode(x_ends, condition)
        t = self.xp.linspace(0.0, 1.0, steps, dtype=self.dtype)[:, None]
        z_a, z_b = z_e.reshape(2, -1)
        path = (1 - t) * z_a + t * z_b
        codes = nearest_codes(path.reshape(-1, self.code_dim), self.codebook)
        return self.codebook[codes].reshape(steps, -1)

    def prior_sample(self, n, rng=None, condition=None):
        """z_q of n examples whose M codes are drawn uniformly (the training prior; the
        paper fits an autoregressive prior afterwards, which this model does not)."""
        n = positive_int("n")(n)
        generator = as_generator(rng, self.rng)
        codes = generator.integers(self.codebook_size, size=n * self.code_count)
        return self.codebook[backend.to_device(codes)].reshape(n, -1)

    def figures(self, directory, images, labels, image_shape, rng, title="",
                class_names=None):
        """Codebook usage over the examples: how many vectors chose each code."""
        from .. import figures   # noqa: PLC0415
        counts, perplexity, dead = code_usage(self.codes(images), self.codebook_size)
        return [figures.code_usage(counts, perplexity, dead, directory / "code_usage.png",
                                   title=title)]
