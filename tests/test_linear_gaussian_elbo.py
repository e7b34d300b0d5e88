"""The ELBO derivation checked numerically on the linear Gaussian model, where
log p(x) and p(z|x) are exact:  log p(x) = ELBO(q) + KL(q(z|x) || p(z|x))."""
import numpy as np
from hypothesis import given, settings, strategies as st

import numpyvae as nv
from numpyvae import linear_gaussian as lg


def linear_model(x_dim, z_dim, variance, seed):
    return nv.VAE(x_dim=x_dim, hidden=(), z_dim=z_dim, likelihood="gaussian-fixed",
                  output_activation="identity", decoder_variance=variance,
                  dtype=np.float64, seed=seed, init="glorot")


def exact_elbo(model, x):
    """The ELBO with no Monte Carlo error: sigma points are exact for a decoder whose
    log-likelihood is quadratic in z."""
    eps = lg.sigma_point_noise(len(x), model.z_dim)
    return model.elbo(x, eps=eps).elbo


@settings(max_examples=40, deadline=None)
@given(x_dim=st.integers(2, 6), z_dim=st.integers(1, 3), seed=st.integers(0, 10_000),
       variance=st.floats(0.05, 3.0))
def test_elbo_never_exceeds_log_evidence_and_gap_is_the_posterior_kl(x_dim, z_dim, seed, variance):
    rng = np.random.default_rng(seed)
    model = linear_model(x_dim, z_dim, variance, seed)
    model.params.flat[...] = rng.normal(0, 0.7, size=model.params.flat.size)  # any q, any p
    x = rng.normal(size=(4, x_dim))
    weight, bias, variance = lg.decoder_parameters(model)
    log_evidence = lg.marginal_log_likelihood(x, weight, bias, variance)
    elbo = exact_elbo(model, x)
    assert np.all(elbo <= log_evidence + 1e-10)
    # The gap is exactly KL(q || p(z|x)), with q's covariance diagonal.
    mu, logvar = model.encode(x)
    posterior_mean, posterior_covariance = lg.exact_posterior(x, weight, bias, variance)
    q_covariance = np.stack([np.diag(np.exp(row)) for row in logvar])
    gap = lg.kl_gaussians_full(mu, q_covariance, posterior_mean, posterior_covariance)
    np.testing.assert_allclose(log_evidence - elbo, gap, rtol=1e-8, atol=1e-9)


def test_elbo_equals_log_evidence_at_the_exact_posterior():
    rng = np.random.default_rng(0)
    x_dim, z_dim, variance = 5, 2, 0.4
    model = linear_model(x_dim, z_dim, variance, 0)
    # Orthogonal decoder rows make W W^T diagonal, so the exact posterior has a
    # diagonal covariance that the encoder can represent.
    orthonormal, _ = np.linalg.qr(rng.normal(size=(x_dim, z_dim)))
    weight = (orthonormal * np.array([1.5, 0.8])).T
    bias = rng.normal(size=x_dim)
    model.params["decoder.mean.W"][...] = weight
    model.params["decoder.mean.b"][...] = bias
    lg.set_exact_posterior_encoder(model)
    x = rng.normal(size=(6, x_dim))
    log_evidence = lg.marginal_log_likelihood(x, weight, bias, variance)
    np.testing.assert_allclose(exact_elbo(model, x), log_evidence, rtol=1e-12)
    # Every importance weight equals p(x) there: log w = log p(x) for any z.
    log_weights = model.log_importance_weights(x, rng=rng, samples=5)
    np.testing.assert_allclose(log_weights, np.broadcast_to(log_evidence, (5, 6)), rtol=1e-11)
    mu, logvar = model.encode(x)
    posterior_mean, posterior_covariance = lg.exact_posterior(x, weight, bias, variance)
    np.testing.assert_allclose(mu, posterior_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(logvar), np.broadcast_to(np.diag(posterior_covariance), mu.shape),
                               rtol=1e-12)
    # And moving q away from the posterior opens the gap.
    model.params["encoder.logvar.b"][...] += 0.5
    assert np.all(exact_elbo(model, x) < log_evidence - 1e-3)


def test_ppca_fit_maximizes_the_evidence():
    rng = np.random.default_rng(1)
    true_weight = rng.normal(size=(2, 6))
    x = rng.normal(size=(3000, 2)) @ true_weight + 0.3 + 0.2 * rng.normal(size=(3000, 6))
    weight, bias, variance = lg.fit_ppca(x, 2)
    assert abs(variance - 0.04) < 0.01
    best = lg.marginal_log_likelihood(x, weight, bias, variance).mean()
    # Any perturbation of the maximum-likelihood solution lowers the evidence.
    for scale in (0.9, 1.1):
        assert lg.marginal_log_likelihood(x, weight * scale, bias, variance).mean() < best
        assert lg.marginal_log_likelihood(x, weight, bias, variance * scale).mean() < best
    assert lg.marginal_log_likelihood(x, weight, bias + 0.05, variance).mean() < best


def test_exact_posterior_encoder_needs_a_diagonal_posterior():
    model = linear_model(5, 2, 0.5, 0)
    model.params["decoder.mean.W"][...] = np.random.default_rng(0).normal(size=(2, 5))
    with np.testing.assert_raises_regex(ValueError, "orthogonal"):
        lg.set_exact_posterior_encoder(model)
