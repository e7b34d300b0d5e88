"""The whole model family on a device backend: same numbers as NumPy from the same seed.

Two devices run the same comparison (``compare_training``):

* the strict CuPy stand-in of tests/strict_array.py (no GPU needed, always run): it
  fails on NumPy-only calls on device arrays, host arrays mixed into device
  arithmetic and accidental float32 -> float64 promotion;
* real CuPy, marked ``gpu``: skipped unless CuPy is installed and a CUDA GPU is
  present (CI has none); run with ``pytest -m gpu`` on a GPU machine.

Every registered model takes a training step (loss_and_grads, then an optimizer step)
on the device, and matches NumPy.
"""
import numpy as np
import pytest

import numpyvae as nv
from numpyvae import backend
from numpyvae.inference import refinement
from strict_array import DeviceArray, strict

backend.register_namespace("strict_array", strict)

# Every member of the family, in the configurations a training run uses.
FAMILY = {
    "vae-batchnorm": ("vae", dict(batch_norm=True, hidden=(7, 5), likelihood="gaussian",
                                  samples=2, weight_prior_std=1.0, weight_prior_scale=0.01)),
    "iwae": ("iwae", dict(k=4, likelihood="bernoulli", hidden=(7,))),
    "iwae-batchnorm": ("iwae", dict(k=3, likelihood="gaussian", batch_norm=True)),
    "cvae-labels": ("cvae", dict(n_classes=3, likelihood="bernoulli")),
    "cvae-one-hot-iwae": ("cvae", dict(n_classes=3, objective="iwae", k=3,
                                       likelihood="gaussian")),
    "cvae-quadrant": ("cvae-quadrant", dict(x_dim=16, image_shape=(4, 4), hidden=(6,))),
    "cvae-quadrant-batchnorm-iwae": ("cvae-quadrant", dict(
        x_dim=16, image_shape=(4, 4), batch_norm=True, objective="iwae", k=2)),
    "planar-flow": ("planar-flow", dict(flow_length=3, likelihood="bernoulli", samples=2)),
    "planar-flow-iwae": ("planar-flow", dict(flow_length=2, objective="iwae", k=3,
                                             likelihood="gaussian")),
    "vade": ("vade", dict(n_components=3, likelihood="bernoulli")),
    "vade-batchnorm-iwae": ("vade", dict(n_components=2, batch_norm=True, objective="iwae",
                                         k=2, likelihood="bernoulli")),
    "vq-vae": ("vq-vae", dict(z_dim=6, code_dim=3, codebook_size=4, likelihood="bernoulli")),
    "vq-vae-moving-average": ("vq-vae", dict(z_dim=4, code_dim=2, codebook_size=3,
                                             ema_decay=0.9, likelihood="gaussian")),
    "vae-conv-batchnorm": ("vae", dict(x_dim=35, net="conv", image_shape=(1, 7, 5),
                                       channels=(2, 3), kernel_size=3, batch_norm=True)),
    "vq-vae-conv": ("vq-vae", dict(x_dim=35, net="conv", image_shape=(1, 7, 5),
                                   channels=(2,), kernel_size=3, z_dim=None, code_dim=2,
                                   codebook_size=3)),
}


def build(name, options, dtype=np.float32):
    defaults = dict(x_dim=10, hidden=(7, 5), z_dim=3, seed=2, init="glorot", dtype=dtype)
    return nv.models.create(name, **dict(defaults, **options))


def batch(model, n, one_hot=False):
    """Host images in [0, 1] (0/1 for a Bernoulli decoder) and int labels."""
    rng = np.random.default_rng(0)
    images = rng.random((n, getattr(model, "image_dim", model.x_dim))).astype(model.dtype)
    if model.likelihood == "bernoulli":
        images = (images > 0.5).astype(model.dtype)
    labels = rng.integers(0, getattr(model, "n_classes", 1), size=n).astype(np.uint8)
    if one_hot:
        labels = np.eye(model.n_classes, dtype=model.dtype)[labels]
    return images, labels


def compare_training(device_module, case, steps=3, optimizer="adam", dtype=np.float32,
                     rtol=1e-5, atol=1e-7):
    """Train a NumPy model and a device model side by side for a few steps, as
    numpyvae.train does (whole images and labels moved to the device, split there by
    ``model.inputs``); their losses, gradients, parameters and batch norm statistics
    agree. Returns the device model and its batch (x, condition) for more checks."""
    name, options = FAMILY[case]
    backend.set_backend("numpy")
    reference = build(name, options, dtype)
    backend.set_backend(device_module)
    device = build(name, options, dtype)
    assert isinstance(device.params.flat, device_module.ndarray)
    np.testing.assert_array_equal(backend.to_numpy(device.params.flat), reference.params.flat)
    initial_buffers = reference.buffers.flat.copy()

    images, labels = batch(reference, 8, one_hot="one-hot" in case)
    x_host, condition_host = reference.inputs(images, labels)
    x, condition = device.inputs(backend.to_device(images, device_module),
                                 backend.to_device(labels, device_module))
    assert isinstance(x, device_module.ndarray)
    optimizers = [nv.optim.OPTIMIZERS[optimizer](lr=0.01) for _ in range(2)]
    rngs = [np.random.default_rng(3), np.random.default_rng(3)]
    for _ in range(steps):
        loss_reference, grads_reference = reference.loss_and_grads(x_host, condition_host,
                                                                   rng=rngs[0])
        optimizers[0].step(reference.params, grads_reference)
        loss_device, grads_device = device.loss_and_grads(x, condition, rng=rngs[1])
        optimizers[1].step(device.params, grads_device)
        assert isinstance(loss_device, device_module.ndarray)
        assert loss_device.dtype == dtype and grads_device.flat.dtype == dtype
        np.testing.assert_allclose(float(loss_device), float(loss_reference), rtol=rtol)
        np.testing.assert_allclose(backend.to_numpy(grads_device.flat), grads_reference.flat,
                                   rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(device.params.flat), reference.params.flat,
                               rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(device.buffers.flat), reference.buffers.flat,
                               rtol=rtol, atol=atol)
    if device.batch_norm:   # the running statistics moved, on both
        assert not np.array_equal(reference.buffers.flat, initial_buffers)
    return device, reference, (x, condition), (x_host, condition_host)


# -------------------------------------------------------- the strict stand-in
@pytest.fixture
def strict_backend():
    backend.set_backend(strict)
    yield strict
    backend.set_backend("numpy")


def test_family_covers_every_registered_model():
    assert {name for name, _ in FAMILY.values()} == set(nv.models.names())
    assert any(name == "vae" and options.get("batch_norm") for name, options in FAMILY.values())


@pytest.mark.parametrize("case", sorted(FAMILY))
def test_training_step_matches_numpy_on_strict_backend(strict_backend, case):
    device, reference, (x, condition), (x_host, condition_host) = compare_training(strict, case)
    # Evaluation and generation on the device too, with the same numbers.
    metrics = device.metrics(x, condition, rng=np.random.default_rng(4))
    expected = reference.metrics(x_host, condition_host, rng=np.random.default_rng(4))
    assert set(metrics) == set(expected)
    for key, value in metrics.items():
        assert isinstance(value, DeviceArray) and value.dtype == np.float32, key
        np.testing.assert_allclose(value.get(), expected[key], rtol=1e-5, atol=1e-5)
    weights = device.log_importance_weights(x, condition, rng=np.random.default_rng(5),
                                            samples=4)
    assert isinstance(weights, DeviceArray) and weights.shape == (4, 8)
    mu = device.encode(x, condition)[0]
    assert isinstance(mu, DeviceArray) and mu.dtype == np.float32
    point = device.latent_point(x, condition)
    assert isinstance(point, DeviceArray) and point.shape == mu.shape
    decoded = device.decode(point, condition)
    assert isinstance(decoded, DeviceArray) and decoded.shape == x.shape
    assert device.images(decoded, condition).shape[1] == getattr(device, "image_dim",
                                                                 device.x_dim)
    sample_condition = None if condition is None else condition[:4]
    draws = device.sample(4, np.random.default_rng(6), condition=sample_condition)
    assert isinstance(draws, DeviceArray) and draws.shape == (4, device.x_dim)
    if device.condition_kind == "label":   # host labels, as figures pass them
        host_labels = np.arange(4) % device.n_classes
        draws = device.sample(4, np.random.default_rng(6), condition=host_labels)
        assert draws.shape == (4, device.x_dim)
    # Walks through the latent space (numpyvae.latent), on the device as on the host.
    held = None if condition is None else condition[:1]
    held_host = None if condition_host is None else condition_host[:1]
    path = nv.interpolate(device, x[0], x[1], 4, held)
    assert isinstance(path, DeviceArray) and path.shape == (4, device.x_dim)
    np.testing.assert_allclose(path.get(), nv.interpolate(reference, x_host[0], x_host[1], 4,
                                                          held_host), rtol=1e-4, atol=1e-5)
    if not device.discrete_latent:
        # Refinement of q (numpyvae.inference.refinement), and q* as the proposal.
        refined, history = refinement.refine(
            device, x, refinement.encoder_start(device, x, condition), 3,
            np.random.default_rng(7), condition, lr=0.01)
        expected, expected_history = refinement.refine(
            reference, x_host, refinement.encoder_start(reference, x_host, condition_host), 3,
            np.random.default_rng(7), condition_host, lr=0.01)
        np.testing.assert_allclose(history, expected_history, rtol=1e-5)
        for name, value in refined.items():
            assert isinstance(value, DeviceArray) and value.dtype == np.float32, name
            np.testing.assert_allclose(value.get(), expected[name], rtol=1e-4, atol=1e-5)
        weights = device.log_importance_weights(x, condition, rng=np.random.default_rng(8),
                                                samples=2, local=refined)
        assert isinstance(weights, DeviceArray) and weights.shape == (2, 8)
        row = nv.traverse(device, x[0], 1, [-1.0, 0.0, 2.0], held)
        assert isinstance(row, DeviceArray) and row.shape == (3, device.x_dim)
        np.testing.assert_allclose(row.get(), nv.traverse(reference, x_host[0], 1, [-1.0, 0.0, 2.0],
                                                          held_host), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("likelihood", [
    "bernoulli", "gaussian",
    "gaussian-fixed",
])
def test_drawn_samples_keep_the_model_dtype_on_strict_backend(strict_backend, likelihood):
    model = build("vae", dict(likelihood=likelihood))
    draws = model.sample(3, np.random.default_rng(0), mean=False)
    assert isinstance(draws, DeviceArray) and draws.dtype == np.float32


# ------------------------------------------------------------------ real CuPy
@pytest.fixture
def cupy():
    module = pytest.importorskip("cupy", reason="CuPy is not installed (pip install numpyvae[gpu])")
    try:
        if module.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy is installed but no CUDA GPU is present")
    except Exception as error:  # no driver
        pytest.skip(f"CuPy is installed but CUDA is not usable: {error}")
    backend.set_backend("cupy")
    yield module
    backend.set_backend("numpy")


@pytest.mark.gpu
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-fixed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_matches_numpy(cupy, likelihood, dtype):
    options = dict(x_dim=30, hidden=(20,), z_dim=4, likelihood=likelihood, seed=1,
                   dtype=dtype, weight_prior_std=1.0, weight_prior_scale=0.01)
    backend.set_backend("numpy")
    reference = nv.VAE(**options)
    backend.set_backend("cupy")
    device = nv.VAE(**options)
    x = np.random.default_rng(0).random((16, 30)).astype(dtype)
    if likelihood == "bernoulli":
        x = (x > 0.5).astype(dtype)
    optimizers = [nv.optim.Adagrad(lr=0.02), nv.optim.Adagrad(lr=0.02)]
    rngs = [np.random.default_rng(5), np.random.default_rng(5)]
    x_device = cupy.asarray(x)
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    for _ in range(5):
        loss_reference, grads = reference.loss_and_grads(x, rng=rngs[0])
        optimizers[0].step(reference.params, grads)
        loss_device, grads_device = device.loss_and_grads(x_device, rng=rngs[1])
        optimizers[1].step(device.params, grads_device)
        assert isinstance(loss_device, cupy.ndarray)
        np.testing.assert_allclose(float(loss_device), float(loss_reference), rtol=tolerance)
    np.testing.assert_allclose(backend.to_numpy(device.params.flat), reference.params.flat,
                               rtol=tolerance, atol=tolerance)
    host = device.params.to_numpy()
    assert all(isinstance(value, np.ndarray) for value in host.values())


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(FAMILY))
def test_cupy_family_training_step_matches_numpy(cupy, case):
    """float64, so that the comparison is of the code, not of float32 summation order."""
    compare_training(cupy, case, optimizer="adagrad", dtype=np.float64, rtol=1e-9, atol=1e-11)


@pytest.mark.gpu
def test_cupy_importance_weights_and_samples(cupy):
    model = nv.VAE(x_dim=30, hidden=(20,), z_dim=4, likelihood="bernoulli", seed=1)
    x = cupy.asarray((np.random.default_rng(0).random((8, 30)) > 0.5).astype(np.float32))
    weights = model.log_importance_weights(x, rng=np.random.default_rng(0), samples=50)
    assert weights.shape == (50, 8) and isinstance(weights, cupy.ndarray)
    assert model.sample(5, np.random.default_rng(0)).shape == (5, 30)
