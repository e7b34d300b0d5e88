"""Values (not gradients): closed-form KL against Monte Carlo, log-densities against
independent formulas, numerical stability at extreme logits and log-variances."""
import math

import numpy as np
import pytest

import numpyvae as nv


def test_kl_standard_normal_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu = np.array([[0.3, -1.2, 2.0]])
    logvar = np.array([[-0.5, 0.7, -2.0]])
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * rng.standard_normal((400_000, 3))
    log_q = (-0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(1)
    log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)
    samples = log_q - log_p
    estimate, stderr = samples.mean(), samples.std() / math.sqrt(len(samples))
    exact = nv.kl_standard_normal(mu, logvar)[0]
    assert abs(estimate - exact) < 4 * stderr
    assert stderr < 0.01


def test_kl_diagonal_gaussians_matches_monte_carlo_and_special_cases():
    rng = np.random.default_rng(1)
    mu_q, logvar_q = np.array([[0.5, -0.3]]), np.array([[0.2, -1.0]])
    mu_p, logvar_p = np.array([[-0.4, 0.8]]), np.array([[0.9, 0.1]])
    z = mu_q + np.exp(0.5 * logvar_q) * rng.standard_normal((400_000, 2))

    def log_normal(z, mu, logvar):
        return (-0.5 * ((z - mu) ** 2 / np.exp(logvar) + logvar + math.log(2 * math.pi))).sum(1)

    samples = log_normal(z, mu_q, logvar_q) - log_normal(z, mu_p, logvar_p)
    exact = nv.kl_diagonal_gaussians(mu_q, logvar_q, mu_p, logvar_p)[0]
    assert abs(samples.mean() - exact) < 4 * samples.std() / math.sqrt(len(samples))
    # Against the standard normal it reduces to kl_standard_normal; KL(q || q) = 0.
    zeros = np.zeros_like(mu_q)
    assert nv.kl_diagonal_gaussians(mu_q, logvar_q, zeros, zeros)[0] == pytest.approx(
        nv.kl_standard_normal(mu_q, logvar_q)[0], rel=1e-14)
    assert nv.kl_diagonal_gaussians(mu_q, logvar_q, mu_q, logvar_q)[0] == pytest.approx(0, abs=1e-15)


def test_bernoulli_log_likelihood_matches_product_of_probabilities():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, size=(4, 7))
    x = (rng.random((4, 7)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-logits))
    independent = np.log(np.prod(np.where(x == 1, p, 1 - p), axis=1))
    np.testing.assert_allclose(nv.bernoulli_log_likelihood(x, logits), independent, rtol=1e-12)


@pytest.mark.parametrize("logit", [-100.0, 100.0, -1e4, 1e4, -745.0, 750.0])
def test_bernoulli_is_finite_and_exact_at_saturated_logits(logit):
    logits = np.array([[logit, logit]])
    x = np.array([[1.0, 0.0]])
    value = nv.bernoulli_log_likelihood(x, logits)[0]
    # log sigma(l) = -softplus(-l) and log(1 - sigma(l)) = -softplus(l), exactly:
    expected = -(max(-logit, 0) + math.log1p(math.exp(-abs(logit)))) \
               - (max(logit, 0) + math.log1p(math.exp(-abs(logit))))
    assert math.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-15)
    layer = nv.BernoulliLogLikelihood()
    layer.forward(x, logits)
    grad = layer.backward(np.ones(1))
    assert np.all(np.isfinite(grad))
    sigma = 1.0 if logit > 0 else 0.0
    np.testing.assert_allclose(grad, [[1 - sigma, -sigma]], atol=1e-40)


def test_bernoulli_float32_saturated_logits_are_finite():
    logits = np.array([[-100.0, 100.0]], dtype=np.float32)
    x = np.array([[1.0, 1.0]], dtype=np.float32)
    value = nv.bernoulli_log_likelihood(x, logits)
    assert value.dtype == np.float32
    assert value[0] == pytest.approx(-100.0, rel=1e-6)


def test_gaussian_log_likelihood_matches_density_formula():
    rng = np.random.default_rng(3)
    x, mean = rng.random((3, 5)), rng.random((3, 5))
    logvar = rng.uniform(-4, 2, size=(3, 5))
    variance = np.exp(logvar)
    density = np.prod(np.exp(-(x - mean) ** 2 / (2 * variance)) / np.sqrt(2 * np.pi * variance), 1)
    np.testing.assert_allclose(nv.gaussian_log_likelihood(x, mean, logvar), np.log(density),
                               rtol=1e-12)
    fixed = nv.fixed_variance_gaussian_log_likelihood(x, mean, 0.25)
    np.testing.assert_allclose(fixed, nv.gaussian_log_likelihood(x, mean, np.full_like(x, np.log(0.25))),
                               rtol=1e-13)


@pytest.mark.parametrize("logvar", [-20.0, 20.0])
def test_gaussian_extreme_logvar_is_finite(logvar):
    x, mean = np.array([[0.3]]), np.array([[0.5]])
    layer = nv.GaussianLogLikelihood()
    value = layer.forward(x, mean, np.array([[logvar]]))
    grads = layer.backward(np.ones(1))
    assert np.isfinite(value).all() and all(np.isfinite(g).all() for g in grads)


def test_softplus_and_sigmoid_are_accurate_in_the_tails():
    a = np.array([-800.0, -40.0, -18.0, 0.0, 18.0, 40.0, 800.0])
    expected_sigmoid = [0.0, math.exp(-40) / (1 + math.exp(-40)), math.exp(-18) / (1 + math.exp(-18)),
                        0.5, 1 / (1 + math.exp(-18)), 1.0, 1.0]
    np.testing.assert_allclose(nv.sigmoid(a), expected_sigmoid, rtol=1e-15, atol=0)
    expected_softplus = [0.0, math.log1p(math.exp(-40)), math.log1p(math.exp(-18)), math.log(2),
                         18 + math.log1p(math.exp(-18)), 40.0, 800.0]
    np.testing.assert_allclose(nv.softplus(a), expected_softplus, rtol=1e-15)


def test_log_mean_exp_far_below_zero():
    """Log weights near -1e4, as real MNIST importance weights sit hundreds of nats and
    more below zero: exp underflows to 0 for every entry unless the maximum is shifted
    out first. The value, the weights (a softmax over each column) and their sum."""
    rng = np.random.default_rng(0)
    a = -1e4 + rng.normal(0.0, 3.0, size=(7, 4))
    offsets = a + 1e4            # exact (Sterbenz): the offsets a holds, to the last bit
    piece = nv.LogMeanExp()
    value = piece.forward(a)
    exact = -1e4 + np.log(np.exp(offsets).mean(axis=0))
    assert np.all(np.isfinite(value))
    np.testing.assert_allclose(value, exact, rtol=1e-13)
    grad = piece.backward(np.ones(4))
    softmax = np.exp(offsets - offsets.max(axis=0)) / np.exp(offsets - offsets.max(axis=0)).sum(axis=0)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, softmax, rtol=1e-12)
    np.testing.assert_allclose(grad.sum(axis=0), 1.0, rtol=1e-14)
    # And far above zero, where exp overflows without the shift.
    np.testing.assert_allclose(nv.LogMeanExp().forward(1e4 + offsets), 2e4 + exact, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_mean_exp_weights_below_eps_squared_are_zero_not_subnormal(dtype):
    """Draws 100 and 800 nats below the best one have normalized weights of e^-100
    (subnormal in float32) and e^-800 (subnormal in float64): as factors of the backward
    pass they would fill the products with subnormal numbers, each a microcode assist.
    Weights below eps^2 are exactly 0; the others are the softmax, and the value is
    the exact log-mean-exp."""
    offsets = np.array([[0.0, 0.0], [-1.0, -20.0], [-100.0, -30.0], [-800.0, -800.0]])
    piece = nv.LogMeanExp()
    value = piece.forward(offsets.astype(dtype))
    np.testing.assert_allclose(value, np.log(np.exp(offsets).mean(axis=0)),
                               rtol=10 * np.finfo(dtype).eps)
    grad = piece.backward(np.ones(2, dtype=dtype))
    tiny, eps = np.finfo(dtype).tiny, np.finfo(dtype).eps
    assert not np.any((grad != 0) & (np.abs(grad) < tiny))
    softmax = np.exp(offsets) / np.exp(offsets).sum(axis=0)
    kept = softmax >= eps ** 2
    assert np.all(grad[~kept] == 0) and (~kept).sum() == 3
    np.testing.assert_allclose(grad[kept], softmax[kept], rtol=10 * eps)
