"""Networks with heads, as a model's parts: a multilayer perceptron or a convolutional
net, described once (the names and shapes of its parameters, and how to build it for a
pass), built per pass over the model's shared parameter views.

Both kinds have one interface, so the encoder, the decoder and a prior network never
ask which they are:

    description.layout(), .buffer_layout()   (name, shape) of parameters and batch-norm buffers
    description.build(params, grads, buffers, training) -> a piece with
        forward(x) -> one output per head, each (..., size)
        backward(*grads, need_input_grad) -> dL/dx, filling the parameter gradients
        step_updates                         what a training step moves besides the parameters
                                             (its batch norms' running statistics)
    description.widest()                     the widest activation per example (chunk sizes)

Rows in, rows out: a network reads flattened rows and its heads write flattened rows,
whatever happens inside, so the objectives and likelihoods see the same arrays for an
MLP and a conv net. Tutorial 12 derives the convolutional pieces.

The conv encoder (the Chen thesis's CNN FGVAE, generalized): convolutions of
``channels`` filters each (kernel k, stride s, padding p; batch norm; activation), then

    vector heads: the feature map flattened (and any condition appended), a Dense head each
    grid heads:   a 1 x 1 convolution each: a D-vector per position of the last feature
                  map, written position-major, (N, h w D) (VQ-VAE's grid of codes)

A pass of a conv net is a chain of pieces (an entry that makes images of rows, the
layers with ``Reshape``/``Flatten`` where the net changes form, the heads with their
exits back to rows), so its backward is the chain in reverse, whatever the kind.

The conv decoder mirrors it: a stem onto the encoder's last feature map (a Dense layer
from z for a vector latent, a 1 x 1 convolution for a grid), transposed convolutions back
through the encoder's feature-map sizes (output_padding picks the size a stride-s
convolution rounded down), and heads, one transposed convolution each, onto the image.
"""
import functools
import math
from dataclasses import dataclass

from . import backend
from .conv import (BatchNorm2D, Conv2D, ConvTranspose2D, conv_output_size,
                   transposed_output_size)
from .batchnorm import BatchNorm
from .encoder import Encoder, Towers
from .layers import (Concatenate, Dense, Identity, layer_names, make_activation, norm_buffer_entries,
                     norm_entries)


class MLPNetwork:
    """An MLP of widths ``sizes`` = (in, *hidden) with linear heads ((name, size), ...):
    numpyvae.encoder.Encoder, the network every member had before conv nets. ``towers``
    "separate": one such MLP per head and no trunk shared (numpyvae.encoder.Towers)."""

    def __init__(self, sizes, heads, activation, prefix, batch_norm=False, towers="shared"):
        self.sizes, self.heads = tuple(sizes), tuple(tuple(head) for head in heads)
        self.activation, self.prefix, self.batch_norm = activation, prefix, batch_norm
        self.towers = towers

    def layout(self):
        if self.towers == "separate":
            return Towers.layout(self.sizes, self.heads, self.prefix, self.batch_norm)
        return Encoder.layout(self.sizes, self.heads, self.prefix, self.batch_norm)

    def buffer_layout(self):
        if self.towers == "separate":
            return Towers.buffer_layout(self.sizes, self.heads, self.prefix, self.batch_norm)
        return Encoder.buffer_layout(self.sizes, self.prefix, self.batch_norm)

    def build(self, params, grads, buffers, training):
        kind = Towers if self.towers == "separate" else Encoder
        return kind(self.sizes, self.heads, self.activation, params, grads, self.prefix,
                    batch_norm=self.batch_norm, buffers=buffers, training=training)

    def widest(self):
        return max(self.sizes + tuple(size for _, size in self.heads))


@dataclass(frozen=True)
class ConvGeometry:
    """The shapes a conv net's layers compute for an image (C, H, W): ``sizes`` are the
    feature maps' (h, w), the image's first. Refuses an image its strides cannot take."""

    image_shape: tuple
    channels: tuple
    kernel_size: int
    stride: int
    padding: int

    def __post_init__(self):
        sizes = [tuple(self.image_shape[1:])]
        for _ in self.channels:
            sizes.append(tuple(conv_output_size(n, self.kernel_size, self.stride, self.padding)
                               for n in sizes[-1]))
        if min(min(size) for size in sizes) < 1:
            height, width = self.image_shape[1:]
            raise ValueError(
                f"An image of {height}x{width} is too small for {len(self.channels)} "
                f"convolutions of kernel {self.kernel_size}, stride {self.stride}, padding "
                f"{self.padding}: it needs at least {self.smallest_side()} pixels a side; "
                "use larger images or fewer --channels.")
        object.__setattr__(self, "sizes", tuple(sizes))

    def smallest_side(self):
        side = 1
        while True:
            size = side
            for _ in self.channels:
                size = conv_output_size(size, self.kernel_size, self.stride, self.padding)
            if size >= 1:
                return side
            side += 1

    @property
    def pixels(self):
        return math.prod(self.image_shape)

    @property
    def feature_shape(self):
        """(C, h, w) of the last feature map."""
        return (self.channels[-1],) + self.sizes[-1]

    def output_paddings(self):
        """Per transposed layer from size i+1 back to size i: the output_padding that
        restores the size the stride-s convolution rounded down."""
        return tuple(tuple(big - transposed_output_size(small, self.kernel_size, self.stride,
                                                         self.padding) for big, small in zip(
                     self.sizes[i], self.sizes[i + 1])) for i in range(len(self.channels)))

    def widest(self):
        """The widest array per example: a feature map or an im2col matrix."""
        widths = [math.prod(self.image_shape)]
        in_channels = (self.image_shape[0],) + self.channels[:-1]
        for c_in, c_out, size in zip(in_channels, self.channels, self.sizes[1:]):
            widths += [c_out * math.prod(size), c_in * self.kernel_size ** 2 * math.prod(size)]
        return max(widths)


@functools.lru_cache(maxsize=None)
def _names(prefix, kind, count):
    return tuple(layer_names(f"{prefix}.{kind}{i}") for i in range(count))


class ConvNetwork:
    """A conv net with heads (see the module docstring). ``direction`` "encode": images
    of ``geometry`` (plus ``extra`` condition columns, joined at the flat layer) to
    heads; "decode": a latent of ``in_width`` to image-shaped heads. ``latent`` "vector"
    (Dense heads/stem) or "grid" (1 x 1 convolutions: a head of size h w D is a D-vector
    per position)."""

    def __init__(self, geometry, heads, activation, prefix, direction, latent="vector",
                 batch_norm=False, extra=0, in_width=None):
        if latent == "grid" and extra:
            raise ValueError("A grid latent takes no condition: use latent='vector'.")
        self.geometry, self.heads = geometry, tuple(tuple(head) for head in heads)
        self.activation, self.prefix, self.direction = activation, prefix, direction
        self.latent, self.batch_norm, self.extra, self.in_width = latent, batch_norm, extra, in_width

    # -------------------------------------------------------------- layout
    def _layers(self):
        """(names, kind, weight shape, out channels) per hidden layer, in order."""
        g, k = self.geometry, self.geometry.kernel_size
        image_channels = g.image_shape[0]
        layers = []
        if self.direction == "encode":
            ins = (image_channels,) + g.channels[:-1]
            for names, c_in, c_out in zip(_names(self.prefix, "conv", len(g.channels)), ins,
                                          g.channels):
                layers.append((names, "conv", (c_out, c_in, k, k), c_out))
            return layers
        (stem,) = _names(self.prefix, "stem", 1)
        top = g.channels[-1]
        if self.latent == "vector":
            layers.append((stem, "dense", (self.in_width, math.prod(g.feature_shape)),
                           math.prod(g.feature_shape)))
        else:                      # a D-vector at each of the grid's h w positions
            layers.append((stem, "conv", (top, self.grid_depth(self.in_width), 1, 1), top))
        reverse = g.channels[::-1]
        for names, c_in, c_out in zip(_names(self.prefix, "deconv", len(reverse) - 1), reverse,
                                      reverse[1:]):
            layers.append((names, "deconv", (c_in, c_out, k, k), c_out))
        return layers

    def grid_depth(self, width):
        """D of a grid latent ``width`` = h w D wide (h x w the last feature map)."""
        return width // math.prod(self.geometry.sizes[-1])

    def _head_shapes(self):
        """(name, weight name, bias name, weight shape, bias shape) per head."""
        g, k = self.geometry, self.geometry.kernel_size
        entries = []
        for name, size in self.heads:
            if self.direction == "decode":
                shape = (g.channels[0], g.image_shape[0], k, k)
                bias = g.image_shape[0]
            elif self.latent == "vector":
                shape, bias = (math.prod(g.feature_shape) + self.extra, size), size
            else:
                depth = self.grid_depth(size)
                shape, bias = (depth, g.channels[-1], 1, 1), depth
            entries.append((name, f"{self.prefix}.{name}.W", f"{self.prefix}.{name}.b", shape,
                            (bias,)))
        return entries

    def layout(self):
        entries = []
        for names, _, shape, width in self._layers():
            entries += [(names["W"], shape), (names["b"], (width,))]
            if self.batch_norm:
                entries += norm_entries(names, width)
        for _, weight, bias, weight_shape, bias_shape in self._head_shapes():
            entries += [(weight, weight_shape), (bias, bias_shape)]
        return entries

    def buffer_layout(self):
        if not self.batch_norm:
            return []
        return [entry for names, _, _, width in self._layers()
                for entry in norm_buffer_entries(names, width)]

    def widest(self):
        return max(self.geometry.widest(), self.in_width or 0,
                   self.geometry.pixels + self.extra)

    def build(self, params, grads, buffers, training):
        return _ConvNet(self, params, grads, buffers, training)


class Reshape:
    """Rows to images: (n, *a) -> (n, *shape), and the gradient back. With
    ``channels_last`` the rows are read position-major, (n, h w D) -> (n, D, h, w): a grid
    of D-vectors, VQ-VAE's layout."""

    params = grads = {}

    def __init__(self, shape, channels_last=False):
        self.shape, self.channels_last = tuple(shape), channels_last

    def forward(self, x):
        self.in_shape = x.shape
        if self.channels_last:
            depth, height, width = self.shape
            return x.reshape(x.shape[0], height, width, depth).transpose(0, 3, 1, 2)
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, grad_out):
        if self.channels_last:
            grad_out = grad_out.transpose(0, 2, 3, 1)
        return grad_out.reshape(self.in_shape)


class Flatten:
    """Images to rows: (n, C, h, w) -> (n, C h w), or position-major (n, h w C) with
    ``channels_last``; the gradient back."""

    params = grads = {}

    def __init__(self, channels_last=False):
        self.channels_last = channels_last

    def forward(self, x):
        if self.channels_last:
            x = x.transpose(0, 2, 3, 1)
        self.in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        grad = grad_out.reshape(self.in_shape)
        return grad.transpose(0, 3, 1, 2) if self.channels_last else grad


class _ConvNet:
    """One pass of a ConvNetwork: an entry (rows to images), a body of layers (each
    convolution with its batch norm and activation; Dense and reshapes where the net
    changes form), and heads, each with an exit (images to rows). The condition's
    columns, if any, bypass the body and join the flat features before the heads.
    Forward runs the chain; backward runs it in reverse."""

    def __init__(self, description, params, grads, buffers, training):
        d, g = description, description.geometry
        s, p = g.stride, g.padding
        self.prefix = d.prefix
        paddings = g.output_paddings()[::-1]     # deconv i maps size L-i to L-i-1
        self.pixels, self.extra = (g.pixels if d.direction == "encode" else None), d.extra
        self.body, self.step_updates = [], []
        if d.direction == "encode":
            self.entry = Reshape(g.image_shape)
        elif d.latent == "grid":
            self.entry = Reshape((d.grid_depth(d.in_width),) + g.sizes[-1], channels_last=True)
        else:
            self.entry = Reshape((d.in_width,))
        deconv = 0
        for names, kind, _, _ in d._layers():
            W, b, gW, gb = params[names["W"]], params[names["b"]], grads[names["W"]], grads[names["b"]]
            if kind == "conv" and d.direction == "encode":
                layer = Conv2D(W, b, gW, gb, stride=s, padding=p)
            elif kind == "conv":
                layer = Conv2D(W, b, gW, gb)                   # the grid's 1 x 1 stem
            elif kind == "dense":
                layer = Dense(W, b, gW, gb)
            else:
                layer = ConvTranspose2D(W, b, gW, gb, stride=s, padding=p,
                                        output_padding=paddings[deconv])
                deconv += 1
            self.body.append(layer)
            if d.batch_norm:
                norm_class = BatchNorm if kind == "dense" else BatchNorm2D
                norm = norm_class.named(names, params, grads, buffers, training)
                self.body.append(norm)
                self.step_updates.append(norm)
            self.body.append(make_activation(d.activation))
            if kind == "dense":                                # the vector stem, onto the map
                self.body.append(Reshape(g.feature_shape))
        if d.direction == "encode" and d.latent == "vector":
            self.body.append(Flatten())
        self.join = Concatenate() if self.extra else None
        self.heads = []
        for _, weight, bias, _, _ in d._head_shapes():
            W, b, gW, gb = params[weight], params[bias], grads[weight], grads[bias]
            if d.direction == "decode":
                head = ConvTranspose2D(W, b, gW, gb, stride=s, padding=p,
                                       output_padding=paddings[-1])
                exit_ = Flatten()
            elif d.latent == "vector":
                head, exit_ = Dense(W, b, gW, gb), Identity()
            else:
                head = Conv2D(W, b, gW, gb)
                exit_ = Flatten(channels_last=True)
            self.heads.append((head, exit_))

    def forward(self, x):
        self.lead = x.shape[:-1]
        rows = x.reshape(-1, x.shape[-1])
        h = self.entry.forward(rows if self.pixels is None else rows[:, :self.pixels])
        for piece in self.body:
            h = piece.forward(h)
        if self.join is not None:
            h = self.join.forward(h, rows[:, self.pixels:])
        outputs = [exit_.forward(head.forward(h)) for head, exit_ in self.heads]
        return tuple(out.reshape(self.lead + out.shape[-1:]) for out in outputs)

    def backward(self, *grad_heads, need_input_grad=False):
        grad_h = None
        for (head, exit_), grad in zip(self.heads, grad_heads):
            if grad is None:
                continue
            part = head.backward(exit_.backward(grad.reshape(-1, grad.shape[-1])))
            grad_h = part if grad_h is None else grad_h + part
        if self.join is not None:
            grad_h, grad_extra = self.join.backward(grad_h)
        for position in reversed(range(len(self.body))):
            if position == 0:      # the first layer: its input gradient only if asked for
                grad_h = self.body[0].backward(grad_h, need_input_grad=need_input_grad)
            else:
                grad_h = self.body[position].backward(grad_h)
        if not need_input_grad:
            return None
        grad_x = self.entry.backward(grad_h)
        if self.join is not None:
            grad_x = backend.namespace_of(grad_x).concatenate([grad_x, grad_extra], axis=1)
        return grad_x.reshape(self.lead + grad_x.shape[-1:])
