"""Convolutions by hand: Conv2D, ConvTranspose2D and per-channel batch norm.

PyTorch's conventions, so weights move across: images (N, C, H, W); a Conv2D weight
(C_out, C_in, kH, kW), a ConvTranspose2D weight (C_in, C_out, kH, kW), biases (C_out,).

im2col. A convolution is a matrix product once every window is laid out as a column:

    cols[c, i, j, n, h, w] = x_pad[n, c, s h + i, s w + j]        (C kH kW, N Ho Wo)
    y[n, o, h, w] = sum_{c,i,j} W[o, c, i, j] cols[c, i, j, n, h, w] + b[o]
                  = (W.reshape(C_out, C kH kW) @ cols)[o, (n, h, w)] + b[o]

so one matrix product does the layer. Gathering the windows is kH kW strided copies
(one per kernel offset (i, j)); its adjoint, col2im, adds them back in the same places.

Backward. With g = dL/dy laid out as (C_out, N Ho Wo):
    dL/dW = g @ cols^T,   dL/db = sum of g over (n, h, w),
    dL/dcols = W^T @ g,   dL/dx = col2im(dL/dcols)   (every window adds back where it read)

The transposed convolution *is* the gradient of the convolution with respect to its
input: its forward is the convolution's input-gradient pass (W^T @ rows, then col2im)
and its backward is the convolution's forward (im2col, then W @ cols). Hence its weight
is stored (C_in, C_out, kH, kW), and its output size
(H - 1) s - 2p + kH + output_padding is the size a convolution of stride s would have
mapped onto H. Derived step by step in tutorials/12_convolutions_and_vq_vae.ipynb.

Inside a network the activations travel channel-first in memory, (C, N, H, W), shown
as (N, C, H, W) by a transposed view: the matrix product above writes that layout
directly and the next layer's im2col reads it without a copy.
"""
import numpy

from . import backend
from .batchnorm import BatchNorm
from .parameters import ParameterDict, initialize_weight


def pair(value, what="kernel_size", low=1):
    """(a, b) from an int or a pair of ints, each at least ``low``."""
    def whole(item):
        if isinstance(item, bool) or not isinstance(item, (int, numpy.integer)):
            raise ValueError(f"{what} must be an integer or a pair of integers, got {value!r}.")
        if item < low:
            raise ValueError(f"{what} must be at least {low}, got {value!r}.")
        return int(item)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return whole(value[0]), whole(value[1])
    return (whole(value),) * 2


def conv_output_size(size, kernel, stride, padding):
    """floor((size + 2 p - k) / s) + 1: the positions a window of k fits, every s."""
    return (size + 2 * padding - kernel) // stride + 1


def transposed_output_size(size, kernel, stride, padding, output_padding=0):
    """(size - 1) s - 2 p + k + output_padding: the inverse map of conv_output_size."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def gather_windows(padded, kernel, stride, out_size):
    """im2col: padded (C, N, Hp, Wp) -> cols (C, kH, kW, N, Ho, Wo), a copy per offset."""
    (k_h, k_w), (s_h, s_w), (o_h, o_w) = kernel, stride, out_size
    xp = backend.namespace_of(padded)
    channels, n = padded.shape[:2]
    cols = xp.empty((channels, k_h, k_w, n, o_h, o_w), dtype=padded.dtype)
    for i in range(k_h):
        for j in range(k_w):
            cols[:, i, j] = padded[:, :, i:i + s_h * (o_h - 1) + 1:s_h,
                                   j:j + s_w * (o_w - 1) + 1:s_w]
    return cols


def scatter_windows(cols, stride, canvas_size):
    """col2im, the adjoint of gather_windows: every window adds back where it was read.
    cols (C, kH, kW, N, Ho, Wo) -> canvas (C, N, Hc, Wc)."""
    channels, k_h, k_w, n, o_h, o_w = cols.shape
    s_h, s_w = stride
    xp = backend.namespace_of(cols)
    canvas = xp.zeros((channels, n) + tuple(canvas_size), dtype=cols.dtype)
    for i in range(k_h):
        for j in range(k_w):
            canvas[:, :, i:i + s_h * (o_h - 1) + 1:s_h, j:j + s_w * (o_w - 1) + 1:s_w] += cols[:, i, j]
    return canvas


def channel_first(x):
    """(N, C, H, W) -> the (C, N, H, W) array the matrix products use (a view when x
    came out of a layer here, which keeps that memory order)."""
    return backend.namespace_of(x).ascontiguousarray(x.transpose(1, 0, 2, 3))


def _check_image(x, channels, name):
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} takes images (N, C, H, W) with C = {channels}, got shape "
                         f"{tuple(x.shape)}.")


def _create(shape, bias_size, rng, init, init_std, dtype):
    params = ParameterDict([("W", shape), ("b", (bias_size,))], dtype=dtype)
    grads = params.zeros_like()
    initialize_weight(params["W"], rng or numpy.random.default_rng(0), init, init_std)
    return params, grads


class Conv2D:
    """y = W * x + b, a cross-correlation as torch.nn.functional.conv2d computes it:
    x (N, C_in, H, W) -> y (N, C_out, Ho, Wo), Ho = floor((H + 2p - kH) / s) + 1.

    Backward (see the module docstring): dW = g cols^T, db = sum g, dx = col2im(W^T g).
    """

    def __init__(self, weight, bias, grad_weight, grad_bias, stride=1, padding=0):
        self.params = {"W": weight, "b": bias}
        self.grads = {"W": grad_weight, "b": grad_bias}
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding", 0)

    @classmethod
    def create(cls, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
               init="glorot", init_std=0.01, dtype=numpy.float64):
        """A stand-alone layer with its own parameter and gradient buffers."""
        k_h, k_w = pair(kernel_size)
        params, grads = _create((out_channels, in_channels, k_h, k_w), out_channels, rng, init,
                                init_std, dtype)
        return cls(params["W"], params["b"], grads["W"], grads["b"], stride, padding)

    @staticmethod
    def output_size(size, kernel_size, stride=1, padding=0):
        """(Ho, Wo) for an input of (H, W)."""
        return tuple(conv_output_size(n, k, s, p) for n, k, s, p in
                     zip(size, pair(kernel_size), pair(stride, "stride"), pair(padding, "padding", 0)))

    def forward(self, x):
        weight = self.params["W"]
        c_out, c_in, k_h, k_w = weight.shape
        _check_image(x, c_in, "Conv2D")
        xp = backend.namespace_of(x)
        n, _, height, width = x.shape
        (p_h, p_w), stride = self.padding, self.stride
        out_size = self.output_size((height, width), (k_h, k_w), stride, self.padding)
        if min(out_size) < 1:
            raise ValueError(f"Conv2D: an image of {height}x{width} is smaller than its "
                             f"{k_h}x{k_w} kernel with padding {self.padding}; it needs at "
                             f"least {k_h - 2 * p_h}x{k_w - 2 * p_w}.")
        padded = xp.zeros((c_in, n, height + 2 * p_h, width + 2 * p_w), dtype=x.dtype)
        padded[:, :, p_h:p_h + height, p_w:p_w + width] = x.transpose(1, 0, 2, 3)
        self.in_shape = x.shape
        self.cols = gather_windows(padded, (k_h, k_w), stride, out_size)
        y = weight.reshape(c_out, -1) @ self.cols.reshape(c_in * k_h * k_w, -1)
        y += self.params["b"][:, None]
        return y.reshape((c_out, n) + out_size).transpose(1, 0, 2, 3)

    def backward(self, grad_out, need_input_grad=True):
        weight = self.params["W"]
        c_out, c_in, k_h, k_w = weight.shape
        xp = backend.namespace_of(grad_out)
        g = channel_first(grad_out).reshape(c_out, -1)
        xp.matmul(g, self.cols.reshape(c_in * k_h * k_w, -1).T,
                  out=self.grads["W"].reshape(c_out, -1))
        xp.sum(g, axis=1, out=self.grads["b"])
        if not need_input_grad:
            return None
        n, _, height, width = self.in_shape
        (p_h, p_w) = self.padding
        grad_cols = (weight.reshape(c_out, -1).T @ g).reshape(self.cols.shape)
        canvas = scatter_windows(grad_cols, self.stride, (height + 2 * p_h, width + 2 * p_w))
        return canvas[:, :, p_h:p_h + height, p_w:p_w + width].transpose(1, 0, 2, 3)


class ConvTranspose2D:
    """The gradient of a convolution with respect to its input, as a layer
    (torch.nn.functional.conv_transpose2d): x (N, C_in, H, W) -> y (N, C_out, Ho, Wo),
    Ho = (H - 1) s - 2p + kH + output_padding; weight (C_in, C_out, kH, kW).

    Forward: cols = W^T rows(x), y = col2im(cols) cropped by p, + b.
    Backward: the convolution's forward: dx = W im2col(g), dW = rows(x) im2col(g)^T.
    """

    def __init__(self, weight, bias, grad_weight, grad_bias, stride=1, padding=0,
                 output_padding=0):
        self.params = {"W": weight, "b": bias}
        self.grads = {"W": grad_weight, "b": grad_bias}
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding", 0)
        self.output_padding = pair(output_padding, "output_padding", 0)
        for extra, step in zip(self.output_padding, self.stride):
            if not 0 <= extra < max(step, 1):
                raise ValueError(f"output_padding must be smaller than the stride "
                                 f"{self.stride}, got {self.output_padding}.")

    @classmethod
    def create(cls, in_channels, out_channels, kernel_size, stride=1, padding=0,
               output_padding=0, rng=None, init="glorot", init_std=0.01, dtype=numpy.float64):
        """A stand-alone layer with its own parameter and gradient buffers."""
        k_h, k_w = pair(kernel_size)
        params, grads = _create((in_channels, out_channels, k_h, k_w), out_channels, rng, init,
                                init_std, dtype)
        return cls(params["W"], params["b"], grads["W"], grads["b"], stride, padding,
                   output_padding)

    @staticmethod
    def output_size(size, kernel_size, stride=1, padding=0, output_padding=0):
        return tuple(transposed_output_size(n, k, s, p, e) for n, k, s, p, e in
                     zip(size, pair(kernel_size), pair(stride, "stride"),
                         pair(padding, "padding", 0), pair(output_padding, "output_padding", 0)))

    def forward(self, x):
        weight = self.params["W"]
        c_in, c_out, k_h, k_w = weight.shape
        _check_image(x, c_in, "ConvTranspose2D")
        n, _, height, width = x.shape
        (p_h, p_w), (s_h, s_w) = self.padding, self.stride
        out_size = self.output_size((height, width), (k_h, k_w), self.stride, self.padding,
                                    self.output_padding)
        if min(out_size) < 1:
            raise ValueError(f"ConvTranspose2D: an input of {height}x{width} gives an empty "
                             f"output {out_size}; use less padding.")
        self.in_shape = x.shape
        self.rows = channel_first(x).reshape(c_in, -1)
        cols = (weight.reshape(c_in, -1).T @ self.rows).reshape(c_out, k_h, k_w, n, height, width)
        # The canvas holds every window in full; output_padding rows past the last window
        # get the bias only.
        canvas_size = (max((height - 1) * s_h + k_h, p_h + out_size[0]),
                       max((width - 1) * s_w + k_w, p_w + out_size[1]))
        self.canvas_size = canvas_size
        canvas = scatter_windows(cols, self.stride, canvas_size)
        y = canvas[:, :, p_h:p_h + out_size[0], p_w:p_w + out_size[1]]
        y += self.params["b"][:, None, None, None]
        return y.transpose(1, 0, 2, 3)

    def backward(self, grad_out, need_input_grad=True):
        weight = self.params["W"]
        c_in, c_out, k_h, k_w = weight.shape
        xp = backend.namespace_of(grad_out)
        n, _, height, width = self.in_shape
        (p_h, p_w) = self.padding
        out_h, out_w = grad_out.shape[2:]
        canvas = xp.zeros((c_out, n) + self.canvas_size, dtype=grad_out.dtype)
        canvas[:, :, p_h:p_h + out_h, p_w:p_w + out_w] = grad_out.transpose(1, 0, 2, 3)
        xp.sum(canvas, axis=(1, 2, 3), out=self.grads["b"])
        cols = gather_windows(canvas, (k_h, k_w), self.stride, (height, width))
        cols = cols.reshape(c_out * k_h * k_w, -1)
        xp.matmul(self.rows, cols.T, out=self.grads["W"].reshape(c_in, -1))
        if not need_input_grad:
            return None
        grad_x = weight.reshape(c_in, -1) @ cols
        return grad_x.reshape(c_in, n, height, width).transpose(1, 0, 2, 3)


class BatchNorm2D(BatchNorm):
    """Batch normalization per channel of (N, C, H, W): every (n, h, w) of a channel is
    one observation of that channel's feature, so it is BatchNorm on the rows
    (N H W, C) -- the same formulas, with N H W in place of N."""

    def forward(self, x):
        self.shape = x.shape
        rows = channel_first(x).reshape(x.shape[1], -1).T
        return self._to_image(super().forward(rows))

    def backward(self, grad_out):
        rows = channel_first(grad_out).reshape(grad_out.shape[1], -1).T
        return self._to_image(super().backward(rows))

    def _to_image(self, rows):
        n, channels, height, width = self.shape
        return rows.T.reshape(channels, n, height, width).transpose(1, 0, 2, 3)

