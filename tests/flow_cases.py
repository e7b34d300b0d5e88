"""Gradient-check cases for the planar flow pieces of numpyvae.flows, in the style of
test_gradients_registry.PIECE_CASES: ``FLOW_PIECE_CASES`` is a list of (id, factory);
a factory takes hypothesis's ``data`` object and returns ``(piece, inputs, grad_out,
wrt)`` for ``numpyvae.gradcheck.check_layer_backward``. Everything is float64.

Central differences with h = 1e-5 hold 1e-6 relative error only where the function is
smooth on a scale well above h. A planar step's log-determinant log|d|,
d = 1 + h'(alpha) w^T u_hat, bends on the scale of |d| itself (its k-th derivative grows
like 1/|d|^k), so the factories keep |d| well away from 0: PlanarStep redraws u_hat
until every |d| >= 0.25 (d may be negative: the step is then not invertible, but
log|d| and its gradient are still defined, and that branch is checked too), and
PlanarFlow redraws u until every w^T u >= -1.5, so that the reparameterized
w^T u_hat = softplus(w^T u) - 1 >= -0.8 and every d >= 0.2. Weights w have every entry
of magnitude >= 0.4, so |w|^2, which PlanarInvertibility divides by, is >= 0.16.
"""
import numpy as np
from hypothesis import strategies as st

from numpyvae.flows import PlanarFlow, PlanarInvertibility, PlanarStep

sizes = st.integers(min_value=1, max_value=5)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
MIN_ABS_DET = 0.25
MIN_W_DOT_U = -1.5


def generator(data):
    return np.random.default_rng(data.draw(seeds))


def weights(rng, shape, low=0.4, high=1.2):
    """Entries of magnitude in [low, high], random sign: w is never near 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def planar_invertibility(leading):
    """u, w (N, D), or (N, K, D) with ``leading`` = 2, as PlanarFlow slices them. w^T u
    ranges from very negative (u nearly opposite to w, where m(a) - a ~ -a) to positive."""
    def factory(data):
        rng = generator(data)
        shape = tuple(data.draw(sizes) for _ in range(leading)) + (data.draw(sizes),)
        w = weights(rng, shape)
        # u = v - lambda w: lambda up to 10 pushes w^T u down to -10 |w|^2 and beyond.
        opposite = data.draw(st.floats(-2.0, 10.0, allow_nan=False, allow_infinity=False))
        u = rng.normal(size=shape) - opposite * rng.uniform(0.5, 1.0, size=shape[:-1] + (1,)) * w
        return PlanarInvertibility(), {"u": u, "w": w}, rng.normal(size=shape), None
    return factory


def step_inputs(rng, samples, n, d):
    """z, u_hat, w, b for a PlanarStep with every |1 + h' w^T u_hat| >= MIN_ABS_DET."""
    z = rng.normal(size=(samples, n, d))
    w = weights(rng, (n, d))
    b = rng.normal(size=n)
    slope = 1.0 - np.tanh((z * w).sum(axis=-1) + b) ** 2
    for _ in range(1000):
        u_hat = rng.normal(size=(n, d))
        if np.abs(1.0 + slope * (w * u_hat).sum(axis=-1)).min() >= MIN_ABS_DET:
            return {"z": z, "u_hat": u_hat, "w": w, "b": b}
    raise AssertionError("no u_hat found with |log-determinant argument| >= MIN_ABS_DET")


def planar_step(samples):
    def factory(data):
        rng = generator(data)
        n, d = data.draw(sizes), data.draw(sizes)
        inputs = step_inputs(rng, samples, n, d)
        grad_out = (rng.normal(size=(samples, n, d)), rng.normal(size=(samples, n)))
        return PlanarStep(), inputs, grad_out, None
    return factory


def flow_parameters(rng, n, length, d):
    """u, w (n, length, d), b (n, length) with every w_k^T u_k >= MIN_W_DOT_U."""
    w = weights(rng, (n, length, d))
    u = rng.normal(size=(n, length, d))
    for _ in range(1000):
        low = (w * u).sum(axis=-1) < MIN_W_DOT_U
        if not low.any():
            return u, w, rng.normal(size=(n, length))
        u[low] = rng.normal(size=(int(low.sum()), d))
    raise AssertionError("no u found with w^T u >= MIN_W_DOT_U")


def planar_flow(length):
    def factory(data):
        rng = generator(data)
        samples = data.draw(st.sampled_from([1, 3]))
        n, d = data.draw(st.integers(1, 3)), data.draw(sizes)
        u, w, b = flow_parameters(rng, n, length, d)
        inputs = {"z0": rng.normal(size=(samples, n, d)), "u": u, "w": w, "b": b}
        grad_out = (rng.normal(size=(samples, n, d)), rng.normal(size=(samples, n)))
        return PlanarFlow(length), inputs, grad_out, None
    return factory


FLOW_PIECE_CASES = (
    [("PlanarInvertibility", planar_invertibility(1)),
     ("PlanarInvertibility-NKD", planar_invertibility(2))]
    + [(f"PlanarStep-S{samples}", planar_step(samples)) for samples in (1, 3)]
    + [(f"PlanarFlow-K{length}", planar_flow(length)) for length in (1, 2, 5)]
)
