"""The Gaussian mixture prior of VaDE and its KL term, with their backward passes.

VaDE (Jiang et al., 2017, "Variational Deep Embedding"; tutorials/11_vade.ipynb) puts
a Gaussian mixture under the decoder. Its generative story, for one data point:

    c ~ Cat(pi),            pi = softmax(logits)                  (C clusters)
    z ~ N(mu_c, diag sigma_c^2),   sigma_c^2 = exp(logvar_c)      (means, logvars: (C, D))
    x ~ p(x|z),             the decoder (Bernoulli or Gaussian)

so that p(z) = sum_c pi_c N(z; mu_c, diag sigma_c^2) is a mixture and p(c|z), the
responsibilities, assigns a latent code to a cluster. The approximate posterior is
q(z, c|x) = q(z|x) q(c|x) with q(z|x) = N(mu~, diag sigma~^2) (sigma~^2 = exp(logvar))
from the encoder and q(c|x) = gamma, and the bound is

    ELBO = E_q(z|x)[log p(x|z)] - R,
    R = KL(q(z|x) gamma || p(z, c))
      = sum_c gamma_c [1/2 sum_j (logvar_cj + sigma~_j^2 / sigma_cj^2
                                  + (mu~_j - mu_cj)^2 / sigma_cj^2)
                       - log pi_c + log gamma_c] - 1/2 sum_j (1 + logvar_j),

the Gaussian expectations in closed form (the log 2 pi terms cancel). Since
sum_c gamma_c = 1 the same R regroups into

    R = sum_c gamma_c K_c + KL(gamma || pi),   K_c = KL(q(z|x) || N(mu_c, diag sigma_c^2))
      = sum_c gamma_c [K_c - log pi_c + log gamma_c],                              (*)

each K_c the closed-form KL between diagonal Gaussians (numpyvae.kl), which is how it
is computed here: K_c >= 0 carries its own cancellation of the O(1) terms, as
kl_diagonal_gaussians does, and with C = 1 (gamma = pi = 1) R is that KL bit for bit.

As in the paper and the authors' Theano/Keras code, gamma is not a free distribution
but gamma = p(c|z_s), the responsibilities at a sample z_s ~ q(z|x), and the gradient
flows through gamma(z_s) too (VadeKL). R still bounds KL(q(z|x) || p(z)) from above,
at every draw:

* For any distribution gamma, the chain rule of KL gives
      R(gamma) = KL(q(z|x) || p(z)) + E_q(z|x)[KL(gamma || p(c|z))] >= KL(q(z|x) || p(z)),
  and gamma(z~) is a distribution whatever z~ is.
* R is linear in gamma except for sum_c gamma_c log gamma_c, which is convex; so R is
  convex in gamma, and by Jensen, for gamma = gamma(z~) with z~ ~ q(z|x),
      E_z~[R(gamma(z~))] >= R(E_z~ gamma(z~)) >= KL(q(z|x) || p(z)).

So E[log p(x|z)] - R (the reconstruction term an estimate, hence "in expectation")
is below the ELBO with the exact KL to the
mixture prior, itself below log p(x): a valid, looser bound. The smallest R over gamma
is at gamma*_c proportional to pi_c exp(-K_c), where R(gamma*) = -log sum_c pi_c
exp(-K_c), still >= KL(q(z|x) || p(z)). The derivation is told in tutorials/11_vade.ipynb;
tests/test_mixture.py checks each inequality, and the closed form, by quadrature.

Shapes: z is (..., N, D) (leading sample axes allowed, typically (S, N, D)); logits
(C,); means, logvars (C, D). Every log-sum-exp over components subtracts its maximum,
so nothing overflows however far apart the components or z are.
"""
import numpy

from . import backend
from .likelihoods import LOG_2PI


def _log_softmax(a):
    """(a - lse(a), lse(a)) along the last axis, lse(a) = log sum exp(a), stable for any
    finite a: lse(a) = m + log sum exp(a - m) with m = max(a), every exp(a - m) <= 1 and
    one of them = 1. lse keeps a trailing axis of length 1."""
    xp = backend.namespace_of(a)
    top = a.max(axis=-1, keepdims=True)
    shifted = a - top
    total = xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
    shifted -= total
    return shifted, top + total


def _softmax_backward(probabilities, upstream):
    """The backward pass of p = softmax(a) along the last axis: given dL/dp, dL/da.

        dp_c/da_k = p_c (delta_ck - p_k)   =>   dL/da_k = p_k (dL/dp_k - sum_c p_c dL/dp_c).

    A constant added to dL/dp (the same for every c) maps to 0: sum_c p_c = 1.
    """
    weighted = probabilities * upstream
    return weighted - probabilities * weighted.sum(axis=-1, keepdims=True)


class _ComponentLogJoint:
    """a_c(z) = log pi_c + log N(z; mu_c, diag sigma_c^2), the log joint log p(z, c):
    z (..., N, D), logits (C,), means and logvars (C, D) -> (..., N, C).

        a_c = logits_c - lse(logits) - 1/2 sum_j ((z_j - mu_cj)^2 / sigma_cj^2
                                                  + logvar_cj + log 2 pi).

    log p(z) = lse_c a_c and p(c|z) = softmax_c a_c. Backward, for G = dL/da (..., N, C):
        dL/dz      = -sum_c G_c (z - mu_c) / sigma_c^2
        dL/dmu_c   =  sum G_c (z - mu_c) / sigma_c^2
        dL/dlogvar_c = sum G_c ((z - mu_c)^2 / sigma_c^2 - 1) / 2
        dL/dlogits_m = sum (G_m - pi_m sum_c G_c)     (d log pi_c / d logits_m = delta_cm - pi_m)
    with the parameter gradients summed over every axis but the component's own.
    """

    params = grads = {}

    def forward(self, z, logits, means, logvars):
        xp = backend.namespace_of(z)
        self.log_prior, _ = _log_softmax(logits)
        self.prior = xp.exp(self.log_prior)
        self.residual = z[..., None, :] - means                    # (..., N, C, D)
        self.scaled = self.residual * xp.exp(-logvars)             # (z - mu_c) / sigma_c^2
        squared = (self.residual * self.scaled).sum(axis=-1)       # (..., N, C)
        constant = logvars.sum(axis=-1) + z.shape[-1] * LOG_2PI    # (C,)
        squared += constant
        squared *= -0.5
        squared += self.log_prior
        return squared

    def backward(self, grad_joint):
        g = grad_joint[..., None]                                  # (..., N, C, 1)
        pull = g * self.scaled                                     # G_c (z - mu_c) / sigma_c^2
        grad_z = -pull.sum(axis=-2)
        lead = tuple(range(grad_joint.ndim - 1))
        grad_means = pull.sum(axis=lead)
        spread = self.residual * self.scaled
        spread -= 1.0
        spread *= g
        grad_logvars = 0.5 * spread.sum(axis=lead)
        grad_logits = grad_joint.sum(axis=lead)
        grad_logits -= self.prior * grad_logits.sum()
        return grad_z, grad_logits, grad_means, grad_logvars


def _gamma_log_gamma(gamma):
    """gamma log gamma, elementwise, 0 where gamma = 0 (its limit)."""
    xp = backend.namespace_of(gamma)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        return xp.where(gamma > 0, gamma * xp.log(gamma), 0.0 * gamma)


class GaussianMixtureLogDensity:
    """log p(z) = log sum_c pi_c N(z; mu_c, diag sigma_c^2) = lse_c a_c(z), with
    pi = softmax(logits), sigma_c^2 = exp(logvar_c) and a_c = log p(z, c) the log joint
    (_ComponentLogJoint). z (..., N, D), logits (C,), means and logvars (C, D) ->
    (..., N). Keeps the responsibilities r = p(c|z) = softmax_c a_c, (..., N, C), as
    ``responsibilities``.

    Backward: d lse / da_c = r_c, so with G_c = g r_c the log joint's backward gives
        dL/dz = -g sum_c r_c (z - mu_c) / sigma_c^2
        dL/dmu_c = sum g r_c (z - mu_c) / sigma_c^2
        dL/dlogvar_c = sum g r_c ((z - mu_c)^2 / sigma_c^2 - 1) / 2
        dL/dlogits_c = sum g (r_c - pi_c)
    (the first: the mixture's score is the responsibility-weighted scores of its
    components), the parameter gradients summed over N and all leading axes.
    Returns (grad_z, grad_logits, grad_means, grad_logvars).
    """

    params = grads = {}

    def forward(self, z, logits, means, logvars):
        xp = backend.namespace_of(z)
        self.joint = _ComponentLogJoint()
        log_responsibilities, log_density = _log_softmax(
            self.joint.forward(z, logits, means, logvars))
        self.responsibilities = xp.exp(log_responsibilities)
        return log_density[..., 0]

    def backward(self, grad_out):
        return self.joint.backward(self.responsibilities * grad_out[..., None])


def gaussian_mixture_log_density(z, logits, means, logvars):
    """log sum_c softmax(logits)_c N(z; means_c, diag exp(logvars_c)): z (..., N, D),
    logits (C,), means and logvars (C, D) -> (..., N)."""
    return GaussianMixtureLogDensity().forward(z, logits, means, logvars)


def responsibilities(z, logits, means, logvars):
    """p(c|z) = pi_c N(z; mu_c, sigma_c^2) / sum_k pi_k N(z; mu_k, sigma_k^2), the
    softmax of the log joint (stable for any z): z (..., N, D) -> (..., N, C), each row
    summing to 1. Cluster assignment is its argmax over the last axis."""
    xp = backend.namespace_of(z)
    log_responsibilities, _ = _log_softmax(
        _ComponentLogJoint().forward(z, logits, means, logvars))
    return xp.exp(log_responsibilities)


def _component_kls(mu, logvar, means, logvars):
    """K_c = KL(N(mu, diag exp(logvar)) || N(mu_c, diag exp(logvar_c))), (N, C), with
    the intermediates the backward pass needs; the formula and order of operations of
    kl.KLDiagonalGaussians, broadcast over components."""
    xp = backend.namespace_of(mu)
    diff = mu[:, None, :] - means                       # (N, C, D)
    inv_var_p = xp.exp(-logvars)                        # (C, D)
    var_q = xp.exp(logvar)[:, None, :]                  # (N, 1, D)
    ratio = (var_q + diff * diff) * inv_var_p
    kls = 0.5 * (logvars - logvar[:, None, :] + ratio - 1).sum(axis=-1)
    return kls, diff, inv_var_p, var_q, ratio


def vade_kl_given_responsibilities(mu, logvar, gamma, logits, means, logvars):
    """R(gamma) = KL(q(z|x) gamma || p(z, c)) for a fixed distribution gamma over the
    clusters (no gradient path through gamma): mu, logvar (N, D); gamma (..., N, C),
    rows summing to 1; logits (C,); means, logvars (C, D) -> (..., N).

        R(gamma) = sum_c gamma_c (K_c - log pi_c) + sum_c gamma_c log gamma_c,

    with gamma_c log gamma_c = 0 where gamma_c = 0. Convex in gamma; at least
    KL(q(z|x) || p(z)) for every gamma (module docstring).
    """
    kls = _component_kls(mu, logvar, means, logvars)[0]
    log_prior, _ = _log_softmax(logits)
    return (gamma * (kls - log_prior) + _gamma_log_gamma(gamma)).sum(axis=-1)


class VadeKL:
    """VaDE's KL term with gamma = p(c|z_s) from samples z_s ~ q(z|x), averaged over them:

        forward(mu, logvar, z, logits, means, logvars) -> (1/S) sum_s R(gamma_s)  (N,)

    mu, logvar (N, D): q(z|x); z (S, N, D): the samples; logits (C,); means, logvars
    (C, D). Per sample (form (*) of the module docstring),

        R_s = sum_c gamma_c B_c,   B_c = K_c - log pi_c + log gamma_c,
        gamma = softmax_c a_c(z_s),  a_c = log pi_c + log N(z_s; mu_c, sigma_c^2),

    log gamma_c = a_c - lse(a) computed directly (finite where gamma_c underflows).

    Backward, for g (N,), each sample weighing w = g / S:

    1. With gamma held fixed (as for a KL between diagonal Gaussians, summed over c with
       weights gamma_c, sum_c gamma_c = 1 used where it simplifies):
           dR/dmu~     = sum_c gamma_c (mu~ - mu_c) / sigma_c^2
           dR/dlogvar  = sum_c gamma_c (sigma~^2 / sigma_c^2 - 1) / 2
           dR/dmu_c    = -gamma_c (mu~ - mu_c) / sigma_c^2
           dR/dlogvar_c = gamma_c (1 - (sigma~^2 + (mu~ - mu_c)^2) / sigma_c^2) / 2
           dR/dlogits  = pi - gamma        (from -sum_c gamma_c log pi_c)
    2. Through gamma. Holding gamma as free variables, dR/dgamma_c = B_c + 1 (the 1 from
       d(gamma log gamma)/dgamma = log gamma + 1). gamma is the softmax of a, so
           dR/da_k = sum_c (B_c + 1) gamma_c (delta_ck - gamma_k)
                   = gamma_k (B_k + 1 - sum_c gamma_c (B_c + 1)) = gamma_k (B_k - R_s):
       the + 1 vanishes, because sum_c gamma_c = 1 makes the softmax blind to a constant
       (it is dropped before _softmax_backward). So does a part of the chain on to the
       logits: sum_k dR/da_k = 0, so the -pi_m sum_k dR/da_k of d log pi / d logits is 0
       and dR/dlogits gains exactly dR/da. This delta_k = gamma_k (B_k - R_s) then runs
       through the log joint's backward (_ComponentLogJoint): a gradient for z,
       nonzero only where gamma is not saturated, and more for the prior's parameters.

    z enters only through gamma: its path back to mu~ and logvar (z = mu~ + sigma~ eps)
    is taken by whoever differentiates z (Reparameterize), the same z the decoder sees.
    With C = 1, gamma = 1, B - R = 0, and the gradient for z is exactly 0.
    Returns (grad_mu, grad_logvar, grad_z, grad_logits, grad_means, grad_logvars).
    """

    params = grads = {}

    def forward(self, mu, logvar, z, logits, means, logvars):
        xp = backend.namespace_of(mu)
        if z.ndim != 3 or z.shape[1:] != mu.shape:
            raise ValueError(f"z has shape {tuple(z.shape)} but must be (S, N, D) with "
                             f"(N, D) = {tuple(mu.shape)}.")
        self.joint = _ComponentLogJoint()
        log_gamma, _ = _log_softmax(self.joint.forward(z, logits, means, logvars))
        self.gamma = xp.exp(log_gamma)                                    # (S, N, C)
        (kls, self.diff, self.inv_var_p, self.var_q,
         self.ratio) = _component_kls(mu, logvar, means, logvars)        # (N, C)
        log_gamma += kls
        log_gamma -= self.joint.log_prior
        self.b = log_gamma                                                # B_c, (S, N, C)
        self.per_sample = (self.gamma * self.b).sum(axis=-1)              # R_s, (S, N)
        return self.per_sample.mean(axis=0)

    def backward(self, grad_out):
        samples = self.gamma.shape[0]
        w = grad_out[:, None] / samples                                   # (N, 1)
        weighted_gamma = self.gamma.sum(axis=0) * w                       # (N, C)
        g = weighted_gamma[..., None]                                     # (N, C, 1)

        # 1. gamma held fixed.
        pull = g * self.diff * self.inv_var_p             # gamma_c (mu~ - mu_c) / sigma_c^2
        grad_mu = pull.sum(axis=1)
        stretch = self.var_q * self.inv_var_p
        stretch -= 1.0
        stretch *= g
        grad_logvar = 0.5 * stretch.sum(axis=1)
        grad_means = -pull.sum(axis=0)
        spread = 1.0 - self.ratio
        spread *= g
        grad_logvars = 0.5 * spread.sum(axis=0)
        grad_logits = self.joint.prior * grad_out.sum() - weighted_gamma.sum(axis=0)

        # 2. Through gamma = softmax(a(z)): dR/dgamma = B + 1, the 1 dropped (see above).
        delta = _softmax_backward(self.gamma, self.b * w)                # dL/da, (S, N, C)
        grad_z, joint_logits, joint_means, joint_logvars = self.joint.backward(delta)
        grad_logits += joint_logits
        grad_means += joint_means
        grad_logvars += joint_logvars
        return grad_mu, grad_logvar, grad_z, grad_logits, grad_means, grad_logvars


def vade_kl(mu, logvar, z, logits, means, logvars):
    """VaDE's KL term averaged over the samples z (S, N, D), gamma_s = p(c|z_s):
    mu, logvar (N, D); logits (C,); means, logvars (C, D) -> (N,). See VadeKL."""
    return VadeKL().forward(mu, logvar, z, logits, means, logvars)
