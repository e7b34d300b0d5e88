"""Every differentiable piece's backward against central differences (float64),
with hypothesis choosing shapes and values, hard ranges included."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import numpyvae as nv
from numpyvae.gradcheck import check_layer_backward

TOLERANCE = 1e-6
sizes = st.integers(min_value=1, max_value=5)
settings.register_profile("numpyvae", max_examples=100, deadline=None)
settings.load_profile("numpyvae")


def floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=64)


def matrix(shape, low=-3.0, high=3.0):
    return arrays(np.float64, shape, elements=floats(low, high))


def assert_tight(errors):
    worst = max(errors.values())
    assert worst < TOLERANCE, errors


@st.composite
def dense_case(draw):
    n, n_in, n_out = draw(sizes), draw(sizes), draw(sizes)
    x = draw(matrix((n, n_in)))
    grad = draw(matrix((n, n_out)))
    seed = draw(st.integers(0, 2**16))
    return x, grad, seed


@given(dense_case(), st.sampled_from(["normal", "glorot"]))
def test_dense_backward(case, init):
    x, grad, seed = case
    layer = nv.Dense.create(x.shape[1], grad.shape[1], np.random.default_rng(seed),
                            init=init, init_std=1.0)
    layer.params["b"][...] = np.random.default_rng(seed + 1).normal(size=grad.shape[1])
    assert_tight(check_layer_backward(layer, {"x": x}, grad))


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus", "identity"])
@given(data=st.data())
def test_activation_backward(activation, data):
    shape = (data.draw(sizes), data.draw(sizes))
    a = data.draw(matrix(shape, -30.0, 30.0))
    if activation == "relu":  # the kink at 0 has no derivative: keep entries away from it
        a = np.where(np.abs(a) < 1e-3, 1.0, a)
    grad = data.draw(matrix(shape))
    layer = nv.layers.make_activation(activation)
    assert_tight(check_layer_backward(layer, {"a": a}, grad))


@pytest.mark.parametrize("depth", [0, 1, 2])
@pytest.mark.parametrize("activation", ["tanh", "softplus", "sigmoid"])
def test_mlp_backward(depth, activation):
    rng = np.random.default_rng(depth)
    sizes_ = [4] + [3] * depth
    params = nv.ParameterDict(nv.MLP.layout(sizes_, "h"), dtype=np.float64)
    grads = params.zeros_like()
    params.flat[...] = rng.normal(size=params.flat.size)
    mlp = nv.MLP(sizes_, activation, params, grads, "h")
    mlp.params, mlp.grads = params, grads
    x = rng.normal(size=(5, 4))
    assert_tight(check_layer_backward(mlp, {"x": x}, rng.normal(size=(5, sizes_[-1]))))


@given(data=st.data(), samples=st.integers(0, 3))
def test_reparameterize_backward(data, samples):
    n, d = data.draw(sizes), data.draw(sizes)
    mu = data.draw(matrix((n, d)))
    logvar = data.draw(matrix((n, d), -20.0, 20.0))
    eps_shape = (n, d) if samples == 0 else (samples, n, d)
    eps = data.draw(matrix(eps_shape))
    grad = data.draw(matrix(eps_shape))
    layer = nv.Reparameterize()
    layer_call = _FixedThirdInput(layer, eps)
    assert_tight(check_layer_backward(layer_call, {"mu": mu, "logvar": logvar}, grad))


class _FixedThirdInput:
    """Wraps Reparameterize so eps is held fixed (it is noise, not a parameter)."""

    params = grads = {}

    def __init__(self, layer, eps):
        self.layer, self.eps = layer, eps

    def forward(self, mu, logvar):
        return self.layer.forward(mu, logvar, self.eps)

    def backward(self, grad):
        return self.layer.backward(grad)


def test_reparameterize_uses_standard_deviation():
    """z = mu + exp(logvar / 2) eps: the spread is the standard deviation."""
    mu, logvar = np.zeros((1, 1)), np.full((1, 1), np.log(4.0))   # variance 4, std 2
    z = nv.Reparameterize().forward(mu, logvar, np.ones((1, 1)))
    assert z[0, 0] == pytest.approx(2.0, rel=1e-15)


@given(data=st.data())
def test_kl_standard_normal_backward(data):
    n, d = data.draw(sizes), data.draw(sizes)
    mu = data.draw(matrix((n, d), -10, 10))
    logvar = data.draw(matrix((n, d), -20.0, 20.0))
    grad = data.draw(arrays(np.float64, (n,), elements=floats(-3, 3)))
    assert_tight(check_layer_backward(nv.KLStandardNormal(), {"mu": mu, "logvar": logvar}, grad))


@given(data=st.data())
def test_kl_diagonal_gaussians_backward(data):
    n, d = data.draw(sizes), data.draw(sizes)
    inputs = {"mu_q": data.draw(matrix((n, d), -10, 10)),
              "logvar_q": data.draw(matrix((n, d), -20, 20)),
              "mu_p": data.draw(matrix((n, d), -10, 10)),
              "logvar_p": data.draw(matrix((n, d), -20, 20))}
    grad = data.draw(arrays(np.float64, (n,), elements=floats(-3, 3)))
    assert_tight(check_layer_backward(nv.KLDiagonalGaussians(), inputs, grad))


class _FixedData:
    """Holds the data x fixed so only the distribution's parameters are checked."""

    params = grads = {}

    def __init__(self, likelihood, x):
        self.likelihood, self.x = likelihood, x

    def forward(self, *outputs):
        return self.likelihood.forward(self.x, *outputs)

    def backward(self, grad):
        return self.likelihood.backward(grad)


@given(data=st.data(), samples=st.integers(0, 2))
def test_bernoulli_log_likelihood_backward(data, samples):
    n, d = data.draw(sizes), data.draw(sizes)
    lead = (n,) if samples == 0 else (samples, n)
    x = data.draw(arrays(np.float64, (n, d), elements=st.sampled_from([0.0, 1.0])))
    logits = data.draw(matrix(lead + (d,), -100.0, 100.0))
    grad = data.draw(arrays(np.float64, lead, elements=floats(-3, 3)))
    layer = _FixedData(nv.BernoulliLogLikelihood(), x)
    assert_tight(check_layer_backward(layer, {"logits": logits}, grad))


@given(data=st.data(), samples=st.integers(0, 2))
def test_gaussian_log_likelihood_backward(data, samples):
    n, d = data.draw(sizes), data.draw(sizes)
    lead = (n,) if samples == 0 else (samples, n)
    x = data.draw(matrix((n, d), -2, 2))
    mean = data.draw(matrix(lead + (d,), -2, 2))
    logvar = data.draw(matrix(lead + (d,), -20.0, 20.0))
    grad = data.draw(arrays(np.float64, lead, elements=floats(-3, 3)))
    layer = _FixedData(nv.GaussianLogLikelihood(), x)
    assert_tight(check_layer_backward(layer, {"mean": mean, "logvar": logvar}, grad))


@given(data=st.data(), variance=floats(1e-3, 1e3))
def test_fixed_variance_gaussian_log_likelihood_backward(data, variance):
    n, d = data.draw(sizes), data.draw(sizes)
    x = data.draw(matrix((n, d), -2, 2))
    mean = data.draw(matrix((n, d), -2, 2))
    grad = data.draw(arrays(np.float64, (n,), elements=floats(-3, 3)))
    layer = _FixedData(nv.FixedVarianceGaussianLogLikelihood(variance), x)
    assert_tight(check_layer_backward(layer, {"mean": mean}, grad))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-fixed"])
@pytest.mark.parametrize("hidden", [(), (4,), (4, 3)])
def test_encoder_and_decoder_backward(likelihood, hidden):
    """The encoder (two heads) and each decoder as stand-alone pieces."""
    rng = np.random.default_rng(len(hidden))
    model = nv.VAE(x_dim=5, hidden=hidden, z_dim=2, likelihood=likelihood,
                   dtype=np.float64, init="glorot", seed=3)
    x = (rng.random((3, 5)) > 0.5).astype(float)
    encoder_view = _Piece(model.encoder, model, "encoder.")
    errors = check_layer_backward(encoder_view, {"x": x},
                                  (rng.normal(size=(3, 2)), rng.normal(size=(3, 2))), wrt=[])
    assert_tight(errors)
    z = rng.normal(size=(2, 3, 2))
    decoder_view = _DecoderPiece(model, x)
    assert_tight(check_layer_backward(decoder_view, {"z": z}, rng.normal(size=(2, 3))))


class _Piece:
    """Exposes one sub-network with only its own parameters."""

    def __init__(self, piece, model, prefix):
        self.piece = piece
        self.params = {k: v for k, v in model.params.items() if k.startswith(prefix)}
        self.grads = {k: v for k, v in model.grads.items() if k.startswith(prefix)}

    def forward(self, *inputs):
        return self.piece.forward(*inputs)

    def backward(self, *grads):
        self.piece.backward(*grads)
        return ()


class _DecoderPiece(_Piece):
    def __init__(self, model, x):
        super().__init__(model.decoder, model, "decoder.")
        self.x = x

    def forward(self, z):
        return self.piece.log_likelihood(self.x, z)

    def backward(self, grad):
        return self.piece.backward(grad)
