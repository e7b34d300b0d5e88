"""Claims about the model family, each checked so that it could fail: the IWAE bound
at K = 1 and as K grows (on the exact linear Gaussian model), the true ELBO beside a
beta-objective, forward state that no other call can disturb, batch normalization's
two modes, input validation, the registry and the quadrant CVAE's data layout."""
import json

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import linear_gaussian as lg
from numpyvae.gradcheck import check_gradients


def tiny(name="vae", **options):
    defaults = dict(x_dim=6, hidden=(4,), z_dim=2, likelihood="gaussian", seed=3,
                    dtype=np.float64, init="glorot")
    return nv.models.create(name, **dict(defaults, **options))


def shift_biases(model, rng, spread=0.5):
    """Biases off zero so that every path (tanh's curvature, the KL's mean term) counts."""
    for name, value in model.params.items():
        if name.endswith(".b"):
            value[...] = rng.normal(0.0, spread, size=value.shape)


def logsumexp(a, axis=0):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


# ------------------------------------------------------------ IWAE with K = 1
def test_iwae_k1_is_the_sampled_kl_elbo_and_its_gradient():
    rng = np.random.default_rng(0)
    model = tiny("iwae", k=1)
    shift_biases(model, rng)
    x, eps = rng.random((4, 6)), rng.standard_normal((1, 4, 2))

    def sampled_elbo_loss():   # -1/N sum_n [log p(x|z) + log p(z) - log q(z|x)] at z(eps)
        return -model.log_importance_weights(x, eps=eps)[0].mean()

    loss, grads = model.loss_and_grads(x, eps=eps)
    analytic = {name: grads[name].copy() for name in grads}
    assert loss == pytest.approx(sampled_elbo_loss(), rel=1e-14, abs=1e-14)
    assert model.loss(x, eps=eps) == pytest.approx(float(loss), rel=1e-14)
    errors = check_gradients(sampled_elbo_loss, dict(model.params), analytic)
    assert max(errors.values()) < 1e-6, errors
    # ... and it is not the analytic-KL ELBO, which has the same expectation only.
    vae = tiny("vae")
    vae.params.flat[...] = model.params.flat
    assert abs(float(vae.loss(x, eps=eps)) - float(loss)) > 1e-3


def test_iwae_k_samples_loss_is_the_log_mean_of_the_weights():
    rng = np.random.default_rng(1)
    model = tiny("iwae", k=5, likelihood="bernoulli")
    shift_biases(model, rng)
    x = (rng.random((3, 6)) > 0.5).astype(float)
    eps = rng.standard_normal((5, 3, 2))
    log_weights = model.log_importance_weights(x, eps=eps)
    assert log_weights.shape == (5, 3)
    bound = logsumexp(log_weights) - np.log(5)
    assert float(model.loss(x, eps=eps)) == pytest.approx(-bound.mean(), rel=1e-13)
    np.testing.assert_allclose(model.metrics(x, eps=eps)["objective"], bound, rtol=1e-13)


def test_iwae_k1_gradient_averages_to_the_analytic_kl_elbo_gradient():
    """E_eps[grad of the sampled-KL ELBO] = grad of the analytic-KL ELBO: the two
    estimators differ draw by draw (in the encoder's gradients) but not on average.
    Draws are paired (the same eps for both), so the decoder's gradients agree exactly
    and the encoder's difference has a small Monte Carlo standard error."""
    rng = np.random.default_rng(2)
    options = dict(x_dim=4, hidden=(3,), z_dim=2, likelihood="gaussian", seed=4)
    iwae, vae = tiny("iwae", k=1, **options), tiny("vae", **options)
    np.testing.assert_array_equal(iwae.params.flat, vae.params.flat)
    shift_biases(iwae, rng)
    vae.params.flat[...] = iwae.params.flat
    x = rng.random((2, 4))
    replicates, chunks = 100, 40            # 4000 draws per example, in 40 batches
    rows = np.repeat(x, replicates, axis=0)
    differences, vae_grads = [], []
    for _ in range(chunks):
        eps = rng.standard_normal((1, len(rows), 2))
        _, grads = iwae.loss_and_grads(rows, eps=eps)
        iwae_flat = grads.flat.copy()
        _, grads = vae.loss_and_grads(rows, eps=eps)
        differences.append(iwae_flat - grads.flat)
        vae_grads.append(grads.flat.copy())
    differences, vae_grads = np.array(differences), np.array(vae_grads)
    mean = differences.mean(axis=0)
    standard_error = differences.std(axis=0, ddof=1) / np.sqrt(chunks)
    scale = np.abs(vae_grads.mean(axis=0)).max()
    # The check has power: per chunk the estimators differ, and the standard error is
    # small next to the gradient itself.
    assert np.abs(differences).max() > 1e-2 * scale
    assert standard_error.max() < 0.05 * scale
    z = np.abs(mean) / np.maximum(standard_error, 1e-300)
    exact = standard_error < 1e-12 * scale       # the decoder's, identical per draw
    assert np.all(np.abs(mean[exact]) < 1e-12 * scale)
    assert np.all(z[~exact] < 4.5), (z.max(), iwae.params.layout)


# --------------------------------------------- the IWAE bound on the exact model
def linear_gaussian_model():
    """A linear Gaussian VAE (probabilistic PCA) whose exact posterior is diagonal,
    with an encoder that misses it: its mean off by 0.8 posterior standard deviations,
    its variance twice the posterior's (wider than p(z|x), so the weights' variance is
    finite)."""
    rng = np.random.default_rng(5)
    x_dim, variance = 4, 0.3
    model = nv.VAE(x_dim=x_dim, hidden=(), z_dim=2, likelihood="gaussian-fixed",
                   output_activation="identity", decoder_variance=variance,
                   dtype=np.float64, seed=0)
    orthonormal, _ = np.linalg.qr(rng.normal(size=(x_dim, 2)))
    weight, bias = (orthonormal * np.array([1.5, 0.8])).T, rng.normal(size=x_dim)
    model.params["decoder.mean.W"][...] = weight
    model.params["decoder.mean.b"][...] = bias
    lg.set_exact_posterior_encoder(model)
    x = bias + rng.normal(size=(2, x_dim))
    _, covariance = lg.exact_posterior(x, weight, bias, variance)
    model.params["encoder.mu.b"][...] += 0.8 * np.sqrt(np.diag(covariance))
    model.params["encoder.logvar.b"][...] += np.log(2.0)
    return model, x, lg.marginal_log_likelihood(x, weight, bias, variance)


def test_iwae_bound_rises_with_k_to_the_exact_log_likelihood():
    """E[L_K] rises with K and stays <= log p(x), reaching it at K = 1000.

    2000 replicates; each draws 1000 weights per example, and E[L_K] is estimated from
    it by the mean of L_K over its 1000 / K disjoint blocks of K. Consecutive K are
    compared on the same draws: the first-order noise (the weights' mean) is common to
    both and cancels, leaving a difference whose standard error is far below the gaps.
    """
    model, x, log_evidence = linear_gaussian_model()
    ks, k_max, replicates = (1, 2, 5, 20, 100, 1000), 1000, 2000
    rng = np.random.default_rng(6)
    estimates, ratios, spreads = [], [], []   # per replicate: E[L_K] summed over examples
    for _ in range(10):
        rows = np.tile(x, (replicates // 10, 1))                     # (R N, X)
        log_weights = model.log_importance_weights(rows, rng=rng, samples=k_max)
        log_weights = log_weights.reshape(k_max, -1, len(x))        # (K, R, N)
        relative = np.exp(log_weights - log_evidence)               # w / p(x)
        ratios.append(relative.mean(axis=0))
        spreads.append(relative.var(axis=0))
        per_k = []
        for k in ks:
            blocks = log_weights.reshape(k_max // k, k, -1, len(x))
            bound = logsumexp(blocks, axis=1) - np.log(k)            # (blocks, R, N)
            per_k.append((bound.mean(axis=0) - log_evidence).sum(axis=-1))
        estimates.append(np.array(per_k).T)                          # (R, len(ks))
    gaps = np.concatenate(estimates)                                 # E[L_K] - log p(x)
    ratios = np.concatenate(ratios)

    # Importance sampling is unbiased: E_q[w / p(x)] = 1, so log w is normalized right.
    ratio_error = ratios.std(axis=0, ddof=1) / np.sqrt(len(ratios))
    assert np.all(np.abs(ratios.mean(axis=0) - 1) < 4 * ratio_error)

    mean = gaps.mean(axis=0)
    error = gaps.std(axis=0, ddof=1) / np.sqrt(len(gaps))
    steps = np.diff(gaps, axis=1)
    step_error = steps.std(axis=0, ddof=1) / np.sqrt(len(steps))
    assert np.all(steps.mean(axis=0) > 4 * step_error), (steps.mean(axis=0), step_error)
    assert np.all(mean <= 4 * error), (mean, error)                  # a lower bound
    assert mean[0] < -1.0                     # the encoder is not the posterior: K = 1 is loose
    # The tolerance at K = 1000: the bound's bias there is about Var[w / p(x)] / (2 K)
    # per example (the delta method; Var[w / p(x)] ~ 1 here), 1e-3 nats for the sum
    # over the 2 examples, and the Monte Carlo error of the mean is ~1e-3. 0.01 nats
    # covers the bias plus four standard errors, and is 0.5% of the gap at K = 1 (~1.9).
    bias = (np.concatenate(spreads).mean(axis=0) / (2 * k_max)).sum()
    assert bias < 2e-3 and 4 * error[-1] + bias < 0.01
    assert abs(mean[-1]) < 0.01, (mean, error)


# ---------------------------------------------------------------- the true ELBO
def test_metrics_report_the_true_elbo_beside_the_beta_objective():
    rng = np.random.default_rng(7)
    beta4 = tiny("vae", beta=4.0, likelihood="bernoulli")
    beta1 = tiny("vae", likelihood="bernoulli")
    shift_biases(beta4, rng)
    beta1.params.flat[...] = beta4.params.flat
    x = (rng.random((5, 6)) > 0.5).astype(float)
    eps = rng.standard_normal((5, 2))
    metrics = beta4.metrics(x, eps=eps)
    ll, kl = metrics["log_likelihood"], metrics["kl"]
    # Independently: the KL in closed form from the encoder, the log-likelihood from
    # the decoder's mean at z = mu + sigma eps.
    mu, logvar = beta4.encode(x)
    np.testing.assert_allclose(kl, 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1),
                               rtol=1e-12)
    p = beta4.decode(mu + np.exp(0.5 * logvar) * eps)
    np.testing.assert_allclose(ll, (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(1),
                               rtol=1e-10)
    assert np.all(kl > 1e-3)                         # so beta makes a difference
    np.testing.assert_allclose(metrics["elbo"], ll - kl, rtol=1e-14)
    np.testing.assert_allclose(metrics["objective"], ll - 4.0 * kl, rtol=1e-14)
    assert float(beta4.loss(x, eps=eps)) == pytest.approx(-(ll - 4 * kl).mean(), rel=1e-13)
    # The true ELBO does not depend on beta: the beta = 1 model's objective is it.
    np.testing.assert_allclose(beta1.metrics(x, eps=eps)["objective"], metrics["elbo"],
                               rtol=1e-14)
    np.testing.assert_allclose(beta4.elbo(x, eps=eps).elbo, ll - kl, rtol=1e-14)
    parts = beta4.elbo(x, eps=eps)
    np.testing.assert_allclose(parts.kl, kl, rtol=1e-14)
    np.testing.assert_allclose(parts.log_likelihood, ll, rtol=1e-14)


# --------------------------------------------------------------- forward state
def _hand_pass(model, x, eps, interleave=None):
    """Forward through the model's persistent pieces by hand, optionally let other
    calls run, then backward: the encoder's and decoder's gradients (a copy)."""
    mu, logvar = model.encoder.forward(x)
    z = model.reparameterize.forward(mu, logvar, eps)
    log_likelihood = model.decoder.log_likelihood(x, z)
    kl = model.kl.forward(mu, logvar)
    if interleave is not None:
        interleave()
    grad_z = model.decoder.backward(np.full(log_likelihood.shape, -1.0 / log_likelihood.size))
    grad_mu, grad_logvar = model.reparameterize.backward(grad_z)
    grad_mu_kl, grad_logvar_kl = model.kl.backward(np.full(kl.shape, 1.0 / kl.size))
    model.encoder.backward(grad_mu + grad_mu_kl, grad_logvar + grad_logvar_kl)
    return model.grads.flat.copy(), float((-log_likelihood.mean(axis=0) + kl).mean())


@pytest.mark.parametrize("batch_norm", [False, True])
def test_other_calls_between_forward_and_backward_leave_gradients_alone(batch_norm):
    rng = np.random.default_rng(8)
    model = tiny("vae", hidden=(5, 4), batch_norm=batch_norm)
    shift_biases(model, rng)
    x, eps = rng.random((6, 6)), rng.standard_normal((2, 6, 2))
    other_x, other_z = rng.random((3, 6)), rng.normal(size=(7, 2))

    def interleave():
        model.decode(other_z)
        model.encode(other_x)
        model.metrics(other_x, rng=1)
        model.elbo(other_x, rng=2, samples=3)
        model.log_importance_weights(other_x, rng=3, samples=4)
        model.sample(5, rng=4)
        model.sample(2, rng=5, mean=False)

    buffers = model.buffers.flat.copy()
    plain, loss = _hand_pass(model, x, eps)
    model.grads.flat[...] = 0.0
    interleaved, loss_interleaved = _hand_pass(model, x, eps, interleave)
    np.testing.assert_array_equal(interleaved, plain)
    assert loss_interleaved == loss
    np.testing.assert_array_equal(model.buffers.flat, buffers)
    # The hand pass is the model's own loss (batch norm in training mode in both).
    assert float(model.loss(x, eps=eps)) == pytest.approx(loss, rel=1e-13)
    _, grads = model.loss_and_grads(x, eps=eps)
    np.testing.assert_allclose(grads.flat, plain, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,options", [
    ("vae", dict(batch_norm=True)), ("iwae", dict(k=3)),
    ("cvae", dict(n_classes=3, batch_norm=True)),
    ("cvae-quadrant", dict(x_dim=16, image_shape=(4, 4), likelihood="bernoulli"))])
def test_loss_and_grads_unchanged_by_calls_in_between(name, options):
    rng = np.random.default_rng(9)
    first, second = (tiny(name, **options) for _ in range(2))
    images = (rng.random((5, first.image_dim if name == "cvae-quadrant" else 6)) > 0.5) * 1.0
    x, condition = first.inputs(images, rng.integers(0, 3, size=5))
    draws = first.k if first.objective == "iwae" else first.samples
    eps = [rng.standard_normal((draws, 5, 2)) for _ in range(2)]
    results = []
    for model, busy in ((first, False), (second, True)):
        losses, grads = [], []
        for index in range(2):
            loss, g = model.loss_and_grads(x, condition, eps=eps[index])
            losses.append(float(loss))
            grads.append(g.flat.copy())
            if busy and index == 0:
                model.decode(rng.normal(size=(4, 2)), condition[:4] if condition is not None
                             else None)
                model.encode(x[:3], condition[:3] if condition is not None else None)
                model.metrics(x, condition, rng=0)
                model.sample(3, rng=1, condition=condition[:3] if condition is not None
                             else None)
        results.append((losses, grads, model.buffers.flat.copy(), model.params.flat.copy()))
    (losses_a, grads_a, buffers_a, params_a), (losses_b, grads_b, buffers_b, params_b) = results
    assert losses_a == losses_b
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(buffers_a, buffers_b)
    np.testing.assert_array_equal(params_a, params_b)


# ----------------------------------------------------------------- batch norm
def test_batch_norm_training_mode_standardizes_with_batch_statistics():
    rng = np.random.default_rng(10)
    width = 4
    scale, shift = rng.normal(1.0, 0.5, size=width), rng.normal(size=width)
    running_mean, running_var = rng.normal(size=width), rng.uniform(0.5, 2.0, size=width)
    norm = nv.BatchNorm(scale, shift, np.zeros(width), np.zeros(width),
                        running_mean.copy(), running_var.copy(), training=True)
    x = rng.normal(3.0, 2.0, size=(50, width))
    y = norm.forward(x)
    standardized = (y - shift) / scale
    np.testing.assert_allclose(standardized.mean(axis=0), 0.0, atol=1e-12)
    variance = x.var(axis=0)
    np.testing.assert_allclose(standardized.var(axis=0), variance / (variance + 1e-5),
                               rtol=1e-12)
    assert np.all(np.abs(standardized.var(axis=0) - 1) < 1e-5)
    np.testing.assert_array_equal(norm.running_mean, running_mean)  # forward alone: unmoved
    norm.update_running_statistics()
    np.testing.assert_allclose(norm.running_mean, 0.9 * running_mean + 0.1 * x.mean(axis=0),
                               rtol=1e-13)
    np.testing.assert_allclose(norm.running_var,
                               0.9 * running_var + 0.1 * x.var(axis=0, ddof=1), rtol=1e-13)


def test_batch_norm_evaluation_mode_treats_examples_alone():
    rng = np.random.default_rng(11)
    width = 3
    norm = nv.BatchNorm(rng.normal(size=width), rng.normal(size=width), np.zeros(width),
                        np.zeros(width), rng.normal(size=width),
                        rng.uniform(0.5, 2.0, size=width), training=False)
    x = rng.normal(size=(7, width))
    batch = norm.forward(x)
    for i in range(len(x)):
        np.testing.assert_allclose(norm.forward(x[i:i + 1])[0], batch[i], rtol=1e-15)
    with pytest.raises(RuntimeError, match="training-mode"):
        norm.update_running_statistics()


def test_batch_norm_model_statistics_move_only_in_loss_and_grads():
    rng = np.random.default_rng(12)
    model = tiny("vae", hidden=(5, 4), batch_norm=True)
    shift_biases(model, rng)
    x, eps = rng.random((8, 6)), rng.standard_normal((1, 8, 2))
    # The first hidden layer's pre-activations, seen by its batch norm.
    model.encoder.forward(x)
    first = model.encoder.trunk.step_updates[0]
    np.testing.assert_allclose(first.x_hat.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(first.x_hat.var(axis=0), 1.0, atol=1e-3)
    before = model.buffers.flat.copy()
    model.loss(x, eps=eps)
    model.metrics(x, eps=eps)
    model.elbo(x, eps=eps)
    model.encode(x)
    np.testing.assert_array_equal(model.buffers.flat, before)
    model.loss_and_grads(x, eps=eps)
    assert not np.array_equal(model.buffers.flat, before)
    pre = x @ model.params["encoder.hidden0.W"] + model.params["encoder.hidden0.b"]
    np.testing.assert_allclose(model.buffers["encoder.hidden0.bn.running_mean"],
                               0.1 * pre.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.buffers["encoder.hidden0.bn.running_var"],
                               0.9 + 0.1 * pre.var(axis=0, ddof=1), rtol=1e-12)


def test_batch_norm_model_metrics_use_running_statistics():
    rng = np.random.default_rng(13)
    model = tiny("vae", hidden=(5, 4), batch_norm=True, likelihood="bernoulli")
    shift_biases(model, rng)
    for name, value in model.buffers.items():
        value[...] = (rng.uniform(0.3, 3.0, size=value.shape) if name.endswith("_var")
                      else rng.normal(size=value.shape))
    x = (rng.random((6, 6)) > 0.5).astype(float)
    eps = rng.standard_normal((1, 6, 2))
    metrics = model.metrics(x, eps=eps)
    for i in range(len(x)):   # with running statistics, an example is scored alone
        alone = model.metrics(x[i:i + 1], eps=eps[:, i:i + 1])
        for key in metrics:
            np.testing.assert_allclose(alone[key][0], metrics[key][i], rtol=1e-12)
    mu, _ = model.encode(x)
    np.testing.assert_allclose(model.encode(x[:1])[0][0], mu[0], rtol=1e-12)
    # The training loss uses batch statistics: the batch's loss is not the mean of
    # its pairs' losses (as it would be without batch norm).
    alone_loss = np.mean([float(model.loss(x[i:i + 2], eps=eps[:, i:i + 2]))
                          for i in (0, 2, 4)])
    assert abs(alone_loss - float(model.loss(x, eps=eps))) > 1e-6
    # ... and evaluation changes when the running statistics do.
    model.buffers["encoder.hidden0.bn.running_mean"][...] += 1.0
    assert np.abs(model.metrics(x, eps=eps)["elbo"] - metrics["elbo"]).max() > 1e-6


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize("beta", [-0.5, float("nan"), float("inf")])
def test_bad_beta_is_rejected(beta):
    with pytest.raises(ValueError, match="beta"):
        nv.VAE(x_dim=4, beta=beta)


@pytest.mark.parametrize("init_std", [0.0, -0.01])
def test_bad_init_std_is_rejected(init_std):
    with pytest.raises(ValueError, match="init_std"):
        nv.VAE(x_dim=4, init_std=init_std)


def test_validation_messages():
    with pytest.raises(ValueError, match="seed"):
        nv.VAE(x_dim=4, seed=-1)
    model = nv.VAE(x_dim=4, hidden=(3,), z_dim=2, likelihood="bernoulli")
    x = (np.random.default_rng(0).random((3, 4)) > 0.5).astype(np.float32)
    assert float(model.loss(x, rng=0)) == float(model.loss(x, rng=np.random.default_rng(0)))
    assert float(model.loss(x, rng=0)) != float(model.loss(x, rng=1))
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        model.loss(x, rng="x")
    with pytest.raises(ValueError, match="seed"):
        model.loss(x, rng=-3)
    with pytest.raises(ValueError, match="255"):
        model.loss(np.full((2, 4), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss(np.full((2, 4), 1.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss(np.full((2, 4), -0.1))
    with pytest.raises(ValueError, match="z_dim"):
        model.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="takes no condition"):
        model.loss(x, condition=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="beta"):
        nv.VAE(x_dim=4, objective="iwae", beta=2.0)
    with pytest.raises(ValueError, match="beta"):
        nv.IWAE(x_dim=4, beta=0.5)


def test_cvae_condition_validation():
    model = nv.CVAE(x_dim=4, n_classes=3, hidden=(3,), z_dim=2, likelihood="bernoulli")
    x = np.ones((2, 4), dtype=np.float32)
    assert np.isfinite(float(model.loss(x, np.array([0, 2]))))
    for bad in (np.array([0, 3]), np.array([-1, 1])):
        with pytest.raises(ValueError, match="0..2"):
            model.loss(x, bad)
    with pytest.raises(ValueError, match="needs a condition"):
        model.loss(x)
    with pytest.raises(ValueError, match="columns"):
        model.loss(x, np.ones((2, 4)))
    with pytest.raises(ValueError, match="integers"):
        model.loss(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="rows"):
        model.loss(x, np.array([0, 1, 2]))
    # int labels and their one-hot rows are the same condition
    one_hot = np.eye(3)[[0, 2]]
    assert float(model.loss(x, one_hot, rng=0)) == float(model.loss(x, np.array([0, 2]), rng=0))


# -------------------------------------------------------------------- registry
REGISTRY_OPTIONS = {
    "vae": dict(x_dim=6, hidden=(5, 4), decoder_hidden=(3,), batch_norm=True, beta=2.0,
                samples=2, likelihood="gaussian", weight_prior_std=1.0),
    "iwae": dict(x_dim=6, k=7, likelihood="gaussian-fixed", output_activation="identity",
                 decoder_variance=0.5, init="glorot"),
    "cvae": dict(x_dim=6, n_classes=4, activation="softplus", z_dim=3),
    "cvae-quadrant": dict(x_dim=20, image_shape=(4, 5), given="top-right", objective="iwae",
                          k=3, seed=9),
    "planar-flow": dict(x_dim=12, hidden=(6,), z_dim=3, flow_length=4, seed=2),
    "vade": dict(x_dim=12, hidden=(6,), z_dim=3, n_components=4, seed=4),
    "vq-vae": dict(x_dim=20, net="conv", image_shape=(1, 4, 5), channels=(3,), kernel_size=3,
                   code_dim=2, codebook_size=5, ema_decay=0.95, seed=3),
}


def test_registry_names_every_member():
    assert set(nv.models.names()) >= {"vae", "iwae", "cvae", "cvae-quadrant"}
    assert set(REGISTRY_OPTIONS) == set(nv.models.names())
    with pytest.raises(ValueError, match="Unknown model"):
        nv.models.create("gan", x_dim=4)


@pytest.mark.parametrize("name", sorted(REGISTRY_OPTIONS))
def test_config_rebuilds_an_identical_model(name):
    model = nv.models.create(name, **REGISTRY_OPTIONS[name])
    assert model.name == name and isinstance(model, nv.models.model_class(name))
    config = json.loads(json.dumps(model.config()))     # as a run's config.json holds it
    rebuilt = nv.models.create(name, **config)
    assert rebuilt.config() == model.config()
    assert rebuilt.params.layout == model.params.layout
    np.testing.assert_array_equal(rebuilt.params.flat, model.params.flat)
    np.testing.assert_array_equal(rebuilt.buffers.flat, model.buffers.flat)
    rng = np.random.default_rng(0)
    images = (rng.random((4, config["x_dim"])) > 0.5).astype(np.float32)
    x, condition = model.inputs(images, rng.integers(0, 4, size=4))
    assert float(rebuilt.loss(x, condition, rng=1)) == float(model.loss(x, condition, rng=1))


def test_create_vae_is_nv_vae_bit_for_bit():
    x = np.random.default_rng(0).random((5, 12)).astype(np.float32)
    created, direct = nv.models.create("vae", x_dim=12), nv.VAE(x_dim=12)
    assert type(created) is nv.VAE and created.config() == direct.config()
    np.testing.assert_array_equal(created.params.flat, direct.params.flat)
    loss_a, grads_a = created.loss_and_grads(x)
    grads_a = grads_a.flat.copy()
    loss_b, grads_b = direct.loss_and_grads(x)
    assert float(loss_a) == float(loss_b)
    np.testing.assert_array_equal(grads_a, grads_b.flat)
    # An AEVB run's config reads as before the family: no family-only options in it.
    assert not {"batch_norm", "objective", "k", "decoder_hidden"} & set(direct.config())


# ---------------------------------------------------------------- quadrant CVAE
@pytest.mark.parametrize("given", ["top-left", "top-right", "bottom-left", "bottom-right"])
@pytest.mark.parametrize("shape", [(4, 4), (5, 6), (28, 28)])
def test_quadrant_inputs_split_and_images_reassemble(given, shape):
    rows, cols = shape
    model = nv.QuadrantCVAE(x_dim=rows * cols, image_shape=shape, given=given, hidden=(3,),
                            z_dim=2)
    images = np.random.default_rng(0).random((3, rows * cols)).astype(np.float32)
    x, condition = model.inputs(images)
    grid = images.reshape(3, rows, cols)
    row_part = slice(0, rows // 2) if given.startswith("top") else slice(rows // 2, rows)
    col_part = slice(0, cols // 2) if given.endswith("left") else slice(cols // 2, cols)
    np.testing.assert_array_equal(condition, grid[:, row_part, col_part].reshape(3, -1))
    mask = np.zeros((rows, cols), dtype=bool)
    mask[row_part, col_part] = True
    np.testing.assert_array_equal(x, grid[:, ~mask])
    assert x.shape[1] + condition.shape[1] == rows * cols == model.image_dim
    assert (model.x_dim, model.condition_dim) == (x.shape[1], condition.shape[1])
    np.testing.assert_array_equal(model.images(x, condition), images)
    grey = model.images(x)
    np.testing.assert_array_equal(grey.reshape(3, rows, cols)[:, row_part, col_part], 0.5)
    np.testing.assert_array_equal(grey.reshape(3, rows, cols)[:, ~mask], grid[:, ~mask])
    assert model.sample(2, rng=0, condition=condition[:2]).shape == (2, x.shape[1])


def test_quadrant_prior_depends_on_the_given_quadrant():
    rng = np.random.default_rng(14)
    model = nv.QuadrantCVAE(x_dim=16, image_shape=(4, 4), hidden=(5,), z_dim=2,
                            dtype=np.float64, init="glorot")
    shift_biases(model, rng)
    x, condition = model.inputs((rng.random((2, 16)) > 0.5).astype(float))
    condition[1] = 1 - condition[0]
    draws = model.prior_sample(2, rng=0, condition=condition)
    np.testing.assert_allclose(model.prior_sample(2, rng=0, condition=condition[[0, 0]])[0],
                               draws[0], rtol=1e-14)
    assert not np.allclose(draws[0], model.prior_sample(2, rng=0, condition=condition[[1, 1]])[0])
    with pytest.raises(ValueError, match="image_shape"):
        nv.QuadrantCVAE(x_dim=15, image_shape=(4, 4))
    with pytest.raises(ValueError, match="quadrant"):
        nv.QuadrantCVAE(x_dim=16, image_shape=(4, 4), given="middle")


# ------------------------------------------------ the Python API (issue 17, item 9)
def test_quadrant_config_keeps_the_prior_network():
    model = nv.models.create("cvae-quadrant", x_dim=16, image_shape=(4, 4), hidden=(6,),
                             prior_hidden=(3, 2), dtype=np.float64)
    again = nv.models.create("cvae-quadrant", **model.config())
    assert again.params.layout == model.params.layout and again.prior_hidden == (3, 2)


def test_bad_arguments_are_one_clear_error():
    model = nv.VAE(6, hidden=(4,), z_dim=2, dtype=np.float64)
    x = np.full((3, 6), 0.5)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        model.loss_and_grads(x, samples=0)
    eps = np.zeros((3, 2))
    eps[1, 0] = np.nan
    with pytest.raises(ValueError, match="eps contains NaN"):
        model.loss_and_grads(x, eps=eps)
    listed = model.loss(x, eps=[[0.1, 0.2]] * 3)            # a list works like an array
    assert listed == model.loss(x, eps=np.array([[0.1, 0.2]] * 3))
    cvae = nv.models.create("cvae", x_dim=6, n_classes=3, hidden=(4,))
    one_hot = np.eye(3)[[0, 1, 2]]
    one_hot[0, 0] = np.nan
    with pytest.raises(ValueError, match="One-hot labels contain NaN"):
        cvae.loss(x.astype(np.float32), one_hot)
    quadrant = nv.models.create("cvae-quadrant", x_dim=16, image_shape=(4, 4), hidden=(5,))
    target, given = quadrant.inputs(np.full((2, 16), 0.5, dtype=np.float32))
    given[0, 0] = np.nan
    with pytest.raises(ValueError, match="condition .* contains NaN"):
        quadrant.loss(target, given)


@pytest.mark.parametrize("name,options", [
    ("vae", dict(batch_norm=True)), ("cvae", dict(n_classes=3)),
    ("vq-vae", dict(net="conv", image_shape=(1, 3, 2), channels=(2,), kernel_size=3,
                    code_dim=2, codebook_size=3, ema_decay=0.9))])
def test_models_pickle_and_deep_copy(name, options):
    import copy
    import pickle
    model = nv.models.create(name, x_dim=6, hidden=(4,), z_dim=None if name == "vq-vae" else 2,
                             dtype=np.float64, seed=3, **options)
    x = np.random.default_rng(0).random((4, 6))
    condition = np.array([0, 1, 2, 0]) if name == "cvae" else None
    eps = np.random.default_rng(1).standard_normal((1, 4, model.z_dim))
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert clone.loss(x, condition, eps=eps) == model.loss(x, condition, eps=eps)
        assert np.array_equal(clone.buffers.flat, model.buffers.flat)
        clone.params.flat[...] = 0          # its own buffer: the original is untouched
        assert np.any(model.params.flat != 0)
        assert all(np.shares_memory(value, clone.params.flat) for value in clone.params.values())
