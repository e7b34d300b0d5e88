"""Tests of numpyvae.figures: image mosaics keep their native resolution, and the
reconstruction figure's test images are a fixed random subset."""

import matplotlib.image
import numpy as np
import pytest

from numpyvae import figures


def png_size(path):
    """(height, width) in pixels of the PNG at ``path``."""
    return matplotlib.image.imread(path).shape[:2]


def checkerboard_images(count, shape):
    """``count`` flattened images whose pixels alternate 0/1, so every pixel is visible."""
    board = (np.indices(shape).sum(axis=0) % 2).astype(np.float64)
    return np.tile(board.ravel(), (count, 1))


def runs(mask):
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return (edges[1::2] - edges[::2]).tolist()


def dark_cell_sizes(path):
    """(widths, heights) in PNG pixels of the black image cells along the bottom row
    and the right-most column of cells of a mosaic of all-black images."""
    dark = matplotlib.image.imread(path)[..., :3].max(axis=-1) < 0.5
    rows, columns = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    # A few pixels inside the last cell: away from the titles above the mosaic.
    return runs(dark[rows[-1] - 3]), runs(dark[:, columns[-1] - 3])


def black(count, shape):
    return np.zeros((count, shape[0] * shape[1]))


def test_manifold_cells_are_at_least_native_size(tmp_path):
    path = figures.manifold(lambda z: black(len(z), (28, 28)), (28, 28), tmp_path / "manifold.png",
                            points_per_axis=20)
    height, width = png_size(path)
    assert width >= 20 * 28 and height >= 20 * 28
    widths, heights = dark_cell_sizes(path)  # no padding: the 20 x 20 cells form one block
    assert widths[-1] >= 20 * 28 and heights[-1] >= 20 * 28


def test_manifold_pixels_map_to_whole_png_pixels(tmp_path):
    # Each image pixel must become a block of whole PNG pixels: a checkerboard
    # mosaic rendered pixel for pixel still alternates at every PNG pixel.
    path = figures.manifold(lambda z: checkerboard_images(len(z), (28, 28)), (28, 28), tmp_path / "manifold.png",
                            points_per_axis=20, title="")
    scale = figures.mosaic_scale(20 * 28, (28, 28))
    assert scale == 2     # 28-pixel digits are drawn at least MIN_TILE_PX = 56 pixels tall
    png = matplotlib.image.imread(path)[..., 0]
    middle_row = png[png.shape[0] // 2]
    dark = middle_row < 0.5
    # Every image pixel a scale-wide run, dark and light alternating: none merged,
    # dropped or smeared.
    assert dark.sum() == 20 * 28 // 2 * scale
    assert runs(dark) == [scale] * (20 * 28 // 2)
    assert runs(~dark[np.flatnonzero(dark)[0]:np.flatnonzero(dark)[-1]]) == [scale] * (20 * 28 // 2 - 1)


@pytest.mark.parametrize("shape", [(28, 28), (28, 20)])
def test_sample_grid_cells_are_at_least_native_size(tmp_path, shape):
    path = figures.prior_samples(black(64, shape), shape, tmp_path / "samples.png", columns=8)
    height, width = png_size(path)
    assert width >= 8 * shape[1] and height >= 8 * shape[0]
    widths, heights = dark_cell_sizes(path)
    assert len(widths) == 8 and len(heights) == 8
    # Whole-pixel magnification: every cell the same size, at least the native one.
    assert len(set(widths)) == 1 and widths[0] >= shape[1]
    assert len(set(heights)) == 1 and heights[0] >= shape[0]


def test_reconstruction_grid_cells_are_at_least_native_size(tmp_path):
    path = figures.reconstructions(black(32, (28, 28)), black(32, (28, 28)), (28, 28),
                                   tmp_path / "reconstructions.png", columns=8,
                                   title="a title much wider than the two mosaics of this figure put side by side")
    height, width = png_size(path)
    assert width >= 2 * 8 * 28 and height >= 4 * 28
    widths, heights = dark_cell_sizes(path)
    assert len(widths) == 16 and len(heights) == 4  # two mosaics of 4 rows x 8 columns
    assert len(set(widths)) == 1 and widths[0] >= 28
    assert len(set(heights)) == 1 and heights[0] >= 28


def test_display_subset_is_a_fixed_random_sorted_subset():
    first = figures.display_subset(10000, 32, seed=3)
    assert np.array_equal(first, figures.display_subset(10000, 32, seed=3))
    assert len(first) == 32 and len(np.unique(first)) == 32
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 10000
    assert not np.array_equal(first, np.arange(32))
    expected = np.sort(np.random.default_rng([3, 12]).choice(10000, size=32, replace=False))
    assert np.array_equal(first, expected)
    assert not np.array_equal(first, figures.display_subset(10000, 32, seed=4))


def test_display_subset_takes_everything_when_there_are_few_examples():
    assert figures.display_subset(5, 32, seed=0).tolist() == [0, 1, 2, 3, 4]
    assert figures.display_subset(32, 32, seed=0).tolist() == list(range(32))
    assert figures.display_subset(0, 32, seed=0).tolist() == []
    with pytest.raises(ValueError, match="non-negative"):
        figures.display_subset(10, -1, seed=0)


# --------------------------------------------------------------------------
# Channel-first shapes: one channel is grey, three are colour
# --------------------------------------------------------------------------


def colour_images(colours, shape):
    """Flattened channel-first images (C, rows, columns), image i filled with ``colours[i]`` (r, g, b)."""
    plane = shape[1] * shape[2]
    return np.stack([np.repeat(np.asarray(rgb, dtype=np.float64), plane) for rgb in colours])


def pixels_of(png, rgb, tolerance=0.02):
    """Boolean mask of the PNG pixels of colour ``rgb``."""
    return np.all(np.abs(png[..., :3] - np.asarray(rgb)) < tolerance, axis=-1)


PURE = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)]


def test_colour_grid_shows_each_image_in_its_colour(tmp_path):
    shape = (3, 6, 5)
    path = figures.image_grid(colour_images(PURE, shape), shape, tmp_path / "colour.png", columns=4,
                              title="red, green, blue, yellow")
    png = matplotlib.image.imread(path)
    assert png.ndim == 3
    for rgb in PURE:
        # Each input colour is there, at least at native size: the channels differ
        # exactly where the input colours do.
        assert pixels_of(png, rgb).sum() >= 6 * 5, rgb
    # Nothing was mixed up: no channel-last misreading (grey/black stripes), no magenta or cyan.
    for wrong in [(1, 0, 1), (0, 1, 1)]:
        assert pixels_of(png, wrong).sum() == 0


def test_colour_images_are_read_channel_first_and_upright(tmp_path):
    # One 8 x 6 image: the top 2 rows red, the rest blue, one green pixel at the bottom right.
    shape = (3, 8, 6)
    image = np.zeros(shape)
    image[0, :2] = 1.0
    image[2, 2:] = 1.0
    image[2, 7, 5], image[1, 7, 5] = 0.0, 1.0
    path = figures.prior_samples(image.reshape(1, -1), shape, tmp_path / "one.png", columns=1, title="")
    png = matplotlib.image.imread(path)
    red_rows = np.flatnonzero(pixels_of(png, (1, 0, 0)).any(axis=1))
    blue_rows = np.flatnonzero(pixels_of(png, (0, 0, 1)).any(axis=1))
    green = np.argwhere(pixels_of(png, (0, 1, 0)))
    assert red_rows.size and blue_rows.size and green.size
    assert red_rows.max() < blue_rows.min()  # red on top
    blue = np.argwhere(pixels_of(png, (0, 0, 1)))
    assert green[:, 0].min() > blue[:, 0].mean() and green[:, 1].min() > blue[:, 1].mean()  # bottom right
    # 2 of 8 rows red, 6 blue: whole-pixel magnification keeps the 1 : 3 ratio exactly.
    assert 3 * red_rows.size == blue_rows.size


def test_colour_values_are_clipped_without_warnings(tmp_path, recwarn):
    shape = (3, 4, 4)
    images = colour_images([(1.7, -0.3, 0.0), (0.0, 0.0, 2.0)], shape)
    path = figures.reconstructions(images, images[::-1], shape, tmp_path / "clipped.png", columns=2)
    png = matplotlib.image.imread(path)
    assert pixels_of(png, (1, 0, 0)).sum() >= 2 * 16 and pixels_of(png, (0, 0, 1)).sum() >= 2 * 16
    assert not [w for w in recwarn if "clipping" in str(w.message).lower()]


def test_one_channel_draws_exactly_like_rows_and_columns(tmp_path):
    images = np.random.default_rng(0).random((12, 7 * 5))
    grey = figures.image_grid(images, (7, 5), tmp_path / "grey.png", columns=4, title="t")
    channel = figures.image_grid(images, (1, 7, 5), tmp_path / "channel.png", columns=4, title="t")
    assert np.array_equal(matplotlib.image.imread(grey), matplotlib.image.imread(channel))
    assert np.array_equal(figures.tile(images, (1, 7, 5), 4), figures.tile(images, (7, 5), 4))


def test_colour_manifold_and_mosaic_shape(tmp_path):
    shape = (3, 4, 4)
    mosaic = figures.tile(colour_images(PURE, shape), shape, columns=2)
    assert mosaic.shape == (2 * 4 + 1, 2 * 4 + 1, 3)
    assert np.array_equal(mosaic[0, 0], [1, 0, 0]) and np.array_equal(mosaic[-1, -1], [1, 1, 0])
    assert np.array_equal(mosaic[4, 0], [1, 1, 1])  # white padding
    path = figures.manifold(lambda z: colour_images([(0, 1, 0)] * len(z), shape), shape,
                            tmp_path / "manifold.png", points_per_axis=3)
    assert pixels_of(matplotlib.image.imread(path), (0, 1, 0)).sum() >= 9 * 16


@pytest.mark.parametrize("shape", [(2, 4, 4), (4, 4, 4), (16,), (1, 2, 3, 4)])
def test_unsupported_image_shapes_are_refused(tmp_path, shape):
    with pytest.raises(ValueError, match="neither \\(rows, columns\\) nor channel-first"):
        figures.image_grid(np.zeros((1, int(np.prod(shape)))), shape, tmp_path / "x.png", columns=1)
