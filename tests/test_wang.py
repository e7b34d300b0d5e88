"""Wang (2023)'s setup in the engine (issue 19, section 1): an encoder whose mu and
logvar come from two separate towers (``encoder_towers="separate"``), every bias drawn
like the weights (``bias_init="normal"``), and the reproduction script's quick mode."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyvae as nv
from numpyvae import encoder
from numpyvae.train import main
from conftest import need_data

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


# ------------------------------------------------------- experiments/wang.py
sys.path.insert(0, str(ROOT / "experiments"))
import wang  # noqa: E402

# Wang's Tables 2 and 3 (6e7 samples): (reconstruction, KL) of every architecture the
# search of section 5.2 asks about.
WANG_MEASURED = {
    (500, 3): (130.7, 7.2), (500, 500, 2): (130.4, 7.3), (500, 500, 3): (115.5, 9.1),
    (500, 251, 3): (127.2, 8.5), (500, 376, 3): (116.1, 9.1), (500, 313, 3): (116.9, 8.9),
    (500, 282, 3): (141.4, 7.1), (500, 297, 3): (117.2, 8.9), (500, 289, 3): (117.1, 9.0),
    (500, 285, 3): (117.6, 8.9), (500, 283, 3): (124.7, 8.8), (500, 284, 3): (118.2, 8.8),
    (392, 284, 3): (118.4, 8.9), (337, 284, 3): (119.9, 8.8), (310, 284, 3): (120.4, 8.7),
    (323, 284, 3): (120.5, 8.7), (330, 284, 3): (119.3, 8.8), (326, 284, 3): (119.9, 8.8),
    (324, 284, 3): (119.9, 8.7),
}


def test_the_search_retraces_wangs_table_2_from_wangs_numbers():
    """Fed Wang's own measurements, the search asks for exactly the architectures of
    Wang's Table 2 in its order (after the latent's search, which Wang read off Table 3),
    finds no good model with one hidden layer, and answers [324, 284, 3]."""
    asked = []

    def evaluate(arch, phase):
        asked.append(tuple(arch))
        recon, kl = WANG_MEASURED[tuple(arch)]
        return dict(good=recon <= 120 and kl <= 10, kl_ok=kl <= 10)

    assert wang.minimal_architecture(1, evaluate) is None
    assert asked == [(500, 3)]
    asked.clear()
    assert wang.minimal_architecture(2, evaluate) == (324, 284, 3)
    table_2 = [(500, 500, 3), (500, 251, 3), (500, 376, 3), (500, 313, 3), (500, 282, 3),
               (500, 297, 3), (500, 289, 3), (500, 285, 3), (500, 283, 3), (500, 284, 3),
               (392, 284, 3), (337, 284, 3), (310, 284, 3), (323, 284, 3), (330, 284, 3),
               (326, 284, 3), (324, 284, 3)]
    assert asked == [(500, 500, 3), (500, 500, 2), (500, 500, 3)] + table_2[1:]


def test_the_search_first_brings_the_kl_within_bounds():
    """Step 1: an upper bound whose KL is too high is shrunk to the largest widths with
    KL <= 10 (KL rising with every width), then Algorithm 1 runs below them."""
    def evaluate(arch, phase):
        kl = arch[-1] * 3 + sum(arch[:-1]) / 100
        recon = 200 - sum(arch[:-1]) / 5 - 10 * arch[-1]
        return dict(good=recon <= 120 and kl <= 10, kl_ok=kl <= 10)

    # [500, 3] has KL 14: step 1 takes d = 1 (KL 8; d = 2 gives 11) and keeps 500 units
    # (KL 3 + w / 100 <= 10 for any w <= 500); step 2 then finds the smallest good width,
    # reconstruction 200 - w / 5 - 10 <= 120 from w = 350 on.
    asked = []
    assert wang.minimal_architecture(1, lambda arch, phase: asked.append(tuple(arch))
                                     or evaluate(arch, phase)) == (350, 1)
    assert asked[:3] == [(500, 3), (500, 2), (500, 1)]
    assert all(evaluate(list(arch), "")["kl_ok"] for arch in asked[3:])
    assert wang.largest(1, 500, [500, 3], 0, lambda arch: arch[0] <= 137) == 137
    assert wang.binary_search(3, 500, [500, 500, 3], 1, lambda arch: arch[1] >= 284) == 284


def test_monotonicity_violations_count_pairings_of_seeds():
    table = {(500, 500, 3): {0: (115.0, 9.0), 1: (121.0, 9.1)},
             (500, 251, 3): {0: (118.0, 8.5), 1: (127.0, 8.6)}}
    ((bigger, smaller, against, pairs),) = wang.monotonicity_violations(table)
    assert (bigger, smaller, pairs) == ((500, 500, 3), (500, 251, 3), 4)
    assert against == 1          # seed 1's 121.0 above seed 0's 118.0


def test_quick_mode_runs_every_part_and_report_only_reprints_it(tmp_path):
    """``all --quick``: table 1 at two budgets (the second resumes the runs), the search
    and the noise, with tiny nets; ``--report-only`` then prints the same tables from the
    runs on disk without training anything."""
    need_data("mnist")
    script = [sys.executable, str(ROOT / "experiments" / "wang.py"), "all", "--quick",
              "--runs-dir", str(tmp_path / "runs")]
    first = subprocess.run(script, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "--resume" in first.stderr and "--encoder-towers separate" in first.stderr
    for heading in ("Wang (2023) Table 1", "minimal-complexity search", "Run-to-run noise"):
        assert heading in first.stdout
    assert "| CVAE | 1,000 (0.0167 epochs) | test |" in first.stdout
    assert "131.7 = 116.1 + 2 x 7.8" in first.stdout
    # How many latent dimensions each run uses: the search's and the noise's tables, and a
    # line under Table 1, read from each evaluation's record.
    assert "active latent dimensions |" in first.stdout.split("minimal-complexity search")[1]
    assert "| active latent dimensions per seed |" in first.stdout
    assert re.search(r"Latent dimensions in use .*: VAE \d of 2 \(at 1,000\)", first.stdout)
    # Past every budget asked, the next one named is Wang's own (not "1,000 ... 0.0 h more").
    assert "1,000 samples in" in first.stdout and "; 120,000,000 would take" in first.stdout
    assert (tmp_path / "runs" / "figures" / "wang_table1_curves.png").exists()
    again = subprocess.run(script + ["--report-only", "--no-figures"], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "numpyvae.train" not in again.stderr
    start = first.stdout.index("\nFigures:")
    end = first.stdout.index("\n", start + 1) + 1
    assert again.stdout == first.stdout[:start] + first.stdout[end:]


def test_active_dimensions_come_from_the_record_without_loading_the_checkpoint(tmp_path):
    """The training command counts the dimensions in use at each evaluation; the tables
    print that count for the record's own budget, even after the checkpoint moved on (here
    there is none at all), and fall back to the checkpoint only for an older record."""
    need_data("frey")
    run_dir = tmp_path / "run"
    main(["--dataset", "frey", "--hidden", "8", "--z-dim", "3", "--samples", "200",
          "--batch-size", "100", "--no-figures", "--eval-size", "200", "--out", str(run_dir)])
    record = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    counted = wang.active_dimensions(run_dir, record)
    assert counted == f"{record['test_active_dimensions']} of 3"
    older = {key: value for key, value in record.items() if key != "test_active_dimensions"}
    assert wang.active_dimensions(run_dir, older) == counted       # from the checkpoint
    assert wang.active_dimensions(run_dir, dict(older, samples_seen=100)) == "-"
    (run_dir / "checkpoint.npz").unlink()
    assert wang.active_dimensions(run_dir, record) == counted


@pytest.mark.parametrize("argv, message", [
    (["table1", "--budgets", "1.5"], "--budgets: expected a positive integer, got '1.5'"),
    (["noise", "--archs", "500"], "'500' is not an architecture"),
    (["search", "--max-recon", "-1"], "--max-recon: expected a positive number"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        wang.main(argv + ["--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_beta_vae_at_wangs_setup_is_not_stopped_by_its_first_steps(tmp_path, capsys):
    """Adagrad's first update moves every weight by lr, and the loss of Wang's
    [500, 500, 3] right after it is 10^4-10^5 nats (beta = 5 counts the KL's surge five
    times) for that one step. The divergence check leaves that loss out; before, it
    stopped this run at step 2 with exit status 3."""
    need_data("mnist")
    argv = [*wang.WANG_SETUP, "--hidden", "500", "500", "--z-dim", "3", "--beta", "5",
            "--samples", "2000", "--eval-size", "100", "--threads", "1",
            "--out", str(tmp_path / "beta5")]
    assert main(argv) == 0, capsys.readouterr().err[-500:]
