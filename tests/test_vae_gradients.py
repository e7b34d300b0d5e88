"""The whole model's loss_and_grads against central differences, in float64, for
every likelihood x activation, 0/1/2 hidden layers, L = 1 and L > 1, beta != 1 and
the weight prior on."""
import itertools

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.gradcheck import check_model_gradients

TOLERANCE = 1e-6
LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-fixed"]
ACTIVATIONS = ["tanh", "sigmoid", "relu", "softplus", "elu", "identity"]


def make_data(likelihood, n, x_dim, rng):
    x = rng.random((n, x_dim))
    return (x > 0.5).astype(float) if likelihood == "bernoulli" else x


CASES = [
    # (likelihood, activation, hidden, samples, beta, prior, output activation)
    (likelihood, activation, hidden, 1, 1.0, None, "sigmoid")
    for likelihood, activation, hidden in itertools.product(
        LIKELIHOODS, ACTIVATIONS, [(), (4,), (4, 3)])
] + [
    (likelihood, "tanh", (4,), 3, 0.5, (0.7, 0.05), output)
    for likelihood in LIKELIHOODS for output in ["sigmoid", "identity"]
] + [
    ("gaussian", "softplus", (4, 3), 2, 2.5, (1.3, 1.0), "identity"),
    ("bernoulli", "relu", (4, 3), 4, 0.0, (0.2, 0.01), "sigmoid"),
]


@pytest.mark.parametrize("likelihood,activation,hidden,samples,beta,prior,output", CASES)
def test_loss_and_grads_matches_finite_differences(likelihood, activation, hidden, samples,
                                                   beta, prior, output):
    rng = np.random.default_rng(7)
    prior_std, prior_scale = prior if prior else (None, 1.0)
    model = nv.VAE(x_dim=6, hidden=hidden, z_dim=2, likelihood=likelihood,
                   activation=activation, output_activation=output, seed=5,
                   dtype=np.float64, init="glorot", beta=beta, decoder_variance=0.3,
                   weight_prior_std=prior_std, weight_prior_scale=prior_scale)
    # Biases away from zero so every path (and relu's kink) is exercised.
    for name, value in model.params.items():
        if name.endswith(".b"):
            value[...] = rng.normal(0.0, 0.5, size=value.shape)
    x = make_data(likelihood, 3, 6, rng)
    eps = rng.standard_normal((samples, 3, 2)) if samples > 1 else rng.standard_normal((3, 2))
    errors = check_model_gradients(model, x, eps)
    assert set(errors) == set(model.params)
    assert max(errors.values()) < TOLERANCE, errors


def test_gradient_check_catches_a_wrong_gradient(monkeypatch):
    """The checker itself can fail: break one backward formula and it notices."""
    model = nv.VAE(x_dim=4, hidden=(3,), z_dim=2, likelihood="bernoulli",
                   dtype=np.float64, init="glorot")
    rng = np.random.default_rng(0)
    x, eps = make_data("bernoulli", 2, 4, rng), rng.standard_normal((2, 2))
    original = nv.KLStandardNormal.backward

    def wrong_kl_backward(self, grad):
        grad_mu, grad_logvar = original(self, grad)
        return grad_mu, grad_logvar * 2.0  # the classic variance-for-std slip

    # Every pass builds its own pieces, so the slip goes into the class they come from.
    monkeypatch.setattr(nv.KLStandardNormal, "backward", wrong_kl_backward)
    errors = check_model_gradients(model, x, eps)
    assert errors["encoder.logvar.W"] > 1e-3


def test_float32_gradients_agree_with_float64():
    """The float32 training path computes the same gradient, to float32 precision."""
    rng = np.random.default_rng(3)
    x = rng.random((5, 8))
    eps = rng.standard_normal((5, 3))
    grads = {}
    for dtype in (np.float32, np.float64):
        model = nv.VAE(x_dim=8, hidden=(6,), z_dim=3, seed=11, dtype=dtype, init="glorot")
        loss, g = model.loss_and_grads(x, eps=eps)
        assert loss.dtype == dtype
        assert all(value.dtype == dtype for value in g.values())
        grads[dtype] = {k: np.array(v, dtype=np.float64) for k, v in g.items()}
    for name in grads[np.float64]:
        np.testing.assert_allclose(grads[np.float32][name], grads[np.float64][name],
                                   rtol=2e-3, atol=2e-5 * np.abs(grads[np.float64][name]).max())
