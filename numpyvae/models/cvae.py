"""The label-conditioned VAE (Sohn et al., 2015; Kingma et al., 2014's M2 without the
classifier): a one-hot label c enters the encoder and the decoder, p(z|c) = N(0, I).

    ELBO(x|c) = E_q(z|x,c)[log p(x|z, c)] - KL(q(z|x, c) || N(0, I))

Decoding one z under every label separates style (z) from class (c): conditional
generation and "style transfer" (tutorials/09_conditional_vaes.ipynb).
"""
import numpy

from .. import backend
from .base import LatentGaussianModel, as_generator, positive_int


class CVAE(LatentGaussianModel):
    """``nv.VAE``'s options plus ``n_classes``; ``condition`` is an int label array (N,)
    or one-hot rows (N, n_classes)."""

    name = "cvae"
    condition_kind = "label"
    evidence_label = "log p(x|c)"

    def __init__(self, x_dim, n_classes=10, **options):
        self.n_classes = positive_int(n_classes, "n_classes")
        super().__init__(x_dim, condition_dim=self.n_classes, **options)

    def config(self):
        return dict(super().config(), n_classes=self.n_classes)

    @classmethod
    def options_from_data(cls, image_shape, n_classes):
        if not n_classes:
            raise ValueError("The cvae model needs labels, and this data set has none: use "
                             "a labelled one (--dataset mnist or fashion-mnist).")
        return dict(super().options_from_data(image_shape, n_classes), n_classes=int(n_classes))

    def figure_conditions(self, count, condition=None):
        """Labels 0, 1, ..., n_classes - 1 in turn."""
        return numpy.arange(count) % self.n_classes

    def inputs(self, images, labels=None):
        if labels is None:
            raise ValueError("The cvae model needs labels: use a labelled data set "
                             "(mnist, fashion-mnist).")
        return images, labels

    def _condition_features(self, condition):
        xp = self.xp
        if not hasattr(condition, "shape"):
            condition = numpy.asarray(condition)
        if condition.ndim == 2:
            if condition.shape[1] != self.n_classes:
                raise ValueError(f"One-hot labels must have {self.n_classes} columns, got "
                                 f"shape {tuple(condition.shape)}.")
            if isinstance(condition, numpy.ndarray) and not numpy.isfinite(condition).all():
                raise ValueError("One-hot labels contain NaN or infinity.")
            return xp.asarray(condition, dtype=self.dtype)
        if condition.ndim != 1:
            raise ValueError(f"condition must be int labels (N,) or one-hot rows (N, "
                             f"{self.n_classes}), got shape {tuple(condition.shape)}.")
        kind = getattr(condition.dtype, "kind", "")
        if kind not in "iu":
            raise ValueError(f"Labels must be integers, got dtype {condition.dtype}.")
        if isinstance(condition, numpy.ndarray) and condition.size and (
                condition.min() < 0 or condition.max() >= self.n_classes):
            raise ValueError(f"Labels must lie in 0..{self.n_classes - 1}, got "
                             f"{int(condition.min())}..{int(condition.max())}.")
        labels = xp.asarray(condition)
        return (labels[:, None] == xp.arange(self.n_classes)[None, :]).astype(self.dtype)

    @property
    def samples_label(self):
        return (f"samples: z ~ p(z) = N(0, I) under labels 0-{self.n_classes - 1} in turn, "
                "decoder means E[x|z, c]")

    def label_names(self, class_names=None):
        """The names of the labels 0 .. n_classes - 1 (the data set's, else the numbers)."""
        if class_names is not None and len(class_names) == self.n_classes:
            return [str(name) for name in class_names]
        return [str(label) for label in range(self.n_classes)]

    def figures(self, directory, images, labels, image_shape, rng, title="",
                class_names=None):
        """The CVAE's figures: conditional generation (one row per class c, each column
        one z ~ N(0, I) shared by the whole column) and style transfer (each row: a test
        image, then its z = mu(x, c) decoded under every label); rows and columns named
        by ``class_names``."""
        from .. import figures

        generator = as_generator(rng, self.rng)
        classes = numpy.arange(self.n_classes)
        names = self.label_names(class_names)
        columns = 10
        z = generator.standard_normal((columns, self.z_dim))
        grid_z = numpy.tile(z, (self.n_classes, 1))                  # row-major: class rows
        grid_labels = numpy.repeat(classes, columns)
        generated = backend.to_numpy(self.decode(grid_z, grid_labels))
        written = [figures.image_grid(
            generated, image_shape, directory / "conditional_samples.png", columns,
            f"E[x|z, c]: one row per class c, each column one z ~ N(0, I) ({title})",
            row_labels=names)]
        shown = min(8, int(images.shape[0]))
        mu, _ = self.encode(images[:shown], labels[:shown])
        mu = backend.to_numpy(mu)
        rows = []
        for index in range(shown):
            decoded = backend.to_numpy(self.decode(numpy.repeat(mu[index:index + 1], self.n_classes,
                                                                axis=0), classes))
            rows.append(numpy.concatenate([backend.to_numpy(images[index:index + 1]), decoded]))
        written.append(figures.image_grid(numpy.concatenate(rows), image_shape,
                                          directory / "style_transfer.png", self.n_classes + 1,
                                          "a test image, then its z = mu(x, c) decoded under "
                                          f"each label ({title})",
                                          column_labels=["data"] + names))
        return written
