"""Gaussian mixtures with diagonal covariances fitted by EM, and k-means to start them.

Derived in tutorials/11_vade.ipynb.

    p(x) = sum_c pi_c N(x; mu_c, diag sigma2_c)

EM (Dempster, Laird & Rubin 1977) alternates

    E-step: gamma_nc = pi_c N(x_n; mu_c, sigma2_c) / p(x_n)
    M-step: N_c = sum_n gamma_nc,  pi_c = N_c / N,  mu_c = sum_n gamma_nc x_n / N_c,
            sigma2_c = sum_n gamma_nc (x_n - mu_c)^2 / N_c + reg_covar

and no step lowers the mean log-likelihood (1/N) sum_n log p(x_n). reg_covar is added as
scikit-learn's GaussianMixture(covariance_type="diag") adds it, which the VaDE reference
code used to initialize its prior.

k-means minimizes the inertia sum_n ||x_n - m_{a_n}||^2; Lloyd's iterations alternate
a_n = argmin_k ||x_n - m_k||^2 and m_k = mean of {x_n: a_n = k}. k-means++ (Arthur &
Vassilvitskii 2007) seeds m_1 uniformly, then each next centre with probability
proportional to D(x)^2, the squared distance to the nearest centre chosen so far.
"""
import dataclasses
import operator

import numpy

from ..likelihoods import LOG_2PI

# Added to each component's total responsibility so an empty component divides by a
# positive number (scikit-learn's guard, same size).
_EMPTY_GUARD = 10 * numpy.finfo(numpy.float64).eps


def kmeans(x, n_clusters, rng, max_iter=300, tol=1e-4, n_init=1):
    """k-means++ seeding and Lloyd iterations: (centres (K, D), assignments (N,), inertia).

        inertia = sum_n ||x_n - centres[assignments_n]||^2

    Stops when the centres move by sum_k ||m_k' - m_k||^2 <= tol * mean per-feature
    variance of x (scikit-learn's convention) or after max_iter iterations. A cluster left
    empty is moved to the point farthest from its centre. With n_init > 1 the run of least
    inertia is kept. rng: numpy.random.Generator, the only source of randomness.
    """
    x = _check_data(x, n_clusters, "kmeans", "n_clusters")
    n_clusters = _count(n_clusters, "n_clusters", "kmeans")
    n_init = _count(n_init, "n_init", "kmeans")
    max_iter = _count(max_iter, "max_iter", "kmeans", minimum=0)
    _check_rng(rng, "kmeans")
    threshold = float(tol) * float(x.var(axis=0).mean())
    best = None
    for _ in range(n_init):
        run = _kmeans_once(x, n_clusters, rng, max_iter, threshold)
        if best is None or run[2] < best[2]:
            best = run
    return best


def _kmeans_once(x, n_clusters, rng, max_iter, threshold):
    centres = _kmeans_plus_plus(x, n_clusters, rng)
    for _ in range(max_iter):
        assignments = _nearest(x, centres)
        moved = _update_centres(x, assignments, centres)
        shift = float(((moved - centres) ** 2).sum())
        centres = moved
        if shift <= threshold:
            break
    # Assignments and inertia belong to the centres returned, not to the previous ones.
    assignments = _nearest(x, centres)
    inertia = float(((x - centres[assignments]) ** 2).sum())
    return centres, assignments, inertia


def _kmeans_plus_plus(x, n_clusters, rng):
    """Centres drawn one at a time, each with probability proportional to D(x)^2."""
    n = len(x)
    centres = numpy.empty((n_clusters, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    nearest = _squared_distances(x, centres[:1])[:, 0]
    for k in range(1, n_clusters):
        cumulative = numpy.cumsum(nearest)
        total = cumulative[-1]
        if total > 0:
            # Point i owns [cumulative[i-1], cumulative[i]): side="right" never lands on
            # a point at distance 0, whose interval is empty.
            index = min(int(numpy.searchsorted(cumulative, rng.random() * total,
                                               side="right")), n - 1)
        else:  # every point sits on a centre: any choice is as good
            index = int(rng.integers(n))
        centres[k] = x[index]
        nearest = numpy.minimum(nearest, _squared_distances(x, centres[k:k + 1])[:, 0])
    return centres


def _squared_distances(x, centres):
    """||x_n - m_k||^2 = ||x_n||^2 - 2 x_n.m_k + ||m_k||^2: (N, K).

    The expansion is one matrix product instead of an (N, K, D) array; rounding can make
    it slightly negative, hence the clip.
    """
    distances = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ centres.T)
    distances += (centres * centres).sum(axis=1)[None, :]
    return numpy.maximum(distances, 0.0)


def _nearest(x, centres):
    return numpy.argmin(_squared_distances(x, centres), axis=1)


def _update_centres(x, assignments, centres):
    """Means of the clusters; each empty cluster first takes the point farthest from its
    own centre, one distinct point per empty cluster, farthest first."""
    n_clusters = len(centres)
    counts = numpy.bincount(assignments, minlength=n_clusters)
    empty = numpy.flatnonzero(counts == 0)
    if empty.size:
        residual = ((x - centres[assignments]) ** 2).sum(axis=1)
        farthest = numpy.argsort(-residual, kind="stable")[:empty.size]
        assignments = assignments.copy()
        assignments[farthest] = empty
        counts = numpy.bincount(assignments, minlength=n_clusters)
    one_hot = (assignments[:, None] == numpy.arange(n_clusters)[None, :]).astype(numpy.float64)
    sums = one_hot.T @ x
    moved = centres.copy()
    # A donor can only empty out on degenerate data (fewer distinct points than clusters);
    # such a cluster keeps its centre.
    filled = counts > 0
    moved[filled] = sums[filled] / counts[filled, None]
    return moved


@dataclasses.dataclass(eq=False)
class DiagonalGMM:
    """p(x) = sum_c weights_c N(x; means_c, diag variances_c).

    weights (C,), means (C, D), variances (C, D), stored as float64. A mixture returned by
    fit_diagonal_gmm also carries its fit: history[k] = mean log-likelihood after k EM
    iterations (history[0]: the first M-step from the initial responsibilities),
    converged (the last improvement was below tol) and n_iter = len(history) - 1.
    """

    weights: numpy.ndarray
    means: numpy.ndarray
    variances: numpy.ndarray
    history: numpy.ndarray = dataclasses.field(default_factory=lambda: numpy.zeros(0))
    converged: bool = False
    n_iter: int = 0

    def __post_init__(self):
        self.weights = numpy.asarray(self.weights, dtype=numpy.float64)
        self.means = numpy.asarray(self.means, dtype=numpy.float64)
        self.variances = numpy.asarray(self.variances, dtype=numpy.float64)
        self.history = numpy.asarray(self.history, dtype=numpy.float64)
        self._check()

    def _check(self):
        c = self.weights.shape[0] if self.weights.ndim == 1 else -1
        if c < 1 or self.means.shape != self.variances.shape or self.means.ndim != 2 \
                or self.means.shape[0] != c:
            raise ValueError(f"DiagonalGMM: expected weights (C,), means (C, D), variances "
                             f"(C, D), got {self.weights.shape}, {self.means.shape}, "
                             f"{self.variances.shape}; make the shapes agree.")
        if not (numpy.isfinite(self.means).all() and numpy.isfinite(self.variances).all()
                and numpy.isfinite(self.weights).all()):
            raise ValueError("DiagonalGMM: weights, means and variances must be finite; "
                             "check the parameters for NaN or infinity.")
        if (self.variances <= 0).any():
            raise ValueError("DiagonalGMM: every variance must be > 0; add a small "
                             "reg_covar to the variances.")
        if (self.weights < 0).any() or abs(self.weights.sum() - 1.0) > 1e-6:
            raise ValueError(f"DiagonalGMM: the weights must be >= 0 and sum to 1, they "
                             f"sum to {self.weights.sum()!r}; normalize them.")

    @property
    def n_components(self):
        return self.weights.shape[0]

    def log_joint(self, x):
        """log pi_c + log N(x_n; mu_c, diag sigma2_c): (N, C).

            log N = -1/2 (D log 2 pi + sum_d log sigma2_cd + sum_d (x_nd - mu_cd)^2 / sigma2_cd)
        """
        x = self._check_points(x)
        # The squared-distance expansion cancels terms of size |x|^2 / sigma2; measuring
        # from the mixture's mean keeps them small.
        origin = self.weights @ self.means
        x = x - origin
        means = self.means - origin
        precision = 1.0 / self.variances
        mahalanobis = (x * x) @ precision.T - 2.0 * (x @ (means * precision).T)
        mahalanobis += (means * means * precision).sum(axis=1)[None, :]
        mahalanobis = numpy.maximum(mahalanobis, 0.0)
        log_normaliser = x.shape[1] * LOG_2PI + numpy.log(self.variances).sum(axis=1)
        with numpy.errstate(divide="ignore"):  # a weight of 0 is log 0 = -inf
            log_weights = numpy.log(self.weights)
        return log_weights[None, :] - 0.5 * (log_normaliser[None, :] + mahalanobis)

    def log_likelihood(self, x):
        """log p(x_n) = logsumexp_c (log pi_c + log N(x_n; mu_c, sigma2_c)): (N,)."""
        return _logsumexp(self.log_joint(x))

    def responsibilities(self, x):
        """gamma_nc = p(c | x_n) = exp(log_joint_nc - log p(x_n)): (N, C), rows sum to 1."""
        log_joint = self.log_joint(x)
        return numpy.exp(log_joint - _logsumexp(log_joint)[:, None])

    def predict(self, x):
        """argmax_c p(c | x_n): (N,) component indices."""
        return numpy.argmax(self.log_joint(x), axis=1)

    def _check_points(self, x):
        x = numpy.asarray(x, dtype=numpy.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"DiagonalGMM: x must have shape (N, {self.means.shape[1]}), "
                             f"got {x.shape}; pass one row per example.")
        return x


def _logsumexp(a):
    """log sum_c exp(a_nc) = m_n + log sum_c exp(a_nc - m_n), m_n = max_c a_nc: (N,)."""
    peak = a.max(axis=1)
    # A row of -inf would give -inf - (-inf) = NaN; shifting by 0 returns -inf instead.
    peak = numpy.where(numpy.isfinite(peak), peak, 0.0)
    with numpy.errstate(divide="ignore"):
        return peak + numpy.log(numpy.exp(a - peak[:, None]).sum(axis=1))


def fit_diagonal_gmm(x, n_components, rng, max_iter=200, tol=1e-3, reg_covar=1e-6,
                     n_init=1, init="kmeans"):
    """EM for a diagonal-covariance Gaussian mixture: a DiagonalGMM with its history,
    converged and n_iter.

    Starts from hard k-means responsibilities (init="kmeans") or uniform random ones
    normalized per row (init="random"); stops when the mean log-likelihood improves by
    less than tol or after max_iter EM iterations. With n_init > 1 the fit of highest
    final mean log-likelihood is kept. rng: numpy.random.Generator, the only source of
    randomness.
    """
    x = _check_data(x, n_components, "fit_diagonal_gmm", "n_components")
    n_components = _count(n_components, "n_components", "fit_diagonal_gmm")
    n_init = _count(n_init, "n_init", "fit_diagonal_gmm")
    max_iter = _count(max_iter, "max_iter", "fit_diagonal_gmm", minimum=0)
    _check_rng(rng, "fit_diagonal_gmm")
    if init not in ("kmeans", "random"):
        raise ValueError(f"fit_diagonal_gmm: init must be 'kmeans' or 'random', got "
                         f"{init!r}.")
    reg_covar = float(reg_covar)
    if not reg_covar >= 0:
        raise ValueError(f"fit_diagonal_gmm: reg_covar must be >= 0, got {reg_covar!r}.")
    best = None
    for _ in range(n_init):
        fit = _fit_once(x, n_components, rng, max_iter, float(tol), reg_covar, init)
        if best is None or fit.history[-1] > best.history[-1]:
            best = fit
    return best


def _fit_once(x, n_components, rng, max_iter, tol, reg_covar, init):
    mixture = _m_step(x, _initial_responsibilities(x, n_components, rng, init), reg_covar)
    log_joint = mixture.log_joint(x)
    log_p = _logsumexp(log_joint)
    history = [float(log_p.mean())]
    converged = False
    for _ in range(max_iter):
        mixture = _m_step(x, numpy.exp(log_joint - log_p[:, None]), reg_covar)
        log_joint = mixture.log_joint(x)
        log_p = _logsumexp(log_joint)
        history.append(float(log_p.mean()))
        if history[-1] - history[-2] < tol:
            converged = True
            break
    mixture.history = numpy.asarray(history)
    mixture.converged = converged
    mixture.n_iter = len(history) - 1
    return mixture


def _initial_responsibilities(x, n_components, rng, init):
    if init == "kmeans":
        _, assignments, _ = kmeans(x, n_components, rng)
        return (assignments[:, None] == numpy.arange(n_components)[None, :]).astype(
            numpy.float64)
    responsibilities = rng.random((len(x), n_components))
    return responsibilities / responsibilities.sum(axis=1, keepdims=True)


def _m_step(x, responsibilities, reg_covar):
    """pi_c = N_c / N, mu_c = sum_n gamma_nc x_n / N_c,
    sigma2_c = sum_n gamma_nc x_n^2 / N_c - mu_c^2 + reg_covar."""
    counts = responsibilities.sum(axis=0) + _EMPTY_GUARD
    # E[x^2] - E[x]^2 cancels badly far from the origin; the data's mean is a better one.
    origin = x.mean(axis=0)
    centred = x - origin
    means = (responsibilities.T @ centred) / counts[:, None]
    variances = (responsibilities.T @ (centred * centred)) / counts[:, None] - means * means
    variances = numpy.maximum(variances, 0.0) + reg_covar
    return DiagonalGMM(weights=counts / counts.sum(), means=means + origin,
                       variances=variances)


def _check_data(x, n_groups, caller, name):
    try:
        x = numpy.asarray(x, dtype=numpy.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{caller}: x must hold numbers; pass a 2-D float array.") from None
    if x.ndim != 2:
        raise ValueError(f"{caller}: x must be 2-D (examples, features), got shape "
                         f"{x.shape}; reshape one feature with x[:, None].")
    if not numpy.isfinite(x).all():
        raise ValueError(f"{caller}: x holds NaN or infinite values; drop or impute those "
                         f"rows first.")
    groups = _count(n_groups, name, caller)
    if x.shape[0] < groups:
        raise ValueError(f"{caller}: {x.shape[0]} examples for {name}={groups}; pass at "
                         f"least as many examples as {name}.")
    return x


def _count(value, name, caller, minimum=1):
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{caller}: {name} must be an integer, got {value!r}.") from None
    if value < minimum:
        raise ValueError(f"{caller}: {name} must be >= {minimum}, got {value}.")
    return value


def _check_rng(rng, caller):
    if not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"{caller}: rng must be a numpy.random.Generator, got "
                        f"{type(rng).__name__}; pass numpy.random.default_rng(seed).")
