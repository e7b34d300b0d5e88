"""numpyvae.mixture: VaDE's Gaussian mixture prior and its KL term.

* every piece has a case (MIXTURE_PIECE_CASES, run in tests/test_gradients_registry.py
  with the rest, relative error < 1e-6, the path through gamma(z) included), and a
  deliberately wrong gamma path is caught by the same check;
* the mixture density against a direct formula, and integrating to 1;
* R with one component is the closed-form KL between diagonal Gaussians;
* in 1-D, by Gauss-Hermite quadrature: R's closed form for a fixed gamma, and
  E_z~[R(gamma(z~))] >= R(E gamma) >= min_gamma R >= KL(q || p_mixture), with the gap
  E R(gamma) - KL(q || p) = E_z~ E_z KL(gamma(z~) || p(c|z)) exactly;
* the same numbers on the strict stand-in for CuPy.
"""
import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from mixture_cases import MIXTURE_PIECE_CASES
from numpyvae import backend, kl, mixture
from numpyvae.densities import GaussianLogDensity
from numpyvae.gradcheck import check_layer_backward
from numpyvae.mixture import (GaussianMixtureLogDensity, VadeKL, gaussian_mixture_log_density,
                              responsibilities, vade_kl, vade_kl_given_responsibilities)
from strict_array import strict

backend.register_namespace("strict_array", strict)

TOLERANCE = 1e-6


def test_case_ids():
    ids = [case_id for case_id, _ in MIXTURE_PIECE_CASES]
    assert len(set(ids)) == len(ids)
    assert {case_id.split("-")[0] for case_id in ids} == {"GaussianMixtureLogDensity", "VadeKL"}


def prior(rng, c, d, spread=1.5):
    return (rng.normal(size=c), rng.normal(0.0, spread, size=(c, d)),
            rng.uniform(-1.0, 1.0, size=(c, d)))


def vade_case(rng, samples=3, n=3, c=3, d=2):
    """Inputs of VadeKL in the order forward takes them; overlapping components."""
    mu, logvar = rng.normal(size=(n, d)), rng.uniform(-1.0, 0.5, size=(n, d))
    z = mu + np.exp(0.5 * logvar) * rng.normal(size=(samples, n, d))
    return {"mu": mu, "logvar": logvar, "z": z,
            **dict(zip(("logits", "means", "logvars"), prior(rng, c, d, spread=1.0)))}


# ------------------------------------------------------------ the mixture density
def test_mixture_density_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    logits, means, logvars = prior(rng, 3, 2)
    z = rng.normal(0.0, 2.0, size=(4, 5, 2))
    pi = np.exp(logits) / np.exp(logits).sum()
    var = np.exp(logvars)
    component = np.prod(np.exp(-(z[..., None, :] - means) ** 2 / (2 * var))
                        / np.sqrt(2 * np.pi * var), axis=-1)              # (4, 5, C)
    joint = pi * component
    piece = GaussianMixtureLogDensity()
    np.testing.assert_allclose(piece.forward(z, logits, means, logvars),
                               np.log(joint.sum(axis=-1)), rtol=1e-13)
    np.testing.assert_allclose(piece.responsibilities, joint / joint.sum(axis=-1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(gaussian_mixture_log_density(z, logits, means, logvars),
                               np.log(joint.sum(axis=-1)), rtol=1e-13)


def test_one_component_is_the_gaussian_density():
    rng = np.random.default_rng(1)
    logits, means, logvars = prior(rng, 1, 3)
    z = rng.normal(size=(2, 4, 3))
    expected = GaussianLogDensity().forward(z, means, logvars)
    np.testing.assert_allclose(gaussian_mixture_log_density(z, logits, means, logvars),
                               expected, rtol=1e-14)
    assert np.array_equal(responsibilities(z, logits, means, logvars), np.ones((2, 4, 1)))


def test_mixture_density_integrates_to_one():
    """Over a 2-D grid: for a smooth density decaying to 0 well inside the grid, the
    Riemann sum (= trapezoid rule) converges faster than any power of the spacing."""
    logits = np.array([0.3, -0.4, 1.0])
    means = np.array([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.2]])
    logvars = np.array([[-0.5, 0.2], [0.0, -1.0], [0.4, 0.0]])
    step = 0.05                             # the widest component's tails beyond 12: 1e-20
    axis = np.arange(-12.0, 12.0 + step / 2, step)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)       # (M, M, 2)
    density = np.exp(gaussian_mixture_log_density(z, logits, means, logvars))
    assert density.sum() * step ** 2 == pytest.approx(1.0, abs=1e-12)


def test_responsibilities_sum_to_one_and_stay_finite_far_away():
    rng = np.random.default_rng(2)
    logits, means, logvars = prior(rng, 4, 3)
    z = np.concatenate([rng.normal(size=(5, 3)),
                        np.array([[1e3, -1e3, 0.0], [-400.0, 0.0, 900.0]])])
    gamma = responsibilities(z, logits, means, logvars)
    assert gamma.shape == (7, 4) and np.all(gamma >= 0)
    np.testing.assert_allclose(gamma.sum(axis=-1), 1.0, rtol=1e-15)
    # Components 2000 apart, z far from all: nothing overflows, and the density is the
    # log-sum-exp of the log joints computed by NumPy's own stable logaddexp.
    means = np.array([[-1e3, 0.0, 0.0], [1e3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5e2, 0.0]])
    piece = GaussianMixtureLogDensity()
    log_density = piece.forward(z, logits, means, logvars)
    joint = (logits - np.logaddexp.reduce(logits)
             - 0.5 * (((z[:, None, :] - means) ** 2 / np.exp(logvars)).sum(-1)
                      + logvars.sum(-1) + 3 * math.log(2 * math.pi)))
    np.testing.assert_allclose(log_density, np.logaddexp.reduce(joint, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(piece.responsibilities.sum(axis=-1), 1.0, rtol=1e-15)
    assert all(np.all(np.isfinite(g)) for g in piece.backward(np.ones(7)))


# --------------------------------------------------------------- the VaDE KL term
def test_one_component_is_the_diagonal_gaussian_kl():
    """C = 1: gamma = pi = 1, so R = KL(q(z|x) || N(mu_1, sigma_1^2)) bit for bit, z has no
    influence (its gradient is exactly 0) and the rest of the gradient is the KL's."""
    rng = np.random.default_rng(3)
    case = vade_case(rng, samples=1, n=4, c=1, d=3)
    piece = VadeKL()
    value = piece.forward(*case.values())
    mean, logvar = case["means"], case["logvars"]
    reference = kl.KLDiagonalGaussians()
    assert np.array_equal(value, reference.forward(case["mu"], case["logvar"], mean, logvar))
    assert np.array_equal(piece.gamma, np.ones((1, 4, 1)))
    g = rng.normal(size=4)
    grad_mu, grad_logvar, grad_z, grad_logits, grad_means, grad_logvars = piece.backward(g)
    expected = reference.backward(g)
    np.testing.assert_allclose(grad_mu, expected[0], rtol=1e-14)
    np.testing.assert_allclose(grad_logvar, expected[1], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(grad_means, expected[2].sum(axis=0, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(grad_logvars, expected[3].sum(axis=0, keepdims=True),
                               rtol=1e-13, atol=1e-14)
    assert np.array_equal(grad_z, np.zeros((1, 4, 3)))
    assert abs(grad_logits[0]) <= 1e-15 * np.abs(g).sum()
    # Several samples: each gives the same R, and the mean is that R.
    case["z"] = rng.normal(size=(3, 4, 3))
    np.testing.assert_allclose(vade_kl(*case.values()), value, rtol=1e-15)


def test_the_term_is_the_mean_over_samples_of_r_at_gamma_of_each_sample():
    """R as the paper writes it, gamma = p(c|z_s) for each sample, averaged over them."""
    rng = np.random.default_rng(4)
    case = vade_case(rng, samples=3)
    mu, logvar, logits, means, logvars = (case[k] for k in ("mu", "logvar", "logits", "means",
                                                              "logvars"))
    log_pi = logits - np.logaddexp.reduce(logits)
    per_sample = []
    for z in case["z"]:
        one = dict(case, z=z[None])
        gamma = responsibilities(z, logits, means, logvars)
        var_c = np.exp(logvars)
        gaussian = 0.5 * (logvars + (np.exp(logvar)[:, None] + (mu[:, None] - means) ** 2)
                          / var_c).sum(axis=-1)                                # (N, C)
        paper = ((gamma * (gaussian - log_pi + np.log(gamma))).sum(axis=-1)
                 - 0.5 * (1 + logvar).sum(axis=-1))
        r = vade_kl_given_responsibilities(mu, logvar, gamma, logits, means, logvars)
        np.testing.assert_allclose(r, paper, rtol=1e-13)
        np.testing.assert_allclose(vade_kl(*one.values()), r, rtol=1e-13)
        per_sample.append(r)
    np.testing.assert_allclose(vade_kl(*case.values()), np.mean(per_sample, axis=0), rtol=1e-13)
    with pytest.raises(ValueError, match="must be"):
        vade_kl(case["mu"], case["logvar"], case["z"][0], case["logits"], case["means"],
                case["logvars"])


class TestQuadratureInOneDimension:
    """q = N(0.3, 0.5), a three-component mixture prior; expectations over q by
    Gauss-Hermite quadrature (exact for polynomials of degree < 2 K; the integrands here
    are smooth, and K = 120 nodes leave errors near 1e-13)."""

    mu, logvar = np.array([[0.3]]), np.array([[math.log(0.5)]])
    logits = np.array([0.2, -0.5, 0.1])
    means = np.array([[-1.5], [0.4], [1.8]])
    logvars = np.array([[-0.5], [0.3], [-1.0]])
    nodes, weights = hermegauss(120)
    weights = weights / math.sqrt(2 * math.pi)                  # E_N(0,1)[f] = sum w f(x)
    z = mu[0, 0] + math.exp(0.5 * logvar[0, 0]) * nodes          # z~_k ~ q, (K,)

    def prior(self):
        return self.logits, self.means, self.logvars

    def gamma(self, z):
        return responsibilities(z[:, None], *self.prior())      # (K, C)

    def r_fixed(self, gamma):
        return vade_kl_given_responsibilities(self.mu, self.logvar, gamma[None], *self.prior())[0]

    def expected_r(self):
        """E_z~[R(gamma(z~))] with VadeKL itself, one z~ per row of the batch."""
        k = self.z.size
        values = VadeKL().forward(np.repeat(self.mu, k, axis=0), np.repeat(self.logvar, k, axis=0),
                                  self.z[None, :, None], *self.prior())
        return values @ self.weights

    def log_q(self, z):
        return GaussianLogDensity().forward(z[:, None], self.mu, self.logvar)

    def kl_to_mixture(self):
        log_p = gaussian_mixture_log_density(self.z[:, None], *self.prior())
        return (self.log_q(self.z) - log_p) @ self.weights

    def test_r_in_closed_form_for_fixed_gamma(self):
        """R(gamma) = sum_c gamma_c E_q[log q - log pi_c - log N(z; mu_c, sigma_c^2)]
        + sum_c gamma_c log gamma_c, for gammas inside the simplex and on its faces."""
        log_pi = self.logits - np.logaddexp.reduce(self.logits)
        log_components = np.stack(
            [GaussianLogDensity().forward(self.z[:, None], mean[None], logvar[None])
             for mean, logvar in zip(self.means, self.logvars)], axis=-1)       # (K, C)
        cross = (self.log_q(self.z)[:, None] - log_components).T @ self.weights  # (C,)
        for gamma in (np.array([0.2, 0.5, 0.3]), np.array([0.0, 1.0, 0.0]),
                      np.array([0.5, 0.0, 0.5]), self.gamma(self.z).T @ self.weights):
            entropy_term = sum(g * math.log(g) for g in gamma if g > 0)
            quadrature = gamma @ (cross - log_pi) + entropy_term
            assert self.r_fixed(gamma) == pytest.approx(quadrature, rel=1e-12, abs=1e-13)

    def test_the_chain_of_bounds(self):
        expected_r = self.expected_r()
        mean_gamma = self.gamma(self.z).T @ self.weights
        kls = kl.kl_diagonal_gaussians(self.mu, self.logvar, self.means, self.logvars)   # (C,)
        log_pi = self.logits - np.logaddexp.reduce(self.logits)
        best = log_pi - kls
        best_gamma = np.exp(best - np.logaddexp.reduce(best))      # pi_c exp(-K_c), normalized
        best_r = -np.logaddexp.reduce(best)
        assert self.r_fixed(best_gamma) == pytest.approx(best_r, rel=1e-13)
        kl_mixture = self.kl_to_mixture()
        # Jensen (R convex in gamma), the minimum over gamma, and the chain rule of KL;
        # each gap far above the quadrature's error.
        assert expected_r - self.r_fixed(mean_gamma) > 1e-3
        assert self.r_fixed(mean_gamma) - best_r > 1e-3
        assert best_r - kl_mixture > 1e-3
        for gamma in (mean_gamma, np.array([0.2, 0.5, 0.3]), np.eye(3)[1]):
            assert self.r_fixed(gamma) >= best_r

    def test_the_gap_is_the_expected_kl_between_responsibilities(self):
        """E_z~[R(gamma(z~))] - KL(q || p) = E_z~ E_z[KL(gamma(z~) || p(c|z))], z, z~ ~ q
        independent (the chain rule of KL, for each fixed gamma(z~))."""
        gamma = self.gamma(self.z)                                               # (K, C)
        log_gamma = np.log(gamma)
        pairwise = np.einsum("ic,ijc->ij", gamma, log_gamma[:, None, :] - log_gamma[None, :, :])
        gap = self.weights @ pairwise @ self.weights
        assert gap > 1e-3
        assert self.expected_r() - self.kl_to_mixture() == pytest.approx(gap, rel=1e-10)


# --------------------------------------------------------- a wrong gamma path shows
@pytest.mark.parametrize("factor", [0.0, 2.0], ids=["gamma-path-dropped", "gamma-path-doubled"])
def test_a_wrong_gamma_path_is_caught(monkeypatch, factor):
    """The gradient check sees the path through gamma(z): scaled by 2, or dropped (as if
    gamma were held constant), the gradients for z and the prior's parameters fail."""
    case = vade_case(np.random.default_rng(5))
    grad_out = np.random.default_rng(6).normal(size=3)
    errors = check_layer_backward(VadeKL(), {k: v.copy() for k, v in case.items()}, grad_out)
    assert max(errors.values()) < TOLERANCE, errors
    original = mixture._softmax_backward
    monkeypatch.setattr(mixture, "_softmax_backward",
                        lambda p, upstream: factor * original(p, upstream))
    errors = check_layer_backward(VadeKL(), case, grad_out)
    assert errors["input:z"] > 1e-2, errors
    assert errors["input:mu"] < TOLERANCE and errors["input:logvar"] < TOLERANCE
    assert max(errors["input:means"], errors["input:logvars"], errors["input:logits"]) > 1e-3


# ------------------------------------------------------- the strict CuPy stand-in
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_numbers_on_the_strict_backend(dtype):
    case = vade_case(np.random.default_rng(7))
    grad_out = np.random.default_rng(8).normal(size=3)
    host = VadeKL()
    expected = [host.forward(*case.values())] + list(host.backward(grad_out))
    density = GaussianMixtureLogDensity()
    prior_args = (case["logits"], case["means"], case["logvars"])
    expected += [density.forward(case["z"], *prior_args)]
    expected += list(density.backward(grad_out[None, :] * np.ones((3, 1))))
    expected += [responsibilities(case["z"], *prior_args)]

    device = {k: strict.asarray(v, dtype=dtype) for k, v in case.items()}
    g = strict.asarray(grad_out, dtype=dtype)
    piece = VadeKL()
    got = [piece.forward(*device.values())] + list(piece.backward(g))
    density = GaussianMixtureLogDensity()
    device_prior = (device["logits"], device["means"], device["logvars"])
    got += [density.forward(device["z"], *device_prior)]
    got += list(density.backward(g[None, :] * strict.ones((3, 1), dtype=dtype)))
    got += [responsibilities(device["z"], *device_prior)]
    for value, reference in zip(got, expected):
        assert value.dtype == dtype
        tolerance = 1e-13 if dtype == np.float64 else 2e-4
        scale = np.abs(reference).max()
        np.testing.assert_allclose(value.get(), reference, rtol=tolerance, atol=tolerance * scale)
