"""The figures of a training run, drawn with matplotlib's Agg backend (no display needed).

* ``learning_curve``: ELBO per datapoint vs training samples seen (log x), train and
  test, as in AEVB Figure 2.
* ``reconstructions``: test images beside their reconstructions E[x | z = mu(x)].
* ``prior_samples``: E[x | z] for z ~ N(0, I).
* ``manifold``: for z_dim = 2, decoded means on a grid of z whose coordinates are the
  standard normal quantiles of evenly spaced probabilities (AEVB Figure 4), so the
  grid covers the prior's mass evenly.
* ``latent_scatter``: encoded test means mu(x), coloured by label when there are
  labels; for z_dim > 2 projected on their first two principal components.

Every function takes host NumPy arrays (or a ``decode`` callable) and writes a PNG.
Images are rows of flattened pixels; their ``shape`` is (rows, columns) for grey images
or channel-first (channels, rows, columns), as ``datasets.image_shape`` gives it: one
channel is drawn in grey exactly like (rows, columns), three channels in colour (RGB,
values clipped to [0, 1]). Image mosaics are drawn at a whole multiple of their native
resolution, so every image pixel is at least one pixel of the PNG. ``display_subset`` picks which test images a
reconstruction figure shows.
"""
import math
from statistics import NormalDist

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files, never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

from .datasets import fixed_subset  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402

DPI = 100
# A mosaic narrower than this is enlarged by a whole factor, so small images (Frey
# faces, a few columns) are not shown as a postage stamp.
MIN_MOSAIC_WIDTH_PX = 320
MARGIN_PX = 6  # blank border around and between mosaics
TITLE_FONT_SIZE, SUPTITLE_FONT_SIZE = 9, 10


def norm_ppf(probabilities):
    """The standard normal inverse CDF, elementwise (the standard library's, no scipy)."""
    inverse_cdf = NormalDist().inv_cdf
    return numpy.array([inverse_cdf(float(p)) for p in numpy.ravel(probabilities)]).reshape(
        numpy.shape(probabilities))


def image_layout(shape):
    """(rows, columns, colour) of an image ``shape``: (rows, columns), or channel-first
    (channels, rows, columns) with 1 channel (grey, drawn as (rows, columns)) or 3 (RGB)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 2:
        return shape[0], shape[1], False
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[1], shape[2], shape[0] == 3
    raise ValueError(f"image shape {shape} is neither (rows, columns) nor channel-first (1 or 3, rows, columns); "
                     "pass datasets.image_shape(name) or datasets.channels_and_size(name)")


def tile(images, shape, columns=None, padding=1):
    """Images (n, pixels) as one mosaic with ``padding`` blank (white) pixels between.

    Fills row by row, ``columns`` images per row (default: as square as possible).
    ``shape`` is (rows, columns) or channel-first (channels, rows, columns). The
    mosaic is 2-D (grey levels) for one channel and (height, width, 3) RGB, clipped to
    [0, 1], for three: each image's channel-first values are moved channel-last.
    """
    images = numpy.asarray(images, dtype=numpy.float64)
    rows_px, cols_px, colour = image_layout(shape)
    n = images.shape[0]
    columns = columns or int(math.ceil(math.sqrt(n)))
    grid_rows = int(math.ceil(n / columns))
    mosaic = numpy.ones((grid_rows * (rows_px + padding) - padding,
                         columns * (cols_px + padding) - padding) + ((3,) if colour else ()))
    for index in range(n):
        r, c = divmod(index, columns)
        top, left = r * (rows_px + padding), c * (cols_px + padding)
        if colour:
            image = numpy.clip(images[index].reshape(3, rows_px, cols_px).transpose(1, 2, 0), 0.0, 1.0)
        else:
            image = images[index].reshape(rows_px, cols_px)
        mosaic[top:top + rows_px, left:left + cols_px] = image
    return mosaic


def _save(figure, path, tight=True):
    # Mosaic figures are laid out to whole pixels; a tight crop would shift them by a
    # fraction of a pixel and make some image pixels wider than others.
    figure.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(figure)
    return path


def _show_mosaic(axis, mosaic, title):
    if mosaic.ndim == 3:  # RGB, already clipped to [0, 1] by tile
        axis.imshow(mosaic, interpolation="nearest")
    else:
        axis.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axis.set_title(title, fontsize=TITLE_FONT_SIZE)
    axis.axis("off")


def display_subset(n_examples, count, seed):
    """Sorted indices of a fixed random subset of ``count`` of ``n_examples`` examples
    (all of them when ``count >= n_examples``), drawn with ``default_rng([seed, 12])``."""
    if count < 0 or n_examples < 0:
        raise ValueError(f"display_subset needs non-negative counts, got n_examples={n_examples}, count={count}")
    return fixed_subset(n_examples, count, seed, stream=12)


def _text_px(text, size):
    """Width and height in PNG pixels of ``text`` set at font ``size`` points."""
    if not text:
        return 0, 0
    width, height, _ = RendererAgg(1, 1, DPI).get_text_width_height_descent(text, FontProperties(size=size),
                                                                              ismath=False)
    return math.ceil(width) + 2, math.ceil(height) + 2


def _mosaic_figure(panels, suptitle=""):
    """A figure showing the (mosaic, title) ``panels`` side by side, each mosaic pixel
    drawn as a square block of whole PNG pixels (at least one)."""
    scale = max(1, math.ceil(MIN_MOSAIC_WIDTH_PX / max(mosaic.shape[1] for mosaic, _ in panels)))
    title_band = max(_text_px(title, TITLE_FONT_SIZE)[1] for _, title in panels) + 2 * MARGIN_PX
    suptitle_width, suptitle_height = _text_px(suptitle, SUPTITLE_FONT_SIZE)
    top = MARGIN_PX + (suptitle_height + MARGIN_PX if suptitle else 0) + title_band
    # A slot is as wide as its mosaic or its title, whichever is wider, so no text is cut off.
    slots = [max(mosaic.shape[1] * scale, _text_px(title, TITLE_FONT_SIZE)[0]) for mosaic, title in panels]
    width = max(MARGIN_PX + sum(slot + MARGIN_PX for slot in slots), suptitle_width + 2 * MARGIN_PX)
    height = top + max(mosaic.shape[0] for mosaic, _ in panels) * scale + MARGIN_PX
    # A hair over the exact size: the canvas size is truncated to whole pixels.
    figure = plt.figure(figsize=((width + 0.01) / DPI, (height + 0.01) / DPI), dpi=DPI)
    left = MARGIN_PX + (width - MARGIN_PX - sum(slot + MARGIN_PX for slot in slots)) // 2
    for (mosaic, title), slot in zip(panels, slots):
        rows_px, cols_px = mosaic.shape[0] * scale, mosaic.shape[1] * scale
        # Whole-pixel positions: a mosaic pixel then covers exactly scale x scale PNG pixels.
        x0, y0 = left + (slot - cols_px) // 2, height - top - rows_px
        axis = figure.add_axes((x0 / width, y0 / height, cols_px / width, rows_px / height))
        _show_mosaic(axis, mosaic, title)
        left += slot + MARGIN_PX
    if suptitle:
        figure.text(0.5, 1 - MARGIN_PX / height, suptitle, ha="center", va="top", fontsize=SUPTITLE_FONT_SIZE)
    return figure


def learning_curve(records, path, title="", reference=None):
    """ELBO vs samples seen, log x axis. records: dicts with samples_seen, train_elbo,
    test_elbo. reference: optional {label: [(samples, train, test), ...]} drawn as
    markers (e.g. values read off AEVB Figure 2)."""
    records = [r for r in records if r.get("samples_seen", 0) > 0]
    figure, axis = plt.subplots(figsize=(5.0, 3.6))
    if records:
        seen = [r["samples_seen"] for r in records]
        axis.plot(seen, [r["train_elbo"] for r in records], "-", color="C0", label="train")
        axis.plot(seen, [r["test_elbo"] for r in records], "--", color="C1", label="test")
    for label, points in (reference or {}).items():
        xs = [p[0] for p in points]
        axis.plot(xs, [p[1] for p in points], "o", color="C0", mfc="none", label=f"{label} train")
        axis.plot(xs, [p[2] for p in points], "s", color="C1", mfc="none", label=f"{label} test")
    axis.set_xscale("log")
    axis.set_xlabel("training samples evaluated")
    axis.set_ylabel("ELBO per datapoint (nats)")
    axis.set_title(title, fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    # Early points (ELBO of an untrained model) can be hugely negative; keep the
    # interesting range visible.
    if records:
        values = numpy.array([r[k] for r in records for k in ("train_elbo", "test_elbo")])
        values = values[numpy.isfinite(values)]
        if values.size:
            top = values.max()
            span = max(top - numpy.percentile(values, 25), 1.0)
            axis.set_ylim(top - 1.6 * span, top + 0.1 * span)
    return _save(figure, path)


def side_by_side(panels, shape, path, columns=8, title=""):
    """(images (n, pixels), caption) panels, each tiled ``columns`` per row, side by side."""
    figure = _mosaic_figure([(tile(images, shape, columns), caption)
                             for images, caption in panels], title)
    return _save(figure, path, tight=False)


def reconstructions(originals, reconstructed, shape, path, columns=8, title=""):
    """Originals (left) beside their reconstructions (right), same order; ``shape`` as for ``tile``."""
    return side_by_side([(originals, "data"), (reconstructed, "reconstruction")], shape, path,
                        columns, title)


def prior_samples(images, shape, path, columns=8, title="samples from the prior (means)"):
    """Decoded means of z ~ N(0, I), tiled; ``shape`` as for ``tile``."""
    figure = _mosaic_figure([(tile(images, shape, columns), title)])
    return _save(figure, path, tight=False)


def image_grid(images, shape, path, columns, title=""):
    """Images (n, pixels) tiled ``columns`` per row, under one title; ``shape`` as for ``tile``."""
    figure = _mosaic_figure([(tile(images, shape, columns), title)])
    return _save(figure, path, tight=False)


def manifold_grid(points_per_axis=20):
    """z grid (n*n, 2): normal quantiles of (i + 0.5) / n along each axis.

    Row r of the figure has z_1 = q_{n-1-r} (high values at the top), column c has
    z_0 = q_c.
    """
    quantiles = norm_ppf((numpy.arange(points_per_axis) + 0.5) / points_per_axis)
    z0, z1 = numpy.meshgrid(quantiles, quantiles[::-1])
    return numpy.stack([z0.ravel(), z1.ravel()], axis=1)


def manifold(decode, shape, path, points_per_axis=20, title="learned manifold"):
    """AEVB Figure 4: decoded means on the quantile grid of a 2-D latent space.
    decode: (m, 2) host array -> (m, pixels) host array; ``shape`` as for ``tile``."""
    images = decode(manifold_grid(points_per_axis))
    figure = _mosaic_figure([(tile(images, shape, points_per_axis, padding=0), title)])
    return _save(figure, path, tight=False)


def principal_components(points, count=2):
    """Project rows of ``points`` on their first ``count`` principal components (zero
    columns where fewer points or dimensions leave fewer components)."""
    centered = points - points.mean(axis=0)
    _, _, right = numpy.linalg.svd(centered, full_matrices=False)
    projected = centered @ right[:count].T
    if projected.shape[1] < count:
        projected = numpy.pad(projected, ((0, 0), (0, count - projected.shape[1])))
    return projected


def latent_scatter(means, labels, path, title=""):
    """Scatter of encoded means (N, z_dim): the two coordinates when z_dim = 2, else
    the first two principal components. Coloured by label if labels is not None, by
    example index otherwise (for Frey, the video frame order)."""
    means = numpy.asarray(means, dtype=numpy.float64)
    if means.shape[1] == 2:
        points, axes_names = means, ("z[0]", "z[1]")
    elif means.shape[1] == 1:
        points = numpy.stack([means[:, 0], numpy.zeros(len(means))], axis=1)
        axes_names = ("z[0]", "")
    else:
        points, axes_names = principal_components(means), ("PC 1 of mu(x)", "PC 2 of mu(x)")
    figure, axis = plt.subplots(figsize=(4.6, 4.0))
    if labels is not None:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4,
                               vmin=-0.5, vmax=9.5)
        figure.colorbar(scatter, ax=axis, ticks=range(10), label="label")
    else:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=numpy.arange(len(points)),
                               cmap="viridis", s=6)
        figure.colorbar(scatter, ax=axis, label="example index")
    axis.set_xlabel(axes_names[0])
    axis.set_ylabel(axes_names[1])
    axis.set_title(title or "encoded test means", fontsize=10)
    return _save(figure, path)


def code_usage(counts, perplexity, dead, path, title=""):
    """Bar chart (log scale) of how many vectors chose each code of a VQ codebook, with the
    perplexity exp(H) of the usage (K when every code is used equally) and the count of
    dead codes (never chosen)."""
    counts = numpy.asarray(counts)
    figure, axis = plt.subplots(figsize=(6.0, 2.8))
    order = numpy.argsort(counts)[::-1]
    axis.bar(numpy.arange(len(counts)), counts[order], width=1.0, color="tab:blue")
    axis.set_yscale("log")          # one code (a blank background) can take most vectors
    axis.set_xlabel("code (most used first)")
    axis.set_ylabel("vectors assigned")
    axis.set_xlim(-0.5, len(counts) - 0.5)
    axis.set_title((title + ": " if title else "") + f"codebook usage over "
                   f"{int(counts.sum())} vectors: perplexity {perplexity:.1f} of {len(counts)}, "
                   f"{dead} unused", fontsize=10)
    return _save(figure, path)
