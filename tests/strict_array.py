"""A strict stand-in for CuPy, so the backend-generic code is tested without a GPU.

``DeviceArray`` wraps a NumPy array the way a CuPy array wraps GPU memory, and fails
where CuPy fails on NumPy-only idioms -- and on one thing CuPy allows but a fast
float32 code path must not do:

* implicit conversion to a host array (``numpy.asarray(a)``, ``numpy.exp(a)``, any
  NumPy function or ufunc given a device array) raises TypeError, as CuPy's
  ``__array__`` does; the explicit ``a.get()`` works;
* mixing a host ``numpy.ndarray`` into device arithmetic raises TypeError;
* the namespace ``strict`` offers only functions CuPy has (anything else is an
  AttributeError, as a missing ``cupy.foo`` would be);
* an operation on float32 operands that produces float64 raises (accidental
  promotion, which silently halves speed on a GPU and on a CPU).

``float(a)`` and ``bool(a)`` work, as in CuPy (they synchronise there).
"""
import functools
import types

import numpy

FLOAT32, FLOAT64 = numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)


class StrictnessError(TypeError):
    pass


def _unwrap(value):
    if isinstance(value, DeviceArray):
        return value._array
    if isinstance(value, numpy.ndarray):
        raise StrictnessError(
            "A host numpy.ndarray was mixed with a device array; move it with "
            "xp.asarray() first (CuPy raises TypeError here too).")
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _floats_in(values):
    dtypes = set()
    for value in values:
        if isinstance(value, DeviceArray):
            dtypes.add(value._array.dtype)
        elif isinstance(value, (tuple, list)):
            dtypes |= _floats_in(value)
    return dtypes


def _wrap(result, inputs, what):
    if isinstance(result, tuple):
        return tuple(_wrap(r, inputs, what) for r in result)
    if isinstance(result, (numpy.ndarray, numpy.generic)) and not isinstance(result, numpy.bool_):
        result = numpy.asarray(result) if isinstance(result, numpy.generic) else result
        kinds = _floats_in(inputs)
        if result.dtype == FLOAT64 and FLOAT32 in kinds and FLOAT64 not in kinds:
            raise StrictnessError(f"{what} promoted float32 operands to float64.")
        return DeviceArray(result)
    if isinstance(result, numpy.bool_):
        return DeviceArray(numpy.asarray(result))
    return result


def _call(function, what, args, kwargs):
    inputs = list(args) + list(kwargs.values())
    raw_args = [_unwrap(a) for a in args]
    raw_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
    out = kwargs.get("out")
    result = function(*raw_args, **raw_kwargs)
    if out is not None:
        return out
    return _wrap(result, inputs, what)


class DeviceArray:
    """An array 'on the device'. Views stay views, as with CuPy."""

    __slots__ = ("_array",)
    __array_priority__ = 1000

    def __init__(self, array):
        self._array = array

    # CuPy refuses implicit conversion; so do we.
    def __array__(self, *args, **kwargs):
        raise StrictnessError("Implicit conversion to a NumPy array is not allowed; "
                              "use .get() or numpyvae.backend.to_numpy().")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise StrictnessError(f"numpy.{ufunc.__name__} was called on a device array; "
                              "use the backend's namespace (xp) instead.")

    def __array_function__(self, func, types_, args, kwargs):
        raise StrictnessError(f"numpy.{func.__name__} was called on a device array; "
                              "use the backend's namespace (xp) instead.")

    def get(self):
        return self._array.copy()

    # attributes
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: DeviceArray(self._array.T))
    base = property(lambda self: self._array.base)

    def __len__(self):
        return len(self._array)

    def __float__(self):
        return float(self._array)

    def __bool__(self):
        return bool(self._array)

    def __repr__(self):
        return f"DeviceArray({self._array!r})"

    def __getitem__(self, index):
        return _wrap(self._array[_unwrap(index)], [self], "indexing")

    def __setitem__(self, index, value):
        self._array[_unwrap(index)] = _unwrap(value)

    def __getattr__(self, name):  # methods: .sum(), .reshape(), .astype(), ...
        if name.startswith("__"):  # no __array_interface__ & co: no back door to NumPy
            raise AttributeError(name)
        attribute = getattr(self._array, name)
        if not callable(attribute):
            return attribute
        return functools.partial(_method, attribute, name, self)


def _method(bound, name, self, *args, **kwargs):
    inputs = [self] + list(args) + list(kwargs.values())
    raw_args = [_unwrap(a) for a in args]
    raw_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
    result = bound(*raw_args, **raw_kwargs)
    if kwargs.get("out") is not None:
        return kwargs["out"]
    if name == "astype":
        return DeviceArray(result)
    return _wrap(result, inputs, f".{name}()")


def _binary(operator_name):
    def method(self, other):
        function = getattr(self._array, operator_name)
        result = function(_unwrap(other))
        if result is NotImplemented:
            return result
        if operator_name.startswith("__i"):
            return self
        return _wrap(result, [self, other], operator_name)
    return method


for _name in ("add", "sub", "mul", "truediv", "matmul", "pow", "lt", "le", "gt", "ge",
              "eq", "ne", "and", "or"):
    for _form in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        if hasattr(numpy.ndarray, _form):
            setattr(DeviceArray, _form, _binary(_form))
DeviceArray.__neg__ = lambda self: DeviceArray(-self._array)
DeviceArray.__abs__ = lambda self: DeviceArray(abs(self._array))


# ---------------------------------------------------------------- the namespace
_FUNCTIONS = (
    "abs", "add", "subtract", "multiply", "divide", "negative", "reciprocal", "exp",
    "log", "log1p", "expm1", "sqrt", "tanh", "maximum", "minimum", "where", "matmul", "sum",
    "isfinite", "zeros_like", "empty_like", "ones_like", "full_like", "square",
    "concatenate", "stack", "logaddexp", "clip", "dot", "mean", "max", "min",
    "argmax", "any", "all", "sign", "power", "less", "greater", "greater_equal",
    "less_equal", "equal", "copy", "einsum", "outer", "log2", "cumsum", "take",
    "broadcast_to", "ascontiguousarray", "repeat",
)
_CREATORS = ("zeros", "empty", "ones", "full", "arange", "linspace", "eye")


def _namespace_function(name):
    function = getattr(numpy, name)

    def call(*args, **kwargs):
        return _call(function, f"{name}()", args, kwargs)
    call.__name__ = name
    return call


def _creator(name):
    function = getattr(numpy, name)

    def create(*args, **kwargs):
        return DeviceArray(function(*args, **kwargs))
    create.__name__ = name
    return create


def asarray(value, dtype=None):
    """Host -> device copy (like cupy.asarray); a device array passes through."""
    if isinstance(value, DeviceArray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return DeviceArray(numpy.array(value, dtype=dtype))


strict = types.ModuleType("strict_array_namespace")
strict.__name__ = "strict"
for _name in _FUNCTIONS:
    setattr(strict, _name, _namespace_function(_name))
for _name in _CREATORS:
    setattr(strict, _name, _creator(_name))
strict.asarray = asarray
strict.ndarray = DeviceArray
strict.float32, strict.float64, strict.pi, strict.inf = numpy.float32, numpy.float64, numpy.pi, numpy.inf
strict.errstate = numpy.errstate
