"""Planar normalizing flows (numpyvae.flows): every piece has a case (the cases of
flow_cases.FLOW_PIECE_CASES run in tests/test_gradients_registry.py), the
log-determinant against the log|det| of a numerically computed Jacobian, the
invertibility constraint w^T u_hat >= -1, and the density of a flow, evaluated on a
grid by inverting the flow numerically, integrating to 1.
"""
import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from flow_cases import FLOW_PIECE_CASES, flow_parameters, step_inputs
from numpyvae import backend, flows
from numpyvae.flows import PlanarFlow, PlanarInvertibility, PlanarStep
from numpyvae.gradcheck import check_layer_backward
from strict_array import DeviceArray, strict

backend.register_namespace("strict_array", strict)

TOLERANCE = 1e-6
EXAMPLES = 30
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def finite(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=64)


# ------------------------------------------------------------ gradient checks
def test_every_flow_piece_has_a_case():
    ids = [case_id for case_id, _ in FLOW_PIECE_CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    pieces = {name for name, value in vars(flows).items()
              if inspect.isclass(value) and value.__module__ == flows.__name__
              and hasattr(value, "backward")}
    assert pieces == {"PlanarInvertibility", "PlanarStep", "PlanarFlow"}
    assert pieces <= {case_id.split("-")[0] for case_id in ids}


@pytest.mark.parametrize("piece_class, position, factor", [
    (PlanarStep, 2, 1.01),             # grad_w of every step, 1 % too large
    (PlanarInvertibility, 0, -1.0),    # grad_u with the wrong sign
])
def test_a_wrong_backward_is_caught(monkeypatch, piece_class, position, factor):
    original = piece_class.backward

    def wrong(self, *grads):
        returned = list(original(self, *grads))
        returned[position] = factor * returned[position]
        return tuple(returned)

    rng = np.random.default_rng(7)
    u, w, b = flow_parameters(rng, 2, 3, 3)
    inputs = {"z0": rng.normal(size=(2, 2, 3)), "u": u, "w": w, "b": b}
    grad_out = (rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 2)))
    assert max(check_layer_backward(PlanarFlow(3), inputs, grad_out).values()) < TOLERANCE
    monkeypatch.setattr(piece_class, "backward", wrong)
    errors = check_layer_backward(PlanarFlow(3), inputs, grad_out)
    wrong_input = "input:w" if piece_class is PlanarStep else "input:u"
    assert errors[wrong_input] > 1e-3, errors


@pytest.mark.parametrize("length", [None, 1, 3],
                         ids=["PlanarStep", "PlanarFlow-K1", "PlanarFlow-K3"])
def test_a_missing_upstream_gradient_counts_as_zero(length):
    rng = np.random.default_rng(3)
    if length is None:
        inputs = step_inputs(rng, 3, 2, 4)
        make = PlanarStep
    else:
        u, w, b = flow_parameters(rng, 2, length, 4)
        inputs = {"z0": rng.normal(size=(3, 2, 4)), "u": u, "w": w, "b": b}
        make = lambda: PlanarFlow(length)          # noqa: E731
    grad_z, grad_log_det = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2))
    results = []
    for upstream in [(grad_z, None), (grad_z, np.zeros((3, 2))),
                     (None, grad_log_det), (np.zeros((3, 2, 4)), grad_log_det),
                     (None, None)]:
        piece = make()
        piece.forward(*inputs.values())
        results.append(piece.backward(*upstream))
    for with_none, with_zeros in [(results[0], results[1]), (results[2], results[3])]:
        for a, b in zip(with_none, with_zeros):
            np.testing.assert_array_equal(a, b)
    for gradient, value in zip(results[4], inputs.values()):
        assert gradient.shape == value.shape and not gradient.any()


def test_flow_shapes_are_checked():
    rng = np.random.default_rng(0)
    u, w, b = flow_parameters(rng, 2, 3, 4)
    with pytest.raises(ValueError, match="length 2"):
        PlanarFlow(2).forward(rng.normal(size=(1, 2, 4)), u, w, b)
    with pytest.raises(ValueError, match=r"\(S, N, D\)"):
        PlanarFlow(3).forward(rng.normal(size=(2, 4)), u, w, b)
    with pytest.raises(ValueError, match="length >= 1"):
        PlanarFlow(0)


# ---------------------------------------------- log-determinant and invertibility
def numerical_jacobian(f, z, step=1e-6):
    """J[i, j] = d f_i / d z_j by central differences, f: (D,) -> (D,)."""
    jacobian = np.empty((z.size, z.size))
    for j in range(z.size):
        offset = np.zeros(z.size)
        offset[j] = step
        jacobian[:, j] = (f(z + offset) - f(z - offset)) / (2 * step)
    return jacobian


@settings(max_examples=EXAMPLES, deadline=None)
@given(d=st.integers(1, 5), seed=seeds)
def test_log_det_is_log_abs_det_of_the_jacobian(d, seed):
    """For one step (with any u_hat, so d = 1 + h' w^T u_hat may be negative) and for a
    flow of three reparameterized steps, at one point z."""
    rng = np.random.default_rng(seed)
    inputs = step_inputs(rng, 1, 1, d)
    z = inputs.pop("z")[0, 0]

    def step(point):
        return PlanarStep().forward(point[None, None], *inputs.values())[0][0, 0]

    _, log_abs_det = PlanarStep().forward(z[None, None], *inputs.values())
    sign, expected = np.linalg.slogdet(numerical_jacobian(step, z))
    assert sign != 0
    assert abs(log_abs_det[0, 0] - expected) < 1e-7, (log_abs_det, expected)

    u, w, b = flow_parameters(rng, 1, 3, d)

    def flow(point):
        return PlanarFlow(3).forward(point[None, None], u, w, b)[0][0, 0]

    _, sum_log_abs_det = PlanarFlow(3).forward(z[None, None], u, w, b)
    sign, expected = np.linalg.slogdet(numerical_jacobian(flow, z))
    assert sign == 1, "reparameterized steps have positive determinants"
    assert abs(sum_log_abs_det[0, 0] - expected) < 1e-7, (sum_log_abs_det, expected)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), d=st.integers(1, 5))
def test_reparameterized_u_hat_satisfies_w_dot_u_hat_at_least_minus_one(data, d):
    """w^T u_hat = m(w^T u) = softplus(w^T u) - 1 > -1 for every u and w != 0, including
    u nearly opposite to w (w^T u down to -1e8) and w far from unit length."""
    w = data.draw(arrays(np.float64, (d,), elements=finite(-100.0, 100.0)))
    if np.dot(w, w) < 1e-6:
        w[0] = data.draw(st.sampled_from([1e-3, -1.0, 50.0]))
    opposite = data.draw(st.one_of(finite(-10.0, 10.0), finite(-1e4, 1e4)))
    u = data.draw(arrays(np.float64, (d,), elements=finite(-10.0, 10.0))) - opposite * w
    u_hat = PlanarInvertibility().forward(u[None], w[None])[0]
    a = np.dot(w, u)
    w_dot_u_hat = np.dot(w, u_hat)
    rounding = 1e-14 * (abs(a) + np.linalg.norm(w) * np.linalg.norm(u) + 1.0)
    assert w_dot_u_hat >= -1.0 - rounding, (a, w_dot_u_hat)
    assert abs(w_dot_u_hat - (np.logaddexp(0.0, a) - 1.0)) <= 4 * rounding
    # The part of u orthogonal to w is kept.
    along = w / np.dot(w, w)
    np.testing.assert_allclose(u_hat - np.dot(u_hat, w) * along, u - a * along,
                               atol=4 * rounding / np.linalg.norm(w) + 1e-12 * np.abs(u).max())


# ------------------------------------------------------ the density integrates to 1
def reparameterized(u, w):
    """u_hat = u + (softplus(w^T u) - 1 - w^T u) w / |w|^2, written independently."""
    a = (w * u).sum(axis=-1, keepdims=True)
    return u + (np.logaddexp(0.0, a) - 1.0 - a) * w / (w * w).sum(axis=-1, keepdims=True)


def invert_step(y, u_hat, w, b, iterations=64):
    """z with z + u_hat tanh(w^T z + b) = y, for y (M, D). alpha = w^T z solves the
    increasing scalar equation alpha + beta tanh(alpha + b) = w^T y, beta = w^T u_hat
    > -1, and lies within |beta| of w^T y: bisection on that bracket."""
    beta, target = np.dot(w, u_hat), y @ w
    low, high = target - abs(beta) - 1.0, target + abs(beta) + 1.0
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        above = middle + beta * np.tanh(middle + b) > target
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    alpha = 0.5 * (low + high)
    return y - np.tanh(alpha + b)[:, None] * u_hat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flow_density_integrates_to_one(seed):
    """q_K(y) = q0(z0) exp(-sum_k log|det|) at z0 = f^{-1}(y), with the inverse computed
    step by step (last to first), on a grid wide enough to hold all but ~e^-24 of the
    mass, summed by the rectangle rule (spectrally accurate for a smooth density that
    vanishes at the grid's edge)."""
    rng = np.random.default_rng(seed)
    length = 3
    u, w, b = rng.normal(0, 1.5, size=(1, length, 2)), rng.normal(0, 1.0, size=(1, length, 2)), \
        rng.normal(size=(1, length))
    u_hat = reparameterized(u, w)[0]
    # w^T u_hat near -1 would fold the density into a spike of width ~ (1 + w^T u_hat)
    # that no fixed grid resolves; these seeds stay clear of it.
    assert (w[0] * u_hat).sum(axis=-1).min() > -0.9
    reach = 7.0 + np.linalg.norm(u_hat, axis=-1).sum()     # |f(z) - z| <= sum_k |u_hat_k|
    axis = np.linspace(-reach, reach, 501)
    spacing = axis[1] - axis[0]
    y = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    z0 = y
    for k in reversed(range(length)):
        z0 = invert_step(z0, u_hat[k], w[0, k], b[0, k])
    z_K, sum_log_det = PlanarFlow(length).forward(z0[:, None], u, w, b)
    np.testing.assert_allclose(z_K[:, 0], y, rtol=0, atol=1e-9 * reach)   # a true inverse
    log_q0 = -0.5 * (z0 * z0).sum(axis=-1) - np.log(2 * np.pi)
    density = np.exp(log_q0 - sum_log_det[:, 0])
    total = density.sum() * spacing ** 2
    assert abs(total - 1.0) < 1e-3, total
    # The flow changed the density: q_K is far from q0 on the same grid.
    standard = np.exp(-0.5 * (y * y).sum(axis=-1)) / (2 * np.pi)
    assert np.abs(density - standard).max() > 0.02


# ------------------------------------------------------------------ on a device
def test_flow_on_the_strict_device_stand_in_matches_numpy():
    """Forward and backward run on the CuPy stand-in in float32 (no NumPy-only call,
    no float64 promotion) and give NumPy's numbers."""
    rng = np.random.default_rng(11)
    u, w, b = flow_parameters(rng, 3, 4, 2)
    upstream = (rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3)))
    host = [array.astype(np.float32) for array in (rng.normal(size=(5, 3, 2)), u, w, b, *upstream)]
    device = [strict.asarray(array) for array in host]
    results = []
    for arrays_ in (host, device):
        flow = PlanarFlow(4)
        results.append(list(flow.forward(*arrays_[:4])) + list(flow.backward(*arrays_[4:])))
    for on_host, on_device in zip(*results):
        assert isinstance(on_device, DeviceArray) and on_device.dtype == np.float32
        np.testing.assert_allclose(backend.to_numpy(on_device), on_host, rtol=1e-6, atol=1e-6)
