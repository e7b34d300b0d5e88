"""The linear Gaussian latent variable model, where everything is exact.

    z ~ N(0, I_D),   x | z ~ N(z W + b, s^2 I_X)      (W: (D, X), rows as in Dense)

is probabilistic PCA (Tipping & Bishop, 1999). Its evidence and posterior are
Gaussian in closed form, which makes it the test bed for the ELBO:

    p(x)   = N(x; b, W^T W + s^2 I)
    p(z|x) = N((x - b) W^T M^-1, s^2 M^-1),   M = W W^T + s^2 I   (D x D)

A VAE with no hidden layer, identity output and ``likelihood="gaussian-fixed"`` is
exactly this model; tutorials/01 and 02 use these functions.
"""
import math

import numpy

from . import backend


def _host(array):
    return numpy.asarray(backend.to_numpy(array), dtype=numpy.float64)


def marginal_log_likelihood(x, weight, bias, variance):
    """log N(x; b, W^T W + s^2 I) for each row of x: (N, X) -> (N,)."""
    x, weight, bias = _host(x), _host(weight), _host(bias)
    covariance = weight.T @ weight + variance * numpy.eye(weight.shape[1])
    cholesky = numpy.linalg.cholesky(covariance)
    whitened = numpy.linalg.solve(cholesky, (x - bias).T)       # L^-1 (x - b)
    log_determinant = 2.0 * numpy.log(numpy.diag(cholesky)).sum()
    return -0.5 * (x.shape[1] * math.log(2 * math.pi) + log_determinant
                   + (whitened ** 2).sum(axis=0))


def exact_posterior(x, weight, bias, variance):
    """Mean (N, D) and covariance (D, D) of p(z|x) (the covariance does not depend on x)."""
    x, weight, bias = _host(x), _host(weight), _host(bias)
    precision_scaled = weight @ weight.T + variance * numpy.eye(weight.shape[0])   # M
    inverse = numpy.linalg.inv(precision_scaled)
    return (x - bias) @ weight.T @ inverse, variance * inverse


def kl_gaussians_full(mean_q, covariance_q, mean_p, covariance_p):
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) for full covariances, per row of the
    means: 1/2 [tr(S_p^-1 S_q) + (m_p - m_q)^T S_p^-1 (m_p - m_q) - D + log|S_p|/|S_q|].
    covariance_q may be (D, D) or (N, D, D)."""
    mean_q, mean_p = numpy.atleast_2d(_host(mean_q)), numpy.atleast_2d(_host(mean_p))
    covariance_q, covariance_p = _host(covariance_q), _host(covariance_p)
    dim = mean_q.shape[-1]
    inverse_p = numpy.linalg.inv(covariance_p)
    diff = mean_p - mean_q
    trace = numpy.einsum("ij,...ji->...", inverse_p, covariance_q)
    mahalanobis = numpy.einsum("ni,ij,nj->n", diff, inverse_p, diff)
    log_det_p = numpy.linalg.slogdet(covariance_p)[1]
    log_det_q = numpy.linalg.slogdet(covariance_q)[1]
    return 0.5 * (trace + mahalanobis - dim + log_det_p - log_det_q)


def decoder_parameters(model):
    """(W, b, s^2) of a linear ``gaussian-fixed`` VAE with identity output."""
    if model.hidden or model.likelihood != "gaussian-fixed" or model.output_activation != "identity":
        raise ValueError("decoder_parameters needs a VAE with hidden=(), "
                         "likelihood='gaussian-fixed' and output_activation='identity'.")
    return (_host(model.params["decoder.mean.W"]), _host(model.params["decoder.mean.b"]),
            model.decoder_variance)


def set_exact_posterior_encoder(model):
    """Write p(z|x) into the encoder of a linear ``gaussian-fixed`` VAE:

        mu(x) = (x - b) W^T M^-1,   logvar = log diag(s^2 M^-1)  (constant in x).

    The encoder's covariance is diagonal, so this is exact only when W W^T is
    diagonal (orthogonal rows of W); otherwise a ValueError says so.
    """
    weight, bias, variance = decoder_parameters(model)
    scaled_precision = weight @ weight.T + variance * numpy.eye(weight.shape[0])   # M
    off_diagonal = scaled_precision - numpy.diag(numpy.diag(scaled_precision))
    if numpy.abs(off_diagonal).max() > 1e-10 * numpy.abs(scaled_precision).max():
        raise ValueError("The exact posterior is not diagonal: the rows of "
                         "decoder.mean.W must be orthogonal for q to reach it.")
    inverse = numpy.linalg.inv(scaled_precision)
    xp = backend.namespace_of(model.params.flat)
    values = {"encoder.mu.W": weight.T @ inverse, "encoder.mu.b": -bias @ weight.T @ inverse,
              "encoder.logvar.W": numpy.zeros((weight.shape[1], weight.shape[0])),
              "encoder.logvar.b": numpy.log(numpy.diag(variance * inverse))}
    for name, value in values.items():
        model.params[name][...] = xp.asarray(value, dtype=model.dtype)


def sigma_point_noise(n, z_dim):
    """eps of shape (2 D, n, D): the points +-sqrt(D) e_d for every example.

    Their average reproduces E[eps] = 0 and E[eps eps^T] = I exactly, so for a
    decoder whose log-likelihood is quadratic in z (the linear Gaussian one) the
    L = 2D "sample" ELBO equals the exact expectation, with no Monte Carlo error.
    """
    points = math.sqrt(z_dim) * numpy.concatenate([numpy.eye(z_dim), -numpy.eye(z_dim)])
    return numpy.repeat(points[:, None, :], n, axis=1)


def fit_ppca(x, z_dim):
    """Maximum-likelihood probabilistic PCA in closed form (Tipping & Bishop, 1999).

    With the sample covariance's eigenvalues l_1 >= ... >= l_X and eigenvectors U:
        b = mean(x),  s^2 = mean(l_{D+1..X}),  W = (diag(l_{1..D}) - s^2 I)^(1/2) U_D^T
    (W is determined up to a rotation of the latent space). Returns W (D, X), b, s^2.
    """
    x = _host(x)
    if not 0 < z_dim < x.shape[1]:
        raise ValueError(f"z_dim must be between 1 and {x.shape[1] - 1}, got {z_dim}.")
    bias = x.mean(axis=0)
    covariance = numpy.cov(x, rowvar=False, bias=True)
    eigenvalues, eigenvectors = numpy.linalg.eigh(covariance)
    order = numpy.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    variance = float(eigenvalues[z_dim:].mean())
    scales = numpy.sqrt(numpy.maximum(eigenvalues[:z_dim] - variance, 0.0))
    return scales[:, None] * eigenvectors[:, :z_dim].T, bias, variance
