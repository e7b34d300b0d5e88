"""The backend-generic code run against a strict stand-in for CuPy (no GPU needed),
and the backend switch's errors. The real CuPy tests are in test_cupy_backend.py."""
import os
import subprocess
import sys

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import backend
from strict_array import DeviceArray, StrictnessError, strict

backend.register_namespace("strict_array", strict)


@pytest.fixture
def strict_backend():
    backend.set_backend(strict)
    yield strict
    backend.set_backend("numpy")


def build(likelihood, **options):
    return nv.VAE(x_dim=10, hidden=(7, 5), z_dim=3, likelihood=likelihood, seed=2,
                  init="glorot", **options)


def data(likelihood):
    x = np.random.default_rng(0).random((6, 10), dtype=np.float32)
    return (x > 0.5).astype(np.float32) if likelihood == "bernoulli" else x


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-fixed"])
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
def test_training_steps_identical_on_strict_backend(strict_backend, likelihood, optimizer):
    backend.set_backend("numpy")
    reference = build(likelihood, weight_prior_std=1.0, weight_prior_scale=0.01, samples=2)
    backend.set_backend(strict)
    device = build(likelihood, weight_prior_std=1.0, weight_prior_scale=0.01, samples=2)
    assert isinstance(device.params.flat, DeviceArray)
    np.testing.assert_array_equal(device.params.flat.get(), reference.params.flat)

    x = data(likelihood)
    optimizers = [nv.optim.OPTIMIZERS[optimizer](lr=0.01) for _ in range(2)]
    rng_reference, rng_device = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(3):
        loss_reference, grads_reference = reference.loss_and_grads(x, rng=rng_reference)
        optimizers[0].step(reference.params, grads_reference)
        loss_device, grads_device = device.loss_and_grads(strict.asarray(x), rng=rng_device)
        optimizers[1].step(device.params, grads_device)
        assert isinstance(loss_device, DeviceArray) and loss_device.dtype == np.float32
        np.testing.assert_allclose(float(loss_device), float(loss_reference), rtol=1e-6)
        np.testing.assert_allclose(grads_device.flat.get(), grads_reference.flat,
                                   rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(device.params.flat.get(), reference.params.flat, rtol=1e-5, atol=1e-7)
    for name, value in optimizers[1].state_dict().items():
        assert isinstance(value, np.ndarray), name   # checkpoints hold host arrays


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_inference_api_on_strict_backend(strict_backend, likelihood):
    model = build(likelihood)
    x = strict.asarray(data(likelihood))
    mu, logvar = model.encode(x)
    assert isinstance(mu, DeviceArray) and mu.dtype == np.float32
    assert model.decode(mu).shape == (6, 10)
    assert model.sample(4, np.random.default_rng(0)).shape == (4, 10)
    assert model.sample(4, np.random.default_rng(0), mean=False).shape == (4, 10)
    parts = model.elbo(x, rng=np.random.default_rng(1))
    assert all(isinstance(part, DeviceArray) for part in parts)
    assert model.log_importance_weights(x, rng=np.random.default_rng(1), samples=5).shape == (5, 6)
    host = model.params.to_numpy()
    assert all(isinstance(v, np.ndarray) for v in host.values())
    model.params.assign(host)


def test_host_batches_are_checked_before_moving(strict_backend):
    model = build("gaussian")
    bad = data("gaussian")
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.loss_and_grads(bad)


def test_the_double_fails_like_cupy():
    device = strict.asarray(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(device)
    with pytest.raises(TypeError, match="numpy.exp"):
        np.exp(device)
    with pytest.raises(TypeError, match="numpy.sum"):
        np.sum(device)
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        device + np.ones(3, dtype=np.float32)
    with pytest.raises(StrictnessError, match="promoted float32"):
        device * np.float64(2.0)   # a NumPy float64 scalar is not a weak Python float
    with pytest.raises(StrictnessError, match="promoted float32"):
        strict.multiply(device, np.float64(2.0))
    assert (device * 2.0).dtype == np.float32
    with pytest.raises(AttributeError):
        strict.fft_shift  # noqa: B018 -- a NumPy-only function is missing, as in CuPy
    assert float(device.sum()) == 3.0


def test_unknown_backend_and_missing_cupy():
    with pytest.raises(backend.BackendError, match="Unknown backend 'tpu'"):
        backend.set_backend("tpu")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(backend.BackendError, match="CuPy is not installed"):
            backend.set_backend("cupy")
    assert backend.get_backend() is np


def test_environment_variable_selects_backend():
    script = "import numpyvae.backend as b; print(b.backend_name())"
    environment = dict(os.environ, NUMPYVAE_BACKEND="numpy")
    result = subprocess.run([sys.executable, "-c", script], env=environment,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "numpy"
    environment["NUMPYVAE_BACKEND"] = "tpu"
    result = subprocess.run([sys.executable, "-c", script], env=environment,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Unknown backend 'tpu'" in result.stderr
