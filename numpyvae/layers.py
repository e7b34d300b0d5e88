"""Dense layers, activations and the MLP built from them: forward/backward pairs.

Every piece follows one shape: ``forward`` computes the output and keeps what
``backward`` needs; ``backward(grad_out)`` returns the gradient with respect to the
input and writes the gradients of the piece's own parameters into ``self.grads``.
The derivations are in tutorials/05_backpropagation_by_hand.ipynb.
"""
import functools

import numpy

from . import backend
from .batchnorm import BatchNorm
from .parameters import ParameterDict, initialize_weight


class Dense:
    """Affine map ``y = x W + b`` with x (N, n_in), W (n_in, n_out), b (n_out,).

    Backward: dL/dW = x^T g, dL/db = sum_n g_n, dL/dx = g W^T
    (tutorial 05, "The dense layer").
    """

    def __init__(self, weight, bias, grad_weight, grad_bias):
        self.params = {"W": weight, "b": bias}
        self.grads = {"W": grad_weight, "b": grad_bias}
        self.x = None

    @classmethod
    def create(cls, n_in, n_out, rng=None, init="normal", init_std=0.01, dtype=numpy.float64):
        """A stand-alone layer with its own parameter and gradient buffers."""
        params = ParameterDict([("W", (n_in, n_out)), ("b", (n_out,))], dtype=dtype)
        grads = params.zeros_like()
        initialize_weight(params["W"], rng or numpy.random.default_rng(0), init, init_std)
        return cls(params["W"], params["b"], grads["W"], grads["b"])

    def forward(self, x):
        self.x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, grad_out, need_input_grad=True):
        xp = backend.namespace_of(grad_out)
        xp.matmul(self.x.T, grad_out, out=self.grads["W"])
        xp.sum(grad_out, axis=0, out=self.grads["b"])
        if need_input_grad:
            return grad_out @ self.params["W"].T
        return None


class Identity:
    """a -> a. Backward passes the gradient through unchanged."""

    params = grads = {}

    def forward(self, a):
        return a

    def backward(self, grad_out):
        return grad_out

    @staticmethod
    def overwrite(a):
        """forward for evaluation alone: nothing kept for backward, written over ``a``
        (every activation has one; numpyvae.fused_weights calls it)."""
        return a


class Tanh:
    """y = tanh(a); dy/da = 1 - y^2 (tutorial 05, "Activations")."""

    params = grads = {}

    def forward(self, a):
        self.y = backend.namespace_of(a).tanh(a)
        return self.y

    @staticmethod
    def overwrite(a):
        return backend.namespace_of(a).tanh(a, out=a)

    def backward(self, grad_out):
        local = self.y * self.y
        backend.namespace_of(local).subtract(1, local, out=local)
        local *= grad_out
        return local


def sigmoid(a, out=None):
    """sigma(a) = 1 / (1 + exp(-a)), accurate to the last digit for every a (into
    ``out``, which may be ``a``, where given).

    Neither tail cancels: for a >> 0, 1 + exp(-a) is 1 plus a small number; for
    a << 0 it is a large number, and its reciprocal keeps full relative precision.
    Below a of about -88 (float32) or -709 (float64) exp(-a) overflows to inf and the
    result is 0, next to the true value below the smallest normal number.
    (0.5 + 0.5 tanh(a/2) never overflows but loses all relative precision in the
    left tail; a where(a >= 0, ...) form is exact too but branches per element,
    which costs ten times more.)
    """
    xp = backend.namespace_of(a)
    y = xp.negative(a, out=out)
    with numpy.errstate(over="ignore"):
        xp.exp(y, out=y)
    y += 1
    xp.divide(1, y, out=y)
    return y


class Sigmoid:
    """y = sigma(a); dy/da = y (1 - y) (tutorial 05, "Activations")."""

    params = grads = {}

    def forward(self, a):
        self.y = sigmoid(a)
        return self.y

    @staticmethod
    def overwrite(a):
        return sigmoid(a, out=a)

    def backward(self, grad_out):
        local = 1 - self.y
        local *= self.y
        local *= grad_out
        return local


class ReLU:
    """y = max(a, 0); dy/da = [a > 0]."""

    params = grads = {}

    def forward(self, a):
        self.positive = a > 0
        return a * self.positive

    @staticmethod
    def overwrite(a):
        return backend.namespace_of(a).multiply(a, a > 0, out=a)

    def backward(self, grad_out):
        return grad_out * self.positive


def softplus(a):
    """log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)), finite and accurate for every a.

    max(a, 0) is computed as (a + |a|) / 2, which does not branch per element.
    """
    xp = backend.namespace_of(a)
    magnitude = xp.abs(a)
    out = xp.negative(magnitude)
    xp.exp(out, out=out)
    xp.log1p(out, out=out)      # log1p(exp(-|a|))
    magnitude += a
    magnitude *= 0.5            # max(a, 0)
    out += magnitude
    return out


class Softplus:
    """y = log(1 + exp(a)); dy/da = sigma(a)."""

    params = grads = {}

    def forward(self, a):
        self.a = a
        return softplus(a)

    @staticmethod
    def overwrite(a):
        a[...] = softplus(a)
        return a

    def backward(self, grad_out):
        return grad_out * sigmoid(self.a)


class ELU:
    """y = a for a > 0, exp(a) - 1 otherwise (Clevert et al., 2016, alpha = 1; the
    activation of Cremer et al.'s amortization-gap code). Both branches are one
    expression, max(a, 0) + expm1(min(a, 0)), and so is the slope: 1 for a > 0, exp(a)
    otherwise, = expm1(min(a, 0)) + 1 (continuous at 0)."""

    params = grads = {}

    def forward(self, a):
        xp = backend.namespace_of(a)
        negative_part = xp.expm1(xp.minimum(a, 0))
        self.slope = negative_part + 1
        return xp.maximum(a, 0) + negative_part

    @staticmethod
    def overwrite(a):
        xp = backend.namespace_of(a)
        negative_part = xp.expm1(xp.minimum(a, 0))
        a = xp.maximum(a, 0, out=a)
        a += negative_part
        return a

    def backward(self, grad_out):
        return grad_out * self.slope


ACTIVATIONS = {
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "relu": ReLU,
    "softplus": Softplus,
    "elu": ELU,
    "identity": Identity,
}


def make_activation(name):
    """A fresh activation piece from its name (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}."
        ) from None


class Concatenate:
    """[a, b] along the last axis, b broadcast over a's leading sample axes:
    a (..., N, A), b (N, B) -> (..., N, A + B). How a condition enters a network.

    Backward splits the gradient: (g[..., :A], g[..., A:] summed over the leading axes).
    """

    params = grads = {}

    def forward(self, a, b):
        xp = backend.namespace_of(a)
        self.split = a.shape[-1]
        self.lead = a.ndim - 2
        b = xp.broadcast_to(b, a.shape[:-1] + (b.shape[-1],))
        return xp.concatenate([a, b.astype(a.dtype, copy=False)], axis=-1)

    def backward(self, grad_out):
        grad_b = grad_out[..., self.split:]
        if self.lead:
            grad_b = grad_b.sum(axis=tuple(range(self.lead)))
        return grad_out[..., :self.split], grad_b


@functools.lru_cache(maxsize=None)
def layer_names(stem):
    """The names of one layer's arrays, ``{stem}.W``, ``{stem}.b`` and its batch norm's
    ``{stem}.bn.*``: the one place they are made (MLPs and conv nets alike)."""
    return dict(W=f"{stem}.W", b=f"{stem}.b", scale=f"{stem}.bn.scale",
                shift=f"{stem}.bn.shift", running_mean=f"{stem}.bn.running_mean",
                running_var=f"{stem}.bn.running_var")


def norm_entries(names, width):
    """(name, shape) of a batch norm's trainable scale and shift."""
    return [(names["scale"], (width,)), (names["shift"], (width,))]


def norm_buffer_entries(names, width):
    """(name, shape) of a batch norm's running statistics."""
    return [(names["running_mean"], (width,)), (names["running_var"], (width,))]


class MLP:
    """h = act(... act(act(x W1 + b1) W2 + b2) ...): Dense layers, each followed by
    the activation (and, with ``batch_norm``, by batch normalization before it, as in
    the Chen thesis's models). With no layers it is the identity map (a linear VAE then
    has only its linear heads).

    ``params``/``grads`` are ParameterDicts holding views named ``{prefix}{i}.W`` and
    ``{prefix}{i}.b`` (and ``{prefix}{i}.bn.scale/shift``); ``buffers`` holds the
    batch norms' ``running_mean/running_var``. The MLP builds its layers on those views.
    """

    def __init__(self, sizes, activation, params, grads, prefix, batch_norm=False,
                 buffers=None, training=True):
        self.layers = []
        self.step_updates = []
        for layer in MLP._names(tuple(sizes), prefix):
            dense = Dense(params[layer["W"]], params[layer["b"]],
                          grads[layer["W"]], grads[layer["b"]])
            pieces = [dense]
            if batch_norm:
                norm = BatchNorm.named(layer, params, grads, buffers, training)
                pieces.append(norm)
                self.step_updates.append(norm)
            pieces.append(make_activation(activation))
            self.layers.append(pieces)

    @staticmethod
    @functools.lru_cache(maxsize=None)   # every pass builds its MLPs: make the names once
    def _names(sizes, prefix):
        """Per layer: the names of its arrays and its widths."""
        return tuple(dict(layer_names(f"{prefix}{index}"), n_in=n_in, n_out=n_out)
                     for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])))

    @staticmethod
    def layout(sizes, prefix, batch_norm=False):
        """The (name, shape) entries an MLP with layer widths ``sizes`` needs."""
        entries = []
        for layer in MLP._names(tuple(sizes), prefix):
            entries += [(layer["W"], (layer["n_in"], layer["n_out"])), (layer["b"], (layer["n_out"],))]
            if batch_norm:
                entries += norm_entries(layer, layer["n_out"])
        return entries

    @staticmethod
    def buffer_layout(sizes, prefix, batch_norm=False):
        """The non-trainable arrays (batch norms' running statistics)."""
        if not batch_norm:
            return []
        return [entry for layer in MLP._names(tuple(sizes), prefix)
                for entry in norm_buffer_entries(layer, layer["n_out"])]

    def forward(self, x):
        h = x
        for pieces in self.layers:
            for piece in pieces:
                h = piece.forward(h)
        return h

    def backward(self, grad_out, need_input_grad=True):
        grad = grad_out
        for position, pieces in enumerate(reversed(self.layers)):
            is_first_layer = position == len(self.layers) - 1
            for piece in reversed(pieces[1:]):
                grad = piece.backward(grad)
            grad = pieces[0].backward(grad, need_input_grad=need_input_grad or not is_first_layer)
        return grad
