"""k-means and EM for diagonal Gaussian mixtures: recovery of known mixtures and blobs,
the EM ascent property, the densities against the formula written out, input checks."""
import math

import numpy as np
import pytest

from numpyvae.inference.clustering import cluster_accuracy, linear_sum_assignment
from numpyvae.inference.gmm import (DiagonalGMM, _kmeans_plus_plus, _update_centres,
                                   fit_diagonal_gmm, kmeans)

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
TRUE_VARIANCES = np.array([[1.0, 0.25], [0.5, 1.0], [0.3, 0.3]])


def sample_mixture(rng, n, weights=TRUE_WEIGHTS, means=TRUE_MEANS, variances=TRUE_VARIANCES):
    components = rng.choice(len(weights), size=n, p=weights)
    noise = rng.standard_normal((n, means.shape[1]))
    x = means[components] + np.sqrt(variances[components]) * noise
    return x, components


def matched(fitted_means, true_means):
    """Order of the fitted components that lines them up with the true ones."""
    distances = ((fitted_means[:, None, :] - true_means[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(distances)
    order = np.empty(len(true_means), dtype=int)
    order[cols] = rows
    return order


def direct_log_density(point, weights, means, variances):
    """log sum_c w_c prod_d exp(-(x_d - mu_cd)^2 / (2 s_cd)) / sqrt(2 pi s_cd), in plain
    Python arithmetic."""
    total = 0.0
    for w, mu, s in zip(weights, means, variances):
        density = w
        for x_d, mu_d, s_d in zip(point, mu, s):
            density *= math.exp(-(x_d - mu_d) ** 2 / (2 * s_d)) / math.sqrt(2 * math.pi * s_d)
        total += density
    return math.log(total)


@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_em_recovers_a_known_mixture(init):
    x, components = sample_mixture(np.random.default_rng(0), 3000)
    # Random responsibilities put every component near the data's mean, where EM first
    # climbs by less than 1e-3 per step (here -5.7748, -5.7739, -5.7690, ...): the
    # default tol would stop it there, so the random start gets a finer one.
    tol = 1e-3 if init == "kmeans" else 1e-6
    fit = fit_diagonal_gmm(x, 3, np.random.default_rng(1), init=init, tol=tol)
    order = matched(fit.means, TRUE_MEANS)
    weights, means, variances = fit.weights[order], fit.means[order], fit.variances[order]
    # Against the truth: within a few standard errors (sd of a weight ~0.009, of a mean
    # coordinate <= sqrt(1 / 600) ~ 0.04, relative sd of a variance <= sqrt(2 / 600) ~ 0.06).
    np.testing.assert_allclose(weights, TRUE_WEIGHTS, atol=0.03)
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.15)
    np.testing.assert_allclose(variances, TRUE_VARIANCES, rtol=0.2)
    # The components are 10 sd apart, so the responsibilities are the true labels to
    # within far less than rounding: the fit is each group's sample statistics.
    for c in range(3):
        group = x[components == c]
        assert weights[c] == pytest.approx(len(group) / len(x), abs=1e-9)
        np.testing.assert_allclose(means[c], group.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(variances[c], group.var(axis=0) + 1e-6, rtol=1e-9)
    assert fit.converged and 1 <= fit.n_iter < 200 and len(fit.history) == fit.n_iter + 1
    assert fit.history[-1] - fit.history[-2] < tol
    assert fit.history[-1] == pytest.approx(fit.log_likelihood(x).mean(), rel=1e-12)
    assert cluster_accuracy(components, fit.predict(x))[0] == 1.0


def test_em_never_lowers_the_mean_log_likelihood():
    # Overlapping components and a random start give a long climb to check.
    rng = np.random.default_rng(2)
    means = np.array([[0.0, 0.0], [1.5, 0.5], [0.5, 2.0], [-1.0, 1.0]])
    x, _ = sample_mixture(rng, 2000, np.full(4, 0.25), means, np.full((4, 2), 0.6))
    fit = fit_diagonal_gmm(x, 4, np.random.default_rng(3), init="random", max_iter=80,
                           tol=-np.inf)
    assert fit.n_iter == 80 and len(fit.history) == 81 and not fit.converged
    assert np.all(np.diff(fit.history) >= -1e-9)
    assert fit.history[-1] > fit.history[0] + 0.01  # it did climb


def test_n_init_keeps_the_best_of_the_same_starts():
    # n_init draws its starts one after another from rng; the same stream fed to single
    # fits reproduces them, and the best of those must be returned.
    rng = np.random.default_rng(4)
    x, _ = sample_mixture(rng, 600, np.full(4, 0.25),
                          np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                          np.full((4, 2), 0.3))
    stream = np.random.default_rng(5)
    singles = [fit_diagonal_gmm(x, 4, stream, init="random", max_iter=30) for _ in range(4)]
    best = fit_diagonal_gmm(x, 4, np.random.default_rng(5), init="random", max_iter=30,
                            n_init=4)
    finals = [single.history[-1] for single in singles]
    assert finals[0] < max(finals), "the first start must not already be the best"
    assert best.history[-1] == max(finals)
    np.testing.assert_array_equal(best.means, singles[int(np.argmax(finals))].means)


def test_log_likelihood_and_responsibilities_against_the_formula():
    # Far from the origin, so the expanded squared distance has something to cancel.
    mixture = DiagonalGMM(weights=[0.2, 0.5, 0.3],
                          means=[[100.0, -50.0, 3.0], [101.0, -49.0, 2.0], [99.0, -51.0, 4.0]],
                          variances=[[0.5, 2.0, 1.0], [1.5, 0.3, 0.8], [1.0, 1.0, 0.2]])
    points = np.array([[100.0, -50.0, 3.0], [100.7, -49.2, 2.4], [98.5, -52.0, 4.5],
                       [102.0, -47.0, 1.0]])
    expected = [direct_log_density(p, mixture.weights, mixture.means, mixture.variances)
                for p in points]
    np.testing.assert_allclose(mixture.log_likelihood(points), expected, rtol=1e-12)
    gamma = mixture.responsibilities(points)
    assert gamma.shape == (4, 3)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-14)
    for n, point in enumerate(points):
        for c in range(3):
            alone = direct_log_density(point, [1.0], mixture.means[c:c + 1],
                                       mixture.variances[c:c + 1])
            assert gamma[n, c] == pytest.approx(
                mixture.weights[c] * math.exp(alone - expected[n]), rel=1e-10)
    np.testing.assert_array_equal(mixture.predict(points), gamma.argmax(axis=1))


def test_log_likelihood_is_finite_far_in_the_tails():
    # Every component density underflows to 0 there; the logsumexp must not.
    mixture = DiagonalGMM([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1e-4]])
    far = np.array([[1e3], [-1e3]])
    log_p = mixture.log_likelihood(far)
    assert np.all(np.isfinite(log_p)) and np.all(log_p < -1e5)
    # At x = 1e3 the broad component wins: log p ~ log 0.5 + log N(1e3; 0, 1).
    assert log_p[0] == pytest.approx(math.log(0.5) - 0.5 * (1e6 + math.log(2 * math.pi)),
                                     rel=1e-12)
    np.testing.assert_allclose(mixture.responsibilities(far).sum(axis=1), 1.0)


def test_reg_covar_is_added_to_the_variances():
    # A component sitting on one repeated point has sample variance 0 and gets exactly
    # reg_covar, as scikit-learn's diagonal GaussianMixture does.
    rng = np.random.default_rng(6)
    x = np.vstack([np.full((50, 2), 3.0), rng.normal(20.0, 1.0, (50, 2))])
    fit = fit_diagonal_gmm(x, 2, np.random.default_rng(7), reg_covar=1e-3)
    point = int(np.argmin(np.abs(fit.means[:, 0] - 3.0)))
    np.testing.assert_allclose(fit.variances[point], 1e-3, rtol=1e-9)
    np.testing.assert_allclose(fit.variances[1 - point], x[50:].var(axis=0) + 1e-3, rtol=1e-9)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(8)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    labels = np.repeat(np.arange(4), 250)
    x = centres[labels] + 0.5 * rng.standard_normal((1000, 2))
    found, assignments, inertia = kmeans(x, 4, np.random.default_rng(9))
    assert found.shape == (4, 2) and assignments.shape == (1000,)
    assert cluster_accuracy(labels, assignments)[0] == 1.0
    for k in range(4):
        np.testing.assert_allclose(found[k], x[assignments == k].mean(axis=0), atol=1e-12)
    order = matched(found, centres)
    np.testing.assert_allclose(found[order], centres, atol=0.1)
    assert inertia == pytest.approx(((x - found[assignments]) ** 2).sum(), rel=1e-12)


def test_kmeans_is_reproducible_and_n_init_keeps_the_least_inertia():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((300, 2))  # no clear clusters: starts end in different places
    first = kmeans(x, 5, np.random.default_rng(11))
    again = kmeans(x, 5, np.random.default_rng(11))
    np.testing.assert_array_equal(first[0], again[0])
    stream = np.random.default_rng(13)
    inertias = [kmeans(x, 5, stream)[2] for _ in range(5)]
    assert inertias[0] > min(inertias), "the first start must not already be the best"
    best = kmeans(x, 5, np.random.default_rng(13), n_init=5)
    assert best[2] == min(inertias)


def test_kmeans_plus_plus_draws_in_proportion_to_squared_distance():
    # Points 0, 1, 3: the first centre is uniform, the second has probability
    # D(x)^2 / sum D^2. After 0: (0, 1, 9)/10; after 1: (1, 0, 4)/5; after 3: (9, 4, 0)/13.
    x = np.array([[0.0], [1.0], [3.0]])
    rng = np.random.default_rng(14)
    draws = 6000
    pairs = np.zeros((3, 3))
    for _ in range(draws):
        centres = _kmeans_plus_plus(x, 2, rng)[:, 0]
        pairs[np.searchsorted(x[:, 0], centres[0]), np.searchsorted(x[:, 0], centres[1])] += 1
    expected = np.array([[0, 1, 9], [1, 0, 4], [9, 4, 0]]) / np.array([[10], [5], [13]]) / 3
    assert np.all(pairs[np.eye(3, dtype=bool)] == 0)  # never the same point twice
    standard_error = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(pairs / draws - expected) <= 4 * standard_error + 1e-12)


def test_an_empty_cluster_takes_the_point_farthest_from_its_centre():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    centres = np.array([[1.0], [10.5], [50.0]])
    assignments = np.array([0, 0, 0, 1, 1])  # cluster 2 is empty
    moved = _update_centres(x, assignments, centres)
    # Distances to own centre: 1, 0, 1, 0.5, 0.5: the first farthest is x=0, which leaves
    # cluster 0 with {1, 2}.
    np.testing.assert_allclose(moved.ravel(), [1.5, 10.5, 0.0])
    # Through kmeans itself: fewer distinct points than clusters must not give NaN.
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 10, axis=0)
    found, assignments, inertia = kmeans(x, 5, np.random.default_rng(13))
    assert np.all(np.isfinite(found)) and inertia == 0.0


@pytest.mark.parametrize("x, n, words", [
    (np.zeros((3, 2)), 4, "3 examples for n_components=4"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), 1, "NaN"),
    (np.zeros(10), 2, "2-D"),
    (np.zeros((10, 2, 2)), 2, "2-D"),
    (np.zeros((10, 2)), 0, "n_components must be >= 1"),
])
def test_fit_rejects_bad_input(x, n, words):
    with pytest.raises(ValueError, match=words):
        fit_diagonal_gmm(x, n, np.random.default_rng(0))


def test_other_bad_arguments():
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="init"):
        fit_diagonal_gmm(x, 2, np.random.default_rng(0), init="kmeans++")
    with pytest.raises(TypeError, match="Generator"):
        fit_diagonal_gmm(x, 2, 0)
    with pytest.raises(ValueError, match="3 examples for n_clusters=4"):
        kmeans(x[:3], 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="infinite"):
        kmeans(np.array([[np.inf]]), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="variance"):
        DiagonalGMM([1.0], [[0.0]], [[0.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        DiagonalGMM([0.5, 0.6], [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="shapes"):
        DiagonalGMM([0.5, 0.5], [[0.0], [1.0]], [[1.0]])
    with pytest.raises(ValueError, match=r"shape \(N, 1\)"):
        DiagonalGMM([1.0], [[0.0]], [[1.0]]).log_likelihood(np.zeros((3, 2)))
