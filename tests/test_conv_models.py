"""Conv encoders and decoders for the family (numpyvae.networks.ConvNetwork): shapes
computed for any image size, clear errors for sizes a net cannot take, images in
(N, C, H, W) accepted, and ``--net conv`` / ``--model vq-vae`` end to end through the
training and evaluation commands on real MNIST and Fashion-MNIST with tiny budgets."""
import json
from pathlib import Path

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import checkpoint, datasets
from numpyvae.evaluate import main as evaluate_main
from numpyvae.train import main as train_main

CHEN = dict(net="conv", channels=(32, 64, 128), kernel_size=4, stride=2, padding=1)


@pytest.mark.parametrize("image_shape,feature", [
    ((1, 28, 28), (3, 3)),      # MNIST: 28 -> 14 -> 7 -> 3, and back 3 -> 7 -> 14 -> 28
    ((3, 32, 32), (4, 4)),      # CIFAR-10, the thesis's own size: 32 -> 16 -> 8 -> 4
    ((1, 28, 20), (3, 2)),      # Frey faces: 20 -> 10 -> 5 -> 2
    ((1, 13, 9), (1, 1)),       # odd sizes
])
def test_chen_net_takes_any_image_size(image_shape, feature):
    x_dim = int(np.prod(image_shape))
    model = nv.VAE(x_dim, z_dim=4, likelihood="bernoulli", image_shape=image_shape,
                   batch_norm=True, **CHEN)
    assert model.params["encoder.mu.W"].shape == (128 * feature[0] * feature[1], 4)
    x = np.random.default_rng(0).random((3, x_dim)).astype(np.float32)
    assert model.decode(model.latent_point(x)).shape == (3, x_dim)
    assert np.isfinite(model.loss(x))


def test_images_in_channel_first_layout_are_accepted():
    model = nv.VAE(3 * 8 * 6, z_dim=2, image_shape=(3, 8, 6), net="conv", channels=(4,),
                   dtype=np.float64)
    x = np.random.default_rng(1).random((4, 3, 8, 6))
    eps = np.random.default_rng(2).standard_normal((4, 2))
    assert model.loss(x, eps=eps) == model.loss(x.reshape(4, -1), eps=eps)


def test_too_small_an_image_is_one_clear_line():
    with pytest.raises(ValueError) as error:
        nv.VAE(36, image_shape=(1, 6, 6), **CHEN)
    message = str(error.value)
    assert "6x6" in message and "at least 8 pixels" in message and "\n" not in message
    with pytest.raises(ValueError, match="needs image_shape"):
        nv.VAE(784, net="conv")
    with pytest.raises(ValueError, match="holds 784 pixels but x_dim is 560"):
        nv.VAE(560, net="conv", image_shape=(28, 28))
    with pytest.raises(ValueError, match="MLP networks only"):
        nv.models.create("cvae-quadrant", x_dim=784, net="conv")


def test_conv_config_rebuilds_the_model():
    model = nv.models.create("cvae", x_dim=49, n_classes=3, image_shape=(7, 7), z_dim=2,
                             dtype=np.float64, channels=(2, 3), kernel_size=3, net="conv")
    config = json.loads(json.dumps(model.config()))
    assert config["net"] == "conv" and config["image_shape"] == [1, 7, 7]
    again = nv.models.create("cvae", **config)
    assert again.params.layout == model.params.layout
    assert np.array_equal(again.params.flat, model.params.flat)
    # An MLP model's config holds none of the conv options (it reads as before them).
    assert not {"net", "channels", "image_shape"} & set(nv.VAE(6).config())


# ------------------------------------------------------------- the commands
def _skip_without(name):
    try:
        datasets.load(name, "test", download=False)
    except datasets.DataError as error:
        pytest.skip(f"{name} missing: {error}")


SMALL = ["--channels", "4", "8", "--evals-per-decade", "2", "--eval-size", "200", "--no-figures"]


def test_conv_vae_on_mnist_end_to_end(tmp_path, capsys):
    _skip_without("mnist")
    run = tmp_path / "conv"
    assert train_main(["--net", "conv", "--dataset", "mnist", "--samples", "300",
                       "--batch-size", "50", "--out", str(run)] + SMALL) == 0
    assert train_main(["--resume", str(run), "--samples", "600", "--no-figures"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["net"] == "conv" and config["model"]["image_shape"] == [1, 28, 28]
    # A conv net's recipe (the Chen thesis's) unless a flag says otherwise.
    settings = config["settings"]
    assert (settings["optimizer"], settings["activation"], settings["batch_norm"],
            settings["init"]) == ("adam", "relu", True, "glorot")
    assert evaluate_main([str(run), "--k", "3", "--n-test", "20", "--draws", "1"]) == 0
    results = json.loads((run / "evaluation.json").read_text())["results"]
    assert all(np.isfinite(r["log_likelihood"]) for r in results.values())


def test_vq_vae_resumes_exactly_and_evaluates_its_codes(tmp_path, capsys):
    _skip_without("mnist")
    flags = ["--model", "vq-vae", "--dataset", "mnist", "--batch-size", "32",
             "--codebook-size", "16", "--code-dim", "4"] + SMALL
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert train_main(flags + ["--samples", "160", "--out", str(resumed)]) == 0
    assert train_main(["--resume", str(resumed), "--samples", "320", "--no-figures"]) == 0
    assert train_main(flags + ["--samples", "320", "--out", str(straight)]) == 0
    params_a, _, _, arrays_a = checkpoint.load(resumed / "checkpoint.npz")
    params_b, _, _, arrays_b = checkpoint.load(straight / "checkpoint.npz")
    for name in params_b:
        assert np.array_equal(params_a[name], params_b[name]), name
    buffers_a, buffers_b = checkpoint.buffers_from(arrays_a), checkpoint.buffers_from(arrays_b)
    assert "quantizer.codebook" in buffers_b       # the run's moving-average codebook
    for name in buffers_b:
        assert np.array_equal(buffers_a[name], buffers_b[name]), name

    assert evaluate_main([str(straight), "--codes"]) == 0
    result = json.loads((straight / "evaluation.json").read_text())
    codes = result["results"][result["latest"]]
    assert codes["n_examples"] == 10000 and 0 < codes["mse_per_pixel"] < 0.2
    assert 1 <= codes["perplexity"] <= 16 and 0 <= codes["dead_codes"] < 16
    assert codes["codes_per_example"] == 49     # a 7 x 7 grid
    # Importance sampling a deterministic q is the bound again: evaluate says so.
    assert evaluate_main([str(straight)]) == 0
    assert "deterministic" in capsys.readouterr().err

    # The same test images through two runs, side by side (Wang's comparison figure).
    import runpy
    figure = tmp_path / "compare.png"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_reconstructions.py"
    namespace = runpy.run_path(str(script))
    namespace["main"]([str(figure), f"{resumed}=resumed", f"{straight}=straight", "--count", "4"])
    assert figure.stat().st_size > 1000


def test_vq_vae_with_an_mlp_and_conv_on_fashion_mnist(tmp_path):
    _skip_without("fashion-mnist")
    mlp = tmp_path / "mlp"
    assert train_main(["--model", "vq-vae", "--net", "mlp", "--hidden", "16", "--dataset",
                       "mnist", "--samples", "128", "--out", str(mlp), "--no-figures"]) == 0
    assert json.loads((mlp / "config.json").read_text())["model"]["z_dim"] == 16 * 16
    fashion = tmp_path / "fashion"
    assert train_main(["--net", "conv", "--dataset", "fashion-mnist", "--samples", "100",
                       "--batch-size", "50", "--out", str(fashion), "--channels", "4",
                       "--eval-size", "200", "--activation", "softplus"]) == 0
    assert (fashion / "figures" / "reconstructions.png").exists()
    settings = json.loads((fashion / "config.json").read_text())["settings"]
    assert settings["activation"] == "softplus" and settings["batch_size"] == 50
    assert settings["optimizer"] == "adam"
