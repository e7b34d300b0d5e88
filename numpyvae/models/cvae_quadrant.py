"""The CVAE for structured output prediction (Sohn, Lee & Yan, 2015) on image
completion: from one quadrant x_c of an image, predict the other three, y.

    prior network       p(z|x_c)      = N(mu_p(x_c), diag exp(logvar_p(x_c)))
    recognition network q(z|x_c, y)   = N(mu(y, x_c), diag exp(logvar(y, x_c)))
    generation network  p(y|x_c, z)   = prod_d Bernoulli(y_d | sigma(l_d(z, x_c)))

    log p(y|x_c) >= E_q[log p(y|x_c, z)] - KL(q(z|x_c, y) || p(z|x_c))

the KL between two diagonal Gaussians in closed form. The conditional log-likelihood
log p(y|x_c) is estimated by importance sampling with q as the proposal, as log p(x)
is for the VAE (tutorials/09_conditional_vaes.ipynb). In the model's terms x is the
three quadrants to predict and ``condition`` the given one.
"""
import numpy

from .. import backend
from .base import LatentGaussianModel, as_generator

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def quadrant_mask(image_shape, given):
    """Boolean (rows * cols,) mask of the ``given`` quadrant."""
    rows, cols = image_shape
    mask = numpy.zeros((rows, cols), dtype=bool)
    top = given.startswith("top")
    left = given.endswith("left")
    mask[(slice(0, rows // 2) if top else slice(rows // 2, rows)),
         (slice(0, cols // 2) if left else slice(cols // 2, cols))] = True
    return mask.reshape(-1)


class QuadrantCVAE(LatentGaussianModel):
    """``nv.VAE``'s options (``x_dim`` is the whole image's pixel count) plus
    ``image_shape`` and ``given``, the quadrant that is observed."""

    name = "cvae-quadrant"
    condition_kind = "input"
    evidence_label = "log p(y|x_c)"
    learned_prior = True

    def __init__(self, x_dim, image_shape=(28, 28), given="bottom-left", likelihood="bernoulli",
                 **options):
        if options.get("net", "mlp") != "mlp":
            raise ValueError("The cvae-quadrant model has MLP networks only: its x is three "
                             "quadrants of an image, not an image; drop --net conv.")
        if len(tuple(image_shape)) != 2:
            raise ValueError(f"The cvae-quadrant model needs grey images (rows, cols), got "
                             f"image_shape {tuple(image_shape)}.")
        rows, cols = (int(n) for n in image_shape)
        if rows * cols != x_dim or rows < 2 or cols < 2:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold x_dim = {x_dim} "
                             "pixels.")
        if given not in QUADRANTS:
            raise ValueError(f"Unknown quadrant {given!r}: choose one of {', '.join(QUADRANTS)}.")
        self.image_shape, self.given, self.image_dim = (rows, cols), given, int(x_dim)
        mask = quadrant_mask(self.image_shape, given)
        self.given_pixels = numpy.flatnonzero(mask)
        self.target_pixels = numpy.flatnonzero(~mask)
        super().__init__(len(self.target_pixels), likelihood=likelihood,
                         condition_dim=len(self.given_pixels), **options)
        self.image_shape = (rows, cols)   # the whole image's; x is three quadrants of it

    def config(self):
        config = super().config()
        config.update(x_dim=self.image_dim, image_shape=list(self.image_shape), given=self.given)
        return config

    @classmethod
    def options_from_data(cls, image_shape, n_classes):
        return {"image_shape": tuple(image_shape)}

    def inputs(self, images, labels=None):
        """(the three quadrants to predict, the given one) of whole-image rows."""
        xp = backend.namespace_of(images)
        return (images[:, xp.asarray(self.target_pixels)],
                images[:, xp.asarray(self.given_pixels)])

    def images(self, x, condition=None):
        """Whole images from predicted quadrants x and the given one (grey 0.5 if None)."""
        xp = backend.namespace_of(x)
        whole = xp.full((x.shape[0], self.image_dim), 0.5, dtype=x.dtype)
        whole[:, xp.asarray(self.target_pixels)] = x
        if condition is not None:
            whole[:, xp.asarray(self.given_pixels)] = condition
        return whole

    def _condition_features(self, condition):
        return self._data(condition, self.condition_dim, what="condition (the given quadrant)")

    def figures(self, directory, images, labels, image_shape, rng, title="",
                class_names=None):
        """Completions: each row a test digit's given quadrant alone, then several
        completions with z ~ p(z|x_c) (Bernoulli means), then the truth."""
        from .. import figures

        generator = as_generator(rng, self.rng)
        completions = 6
        shown = min(10, int(images.shape[0]))
        target, given = self.inputs(images[:shown])
        rows = []
        for index in range(shown):
            condition = given[index:index + 1]
            repeated = self.xp.repeat(condition, completions, axis=0)
            predicted = self.sample(completions, generator, condition=repeated)
            rows += [backend.to_numpy(self.images(self.xp.full_like(target[index:index + 1], 0.5),
                                                  condition)),
                     backend.to_numpy(self.images(predicted, repeated)),
                     backend.to_numpy(images[index:index + 1])]
        return [figures.image_grid(numpy.concatenate(rows), image_shape,
                                   directory / "completions.png", completions + 2,
                                   f"given the {self.given} quadrant: {completions} completions, "
                                   f"then the truth ({title})")]
