"""Sizes that cannot fit in memory are refused before the run, naming a size that fits
(numpyvae/memory.py), and the prediction behind that refusal is checked against what a
step really allocates."""
import re

import numpy
import pytest

from conftest import need_data
from numpyvae import memory, models
from numpyvae.train import main

MIB = 2 ** 20
TINY = ["--dataset", "frey", "--hidden", "20", "--evals-per-decade", "4", "--no-figures"]


def _iwae(batch_norm=False):
    return models.model_class("iwae")(x_dim=560, hidden=[40, 30], z_dim=7, k=3,
                                      objective="iwae", batch_norm=batch_norm,
                                      likelihood="gaussian")


def _rows(count, seed=1):
    return numpy.random.default_rng(seed).random((count, 560)).astype(numpy.float32)


@pytest.mark.parametrize("batch, draws", [(50, 20), (7, 300), (200, 1)])
def test_step_prediction_matches_what_a_step_allocates(batch, draws):
    model = _iwae()
    c0, c1, c2 = memory.step_coefficients(model, _rows(4))
    predicted = c0 + c1 * batch + c2 * batch * draws
    x = _rows(batch, seed=2)
    measured = memory._traced_peak(lambda: model.loss_and_grads(
        x, rng=numpy.random.default_rng(3), samples=draws))
    assert abs(predicted - measured) <= 0.05 * measured, (predicted, measured)


def test_probe_steps_leave_the_model_as_it_was():
    model = _iwae(batch_norm=True)
    params, buffers = model.params.flat.copy(), model.buffers.flat.copy()
    memory.step_coefficients(model, _rows(4))
    assert numpy.array_equal(model.params.flat, params)
    assert numpy.array_equal(model.buffers.flat, buffers)


def test_parameters_grow_linearly_in_z():
    options = dict(x_dim=560, hidden=[40], z_dim=5)
    vae = models.model_class("vae")
    a, b = memory.parameter_bytes_per_z(vae, options)
    for z_dim in (3, 11):
        assert vae(**dict(options, z_dim=z_dim)).params.flat.nbytes == a + b * z_dim


def _refusal(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


def test_a_k_that_cannot_fit_is_refused_naming_one_that_does(tmp_path, capsys, monkeypatch):
    need_data("frey")
    available = 400 * MIB
    monkeypatch.setattr(memory, "available_bytes", lambda: available)
    status = main([*TINY, "--model", "iwae", "--k", "100000", "--samples", "200",
                   "--out", str(tmp_path / "big")])
    err = _refusal(capsys)
    assert status == 2 and "--k 100000" in err
    fits = int(re.search(r"at most --k (\d+) fits", err).group(1))
    assert 1 <= fits < 100000
    assert not (tmp_path / "big" / "checkpoint.npz").exists()
    # The size it names does fit: a real step at --k fits allocates less than the room.
    model = models.model_class("iwae")(x_dim=560, hidden=[20], z_dim=10, k=fits,
                                       likelihood="gaussian", dtype="float32")
    x = _rows(100, seed=4)
    peak = memory._traced_peak(lambda: model.loss_and_grads(x, rng=numpy.random.default_rng(0)))
    assert peak <= memory.HEADROOM * available
    peak_over = memory._traced_peak(lambda: model.loss_and_grads(
        x, rng=numpy.random.default_rng(0), samples=2 * fits))
    assert peak_over > 0.5 * memory.HEADROOM * available   # the bound is not slack by 2x


def test_mc_samples_and_z_dim_that_cannot_fit_are_refused(tmp_path, capsys, monkeypatch):
    need_data("frey")
    monkeypatch.setattr(memory, "available_bytes", lambda: 400 * MIB)
    assert main([*TINY, "--mc-samples", "1000000", "--out", str(tmp_path / "a")]) == 2
    err = _refusal(capsys)
    assert re.search(r"at most --mc-samples \d+ fits", err), err
    assert main([*TINY, "--z-dim", "100000000", "--out", str(tmp_path / "b")]) == 2
    err = _refusal(capsys)
    fits = int(re.search(r"at most --z-dim (\d+) fits", err).group(1))
    a, b = memory.parameter_bytes_per_z(models.model_class("vae"),
                                        dict(x_dim=560, hidden=[20], z_dim=2,
                                             likelihood="gaussian"))
    room = memory.HEADROOM * 400 * MIB
    assert memory.PARAMETER_COPIES * (a + b * fits) <= room
    assert memory.PARAMETER_COPIES * (a + b * (fits + 1)) > room


def test_evaluation_batches_shrink_only_for_many_draws():
    assert memory.draws_per_batch(1) == memory.draws_per_batch(100) == 1000
    assert memory.draws_per_batch(5000) == 20
    assert memory.draws_per_batch(10 ** 7) == 1
