"""VQ-VAE's gradients, which are partly an estimator's by design.

The decoder's gradient is the loss's derivative (the registry checks it against central
differences, tests/test_gradients_registry.py). Here: the codebook's gradient is the
derivative of the codebook loss alone, with the assignment held fixed (and shown to
stay fixed under the differences); the encoder's gradient is exactly the
straight-through formula; the KL against the uniform prior is M log K; the moving-average
update follows its formula.
"""
import math

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import quantize
from numpyvae.gradcheck import check_gradients
from numpyvae.quantize import code_usage

CONV = dict(net="conv", image_shape=(1, 7, 6), channels=(2, 3), kernel_size=3, stride=2,
            padding=1, z_dim=None)
NETS = {"mlp": dict(hidden=(5,), z_dim=6), "conv": CONV}


def vq_model(net, seed=0, **options):
    rng = np.random.default_rng(seed)
    options = dict(dict(codebook_size=4, code_dim=3, likelihood="bernoulli", init="glorot",
                        dtype=np.float64, seed=seed, commitment=0.25), **NETS[net], **options)
    model = nv.models.create("vq-vae", x_dim=42, **options)
    for name, value in model.params.items():
        if name.endswith(".b") or name.endswith(".shift"):
            value[...] = rng.normal(0.0, 0.3, size=value.shape)
    x = (rng.random((5, 42)) > 0.5).astype(float)
    model.initialize_from_data(x, rng=rng)      # every code near some z_e: all in use
    model.codebook[...] += rng.normal(0.0, 0.05, size=model.codebook.shape)
    return model, x


@pytest.mark.parametrize("net", NETS)
def test_encoder_gradient_is_the_straight_through_formula(net):
    """dL/dz_e = dL/dz_q + commitment * 2 (z_e - z_q) / N, pushed through the encoder."""
    model, x = vq_model(net)
    n = x.shape[0]
    _, grads = model.loss_and_grads(x)
    model_grads = {k: v.copy() for k, v in grads.items() if k.startswith("encoder.")}

    pieces = model._pieces(training=True)
    (z_e,) = pieces.encoder.forward(x)
    codes = quantize.nearest_codes(z_e.reshape(-1, model.code_dim), model.codebook)
    z_q = model.codebook[codes].reshape(z_e.shape)
    pieces.decoder.log_likelihood(x, z_q[None])
    grad_z_q = pieces.decoder.backward(np.full((1, n), -1.0 / n))[0]     # d(-mean log p)/dz_q
    grad_z_e = grad_z_q + model.commitment * 2.0 * (z_e - z_q) / n
    pieces.encoder.backward(grad_z_e, need_input_grad=False)
    for name, value in model_grads.items():
        np.testing.assert_allclose(value, model.grads[name], rtol=1e-12, atol=1e-14,
                                   err_msg=name)


@pytest.mark.parametrize("net", NETS)
def test_codebook_gradient_is_the_codebook_loss_derivative(net, monkeypatch):
    """With the assignment fixed, dL/de is the derivative of mean_n ||sg(z_e) - e||^2;
    every evaluation of the differences chose the same codes."""
    model, x = vq_model(net)
    _, grads = model.loss_and_grads(x)
    analytic = {"codebook": grads["quantizer.codebook"].copy()}
    (z_e,) = model.encode(x)
    vectors = z_e.reshape(-1, model.code_dim)
    codes_seen = []
    nearest = quantize.nearest_codes

    def recording(rows, codebook):
        codes = nearest(rows, codebook)
        codes_seen.append(codes.copy())
        return codes
    monkeypatch.setattr(quantize, "nearest_codes", recording)

    def codebook_loss():
        codes = quantize.nearest_codes(vectors, model.codebook)
        return ((vectors - model.codebook[codes]) ** 2).sum() / x.shape[0]

    base = nearest(vectors, model.codebook)
    errors = check_gradients(codebook_loss, {"codebook": model.codebook}, analytic)
    assert errors["codebook"] < 1e-6, errors
    assert len(codes_seen) >= 2 * model.codebook.size    # two evaluations per entry
    assert all(np.array_equal(codes, base) for codes in codes_seen), "a code switched"
    assert len(np.unique(base)) > 1   # several codes in use: the test can see a mix-up


def test_gradient_of_the_loss_differs_from_straight_through():
    """The check above can fail: the loss's own derivative with respect to the codebook
    (through z_q into the decoder) is not what straight-through training uses."""
    model, x = vq_model("mlp")
    _, grads = model.loss_and_grads(x)
    analytic = {"codebook": grads["quantizer.codebook"].copy()}
    errors = check_gradients(lambda: model.loss(x), {"codebook": model.codebook}, analytic)
    assert errors["codebook"] > 1e-3


@pytest.mark.parametrize("net", NETS)
def test_kl_is_codes_times_log_codebook_size(net):
    model, x = vq_model(net)
    metrics = model.metrics(x)
    bits = model.code_count * math.log(model.codebook_size)
    np.testing.assert_allclose(metrics["kl"], bits, rtol=1e-14)
    np.testing.assert_allclose(metrics["elbo"], metrics["log_likelihood"] - bits, rtol=1e-12)
    # log p(x) estimates collapse onto the bound: q is one code with probability 1.
    weights = model.log_importance_weights(x, samples=3)
    np.testing.assert_allclose(weights, np.broadcast_to(metrics["elbo"], weights.shape),
                               rtol=1e-12)


def test_conv_grid_decides_the_codes():
    model, _ = vq_model("conv")
    # 7x6 -> 4x3 -> 2x2: four positions of three-dimensional codes.
    assert (model.code_count, model.z_dim) == (4, 12)
    assert model.params["encoder.z_e.W"].shape == (3, 3, 1, 1)
    with pytest.raises(ValueError, match="2x2 grid"):
        nv.models.create("vq-vae", x_dim=42, **dict(CONV, z_dim=10), code_dim=3)
    with pytest.raises(ValueError, match="whole number"):
        nv.models.create("vq-vae", x_dim=42, z_dim=7, code_dim=3)
    with pytest.raises(ValueError, match="own objective"):
        nv.models.create("vq-vae", x_dim=42, objective="iwae", k=2)


def test_moving_average_update_follows_its_formula():
    decay = 0.9
    model, x = vq_model("mlp", ema_decay=decay)
    assert "quantizer.codebook" not in model.params     # not trained by gradient
    count = model.buffers["quantizer.ema_count"].copy()
    total = model.buffers["quantizer.ema_sum"].copy()
    (z_e,) = model.encode(x)
    vectors = z_e.reshape(-1, model.code_dim)
    codes = quantize.nearest_codes(vectors, model.codebook)
    one_hot = np.eye(model.codebook_size)[codes]
    model.loss_and_grads(x)
    expected_count = decay * count + (1 - decay) * one_hot.sum(axis=0)
    expected_total = decay * total + (1 - decay) * one_hot.T @ vectors
    np.testing.assert_allclose(model.buffers["quantizer.ema_count"], expected_count, rtol=1e-13)
    np.testing.assert_allclose(model.buffers["quantizer.ema_sum"], expected_total, rtol=1e-13)
    np.testing.assert_allclose(model.codebook, expected_total / expected_count[:, None],
                               rtol=1e-13)
    before = model.codebook.copy()
    model.loss(x)
    model.metrics(x)
    assert np.array_equal(model.codebook, before)     # only a training step moves it


def test_initialize_from_data_takes_encoder_vectors():
    model, x = vq_model("conv", codebook_size=6)
    model.initialize_from_data(x, rng=np.random.default_rng(3))
    (z_e,) = model.encode(x)
    vectors = z_e.reshape(-1, model.code_dim)
    for code in model.codebook:
        assert np.abs(vectors - code).sum(axis=1).min() == 0


def test_code_usage():
    counts, perplexity, dead = code_usage(np.arange(8) % 4, 6)
    assert counts.tolist() == [2, 2, 2, 2, 0, 0] and dead == 2
    assert perplexity == pytest.approx(4.0, rel=1e-12)
    assert code_usage(np.zeros(5, dtype=int), 3)[1:] == (1.0, 2)


def test_samples_and_codes_round_trip():
    model, x = vq_model("mlp")
    codes = model.codes(x)
    assert codes.shape == (5, model.code_count)
    np.testing.assert_allclose(model.decode_codes(codes),
                               model.decode(model.latent_point(x)), rtol=1e-12)
    samples = model.sample(3, rng=np.random.default_rng(1))
    assert samples.shape == (3, 42) and np.all((samples >= 0) & (samples <= 1))
