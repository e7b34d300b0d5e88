"""reparameterize.box_muller: log p(x)'s noise, the Box-Muller transform of a Generator's uniforms."""
import math

import numpy as np
import pytest

from numpyvae.reparameterize import box_muller


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 2), (7,), (2, 3, 3)])   # even and odd sizes
def test_box_muller_transforms_the_generators_uniforms(dtype, shape):
    draws = box_muller(np.random.default_rng(4), shape, dtype)
    assert draws.shape == shape and draws.dtype == dtype and draws.flags.c_contiguous
    # The same stream by hand, in float64: u first (float64), then v (in dtype).
    rng = np.random.default_rng(4)
    half = (math.prod(shape) + 1) // 2
    radius = np.sqrt(-2.0 * np.log(1.0 - rng.random(half)))
    angle = 2 * np.pi * rng.random(half, dtype=dtype).astype(np.float64)
    expected = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:math.prod(shape)]
    tolerance = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(draws.ravel(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_muller_draws_are_independent_standard_normals(dtype):
    n = 1_000_000
    draws = box_muller(np.random.default_rng(11), (n,), dtype).astype(np.float64)
    # The empirical CDF against Phi at 33 points, each within 5 binomial standard errors.
    points = np.linspace(-4, 4, 33)
    phi = np.array([0.5 * (1 + math.erf(t / math.sqrt(2))) for t in points])
    empirical = np.searchsorted(np.sort(draws), points) / n
    assert np.all(np.abs(empirical - phi) <= 5 * np.sqrt(phi * (1 - phi) / n) + 1 / n)
    assert abs(draws.mean()) < 5 / math.sqrt(n)
    assert abs(draws.var() - 1) < 5 * math.sqrt(2 / n)
    # Each pair (cos and sin of one angle, one radius) is independent, not merely uncorrelated.
    first, second = draws[:n // 2], draws[n // 2:]
    for a, b in ((first, second), (first ** 2, second ** 2)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n // 2)
    # 1 - u >= 2^-53 in float64: no draw beyond sqrt(-2 log 2^-53) = 8.57.
    assert np.abs(draws).max() <= math.sqrt(106 * math.log(2))
