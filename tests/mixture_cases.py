"""Gradient-check cases for numpyvae.mixture, in the registry's form: (id, factory), a
factory taking hypothesis's ``data`` and returning ``(piece, inputs, grad_out, wrt)``
for ``check_layer_backward`` (tests/test_gradients_registry.py), all float64.

The ranges keep central differences (h = 1e-5) at 1e-6 relative error: the mixture's
responsibilities turn from 0 to 1 over a distance of about sigma_c^2 / |mu_c - mu_k|
in z, and the truncation error of a central difference grows like (h / that distance)^2;
with sigma_c^2 >= exp(-2) and means in [-2, 2] it stays below 1e-7.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from numpyvae.mixture import GaussianMixtureLogDensity, VadeKL

sizes = st.integers(min_value=1, max_value=4)
components = st.integers(min_value=1, max_value=4)


def floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=64)


def matrix(data, shape, low=-3.0, high=3.0):
    return data.draw(arrays(np.float64, shape, elements=floats(low, high)))


def mixture_prior(data, c, d):
    """logits (C,), means (C, D), logvars (C, D): components within a few standard
    deviations of each other, variances between exp(-2) and exp(2)."""
    return {"logits": matrix(data, (c,), -3.0, 3.0), "means": matrix(data, (c, d), -2.0, 2.0),
            "logvars": matrix(data, (c, d), -2.0, 2.0)}


def mixture_density(samples):
    def factory(data):
        n, c, d = data.draw(sizes), data.draw(components), data.draw(sizes)
        lead = () if samples == 0 else (samples,)
        inputs = {"z": matrix(data, lead + (n, d))}
        inputs.update(mixture_prior(data, c, d))
        return GaussianMixtureLogDensity(), inputs, matrix(data, lead + (n,)), None
    return factory


def vade_kl(samples):
    def factory(data):
        n, c, d = data.draw(sizes), data.draw(components), data.draw(sizes)
        inputs = {"mu": matrix(data, (n, d), -2.0, 2.0), "logvar": matrix(data, (n, d)),
                  "z": matrix(data, (samples, n, d))}
        inputs.update(mixture_prior(data, c, d))
        return VadeKL(), inputs, matrix(data, (n,)), None
    return factory


MIXTURE_PIECE_CASES = (
    [(f"GaussianMixtureLogDensity-K{samples}", mixture_density(samples)) for samples in (0, 3)]
    + [(f"VadeKL-S{samples}", vade_kl(samples)) for samples in (1, 3)]
)
