"""The figures of a training run, drawn with matplotlib's Agg backend (no display needed).

* ``learning_curve``: ELBO per datapoint vs training samples seen (log x), train and
  test, as in AEVB Figure 2; beside it the objective being trained where it is not the
  ELBO (IWAE, beta != 1, VQ-VAE), and the KL weight beta on a second axis where it
  changes (``--beta-warmup``). The y-range holds the later half of the evaluations;
  early points below it are marked on its edge and counted, not lost.
* ``reconstructions``: test images beside their reconstructions E[x | z = mu(x)].
* ``prior_samples``: E[x | z] for z ~ p(z).
* ``manifold``: for z_dim = 2, decoded means on a grid of z whose coordinates are the
  standard normal quantiles of evenly spaced probabilities (AEVB Figure 4), so the
  grid covers the prior's mass evenly.
* ``latent_scatter``: encoded test means mu(x), coloured by label when there are
  labels; for z_dim > 2 projected on their first two principal components.
* ``image_grid`` with ``row_labels`` / ``column_labels``: the labelled grids (samples
  per class, interpolations, latent traversals).

Every function takes host NumPy arrays (or a ``decode`` callable) and writes a PNG,
whole or not at all (a temporary file renamed over the old one: a signal mid-write
never leaves a torn figure). Images are rows of flattened pixels; their ``shape`` is
(rows, columns) for grey images or channel-first (channels, rows, columns), as
``datasets.image_shape`` gives it: one channel is drawn in grey exactly like (rows,
columns), three channels in colour (RGB, values clipped to [0, 1]). Image mosaics are
drawn at a whole multiple of their native resolution, every image at least
MIN_TILE_PX on its shorter side (a 28-pixel digit twice, a 20-pixel-wide face three
times), so every image pixel is a square block of PNG pixels. ``display_subset`` picks
which test images a reconstruction figure shows.
"""
import math
from statistics import NormalDist

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files, never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

from .checkpoint import write_atomically  # noqa: E402
from .datasets import fixed_subset  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402

DPI = 100
# A mosaic narrower than this is enlarged by a whole factor, so small images (Frey
# faces, a few columns) are not shown as a postage stamp.
MIN_MOSAIC_WIDTH_PX = 320
# Every image of a mosaic at least this many PNG pixels on its shorter side: readable
# faces and digits (the Frey 20 x 20 manifold was 412 px wide at native size).
MIN_TILE_PX = 56
MARGIN_PX = 6  # blank border around and between mosaics
TITLE_FONT_SIZE, SUPTITLE_FONT_SIZE, LABEL_FONT_SIZE = 9, 10, 8
# A learning curve's y-range holds the later half of its evaluations with this share of
# their spread as a margin below; earlier points further down are marked on its edge.
CURVE_MARGIN = 0.5


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
    """Write ``figure`` as a PNG at ``path`` atomically (checkpoint.write_atomically)."""
    # Mosaic figures are laid out to whole pixels; a tight crop would shift them by a
    # fraction of a pixel and make some image pixels wider than others.
    try:
        write_atomically(path, lambda handle: figure.savefig(
            handle, format="png", dpi=DPI, bbox_inches="tight" if tight else None))
    except OSError as error:
        # Name the figure, not the temporary, in the one-line disk-full message.
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
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


def mosaic_scale(mosaic_width, shape):
    """The whole magnification of a mosaic ``mosaic_width`` pixels wide of images of
    ``shape``: at least MIN_TILE_PX per image side and MIN_MOSAIC_WIDTH_PX in all."""
    rows_px, cols_px, _ = image_layout(shape)
    return max(1, math.ceil(MIN_MOSAIC_WIDTH_PX / mosaic_width),
               math.ceil(MIN_TILE_PX / min(rows_px, cols_px)))


def _mosaic_figure(panels, shape, suptitle="", row_labels=None, column_labels=None):
    """A figure showing the (mosaic, title) ``panels`` of images of ``shape`` side by
    side, each mosaic pixel drawn as a square block of whole PNG pixels (``mosaic_scale``).
    ``row_labels`` (one per row of images) are written left of the first panel,
    ``column_labels`` (one per column) under it."""
    scale = mosaic_scale(max(mosaic.shape[1] for mosaic, _ in panels), shape)
    title_band = max(_text_px(title, TITLE_FONT_SIZE)[1] for _, title in panels) + 2 * MARGIN_PX
    suptitle_width, suptitle_height = _text_px(suptitle, SUPTITLE_FONT_SIZE)
    label_band = (max(_text_px(label, LABEL_FONT_SIZE)[0] for label in row_labels) + MARGIN_PX
                  if row_labels else 0)
    # Column labels wider than their column alternate between two lines.
    label_lines = 0
    if column_labels:
        pitch = panels[0][0].shape[1] * scale / len(column_labels)
        widest = max(_text_px(label, LABEL_FONT_SIZE)[0] for label in column_labels)
        label_lines = 1 if widest <= pitch - 2 else 2
    line_height = max((_text_px(label, LABEL_FONT_SIZE)[1] for label in column_labels or ()),
                      default=0)
    column_band = label_lines * line_height + (MARGIN_PX if column_labels else 0)
    top = MARGIN_PX + (suptitle_height + MARGIN_PX if suptitle else 0) + title_band
    # A slot holds the row labels, then the mosaic with its title centred over it; as
    # wide as they need, so no text is cut off. centres: the mosaic's middle in its slot.
    bands = [label_band] + [0] * (len(panels) - 1)
    halves = [max(mosaic.shape[1] * scale, _text_px(title, TITLE_FONT_SIZE)[0]) / 2
              for mosaic, title in panels]
    centres = [max(band + mosaic.shape[1] * scale / 2, half)
               for (mosaic, _), band, half in zip(panels, bands, halves)]
    slots = [math.ceil(centre + half) for centre, half in zip(centres, halves)]
    width = max(MARGIN_PX + sum(slot + MARGIN_PX for slot in slots), suptitle_width + 2 * MARGIN_PX)
    height = top + max(mosaic.shape[0] for mosaic, _ in panels) * scale + column_band + MARGIN_PX
    # A hair over the exact size: the canvas size is truncated to whole pixels.
    figure = plt.figure(figsize=((width + 0.01) / DPI, (height + 0.01) / DPI), dpi=DPI)
    left = MARGIN_PX + (width - MARGIN_PX - sum(slot + MARGIN_PX for slot in slots)) // 2
    for index, ((mosaic, title), slot, centre) in enumerate(zip(panels, slots, centres)):
        rows_px, cols_px = mosaic.shape[0] * scale, mosaic.shape[1] * scale
        # Whole-pixel positions: a mosaic pixel then covers exactly scale x scale PNG pixels.
        x0 = left + math.floor(centre - cols_px / 2)
        y0 = height - top - rows_px
        axis = figure.add_axes((x0 / width, y0 / height, cols_px / width, rows_px / height))
        _show_mosaic(axis, mosaic, title)
        if index == 0:
            _label_rows(figure, row_labels, x0, y0 + rows_px, rows_px, width, height)
            _label_columns(figure, column_labels, x0, y0, cols_px, width, height,
                           line_height if label_lines == 2 else 0)
        left += slot + MARGIN_PX
    if suptitle:
        figure.text(0.5, 1 - MARGIN_PX / height, suptitle, ha="center", va="top", fontsize=SUPTITLE_FONT_SIZE)
    return figure


def _label_rows(figure, labels, x0, top_px, rows_px, width, height):
    """``labels`` right-aligned left of a mosaic whose top is ``top_px`` (from the bottom),
    each at the middle of its row of images."""
    for row, label in enumerate(labels or ()):
        middle = top_px - (row + 0.5) * rows_px / len(labels)
        figure.text((x0 - MARGIN_PX / 2) / width, middle / height, label, ha="right",
                    va="center", fontsize=LABEL_FONT_SIZE)


def _label_columns(figure, labels, x0, y0, cols_px, width, height, stagger=0):
    """``labels`` centred under each column of images of a mosaic, every second one
    ``stagger`` pixels lower (where they are wider than their columns)."""
    for column, label in enumerate(labels or ()):
        middle = x0 + (column + 0.5) * cols_px / len(labels)
        below = MARGIN_PX / 2 + (stagger if column % 2 else 0)
        figure.text(middle / width, (y0 - below) / height, label, ha="center",
                    va="top", fontsize=LABEL_FONT_SIZE)


def _differs(records, first, second):
    """Whether two recorded quantities differ anywhere (beyond float rounding)."""
    return any(first in r and second in r and
               abs(r[first] - r[second]) > 1e-6 * max(1.0, abs(r[second])) for r in records)


def curve_limits(values, late):
    """(lower, upper) y-limits of a learning curve: every value of the later half of the
    evaluations (``late``) with a margin of half their spread below; earlier values (an
    untrained model's, far below) only where they fit, so they never flatten the rest."""
    values = numpy.asarray(values, dtype=numpy.float64)
    values = values[numpy.isfinite(values)]
    late = numpy.asarray(late, dtype=numpy.float64)
    late = late[numpy.isfinite(late)] if numpy.isfinite(late).any() else values
    top, bottom = values.max(), values.min()
    spread = max(top - late.min(), 1.0)
    lower = late.min() - CURVE_MARGIN * spread
    if bottom >= lower:
        lower = bottom - 0.05 * max(top - bottom, 1.0)
    return lower, top + 0.1 * spread


def learning_curve_figure(records, title="", reference=None, objective_label="objective"):
    """The learning curve as a matplotlib figure (``learning_curve`` writes it): the ELBO
    per datapoint vs samples seen, log x axis, train (solid) and test (dashed); the
    recorded objective where it differs from the ELBO (named ``objective_label``); beta
    on a second axis where it changes. records: dicts with samples_seen, train_elbo,
    test_elbo (and train_objective, test_objective, beta). reference: optional {label:
    [(samples, train, test), ...]} drawn as markers (e.g. values read off AEVB Figure 2).
    Points below the y-range are drawn on its lower edge as triangles and counted."""
    records = [r for r in records if r.get("samples_seen", 0) > 0]
    figure, axis = plt.subplots(figsize=(7.2, 4.6))
    curves = []   # (key, colour, style, label)
    if records:
        curves += [("train_elbo", "C0", "-", "ELBO, train"), ("test_elbo", "C1", "--", "ELBO, test")]
        if _differs(records, "train_objective", "train_elbo"):
            if len({r.get("beta") for r in records}) > 1:   # warm-up: beta of each point
                objective_label = "objective: KL weighted by that point's \u03b2"
            curves += [("train_objective", "C2", "-", f"{objective_label}, train"),
                       ("test_objective", "C3", "--", f"{objective_label}, test")]
    seen = numpy.array([r["samples_seen"] for r in records], dtype=numpy.float64)
    series = {key: numpy.array([r.get(key, numpy.nan) for r in records], dtype=numpy.float64)
              for key, *_ in curves}
    for key, colour, style, label in curves:
        axis.plot(seen, series[key], style, color=colour, label=label)
    for label, points in (reference or {}).items():
        xs = [p[0] for p in points]
        axis.plot(xs, [p[1] for p in points], "o", color="C0", mfc="none", label=f"{label} train")
        axis.plot(xs, [p[2] for p in points], "s", color="C1", mfc="none", label=f"{label} test")
    axis.set_xscale("log")
    axis.set_xlabel("training samples seen")
    axis.set_ylabel("nats per datapoint")
    axis.set_title(title, fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    values = numpy.concatenate(list(series.values())) if series else numpy.zeros(0)
    if numpy.isfinite(values).any():
        late = numpy.concatenate([curve[len(records) // 2:] for curve in series.values()])
        lower, upper = curve_limits(values, late)
        axis.set_ylim(lower, upper)
        _mark_below(axis, seen, series, curves, lower)
    betas = [r.get("beta") for r in records]
    if records and None not in betas and len(set(betas)) > 1:
        beta_axis = axis.twinx()
        beta_axis.plot(seen, betas, ":", color="C4", label="\u03b2, the KL weight (right axis)")
        beta_axis.set_ylabel("\u03b2, the KL weight")
        beta_axis.set_ylim(0.0, 1.05 * max(betas))
    handles, labels = [], []
    for each in figure.axes:
        more = each.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:   # under the axes, where it hides no curve
        axis.legend(handles, labels, fontsize=8, loc="upper center", ncol=2,
                    bbox_to_anchor=(0.5, -0.14), frameon=False)
    return figure


def _mark_below(axis, seen, series, curves, lower):
    """Draw the points below ``lower`` on the axis' lower edge (triangles pointing down)
    and say how many there are and how low they go."""
    below = 0
    lowest = numpy.inf
    for key, colour, *_ in curves:
        hidden = series[key] < lower
        if hidden.any():
            axis.plot(seen[hidden], numpy.full(hidden.sum(), lower), "v", color=colour,
                      markersize=5, clip_on=False)
            below += int(hidden.sum())
            lowest = min(lowest, float(series[key][hidden].min()))
    if below:
        axis.text(0.01, 0.02, f"\u25bc {below} earlier point(s) below the axis, down to "
                  f"{lowest:.4g}", transform=axis.transAxes, fontsize=8, va="bottom")


def learning_curve(records, path, title="", reference=None, objective_label="objective"):
    """``learning_curve_figure`` written to ``path``."""
    return _save(learning_curve_figure(records, title, reference, objective_label), path)


def side_by_side(panels, shape, path, columns=8, title=""):
    """(images (n, pixels), caption) panels, each tiled ``columns`` per row, side by side."""
    figure = _mosaic_figure([(tile(images, shape, columns), caption)
                             for images, caption in panels], shape, title)
    return _save(figure, path, tight=False)


def reconstructions(originals, reconstructed, shape, path, columns=8, title=""):
    """Originals (left) beside their reconstructions (right), same order; ``shape`` as for ``tile``."""
    return side_by_side([(originals, "data"), (reconstructed, "reconstruction")], shape, path,
                        columns, title)


def prior_samples(images, shape, path, columns=8, title="samples from the prior (means)"):
    """Decoded means of z ~ p(z), tiled; ``shape`` as for ``tile``; the title says
    what was sampled."""
    figure = _mosaic_figure([(tile(images, shape, columns), title)], shape)
    return _save(figure, path, tight=False)


def image_grid(images, shape, path, columns, title="", row_labels=None, column_labels=None):
    """Images (n, pixels) tiled ``columns`` per row, under one title; ``shape`` as for
    ``tile``; ``row_labels`` left of each row, ``column_labels`` under each column."""
    figure = _mosaic_figure([(tile(images, shape, columns), title)], shape,
                            row_labels=row_labels, column_labels=column_labels)
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
    figure = _mosaic_figure([(tile(images, shape, points_per_axis, padding=0), title)], shape)
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


def latent_scatter(means, labels, path, title="", class_names=None):
    """Scatter of encoded means (N, z_dim): the two coordinates when z_dim = 2, else
    the first two principal components. Coloured by label if labels is not None (the
    colour bar named by ``class_names`` where given), by example index otherwise (for
    Frey, the video frame order)."""
    means = numpy.asarray(means, dtype=numpy.float64)
    if means.shape[1] == 2:
        points, axes_names = means, ("z[0]", "z[1]")
    elif means.shape[1] == 1:
        points = numpy.stack([means[:, 0], numpy.zeros(len(means))], axis=1)
        axes_names = ("z[0]", "")
    else:
        points, axes_names = principal_components(means), ("PC 1 of mu(x)", "PC 2 of mu(x)")
    figure, axis = plt.subplots(figsize=(6.4, 5.4))
    if labels is not None:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=5,
                               vmin=-0.5, vmax=9.5)
        bar = figure.colorbar(scatter, ax=axis, ticks=range(10), label="label")
        if class_names:
            bar.ax.set_yticklabels(list(class_names)[:10])
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
