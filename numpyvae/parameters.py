"""Parameters stored as named views into one contiguous buffer, and their initializers.

Why one buffer: an optimizer step is a handful of element-wise formulas applied to
every trainable number. Run over one long array they cost a few calls; run per layer
they cost a few calls per layer and thrash the cache. So a model keeps

    params.flat   -- 1-D array holding every parameter, back to back
    params[name]  -- a reshaped view of a slice of ``params.flat``

and its gradients in a second :class:`ParameterDict` with the same layout. Writing
``params[name][...] = value`` changes the model; rebinding ``params[name] = value``
does not (it breaks the view), so :meth:`ParameterDict.assign` is provided.
"""
import math

import numpy

from . import backend


class ParameterDict(dict):
    """An ordered ``name -> array`` mapping whose arrays are views of ``self.flat``.

    ``layout`` is a sequence of ``(name, shape)``. Two dicts with equal ``layout``
    line up element for element, which is what lets the optimizers work on
    ``.flat`` directly.
    """

    def __init__(self, layout, dtype=numpy.float32, xp=None):
        super().__init__()
        self.xp = xp or backend.get_backend()
        self.layout = tuple((name, tuple(int(n) for n in shape)) for name, shape in layout)
        names = [name for name, _ in self.layout]
        if len(set(names)) != len(names):
            raise ValueError(f"Parameter names must be unique, got {names}.")
        total = sum(math.prod(shape) for _, shape in self.layout)
        self.flat = self.xp.zeros(total, dtype=dtype)
        offset = 0
        for name, shape in self.layout:
            size = math.prod(shape)
            dict.__setitem__(self, name, self.flat[offset:offset + size].reshape(shape))
            offset += size

    def __setitem__(self, name, value):
        if name in self and value is dict.__getitem__(self, name):
            return   # params[name] += v: the in-place operation has already written the view
        raise TypeError(
            f"Rebinding params[{name!r}] would detach it from the model's buffer; "
            f"write into it instead: params[{name!r}][...] = value, or use assign()."
        )

    def __reduce__(self):
        """Pickled (and deep-copied) as its layout and one host copy of the flat buffer,
        so that the copy's arrays are views of its own buffer again."""
        return (_rebuild, (self.layout, numpy.array(backend.to_numpy(self.flat))))

    def zeros_like(self):
        """A new, zero-filled ParameterDict with the same layout and dtype."""
        return ParameterDict(self.layout, dtype=self.flat.dtype, xp=self.xp)

    def assign(self, values):
        """Copy ``values`` (a mapping name -> array, e.g. from a checkpoint) in place.

        Every name must be present with the same shape: a checkpoint of another
        architecture is rejected with the first difference found.
        """
        missing = [name for name in self if name not in values]
        extra = [name for name in values if name not in self]
        if missing or extra:
            raise ValueError(
                "Parameter names do not match this model: "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}. "
                "Was this saved from a model with another architecture?"
            )
        for name, target in self.items():
            value = values[name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"Parameter {name!r} has shape {tuple(value.shape)} but this model "
                    f"needs {tuple(target.shape)}: the architecture differs."
                )
            target[...] = self.xp.asarray(value, dtype=target.dtype)

    def to_numpy(self):
        """A plain dict of host NumPy copies (for checkpoints and figures)."""
        return {name: numpy.array(backend.to_numpy(value)) for name, value in self.items()}


def _rebuild(layout, flat):
    params = ParameterDict(layout, dtype=flat.dtype)
    params.flat[...] = backend.to_device(flat, params.xp, dtype=flat.dtype)
    return params


def same_layout(first, second):
    """True when two mappings are ParameterDicts that line up element for element."""
    return (
        isinstance(first, ParameterDict)
        and isinstance(second, ParameterDict)
        and first.layout == second.layout
        and first.flat.dtype == second.flat.dtype
    )


def weight_fans(shape):
    """(fan_in, fan_out): (n_in, n_out) of a matrix; C_in kH kW and C_out kH kW of a
    convolution's (C_out, C_in, kH, kW) (a transposed one's (C_in, C_out, kH, kW) has the
    same sum, which is all Glorot's rule reads)."""
    if len(shape) == 2:
        return tuple(shape)
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def initialize_weight(weight, rng, init="normal", std=0.01):
    """Fill a weight matrix (fan_in, fan_out), or a convolution's weight (C_out, C_in,
    kH, kW), in place.

    ``"normal"``: N(0, std^2), AEVB's choice (std = 0.01).
    ``"glorot"``: uniform on +-sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010),
    which keeps activations' variance roughly constant through tanh layers.
    The draw is made on the host by ``rng`` so every backend gets the same numbers.
    """
    fan_in, fan_out = weight_fans(weight.shape)
    if init == "normal":
        values = rng.normal(0.0, std, size=weight.shape)
    elif init == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, size=weight.shape)
    else:
        raise ValueError(f"Unknown init {init!r}: use 'normal' (AEVB) or 'glorot'.")
    weight[...] = backend.to_device(values, backend.namespace_of(weight), dtype=weight.dtype)


def initialize_bias(bias, rng, init="zero", std=0.01):
    """Fill a bias in place: ``"zero"`` leaves it 0 (AEVB; no draw is made, so the
    weights' draws are those of a model without this option); ``"normal"`` draws
    N(0, std^2) on the host by ``rng``, as Wang (2023)'s code initializes every parameter."""
    if init == "zero":
        bias[...] = 0
        return
    if init != "normal":
        raise ValueError(f"Unknown bias init {init!r}: use 'zero' or 'normal'.")
    values = rng.normal(0.0, std, size=bias.shape)
    bias[...] = backend.to_device(values, backend.namespace_of(bias), dtype=bias.dtype)
