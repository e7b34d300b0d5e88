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
    png = matplotlib.image.imread(path)[..., 0]
    middle_row = png[png.shape[0] // 2]
    dark = np.flatnonzero(middle_row < 0.5)
    assert dark.size == 20 * 28 // 2
    assert np.all(np.diff(dark) == 2)  # no pixel merged, dropped or smeared


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
