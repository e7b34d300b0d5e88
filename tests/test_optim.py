"""Each optimizer against its update written out by hand, on a tiny problem; the
flat-buffer path and the per-array path give identical results."""
import threading

import numpy as np
import pytest

import numpyvae as nv


def quadratic_problem():
    rng = np.random.default_rng(0)
    target = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(3,))}
    start = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(3,))}
    return target, start


def gradient(params, target):
    # f = 1/2 sum (theta - target)^2 * (1 + index) makes every coordinate's scale differ
    return {k: (params[k] - target[k]) * (1.0 + np.arange(params[k].size).reshape(params[k].shape))
            for k in params}


def by_hand(name, start, target, steps, **hyper):
    theta = {k: v.copy() for k, v in start.items()}
    state = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in theta.items()}
    for t in range(1, steps + 1):
        grads = gradient(theta, target)
        for k in theta:
            g, s = grads[k], state[k]
            if name == "sgd":
                s[0] = hyper["momentum"] * s[0] + g
                theta[k] = theta[k] - hyper["lr"] * s[0]
            elif name == "adagrad":
                s[0] = s[0] + g * g
                theta[k] = theta[k] - hyper["lr"] * g / (np.sqrt(s[0]) + hyper["eps"])
            else:
                b1, b2 = hyper["beta1"], hyper["beta2"]
                s[0] = b1 * s[0] + (1 - b1) * g
                s[1] = b2 * s[1] + (1 - b2) * g * g
                m_hat, v_hat = s[0] / (1 - b1 ** t), s[1] / (1 - b2 ** t)
                theta[k] = theta[k] - hyper["lr"] * m_hat / (np.sqrt(v_hat) + hyper["eps"])
    return theta


SETTINGS = {
    "sgd": dict(lr=0.05, momentum=0.9),
    "adagrad": dict(lr=0.3, eps=1e-10),
    "adam": dict(lr=0.1, beta1=0.8, beta2=0.99, eps=1e-8),
}
CLASSES = {"sgd": nv.optim.SGD, "adagrad": nv.optim.Adagrad, "adam": nv.optim.Adam}


def flat_parameters(start):
    """``start`` as a float64 ParameterDict (one flat buffer), with its gradient buffer."""
    params = nv.ParameterDict([(k, v.shape) for k, v in start.items()], dtype=np.float64)
    params.assign(start)
    return params, params.zeros_like()


def small_blocks(monkeypatch, block, parallel_block, parallel_from=0):
    """Blocks of a few elements, so that a 9-element problem is cut several ways."""
    monkeypatch.setattr(nv.optim, "BLOCK_ELEMENTS", block)
    monkeypatch.setattr(nv.optim, "PARALLEL_BLOCK_ELEMENTS", parallel_block)
    monkeypatch.setattr(nv.optim, "PARALLEL_MIN_ELEMENTS", parallel_from)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("flat", [False, True])
def test_optimizer_matches_update_written_by_hand(name, flat):
    target, start = quadratic_problem()
    expected = by_hand(name, start, target, 25, **SETTINGS[name])
    if flat:
        params, grads = flat_parameters(start)
    else:
        params = {k: v.copy() for k, v in start.items()}
    optimizer = CLASSES[name](**SETTINGS[name])
    for _ in range(25):
        g = gradient(params, target)
        if flat:
            grads.assign(g)
            g = grads
        optimizer.step(params, g)
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-13, atol=1e-15)
    # and the problem is being solved
    assert all(np.abs(params[k] - target[k]).max() < np.abs(start[k] - target[k]).max() for k in target)


def test_optimizer_state_round_trip():
    target, start = quadratic_problem()
    params, _ = flat_parameters(start)
    first = nv.optim.Adam(lr=0.1)
    for _ in range(3):
        first.step(params, gradient(params, target))
    saved = first.state_dict()
    second = nv.optim.Adam(lr=0.1)
    second.load_state_dict(saved, params)
    copy = {k: np.array(v) for k, v in params.items()}
    first.step(params, gradient(params, target))
    second.step(copy, gradient(copy, target))
    for k in copy:
        np.testing.assert_array_equal(params[k], copy[k])


def test_adam_moments_are_the_papers_m_and_v():
    """The state holds the decayed sums M = m / (1 - beta1), V = v / (1 - beta2);
    moments() gives back m and v (here after one step, where they are (1 - beta) g
    and (1 - beta2) g^2 whatever the update did)."""
    target, start = quadratic_problem()
    params, _ = flat_parameters(start)
    optimizer = nv.optim.Adam(**SETTINGS["adam"])
    g = gradient(params, target)
    optimizer.step(params, g)
    moments = optimizer.moments()
    for k in g:
        np.testing.assert_allclose(moments["first_moment"][k], 0.2 * g[k], rtol=1e-15)
        np.testing.assert_allclose(moments["second_moment"][k], 0.01 * g[k] ** 2, rtol=1e-15)
        np.testing.assert_array_equal(optimizer.state["decayed_gradient_sum"][k], g[k])
        np.testing.assert_array_equal(optimizer.state["decayed_square_sum"][k], g[k] ** 2)


def test_adam_resumes_from_a_checkpoint_that_holds_m_and_v():
    """Checkpoints written before the state held the decayed sums saved m and v as
    first_moment/ and second_moment/: they load (converted), and the run goes on as the
    update written by hand does."""
    target, start = quadratic_problem()
    params, _ = flat_parameters(start)
    optimizer = nv.optim.Adam(**SETTINGS["adam"])
    for _ in range(5):
        optimizer.step(params, gradient(params, target))
    legacy = {"steps": np.asarray(5)}
    for moment, arrays in optimizer.moments().items():
        legacy.update({f"{moment}/{k}": value for k, value in arrays.items()})
    resumed = nv.optim.Adam(**SETTINGS["adam"])
    resumed.load_state_dict(legacy, params)
    for name in resumed.state_names:
        for k in start:
            np.testing.assert_allclose(resumed.state[name][k], optimizer.state[name][k], rtol=1e-14)
    for _ in range(20):
        resumed.step(params, gradient(params, target))
    expected = by_hand("adam", start, target, 25, **SETTINGS["adam"])
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="missing or has the wrong shape"):
        nv.optim.Adam().load_state_dict({"steps": np.asarray(5)}, params)


def test_optimizer_bad_arguments():
    with pytest.raises(ValueError, match="learning rate"):
        nv.optim.Adagrad(lr=0)
    with pytest.raises(ValueError, match="momentum"):
        nv.optim.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="same names"):
        nv.optim.SGD().step({"a": np.zeros(2)}, {"b": np.zeros(2)})


@pytest.mark.parametrize("name", SETTINGS)
def test_blocked_flat_update_equals_per_array_update(name, monkeypatch):
    """The CPU flat path updates the buffer block by block; blocks that cut through
    arrays (7 elements, arrays of 6 and 3) must give the per-array path's numbers."""
    monkeypatch.setattr(nv.optim, "BLOCK_ELEMENTS", 7)
    target, start = quadratic_problem()
    params, grads = flat_parameters(start)
    separate = {k: v.copy() for k, v in start.items()}
    blocked_optimizer = CLASSES[name](**SETTINGS[name])
    separate_optimizer = CLASSES[name](**SETTINGS[name])
    for _ in range(10):
        grads.assign(gradient(params, target))
        blocked_optimizer.step(params, grads)
        separate_optimizer.step(separate, gradient(separate, target))
    for k in separate:
        np.testing.assert_array_equal(params[k], separate[k])


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("workers", [2, 3])
def test_threaded_flat_update_equals_one_thread(name, workers, monkeypatch):
    """With more workers (the training command's BLAS thread count), runs of blocks
    are updated on other threads: the numbers must be those of one thread, bit for bit."""
    # 9 elements: 5 blocks on one worker, 3 (another cut) shared by several.
    small_blocks(monkeypatch, 2, 3)
    target, start = quadratic_problem()
    one, grads_one = flat_parameters(start)
    many, grads_many = flat_parameters(start)
    single, threaded = CLASSES[name](**SETTINGS[name]), CLASSES[name](**SETTINGS[name])
    used = []
    original_update_all = threaded._update_all
    monkeypatch.setattr(threaded, "_update_all", lambda run: (used.append(
        threading.current_thread().name), original_update_all(run))[1])
    for _ in range(10):
        grads_one.assign(gradient(one, target))
        grads_many.assign(gradient(many, target))
        monkeypatch.setattr(nv.threads, "_state", dict(nv.threads._state, workers=1))
        single.step(one, grads_one)
        monkeypatch.setattr(nv.threads, "_state", dict(nv.threads._state, workers=workers))
        threaded.step(many, grads_many)
    np.testing.assert_array_equal(one.flat, many.flat)
    assert any(thread.startswith("numpyvae") for thread in used)


def test_a_small_model_is_updated_on_one_thread(monkeypatch):
    """Below PARALLEL_MIN_ELEMENTS a second worker would have too few blocks to share,
    so the blocks stay on the calling thread whatever the worker count; from it on, the
    workers share blocks of PARALLEL_BLOCK_ELEMENTS (fewer calls, fewer GIL hand-offs)."""
    small_blocks(monkeypatch, 2, 4, parallel_from=nv.optim.PARALLEL_MIN_ELEMENTS)
    _, start = quadratic_problem()
    params, grads = flat_parameters(start)
    monkeypatch.setattr(nv.threads, "_state", dict(nv.threads._state, workers=2))
    runs = nv.optim.Adam()._segments(params, grads, nv.threads.workers())
    assert len(runs) == 1 and [len(segment[0]) for segment in runs[0]] == [2, 2, 2, 2, 1]
    monkeypatch.setattr(nv.optim, "PARALLEL_MIN_ELEMENTS", 9)
    runs = nv.optim.Adam()._segments(params, grads, nv.threads.workers())
    assert [[len(segment[0]) for segment in run] for run in runs] == [[4], [4, 1]]


@pytest.mark.parametrize("name", SETTINGS)
def test_blocks_cut_once_follow_new_buffers_and_worker_counts(name, monkeypatch):
    """The blocks are cut once and reused while the buffers stay the same; an optimizer
    handed other buffers (a restored state, another model) or another worker count must
    cut them anew, or it would update the old arrays."""
    small_blocks(monkeypatch, 2, 4)
    target, start = quadratic_problem()
    reference, reference_grads = flat_parameters(start)
    params, grads = flat_parameters(start)
    optimizer, fresh = CLASSES[name](**SETTINGS[name]), CLASSES[name](**SETTINGS[name])
    for step in range(8):
        if step == 3:   # the same numbers in new buffers: the training loop's resume
            params, grads = flat_parameters({k: params[k].copy() for k in start})
            optimizer.load_state_dict(optimizer.state_dict(), params)
        workers = 2 if step % 4 >= 2 else 1
        monkeypatch.setattr(nv.threads, "_state", dict(nv.threads._state, workers=workers))
        reference_grads.assign(gradient(reference, target))
        grads.assign(gradient(params, target))
        fresh.step(reference, reference_grads)
        optimizer.step(params, grads)
        np.testing.assert_array_equal(params.flat, reference.flat)
    runs = optimizer._segments(params, grads, 1)
    assert runs is optimizer._segments(params, grads, 1)
    assert runs[0][0][0].base is params.flat


@pytest.mark.parametrize("name", sorted(nv.optim.OPTIMIZERS))
def test_transient_updates_are_the_ones_blind_to_the_gradients_size(name):
    """An optimizer declaring a transient first update (the training command's
    divergence check leaves out the loss right after it) moves every parameter by lr
    there, whatever its gradient over six orders of magnitude; one declaring none (SGD)
    moves each by lr times its gradient."""
    cls = nv.optim.OPTIMIZERS[name]
    lr = 0.01
    grad = np.geomspace(1e-2, 1e4, 13)
    optimizer = cls(lr=lr)
    params = {"w": np.zeros_like(grad)}
    optimizer.step(params, {"w": grad})
    moved = np.abs(params["w"])
    assert optimizer.transient_updates in (0, 1)
    if optimizer.transient_updates:
        np.testing.assert_allclose(moved, lr, rtol=1e-5)
    else:
        np.testing.assert_allclose(moved, lr * grad, rtol=1e-12)
