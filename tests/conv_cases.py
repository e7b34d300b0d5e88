"""Gradient-check cases for numpyvae.conv, in the registry's form: (id, factory), a
factory taking hypothesis's ``data`` and returning ``(piece, inputs, grad_out, wrt)``
for ``check_layer_backward`` (tests/test_gradients_registry.py), all float64. Each id
starts with the class it checks (the registry's coverage test reads that prefix).

Every entry of the input and of the parameters is checked, so the shapes are small:
batches of 1-2 images, 1-3 channels, kernels up to 3x3 (drawn per side, so square and
non-square), images up to a few pixels per side (drawn per side: odd, even, non-square),
always at least as large as the kernel and padding need.

A convolution is linear in its input and in its weight, so central differences are
exact but for rounding. Training-mode batch norm is not: as in the registry's
``batch_norm_piece``, every channel's input is given a drawn spread (0.3 to 3) far above
sqrt(eps), and scales are kept away from zero (``away_from_zero``), so that every path
carries gradient and central differences keep 1e-6. Evaluation mode reads moved
running statistics (means off 0, variances off 1).
"""
import numpy as np
from hypothesis import strategies as st

from numpyvae.conv import BatchNorm2D, Conv2D, ConvTranspose2D, pair

seeds = st.integers(min_value=0, max_value=2**32 - 1)
channels = st.integers(min_value=1, max_value=3)
batch = st.integers(min_value=1, max_value=2)
kernel_sides = st.integers(min_value=1, max_value=3)


def generator(data):
    return np.random.default_rng(data.draw(seeds))


def away_from_zero(rng, shape, low=0.4, high=1.2):
    """Entries of magnitude in [low, high] and random sign."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def draw_kernel(data, kernel):
    if kernel is not None:
        return pair(kernel)
    return data.draw(kernel_sides), data.draw(kernel_sides)


def spread_layer(layer, rng):
    """Weights away from zero and a bias off its initial zero."""
    layer.params["W"][...] = away_from_zero(rng, layer.params["W"].shape)
    layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)
    return layer


def conv2d(stride, padding, kernel=None):
    """Conv2D; an image side is drawn from the smallest the kernel allows to 4 more."""
    def factory(data):
        rng = generator(data)
        n, c_in, c_out = data.draw(batch), data.draw(channels), data.draw(channels)
        k_h, k_w = draw_kernel(data, kernel)
        (s_h, s_w), (p_h, p_w) = pair(stride, "stride"), pair(padding, "padding", 0)
        height = data.draw(st.integers(max(1, k_h - 2 * p_h), max(1, k_h - 2 * p_h) + 4))
        width = data.draw(st.integers(max(1, k_w - 2 * p_w), max(1, k_w - 2 * p_w) + 4))
        layer = spread_layer(Conv2D.create(c_in, c_out, (k_h, k_w), stride, padding, rng=rng),
                             rng)
        out_h, out_w = Conv2D.output_size((height, width), (k_h, k_w), stride, padding)
        x = rng.normal(size=(n, c_in, height, width))
        return layer, {"x": x}, rng.normal(size=(n, c_out, out_h, out_w)), None
    return factory


def smallest_transposed_input(kernel, stride, padding, output_padding):
    """The smallest H with (H - 1) s - 2 p + k + output_padding >= 1."""
    size = 1
    while (size - 1) * stride - 2 * padding + kernel + output_padding < 1:
        size += 1
    return size


def conv_transpose2d(stride, padding, output_padding, kernel=None):
    """ConvTranspose2D; input sides of 1 to 4 pixels (more only where padding needs)."""
    def factory(data):
        rng = generator(data)
        n, c_in, c_out = data.draw(batch), data.draw(channels), data.draw(channels)
        k_h, k_w = draw_kernel(data, kernel)
        sizes = []
        for k, s, p, e in zip((k_h, k_w), pair(stride, "stride"), pair(padding, "padding", 0),
                              pair(output_padding, "output_padding", 0)):
            low = smallest_transposed_input(k, s, p, e)
            sizes.append(data.draw(st.integers(low, low + 3)))
        layer = spread_layer(ConvTranspose2D.create(c_in, c_out, (k_h, k_w), stride, padding,
                                                    output_padding, rng=rng), rng)
        out_h, out_w = ConvTranspose2D.output_size(tuple(sizes), (k_h, k_w), stride, padding,
                                                   output_padding)
        x = rng.normal(size=(n, c_in) + tuple(sizes))
        return layer, {"x": x}, rng.normal(size=(n, c_out, out_h, out_w)), None
    return factory


def batch_norm_2d(training):
    def factory(data):
        rng = generator(data)
        n, c = data.draw(st.integers(1, 3)), data.draw(channels)
        height = data.draw(st.integers(1, 4))
        width = data.draw(st.integers(2 if n * height < 2 else 1, 4))   # N H W >= 2
        norm = BatchNorm2D(scale=away_from_zero(rng, c), shift=rng.normal(size=c),
                           grad_scale=np.zeros(c), grad_shift=np.zeros(c),
                           running_mean=rng.normal(size=c),
                           running_var=rng.uniform(0.2, 3.0, size=c), training=training)
        x = rng.normal(size=(n, c, height, width))
        if training:   # each channel spread over (N, H, W) by a drawn std, far above eps
            spread = data.draw(st.floats(0.3, 3.0, allow_nan=False, allow_infinity=False))
            mean = x.mean(axis=(0, 2, 3), keepdims=True)
            std = x.std(axis=(0, 2, 3), keepdims=True)
            x = (x - mean) / std * spread + rng.normal(size=(1, c, 1, 1))
        else:
            x = x * 3.0
        return norm, {"x": x}, rng.normal(size=x.shape), None
    return factory


def reshape_piece(kind, channels_last):
    """The conv nets' form changes (numpyvae.networks): rows to images and back."""
    def factory(data):
        from numpyvae.networks import Flatten, Reshape
        rng = generator(data)
        n, c, h, w = (data.draw(channels) for _ in range(4))
        image = rng.normal(size=(n, c, h, w))
        if kind == "Flatten":
            return Flatten(channels_last), {"x": image}, rng.normal(size=(n, c * h * w)), None
        rows = rng.normal(size=(n, c * h * w))
        return Reshape((c, h, w), channels_last), {"x": rows}, rng.normal(size=image.shape), None
    return factory


CONV_PIECE_CASES = [
    ("Reshape-images", reshape_piece("Reshape", False)),
    ("Reshape-grid", reshape_piece("Reshape", True)),
    ("Flatten-images", reshape_piece("Flatten", False)),
    ("Flatten-grid", reshape_piece("Flatten", True)),
    ("Conv2D-s1-p0", conv2d(1, 0)),
    ("Conv2D-s1-p1", conv2d(1, 1)),
    ("Conv2D-s1-p1-k3x2", conv2d(1, 1, kernel=(3, 2))),
    ("Conv2D-s2-p0-k2x3", conv2d(2, 0, kernel=(2, 3))),
    ("Conv2D-s2-p1", conv2d(2, 1)),
    ("Conv2D-s2x1-p0x1", conv2d((2, 1), (0, 1))),
    ("ConvTranspose2D-s1-p0", conv_transpose2d(1, 0, 0)),
    ("ConvTranspose2D-s2-p0-op1", conv_transpose2d(2, 0, 1)),
    ("ConvTranspose2D-s2-p1-op1-k3", conv_transpose2d(2, 1, 1, kernel=3)),
    ("ConvTranspose2D-s2-p1-op0-k3x2", conv_transpose2d(2, 1, 0, kernel=(3, 2))),
    ("ConvTranspose2D-s2x3-p1x0-op1x2", conv_transpose2d((2, 3), (1, 0), (1, 2))),
    ("BatchNorm2D-training", batch_norm_2d(training=True)),
    ("BatchNorm2D-evaluation", batch_norm_2d(training=False)),
]
