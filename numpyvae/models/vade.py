"""Variational Deep Embedding (Jiang et al., 2017): a VAE whose prior is a Gaussian
mixture, so that the clusters of the mixture cluster the data.

    p(c) = pi_c (pi = softmax(logits)),  p(z|c) = N(mu_c, diag sigma_c^2),  p(x|z) the decoder
    q(z|x) = N(mu(x), diag sigma^2(x)),  q(c|x) = gamma = p(c|z) at the sampled z

    bound(x) = 1/L sum_l log p(x|z_l) - R(x),   R: the mixture's KL term in closed form
    (numpyvae.mixture.VadeKL; tutorials/11_vade.ipynb)

The paper's protocol starts from an autoencoder (``pretrain``: the networks trained on
log p(x|z = mu(x))) and a diagonal Gaussian mixture fitted by EM to the codes mu(x)
(``fit_prior``), then trains everything on the bound. ``cluster_probabilities(x)`` is
gamma at z = mu(x), the cluster assignment the paper's accuracy is measured on.
"""
import numpy

from .. import backend
from ..inference.gmm import fit_diagonal_gmm
from ..mixture import responsibilities
from ..optim import Adam
from ..parts.objectives import Reconstruction
from ..parts.priors import MIXTURE_NAMES, GaussianMixturePrior
from ..cli import non_negative_float, positive_int
from .base import LatentGaussianModel, Option, as_generator


class VaDE(LatentGaussianModel):
    """``nv.VAE``'s options plus ``n_components``, the clusters of the mixture prior."""

    name = "vade"
    OPTIONS = (Option("n_components", 10, "clusters of the mixture prior (vade)", positive_int),
               Option("pretrain_epochs", 10.0, "autoencoder pretraining before the mixture's "
                      "EM fit, in epochs (vade; 0 skips both)", non_negative_float, run=True))
    # Jiang et al.'s released code: 784-500-500-2000-10 ReLU nets, Bernoulli decoder on
    # grey levels (the summed cross-entropy), Adam lr 0.002 (eps 1e-4) times 0.9 every
    # 10 epochs down to 0.0002, batch 100, 300 epochs over the 70,000 images of train and
    # test pooled; no prior on the weights.
    RUN_DEFAULTS = dict(hidden=[500, 500, 2000], z_dim=10, activation="relu",
                        likelihood="bernoulli", optimizer="adam", lr=0.002, adam_eps=1e-4,
                        lr_schedule="vade", weight_prior_std="none", init="glorot",
                        binarize=False, pool_splits=True, epochs=300)

    def prior_part(self):
        return GaussianMixturePrior(self.z_dim, self.n_components)

    def initialize_parts(self, rng):
        """Equal weights, unit variances, means drawn N(0, I): a prior that the EM fit
        of ``fit_prior`` replaces in the paper's protocol."""
        logits, means, logvars = (self.params[name] for name in MIXTURE_NAMES)
        logits[...] = 0
        means[...] = backend.to_device(rng.standard_normal(means.shape), self.xp, means.dtype)
        logvars[...] = 0

    # ------------------------------------------------------------- clustering
    def cluster_probabilities(self, x, condition=None):
        """gamma = p(c|z) at z = mu(x): (N, n_components), rows summing to 1."""
        mu = self.encode(x, condition)[0]
        logits, means, logvars = (self.params[name] for name in MIXTURE_NAMES)
        return responsibilities(mu, logits, means, logvars)

    # ------------------------------------------------------------ pretraining
    def reconstruction_loss_and_grads(self, x, condition=None):
        """-1/N sum_n log p(x_n|z = mu(x_n)) and its gradient: the autoencoder of the
        pretraining (zero noise, so the log-variance head gets no gradient)."""
        n = int(x.shape[0])
        eps = numpy.zeros((1, n, self.z_dim), dtype=self.dtype)
        loss, pieces, n = self._training_pass(x, condition, eps, None, None, None,
                                              objective=Reconstruction())
        pieces.tape.backward({"objective": self.xp.full((n,), -1.0 / n, dtype=self.dtype)})
        for update in self._step_updates(pieces):
            update.update_running_statistics()
        return loss, self.grads

    def pretrain(self, batches, steps, lr=0.001, progress=None):
        """Train the encoder's mean and the decoder as an autoencoder for ``steps``
        minibatches from ``batches()`` (a callable returning (x, condition)), Adam at lr.
        The prior's arrays get no gradient and stay put, and so does the encoder's
        log-variance head (z = mu at zero noise): training on the bound starts from its
        initial values, as the paper's protocol does. Returns the last loss."""
        optimizer = Adam(lr=lr)
        optimizer.initialize_state(self.params)
        loss = None
        for step in range(int(steps)):
            x, condition = batches()
            loss, grads = self.reconstruction_loss_and_grads(x, condition)
            optimizer.step(self.params, grads)
            if progress is not None:
                progress(step + 1, backend.to_float(loss))
        return loss

    def fit_prior(self, codes, rng=None, **options):
        """Set pi, mu_c, sigma_c^2 from a diagonal Gaussian mixture fitted by EM to
        ``codes`` (N, z_dim), typically mu(x) over the training set. Returns the fit."""
        generator = as_generator(rng, self.rng)
        codes = numpy.asarray(backend.to_numpy(codes), dtype=numpy.float64)
        gmm = fit_diagonal_gmm(codes, self.n_components, generator, **options)
        logits, means, logvars = (self.params[name] for name in MIXTURE_NAMES)
        logits[...] = backend.to_device(numpy.log(gmm.weights), self.xp, logits.dtype)
        means[...] = backend.to_device(gmm.means, self.xp, means.dtype)
        logvars[...] = backend.to_device(numpy.log(gmm.variances), self.xp, logvars.dtype)
        return gmm

    # ---------------------------------------------------------------- figures
    def figures(self, directory, images, labels, image_shape, rng, title="",
                class_names=None):
        """Samples from each cluster (one row per component, z ~ N(mu_c, sigma_c^2))."""
        from .. import figures

        generator = as_generator(rng, self.rng)
        columns = 10
        logits, means, logvars = (backend.to_numpy(self.params[name]) for name in MIXTURE_NAMES)
        order = numpy.argsort(-logits)           # the heaviest clusters first
        eps = generator.standard_normal((self.n_components, columns, self.z_dim))
        z = means[order][:, None, :] + numpy.exp(0.5 * logvars[order])[:, None, :] * eps
        decoded = backend.to_numpy(self.decode(z.reshape(-1, self.z_dim)))
        return [figures.image_grid(decoded, image_shape, directory / "cluster_samples.png",
                                   columns, f"one row per mixture component, heaviest first "
                                            f"({title})")]
