"""The public API: shapes, dtypes, reproducibility, clear errors on bad input, and a
short training run whose loss goes down."""
import numpy as np
import pytest

import numpyvae as nv


@pytest.fixture
def model():
    return nv.VAE(x_dim=12, hidden=(8,), z_dim=3, likelihood="bernoulli", seed=0)


def test_shapes_dtypes_and_parts(model):
    x = (np.random.default_rng(0).random((5, 12)) > 0.5)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3) and mu.dtype == np.float32
    assert model.decode(mu).shape == (5, 12)
    assert model.sample(4, np.random.default_rng(1)).shape == (4, 12)
    draws = model.sample(4, np.random.default_rng(1), mean=False)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    parts = model.elbo(x, rng=np.random.default_rng(2), samples=3)
    assert parts.elbo.shape == parts.log_likelihood.shape == parts.kl.shape == (5,)
    np.testing.assert_allclose(parts.elbo, parts.log_likelihood - parts.kl, rtol=1e-6)
    assert np.all(parts.kl >= 0)
    assert set(model.params) == set(model.grads)
    assert model.params.flat.size == sum(v.size for v in model.params.values())


def test_params_are_views_of_one_buffer(model):
    model.params.flat[:] = 0.5
    assert all(np.all(v == 0.5) for v in model.params.values())
    with pytest.raises(TypeError, match="write into it"):
        model.params["encoder.mu.W"] = np.zeros((8, 3))


def test_same_seed_same_model_same_noise():
    x = np.random.default_rng(0).random((4, 12))
    first = nv.VAE(x_dim=12, hidden=(8,), z_dim=3, seed=4)
    second = nv.VAE(x_dim=12, hidden=(8,), z_dim=3, seed=4)
    np.testing.assert_array_equal(first.params.flat, second.params.flat)
    assert first.loss(x) == second.loss(x)
    assert first.loss(x, rng=np.random.default_rng(9)) == second.loss(x, rng=np.random.default_rng(9))
    third = nv.VAE(x_dim=12, hidden=(8,), z_dim=3, seed=5)
    assert not np.array_equal(first.params.flat, third.params.flat)


def test_initialization_statistics():
    normal = nv.VAE(x_dim=300, hidden=(200,), z_dim=10, seed=0)
    w = normal.params["encoder.hidden0.W"]
    assert abs(w.std() - 0.01) < 0.0005 and abs(w.mean()) < 0.0005
    assert np.all(normal.params["encoder.hidden0.b"] == 0)
    glorot = nv.VAE(x_dim=300, hidden=(200,), z_dim=10, seed=0, init="glorot")
    w = glorot.params["encoder.hidden0.W"]
    limit = np.sqrt(6 / 500)
    assert w.max() <= limit and w.min() >= -limit and w.max() > 0.95 * limit


def test_weight_prior_adds_penalty_and_gradient():
    x = np.random.default_rng(0).random((3, 12))
    eps = np.random.default_rng(1).standard_normal((3, 3))
    plain = nv.VAE(x_dim=12, hidden=(8,), z_dim=3, seed=0, dtype=np.float64)
    prior = nv.VAE(x_dim=12, hidden=(8,), z_dim=3, seed=0, dtype=np.float64,
                   weight_prior_std=0.5, weight_prior_scale=0.01)
    loss_plain, grads_plain = plain.loss_and_grads(x, eps=eps)
    grads_plain = grads_plain.flat.copy()
    loss_prior, grads_prior = prior.loss_and_grads(x, eps=eps)
    theta = plain.params.flat
    assert loss_prior - loss_plain == pytest.approx(0.01 * (theta @ theta) / (2 * 0.25), rel=1e-12)
    np.testing.assert_allclose(grads_prior.flat - grads_plain, 0.01 * theta / 0.25, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-fixed"])
def test_training_on_random_data_lowers_the_loss(likelihood):
    rng = np.random.default_rng(0)
    prototypes = rng.random((4, 20))
    data = prototypes[rng.integers(0, 4, size=400)] + 0.05 * rng.normal(size=(400, 20))
    data = np.clip(data, 0, 1)
    if likelihood == "bernoulli":
        data = (data > 0.5).astype(np.float32)
    model = nv.VAE(x_dim=20, hidden=(16,), z_dim=2, likelihood=likelihood, seed=0,
                   decoder_variance=0.01)
    optimizer = nv.optim.Adam(lr=0.01)
    noise = np.random.default_rng(1)
    losses = []
    for step in range(300):
        batch = data[(step % 8) * 50:(step % 8 + 1) * 50]
        loss, grads = model.loss_and_grads(batch, rng=noise)
        optimizer.step(model.params, grads)
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 2.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(likelihood="poisson"), "Unknown likelihood"),
    (dict(activation="gelu"), "Unknown activation"),
    (dict(output_activation="softmax"), "Unknown activation"),
    (dict(z_dim=0), "z_dim must be a positive integer"),
    (dict(x_dim=-3), "x_dim must be a positive integer"),
    (dict(hidden=(10, 0)), "hidden width must be a positive integer"),
    (dict(samples=0), "samples"),
    (dict(dtype=np.int32), "dtype must be float32 or float64"),
    (dict(weight_prior_std=0.0), "weight_prior_std"),
    (dict(likelihood="gaussian-fixed", decoder_variance=-1.0), "variance must be > 0"),
])
def test_bad_construction_arguments(kwargs, message):
    arguments = dict(x_dim=12, hidden=(8,), z_dim=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nv.VAE(**arguments)


def test_bad_inputs(model):
    good = np.zeros((2, 12))
    with pytest.raises(ValueError, match=r"shape \(batch, 12\)"):
        model.loss_and_grads(np.zeros((2, 11)))
    with pytest.raises(ValueError, match=r"shape \(batch, 12\)"):
        model.loss_and_grads(np.zeros(12))
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.loss_and_grads(bad)
    with pytest.raises(ValueError, match=r"eps must have shape"):
        model.loss_and_grads(good, eps=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"eps must have shape"):
        model.elbo(good, eps=np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="empty"):
        model.elbo(np.zeros((0, 12)))


def test_assign_rejects_other_architectures(model):
    other = nv.VAE(x_dim=12, hidden=(9,), z_dim=3, likelihood="bernoulli")
    with pytest.raises(ValueError, match="architecture differs"):
        model.params.assign(other.params)
    with pytest.raises(ValueError, match="names do not match"):
        model.params.assign({"encoder.mu.W": np.zeros((8, 3))})
