"""Checking hand-written gradients against central finite differences.

For a scalar f and an array entry theta_i, the central difference

    (f(theta + h e_i) - f(theta - h e_i)) / (2 h) = df/dtheta_i + O(h^2)

has truncation error ~h^2 and rounding error ~eps S / h, where S is the size of
the terms f adds up (tutorials/05, "Checking"). With h = 1e-5 in float64 both are
about 1e-11 relative. Work in float64: in float32 the rounding error swamps everything.

Relative error used throughout (per array):

    max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, FLOOR * S)

the worst entry's error measured against the array's scale, so entries that are
nearly zero do not blow the ratio up, and a wrong gradient anywhere still shows.
The floor (FLOOR = 1e-3) only matters for arrays whose whole gradient is below a
thousandth of the objective's scale S (a saturated sigmoid, say): central
differences cannot resolve those to 1e-6 relative, so they are held to an absolute
error of 1e-9 S instead -- still 50 times the finite-difference noise.
"""
import numpy

from . import backend

FLOOR = 1e-3
DEFAULT_STEP = 1e-5


def numerical_gradient(f, arrays, step=DEFAULT_STEP):
    """Central-difference gradient of the scalar ``f()`` with respect to each array in
    the dict ``arrays``; f must read the arrays, which are perturbed in place (and
    restored). The same absolute step h is used for every entry: a step growing
    with |theta_i| would let the h^2 truncation error grow with it.
    Returns a dict of host float64 arrays with the same keys and shapes.
    """
    gradients = {}
    for name, array in arrays.items():
        gradient = numpy.zeros(array.shape, dtype=numpy.float64)
        if not array.flags.c_contiguous:
            raise ValueError(f"{name!r} must be C-contiguous to be perturbed in place.")
        flat_view = array.reshape(-1)  # a view, since the array is contiguous
        for index in range(flat_view.size):
            original = float(backend.to_numpy(flat_view[index]))
            h = step
            flat_view[index] = original + h
            plus = float(backend.to_numpy(f()))
            flat_view[index] = original - h
            minus = float(backend.to_numpy(f()))
            flat_view[index] = original
            gradient.reshape(-1)[index] = (plus - minus) / (2.0 * h)
        gradients[name] = gradient
    return gradients


def relative_error(analytic, numeric, floor=0.0):
    """max |a - n| / max(max |a|, max |n|, floor); 0 when all three are zero."""
    analytic = numpy.asarray(backend.to_numpy(analytic), dtype=numpy.float64)
    numeric = numpy.asarray(backend.to_numpy(numeric), dtype=numpy.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"Shapes differ: analytic {analytic.shape}, numeric {numeric.shape}.")
    if analytic.size == 0:
        return 0.0
    scale = max(numpy.abs(analytic).max(), numpy.abs(numeric).max(), floor)
    if scale == 0.0:
        return 0.0
    return float(numpy.abs(analytic - numeric).max() / scale)


def check_gradients(f, arrays, analytic, step=DEFAULT_STEP, scale=None):
    """Worst relative error per array between ``analytic[name]`` and the central
    difference of ``f`` with respect to ``arrays[name]``: a dict name -> error.

    ``scale`` is S, the size of the terms f sums (default max(|f|, 1) at the
    current point).
    """
    if scale is None:
        scale = max(abs(float(backend.to_numpy(f()))), 1.0)
    numeric = numerical_gradient(f, arrays, step)
    return {name: relative_error(analytic[name], numeric[name], FLOOR * scale)
            for name in arrays}


def check_model_gradients(model, x, eps, step=DEFAULT_STEP, names=None, condition=None):
    """Worst relative error per parameter of ``model.loss_and_grads`` at fixed noise.

    Use a float64 model. ``names`` limits the check to some parameters; ``condition``
    is passed on to both calls (labels or an input, for a conditional model).
    """
    given = {} if condition is None else {"condition": condition}
    # A training step also moves the model's buffers (batch-norm statistics, a
    # moving-average codebook): the differences are taken where the step started.
    buffers = model.buffers.flat.copy()
    loss, grads = model.loss_and_grads(x, eps=eps, **given)
    model.buffers.flat[...] = buffers
    analytic = {name: numpy.array(backend.to_numpy(grads[name])) for name in grads}
    chosen = {name: model.params[name] for name in (names or model.params)}
    return check_gradients(lambda: model.loss(x, eps=eps, **given), chosen, analytic, step)


def check_layer_backward(layer, inputs, grad_out, wrt=None, step=DEFAULT_STEP):
    """Check one piece's ``backward`` for a given upstream gradient.

    ``layer.forward(*inputs.values())`` must return an array or a tuple of arrays;
    ``grad_out`` matches it. The scalar checked is f = sum_k <output_k, grad_out_k>,
    whose gradient is exactly what backward returns. ``wrt`` names the inputs whose
    gradients ``backward`` returns, in order (default: all inputs). Parameters in
    ``layer.params`` are checked against ``layer.grads``.

    Returns a dict: ``"input:<name>"`` / ``"param:<name>"`` -> relative error.
    """
    wrt = list(inputs) if wrt is None else list(wrt)
    grad_outs = grad_out if isinstance(grad_out, tuple) else (grad_out,)

    def products():
        outputs = layer.forward(*inputs.values())
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return [backend.to_numpy(output * grad) for output, grad in zip(outputs, grad_outs)]

    def objective():
        return sum(float(product.sum()) for product in products())

    # Forward (so that backward has what it needs), and the scale of f's terms:
    # sum |output_k g_k|, plus sum |g_k| for outputs computed from O(1) terms that
    # cancel (a KL near 0 is exp(logvar) - 1 - logvar, each term about 1).
    scale = sum(float(numpy.abs(product).sum()) for product in products())
    scale += sum(float(numpy.abs(backend.to_numpy(grad)).sum()) for grad in grad_outs)
    returned = layer.backward(*grad_outs)
    returned = returned if isinstance(returned, tuple) else (returned,)
    if len(returned) != len(wrt):
        raise ValueError(f"backward returned {len(returned)} gradients but wrt names {len(wrt)}.")
    analytic = {f"input:{name}": numpy.array(backend.to_numpy(g)) for name, g in zip(wrt, returned)}
    arrays = {f"input:{name}": inputs[name] for name in wrt}
    for name, value in getattr(layer, "params", {}).items():
        analytic[f"param:{name}"] = numpy.array(backend.to_numpy(layer.grads[name]))
        arrays[f"param:{name}"] = value
    return check_gradients(objective, arrays, analytic, step, scale)
