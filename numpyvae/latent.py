"""Walks through a trained model's latent space: what users do with a model from
``numpyvae.load`` beside ``encode``, ``decode`` and ``sample``, and what the run's
``interpolation.png`` and ``traversal.png`` show.

    interpolate(model, x_a, x_b, steps, condition)   E[x|z_t, c], z_t = (1 - t) z_a + t z_b,
                                                     t = 0 .. 1: from x_a's latent point to x_b's
    traverse(model, x, dimension, values, condition) E[x|z, c], z = x's latent point with
                                                     z[dimension] set to each value in turn
    active_dimensions(points)                        the dimensions by the variance of latent
                                                     points z(x) over inputs x, largest first;
                                                     active: above ACTIVE_VARIANCE

x_a, x_b and x are one example each, as the model takes them (``model.inputs``), a row
(x_dim,) or (1, x_dim). ``condition`` is that one example's, for a conditional model (a
CVAE's label, or one-hot row; the quadrant CVAE's given quadrant), and is held fixed:
both ends are encoded under it and every point decoded under it. Results are rows of
decoded means on the model's array backend (``model.images`` makes whole images).
"""
import numpy

from . import backend

# Burda et al. (2016) call a latent dimension active when Cov_x(E_q[z_d]) > 0.01; with
# N(0, I) as the prior, a dimension in use has a variance near 1 (README, Wang at Wang's
# setup: a [500, 500, 3] VAE that lost one of its three dimensions).
ACTIVE_VARIANCE = 0.01


def _one_row(model, x, what):
    """One example ``x`` as a (1, x_dim) batch."""
    x = model.xp.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] != 1:
        raise ValueError(f"{what} must be one example, (x_dim,) or (1, x_dim), got shape "
                         f"{tuple(x.shape)}: pass x[i], not a batch.")
    return x


def _repeated_condition(model, condition, count):
    """One example's condition (a label, a one-hot row, a given quadrant; with or without
    the batch axis) for ``count`` rows; None for an unconditional model."""
    if condition is None:
        return None
    xp = backend.namespace_of(condition)
    condition = xp.asarray(condition)
    if condition.ndim == 0:                                   # a label
        condition = condition.reshape(1)
    elif condition.ndim == 1 and condition.shape[0] != 1:     # one row without its batch axis
        condition = condition[None, :]
    if condition.shape[0] != 1:
        raise ValueError(f"condition must be one example's (a label or one row), got shape "
                         f"{tuple(condition.shape)}.")
    return xp.repeat(condition, count, axis=0)


def interpolate(model, x_a, x_b, steps=8, condition=None):
    """``steps`` decoded means E[x|z_t, c] along the straight line from x_a's latent point
    (``model.latent_point``) to x_b's, both ends included: (steps, x_dim). A VQ-VAE's
    path runs between the encoder outputs z_e, each point quantized to its nearest codes
    (``model.latent_path``)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, numpy.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer of at least 2 (both ends), got {steps!r}.")
    ends = model.xp.concatenate([_one_row(model, x_a, "x_a"), _one_row(model, x_b, "x_b")])
    path = model.latent_path(ends, int(steps), _repeated_condition(model, condition, 2))
    return model.decode(path, _repeated_condition(model, condition, int(steps)))


def traverse(model, x, dimension, values, condition=None):
    """Decoded means E[x|z, c] of x's latent point with coordinate ``dimension`` set to
    each of ``values`` in turn, the others held: (len(values), x_dim). Refused for a
    discrete latent (VQ-VAE), whose codes one coordinate cannot move alone."""
    if model.discrete_latent:
        raise ValueError(f"The {model.name} model's latent is made of codebook vectors: moving "
                         "one coordinate leaves the codebook, so there is no traversal. Look at "
                         "its codes instead (model.codes, model.decode_codes).")
    if (isinstance(dimension, bool) or not isinstance(dimension, (int, numpy.integer))
            or not 0 <= dimension < model.z_dim):
        raise ValueError(f"dimension must be an integer in 0..{model.z_dim - 1} (z_dim = "
                         f"{model.z_dim}), got {dimension!r}.")
    values = numpy.asarray(backend.to_numpy(values), dtype=numpy.float64).reshape(-1)
    if not values.size or not numpy.isfinite(values).all():
        raise ValueError("values must be one or more finite numbers.")
    point = model.latent_point(_one_row(model, x, "x"), _repeated_condition(model, condition, 1))
    z = model.xp.repeat(point, len(values), axis=0)
    z[:, int(dimension)] = backend.to_device(values, model.xp, z.dtype)
    return model.decode(z, _repeated_condition(model, condition, len(values)))


def latent_points(model, images, labels=None, batch=1000):
    """``model.latent_point`` of every row of ``images`` (labels: theirs, for a conditional
    model), in batches: (N, z_dim) on the host."""
    return numpy.concatenate([backend.to_numpy(model.latent_point(*model.inputs(
        images[start:start + batch], None if labels is None else labels[start:start + batch])))
        for start in range(0, len(images), batch)])


def dimensions_in_use(variances):
    """How many of ``active_dimensions``' variances are above ACTIVE_VARIANCE."""
    return int((numpy.asarray(variances) > ACTIVE_VARIANCE).sum())


def active_dimensions(points):
    """(order, variances) of latent points (N, z_dim), e.g. ``model.latent_point(x, c)``
    of a test set: each coordinate's variance over the inputs (Burda et al., 2016's
    activity of a unit, Cov_x(E_q[z_d]); an inactive dimension ignores its input), and
    the dimensions by it, largest first."""
    variances = numpy.asarray(backend.to_numpy(points), dtype=numpy.float64).var(axis=0)
    return numpy.argsort(-variances, kind="stable"), variances
