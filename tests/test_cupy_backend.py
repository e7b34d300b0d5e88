"""The CuPy backend on a real GPU: same numbers as NumPy from the same seed.

Skipped unless CuPy is installed and a CUDA GPU is present (CI has none); run with
``pytest -m gpu`` on a GPU machine.
"""
import numpy as np
import pytest

import numpyvae as nv
from numpyvae import backend

pytestmark = pytest.mark.gpu


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


def test_cupy_importance_weights_and_samples(cupy):
    model = nv.VAE(x_dim=30, hidden=(20,), z_dim=4, likelihood="bernoulli", seed=1)
    x = cupy.asarray((np.random.default_rng(0).random((8, 30)) > 0.5).astype(np.float32))
    weights = model.log_importance_weights(x, rng=np.random.default_rng(0), samples=50)
    assert weights.shape == (50, 8) and isinstance(weights, cupy.ndarray)
    assert model.sample(5, np.random.default_rng(0)).shape == (5, 30)
