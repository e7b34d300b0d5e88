"""The fused importance weights (numpyvae.fused_weights) against the general path: the
same log p(x) from the same noise, to float rounding, for every activation, over many
blocks, chunks and batches, on any number of threads; logits past exp's range; and the
members that keep the general path."""
import numpy as np
import pytest

import numpyvae as nv
from numpyvae import fused_weights
from numpyvae.layers import ACTIVATIONS
from numpyvae.marginal_likelihood import log_marginal_likelihood

X_DIM, N = 12, 40


def bernoulli_vae(activation="tanh", dtype=np.float64, name="vae", **options):
    """A small Bernoulli VAE with weights of standard deviation 1 (logits of a few units:
    every term of log p(x|z) matters) and binary data for it."""
    model = nv.models.create(name, x_dim=X_DIM, hidden=(7, 5), z_dim=3, likelihood="bernoulli",
                             activation=activation, init_std=1.0, dtype=dtype, seed=4, **options)
    x = (np.random.default_rng(0).random((N, X_DIM)) < 0.4).astype(dtype)
    return model, x


def both_paths(model, x, threads=2, **options):
    """log p(x) by the fused path and by the general path, from the same noise."""
    fused = log_marginal_likelihood(model, x, np.random.default_rng(3), threads=threads, **options)
    general = log_marginal_likelihood(model, x, np.random.default_rng(3), fused=False, **options)
    return fused, general


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("batch_size", [None, 5])
def test_fused_weights_equal_the_general_path(activation, batch_size, monkeypatch):
    # Blocks of at most 16 rows: with every example in one batch a block is 14 or 12
    # examples of one draw; with batches of 5 it is 3 or 2 draws of all 5. 37 draws in
    # chunks of 8 and a short one.
    monkeypatch.setattr(fused_weights, "BLOCK_ROWS", 16)
    model, x = bernoulli_vae(activation)
    options = dict(samples=37, batch_size=batch_size,
                   max_floats=8 * X_DIM * (N if batch_size is None else batch_size))
    fused, general = both_paths(model, x, **options)
    assert np.ptp(general) > 1.0          # the examples differ: nothing cancels by accident
    np.testing.assert_allclose(fused, general, rtol=1e-12, atol=0)


def test_the_iwae_member_takes_the_fused_path_and_others_do_not(monkeypatch):
    def general_path(*args, **kwargs):
        raise AssertionError("the general path was taken")
    for name in ("vae", "iwae"):
        model, x = bernoulli_vae(name=name)
        assert fused_weights.unsupported(model) is None
        monkeypatch.setattr(model, "log_importance_weights", general_path)
        assert np.isfinite(log_marginal_likelihood(model, x, np.random.default_rng(0), 5)).all()

    model, x = bernoulli_vae()
    others = [nv.VAE(X_DIM, (7,), 3, likelihood="gaussian"),
              nv.VAE(X_DIM, (7,), 3, batch_norm=True),
              nv.models.create("planar-flow", x_dim=X_DIM, hidden=(7,), z_dim=3),
              nv.models.create("vade", x_dim=X_DIM, hidden=(7,), z_dim=3, n_components=2),
              nv.models.create("cvae", x_dim=X_DIM, hidden=(7,), z_dim=3, n_classes=2)]
    for other in others:
        assert fused_weights.unsupported(other) is not None, other.name
        with pytest.raises(ValueError, match="model.log_importance_weights"):
            fused_weights.FusedLogWeights(other)


@pytest.mark.parametrize("count, n", [(1, 10000), (42, 300), (5000, 1), (7, 1000), (3, 512),
                                      (1, 513), (10, 51)])
def test_blocks_cut_each_chunk_in_equal_parts_of_at_most_block_rows(count, n):
    def parts(total, size):
        return -(-total // size)
    draws, examples = fused_weights.block_shape(count, n)
    assert draws * examples <= fused_weights.BLOCK_ROWS
    for total, size in ((count, draws), (n, examples)):   # the last part is not a stub
        assert total - (parts(total, size) - 1) * size > size - parts(total, size)
    # Never more than twice the fewest blocks that could hold the chunk.
    fewest = parts(count * n, fused_weights.BLOCK_ROWS)
    assert parts(count, draws) * parts(n, examples) <= 2 * fewest


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_result_does_not_depend_on_the_thread_count(dtype, monkeypatch):
    monkeypatch.setattr(fused_weights, "BLOCK_ROWS", 16)
    model, x = bernoulli_vae(dtype=dtype)
    results = [log_marginal_likelihood(model, x, np.random.default_rng(1), 50, threads=threads)
               for threads in (1, 2, 3)]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


@pytest.mark.parametrize("dtype, bias", [(np.float32, 120.0), (np.float64, 800.0)])
def test_logits_past_the_range_of_exp_are_computed_again(dtype, bias):
    """exp(a) overflows for a > 88 (float32) or 709 (float64); those rows come out -inf
    from the fused form and must be computed again, finite, as the general path does."""
    model, x = bernoulli_vae(dtype=dtype)
    model.params["decoder.logits.b"][:3] = bias     # three pixels almost surely on
    fused, general = both_paths(model, x, samples=20)
    assert np.all(np.isfinite(fused))
    assert general.max() < -bias / 2                # x = 0 at those pixels costs ~ bias
    np.testing.assert_allclose(fused, general, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_float32_results_move_only_in_the_last_digits():
    model, x = bernoulli_vae(dtype=np.float32)
    fused, general = both_paths(model, x, samples=200)
    np.testing.assert_allclose(fused, general, rtol=2e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_overwritten_in_place_equals_its_forward(name):
    a = np.random.default_rng(2).normal(0, 3, (6, 9)).astype(np.float32)
    expected = ACTIVATIONS[name]().forward(a.copy())
    written = a.copy()
    result = ACTIVATIONS[name].overwrite(written)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(written, expected)
