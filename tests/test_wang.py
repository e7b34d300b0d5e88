"""Wang (2023)'s setup in the engine (issue 19, section 1): an encoder whose mu and
logvar come from two separate towers (``encoder_towers="separate"``), every bias drawn
like the weights (``bias_init="normal"``), and the reproduction script's quick mode."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import encoder
from numpyvae.train import main

ROOT = Path(__file__).resolve().parent.parent


def towers_model(towers, **options):
    return nv.VAE(6, hidden=(4, 3), z_dim=2, likelihood="bernoulli", dtype=np.float64,
                  init="glorot", encoder_towers=towers, **options)


def test_separate_towers_share_no_parameter():
    """Moving any parameter of the logvar tower leaves mu alone, and the other way
    round; with the shared trunk, moving its first layer moves both."""
    x = np.random.default_rng(0).random((5, 6))
    for tower, moved in (("mu", 0), ("logvar", 1)):
        model = towers_model("separate")
        before = [a.copy() for a in model.encode(x)]
        names = [name for name in model.params if name.startswith(f"encoder.{tower}.")]
        assert len(names) == 6          # two hidden layers and the head, W and b each
        for name in names:
            model.params[name][...] += 0.3
        after = model.encode(x)
        np.testing.assert_array_equal(after[1 - moved], before[1 - moved])
        assert not np.allclose(after[moved], before[moved])
    shapes = {name: value.shape for name, value in model.params.items()}
    for tower in ("mu", "logvar"):
        assert shapes[f"encoder.{tower}.hidden0.W"] == (6, 4)
        assert shapes[f"encoder.{tower}.hidden1.W"] == (4, 3)
        assert shapes[f"encoder.{tower}.W"] == (3, 2)
    assert not any(name.startswith("encoder.hidden") for name in shapes)

    shared = towers_model("shared")
    before = [a.copy() for a in shared.encode(x)]
    shared.params["encoder.hidden0.W"][...] += 0.3
    after = shared.encode(x)
    assert not np.allclose(after[0], before[0]) and not np.allclose(after[1], before[1])


def test_an_unread_heads_tower_gets_zero_gradients_not_stale_ones():
    rng = np.random.default_rng(1)
    heads = (("mu", 2), ("logvar", 2))
    layout = encoder.Towers.layout((5, 3), heads, "e")
    params = nv.ParameterDict(layout, dtype=np.float64)
    params.flat[...] = rng.normal(size=params.flat.size)
    grads = params.zeros_like()
    network = encoder.Towers((5, 3), heads, "tanh", params, grads, "e")
    x, grad_mu = rng.normal(size=(4, 5)), rng.normal(size=(4, 2))
    network.forward(x)
    network.backward(grad_mu, np.zeros((4, 2)))
    expected = grads.flat.copy()
    grads.flat[...] = np.nan               # what a previous pass could have left
    network.forward(x)
    network.backward(grad_mu, None)
    np.testing.assert_array_equal(grads.flat, expected)
    assert all(not grads[name].any() for name in grads if name.startswith("e.logvar."))


def test_bias_init_normal_draws_every_bias_like_the_weights():
    model = nv.VAE(300, hidden=(200, 200), z_dim=10, bias_init="normal",
                   encoder_towers="separate", seed=3)
    biases = np.concatenate([value for name, value in model.params.items()
                             if name.endswith(".b")])
    assert biases.size == 2 * (200 + 200 + 10) + 200 + 200 + 2 * 300
    assert abs(biases.std() - 0.01) < 0.0005 and abs(biases.mean()) < 0.0005
    assert np.count_nonzero(biases) == biases.size
    zero = nv.VAE(300, hidden=(200, 200), z_dim=10, encoder_towers="separate", seed=3)
    assert not any(value.any() for name, value in zero.params.items() if name.endswith(".b"))
    # Zero biases draw nothing: the weights are those of a model without the option.
    first = next(value for name, value in zero.params.items() if name.endswith(".W"))
    np.testing.assert_array_equal(
        first, np.random.default_rng(3).normal(0.0, 0.01, first.shape).astype(np.float32))


def test_the_options_round_trip_through_config_and_are_checked():
    model = nv.models.create("cvae", x_dim=6, n_classes=3, hidden=(4,), z_dim=2,
                             encoder_towers="separate", bias_init="normal", seed=2)
    config = json.loads(json.dumps(model.config()))
    assert config["encoder_towers"] == "separate" and config["bias_init"] == "normal"
    rebuilt = nv.models.create("cvae", **config)
    assert rebuilt.params.layout == model.params.layout
    np.testing.assert_array_equal(rebuilt.params.flat, model.params.flat)
    # A run's config.json without them reads as before the options.
    assert not {"encoder_towers", "bias_init"} & set(nv.VAE(6).config())
    with pytest.raises(ValueError, match="needs net='mlp'"):
        nv.VAE(16, encoder_towers="separate", net="conv", image_shape=(1, 4, 4), channels=(2,))
    with pytest.raises(ValueError, match="Unknown encoder_towers 'both'"):
        nv.VAE(6, encoder_towers="both")
    with pytest.raises(ValueError, match="Unknown bias_init"):
        nv.VAE(6, bias_init="uniform")


def test_the_training_command_takes_the_flags_and_keeps_them_on_resume(tmp_path, capsys):
    data = tmp_path / "rows.npy"
    np.save(data, np.random.default_rng(0).random((200, 16)).astype(np.float32))
    run_dir = tmp_path / "run"
    assert main(["--dataset", str(data), "--hidden", "8", "8", "--z-dim", "2",
                 "--encoder-towers", "separate", "--bias-init", "normal", "--samples", "500",
                 "--out", str(run_dir), "--no-figures"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["encoder_towers"] == "separate"
    assert config["model"]["bias_init"] == "normal"
    capsys.readouterr()
    assert main(["--resume", str(run_dir), "--encoder-towers", "shared"]) == 2
    assert "--encoder-towers shared (the run has --encoder-towers separate)" in \
        capsys.readouterr().err
    assert main(["--resume", str(run_dir), "--samples", "1000"]) == 0
