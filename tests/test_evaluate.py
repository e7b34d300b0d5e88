"""The importance-sampled log p(x), where the truth is known, and the evaluate command.

For the linear Gaussian model (a VAE with no hidden layer, identity output and fixed
decoder variance) log p(x) = log N(x; b, W^T W + s^2 I) exactly. With an encoder q that
is close to, but not, the posterior, the estimate logsumexp_k log w_k - log K must
rise towards log p(x) as K grows and, on average, never fall below the ELBO.
"""
import json
import math

import numpy
import pytest

import numpyvae as nv
from numpyvae import datasets, linear_gaussian
from numpyvae.evaluate import main as evaluate_main
from numpyvae.marginal_likelihood import chunk_sizes, elbo_draws, log_marginal_likelihood
from numpyvae.reparameterize import box_muller
from numpyvae.train import main as train_main

X_DIM, Z_DIM, N = 6, 2, 200


def linear_model_with_imperfect_encoder(seed=0):
    """A linear VAE with a random decoder, whose q(z|x) has the exact posterior mean
    shifted by 0.3 and diagonal variances 1.5 times the posterior's (a broader q keeps
    the importance weights' variance finite). Returns (model, x, exact log p(x))."""
    rng = numpy.random.default_rng(seed)
    model = nv.VAE(X_DIM, hidden=(), z_dim=Z_DIM, likelihood="gaussian-fixed",
                   output_activation="identity", decoder_variance=0.5, dtype=numpy.float64)
    weight = rng.normal(0, 1.0, (Z_DIM, X_DIM))
    bias = rng.normal(0, 1.0, X_DIM)
    model.params["decoder.mean.W"][...] = weight
    model.params["decoder.mean.b"][...] = bias
    variance = model.decoder_variance
    inverse = numpy.linalg.inv(weight @ weight.T + variance * numpy.eye(Z_DIM))
    posterior_covariance = variance * inverse
    model.params["encoder.mu.W"][...] = weight.T @ inverse           # (X, D)
    model.params["encoder.mu.b"][...] = -bias @ weight.T @ inverse + 0.3
    model.params["encoder.logvar.W"][...] = 0.0
    model.params["encoder.logvar.b"][...] = numpy.log(1.5 * numpy.diag(posterior_covariance))
    # Data from the model itself.
    z = rng.standard_normal((N, Z_DIM))
    x = z @ weight + bias + math.sqrt(variance) * rng.standard_normal((N, X_DIM))
    exact = linear_gaussian.marginal_log_likelihood(x, *linear_gaussian.decoder_parameters(model))
    return model, x, exact


def test_importance_sampled_estimate_converges_to_the_exact_log_likelihood():
    model, x, exact = linear_model_with_imperfect_encoder()
    rng = numpy.random.default_rng(1)
    # The exact ELBO: sigma points make the expectation over q exact for this model.
    elbo = model.elbo(x, eps=linear_gaussian.sigma_point_noise(N, Z_DIM)).elbo
    gap_elbo = float((exact - elbo).mean())
    assert gap_elbo > 0.05  # q is not the posterior: there is something to close

    gaps = {}
    for k in (1, 10, 100, 1000, 10000):
        repeats = 10 if k <= 100 else 3
        estimates = numpy.array([log_marginal_likelihood(model, x, rng, samples=k,
                                                         max_floats=4000)
                                 for _ in range(repeats)])
        mean_estimate = estimates.mean()
        gaps[k] = float(exact.mean() - mean_estimate)
        standard_error = estimates.mean(axis=1).std(ddof=1) / math.sqrt(repeats)
        # Above the ELBO on average (K = 1 *is* an unbiased ELBO estimate).
        assert mean_estimate >= elbo.mean() - 4 * standard_error - 1e-9, k
        # Below log p(x) on average (Jensen), up to Monte Carlo error.
        assert gaps[k] >= -4 * standard_error - 1e-6, k
    assert abs(gaps[1] - gap_elbo) < 0.1
    # The error shrinks as K grows, to a few thousandths of a nat at K = 10^4.
    assert gaps[10] < 0.5 * gaps[1] and gaps[100] < 0.5 * gaps[10]
    assert abs(gaps[1000]) < 0.02 and abs(gaps[10000]) < 5e-3 < gap_elbo / 100


def test_chunking_over_draws_and_examples_is_exact():
    """Chunked running logsumexp == one big logsumexp over the same draws."""
    model, x, _ = linear_model_with_imperfect_encoder(seed=3)
    k = 257
    batch, chunk = chunk_sizes(N, k, X_DIM, max_floats=N * X_DIM * 10)
    assert batch == N and chunk == 10  # 26 chunks, the last one short
    # The same draws, chunk by chunk from the same stream, weighed in one go.
    reference_rng = numpy.random.default_rng(5)
    eps = numpy.concatenate([box_muller(reference_rng, (min(chunk, k - first), N, Z_DIM))
                             for first in range(0, k, chunk)])
    log_weights = model.log_importance_weights(x, eps=eps, samples=k)
    top = log_weights.max(axis=0)
    reference = top + numpy.log(numpy.exp(log_weights - top).sum(axis=0)) - math.log(k)
    chunked = log_marginal_likelihood(model, x, numpy.random.default_rng(5), samples=k,
                                      max_floats=N * X_DIM * 10)
    numpy.testing.assert_allclose(chunked, reference, rtol=0, atol=1e-10)


def test_chunk_sizes_bound_memory():
    for n, k, width, budget in [(10000, 5000, 784, 10 ** 7), (365, 5000, 560, 10 ** 7),
                                (3, 7, 500, 10 ** 3), (10, 5000, 10 ** 6, 10 ** 5)]:
        batch, chunk = chunk_sizes(n, k, width, budget)
        assert 1 <= batch <= n and 1 <= chunk <= k
        assert batch * chunk * width <= budget or (batch == 1 and chunk == 1)


def test_progress_counts_every_weight():
    model, x, _ = linear_model_with_imperfect_encoder()
    seen = []
    log_marginal_likelihood(model, x, numpy.random.default_rng(0), samples=50,
                            max_floats=X_DIM * 7 * 11, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == N * 50 and len(seen) > 5


# --------------------------------------------------------- the command
@pytest.fixture
def trained_run(tmp_path):
    require("frey")
    run_dir = tmp_path / "run"
    assert train_main(["--dataset", "frey", "--hidden", "20", "--samples", "3000",
                       "--out", str(run_dir), "--no-figures"]) == 0
    return run_dir


def test_evaluate_writes_elbo_and_log_likelihood(trained_run, capsys):
    assert evaluate_main([str(trained_run), "--k", "200", "--n-test", "60", "--draws", "4",
                          "--max-floats", "50000"]) == 0
    err = capsys.readouterr().err
    assert "log p(x)" in err and "weights/s" in err
    stored = json.loads((trained_run / "evaluation.json").read_text())
    result = stored["results"][stored["latest"]]
    assert result["k"] == 200 and result["n_examples"] == 60 and result["subset"] == "random 60 (seed 0)"
    assert result["whole_split_examples"] == 365 and math.isfinite(result["elbo_whole_split"])
    assert result["samples_seen"] == 3000
    assert math.isfinite(result["elbo"]) and math.isfinite(result["log_likelihood"])
    assert result["log_likelihood"] > result["elbo"]


def test_evaluations_of_other_splits_and_k_are_all_kept(trained_run):
    """Issue 12, item 10: a second evaluation adds its result instead of overwriting."""
    common = ["--n-test", "20", "--draws", "1", "--max-floats", "50000"]
    assert evaluate_main([str(trained_run), "--k", "10"] + common) == 0
    assert evaluate_main([str(trained_run), "--k", "30"] + common) == 0
    assert evaluate_main([str(trained_run), "--k", "10", "--split", "train"] + common) == 0
    stored = json.loads((trained_run / "evaluation.json").read_text())
    kept = {(r["split"], r["k"]) for r in stored["results"].values()}
    assert kept == {("test", 10), ("test", 30), ("train", 10)}
    assert stored["results"][stored["latest"]]["split"] == "train"


def test_a_result_of_ziggurat_noise_is_kept_beside_the_same_evaluation_now(trained_run):
    """Results written before log p(x)'s noise came from the Box-Muller transform have no
    importance_noise and keep their key; evaluating the same K and seed again adds a result
    under its own key (other draws, another number) instead of replacing the old one."""
    common = ["--k", "10", "--n-test", "20", "--draws", "1", "--max-floats", "50000"]
    assert evaluate_main([str(trained_run)] + common) == 0
    path = trained_run / "evaluation.json"
    stored = json.loads(path.read_text())
    (key, result), = stored["results"].items()
    assert result["importance_noise"] == "box-muller" and key.endswith("-box-muller")
    old = {name: value for name, value in result.items() if name != "importance_noise"}
    old["log_likelihood"] -= 0.5             # a number no run of today's code reproduces
    old_key = key.removesuffix("-box-muller")
    path.write_text(json.dumps({"latest": old_key, "results": {old_key: old}}))
    assert evaluate_main([str(trained_run)] + common) == 0
    stored = json.loads(path.read_text())
    assert stored["results"][old_key] == old
    assert stored["results"][key]["log_likelihood"] == result["log_likelihood"]
    assert stored["latest"] == key


def test_evaluate_errors_are_clean(tmp_path, trained_run, capsys):
    assert evaluate_main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and "--resume" not in err
    (trained_run / "checkpoint.npz").unlink()
    assert evaluate_main([str(trained_run)]) == 2
    assert "No checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main([str(trained_run), "--k", "0"])


def test_elbo_draws_average_matches_single_draw_mean():
    model, x, _ = linear_model_with_imperfect_encoder()
    averaged = elbo_draws(model, x, numpy.random.default_rng(0), draws=400)
    exact = model.elbo(x, eps=linear_gaussian.sigma_point_noise(N, Z_DIM)).elbo
    numpy.testing.assert_allclose(averaged.mean(), exact.mean(), atol=0.05)


def test_evaluate_finds_the_data_the_run_was_trained_with(tmp_path, monkeypatch):
    """A run trained with NUMPYVAE_DATA set is evaluated without it."""
    from numpyvae import datasets, evaluate, train
    require("frey")
    run_dir = tmp_path / "run"
    assert train.main(["--dataset", "frey", "--samples", "300", "--hidden", "8", "--eval-size", "50",
                       "--no-figures", "--out", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data_dir"] == str(datasets.resolve_data_dir())
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))          # the default cache has no data
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert evaluate.main([str(run_dir), "--k", "5", "--n-test", "10", "--draws", "1"]) == 0


# ------------------------------------- results never lost or mislabelled (issue 17)
def require(name):
    """Skip unless data set ``name`` is on disk."""
    try:
        datasets.load(name, "test", download=False)
    except datasets.DataError as error:
        pytest.skip(f"{name} missing: {error}")


def _result(key_seed):
    return dict(dataset="frey", model="vae", split="test", k=1, subset="all", n_examples=1,
                seed=key_seed, samples_seen=100, elbo=-float(key_seed))


def test_evaluations_at_the_same_time_keep_each_others_results(tmp_path, monkeypatch):
    """Eight evaluations finishing together on one run directory: every result kept.
    The write is slowed so that, without the lock, each would read the file before the
    others wrote it and most results would vanish."""
    import threading
    import time as clock
    from numpyvae import rundir
    from numpyvae.evaluate import read_results, save_result
    original = rundir.write_json

    def slow_write(path, value):
        clock.sleep(0.05)
        original(path, value)
    monkeypatch.setattr(rundir, "write_json", slow_write)
    threads = [threading.Thread(target=save_result, args=(tmp_path, _result(seed)))
               for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["seed"] for r in read_results(tmp_path).values()) == list(range(8))


def test_a_damaged_evaluation_file_is_kept_not_replaced(tmp_path, capsys):
    from numpyvae.evaluate import read_results, save_result
    damaged = b'{"latest": "x", "results": {"test-k5'
    (tmp_path / "evaluation.json").write_bytes(damaged)
    save_result(tmp_path, _result(3))
    kept = list(tmp_path.glob("evaluation.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert [r["seed"] for r in read_results(tmp_path).values()] == [3]
    message = capsys.readouterr().err.strip()
    assert "damaged" in message and kept[0].name in message and "\n" not in message
    # A second damaged file gets its own name: nothing overwritten.
    (tmp_path / "evaluation.json").write_text("[1, 2]")
    save_result(tmp_path, _result(4))
    assert len(list(tmp_path.glob("evaluation.json.damaged-*"))) == 2


def test_evaluate_refuses_a_checkpoint_of_another_model(tmp_path, capsys):
    """A checkpoint written by another seed (or model) is refused, not evaluated and
    saved under the config's name; so is editing the config's model_name, for evaluate
    and --resume alike; and a checkpoint with non-finite parameters."""
    import json
    import shutil
    from numpyvae import checkpoint
    require("frey")
    runs = {}
    for seed in (0, 1):
        runs[seed] = tmp_path / f"seed{seed}"
        assert train_main(["--dataset", "frey", "--hidden", "8", "--samples", "200", "--seed",
                           str(seed), "--out", str(runs[seed]), "--no-figures"]) == 0
    shutil.copy(runs[1] / "checkpoint.npz", runs[0] / "checkpoint.npz")
    assert evaluate_main([str(runs[0]), "--k", "2", "--draws", "1"]) == 2
    assert "another model" in capsys.readouterr().err
    assert not (runs[0] / "evaluation.json").exists()

    config_path = runs[1] / "config.json"
    config = json.loads(config_path.read_text())
    config["model_name"] = "iwae"
    config_path.write_text(json.dumps(config))
    assert evaluate_main([str(runs[1]), "--k", "2", "--draws", "1"]) == 2
    assert train_main(["--resume", str(runs[1]), "--samples", "400"]) == 2
    assert "model_name" in capsys.readouterr().err

    run = tmp_path / "nan"
    assert train_main(["--dataset", "frey", "--hidden", "8", "--samples", "200", "--out",
                       str(run), "--no-figures"]) == 0
    params, optimizer, meta, arrays = checkpoint.load(run / "checkpoint.npz")
    params["encoder.mu.W"][0, 0] = float("nan")
    checkpoint.save(run / "checkpoint.npz", params, optimizer, meta, arrays)
    assert evaluate_main([str(run), "--k", "2", "--draws", "1"]) == 2
    assert "non-finite" in capsys.readouterr().err


def test_evaluate_names_what_it_estimated_with_standard_errors(tmp_path, capsys):
    """Issue 17, item 10: a label CVAE's number is log p(x|c), printed and saved as such,
    with mean ± standard error."""
    require("mnist")
    run = tmp_path / "cvae"
    assert train_main(["--model", "cvae", "--dataset", "mnist", "--hidden", "8", "--samples",
                       "100", "--eval-size", "50", "--out", str(run), "--no-figures"]) == 0
    capsys.readouterr()
    assert evaluate_main([str(run), "--k", "2", "--n-test", "30", "--draws", "1"]) == 0
    printed = capsys.readouterr().err
    assert "log p(x|c) (IS, K=2)" in printed and "±" in printed and "log p(x) " not in printed
    stored = json.loads((run / "evaluation.json").read_text())
    assert stored["results"][stored["latest"]]["quantity"] == "log p(x|c)"


def test_load_returns_the_trained_model_of_any_member(tmp_path):
    """Issue 17, item 12: numpyvae.load(run_dir) gives the trained model (a CVAE here,
    which the README's old recipe nv.VAE(**config["model"]) could not rebuild)."""
    require("mnist")
    from numpyvae import checkpoint
    from numpyvae.rundir import UsageError
    run = tmp_path / "cvae"
    assert train_main(["--model", "cvae", "--dataset", "mnist", "--hidden", "8", "--z-dim", "2",
                       "--samples", "100", "--eval-size", "50", "--out", str(run),
                       "--no-figures"]) == 0
    model = nv.load(run)
    params = checkpoint.load(run / "checkpoint.npz")[0]
    assert isinstance(model, nv.CVAE)
    assert all(numpy.array_equal(model.params[name], params[name]) for name in params)
    x, _ = datasets.load("mnist", "test")
    labels = numpy.arange(4)
    mu, logvar = model.encode(x[:4], labels)
    assert mu.shape == (4, 2)
    assert model.decode(mu, labels).shape == (4, 784)
    assert model.sample(3, numpy.random.default_rng(0), condition=numpy.arange(3)).shape == (3, 784)
    with pytest.raises(UsageError):
        nv.load(tmp_path / "missing")


def test_a_stopped_evaluation_keeps_its_elbo_and_says_how_long(tmp_path, capsys, monkeypatch):
    """Issue 17, item 14: the expected time of the importance sampling is printed before
    it starts, and Ctrl-C during it keeps the ELBO already computed."""
    require("frey")
    import numpyvae.evaluate as evaluation
    run = tmp_path / "frey"
    assert train_main(["--dataset", "frey", "--hidden", "8", "--samples", "200", "--out",
                       str(run), "--no-figures"]) == 0
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(evaluation, "log_marginal_likelihood", interrupted)
    assert evaluate_main([str(run), "--k", "50", "--draws", "2"]) == 130
    printed = capsys.readouterr().err
    assert "365 examples x K = 50" in printed and "about" in printed
    stored = json.loads((run / "evaluation.json").read_text())
    kept = stored["results"][stored["latest"]]
    assert kept["complete"] is False and kept["log_likelihood"] is None
    assert math.isfinite(kept["elbo"]) and kept["whole_split_examples"] == 365
    monkeypatch.undo()
    assert evaluate_main([str(run), "--k", "5", "--draws", "2"]) == 0
    stored = json.loads((run / "evaluation.json").read_text())
    assert stored["results"][stored["latest"]]["complete"] is True


def test_evaluate_of_a_bernoulli_vae_is_the_fused_estimate_from_the_evaluation_stream(tmp_path):
    """A Bernoulli VAE's log p(x) is importance-sampled by numpyvae.fused_weights, and the
    trial that times its pace draws noise of its own: the result is exactly the estimate
    from the evaluation's stream (its ELBO draws first), as before the trial existed."""
    require("binarized-mnist")
    from numpyvae.evaluate import load_split, subset_indices
    from numpyvae.marginal_likelihood import metric_draws
    run = tmp_path / "run"
    assert train_main(["--dataset", "binarized-mnist", "--hidden", "16", "--z-dim", "4",
                       "--samples", "200", "--out", str(run), "--no-figures"]) == 0
    assert evaluate_main([str(run), "--k", "40", "--n-test", "30", "--draws", "1"]) == 0
    stored = json.loads((run / "evaluation.json").read_text())
    result = stored["results"][stored["latest"]]

    model = nv.load(run)
    assert nv.fused_weights.unsupported(model) is None
    config = json.loads((run / "config.json").read_text())
    images, _ = load_split(config, "test", None, 0)
    rng = numpy.random.default_rng([0, 11])
    with numpy.errstate(over="ignore", under="ignore"):
        metric_draws(model, images, None, rng, 1)
        log_px = log_marginal_likelihood(model, images[subset_indices(len(images), 30, 0)],
                                         rng, samples=40)
    assert result["log_likelihood"] == float(log_px.mean())


def test_latent_activity_is_each_dimensions_variance_of_q_means_over_the_test_split(tmp_path):
    """numpyvae.evaluate.latent_activity: Burda et al.'s Cov_x(E_q[z_d]) over the run's whole
    test split, computed in batches; a dimension whose mean ignores x has none."""
    from numpyvae.evaluate import latent_activity, load_model, load_split
    from numpyvae.latent import active_dimensions

    require("frey")
    run_dir = tmp_path / "run"
    assert train_main(["--dataset", "frey", "--hidden", "20", "--z-dim", "4", "--init", "glorot",
                       "--dtype", "float64", "--samples", "100", "--out", str(run_dir),
                       "--no-figures"]) == 0
    variances = latent_activity(run_dir, batch=7)            # 365 test faces: a ragged end
    model, config, _ = load_model(run_dir)
    x, _ = load_split(config, "test", None, 0)
    assert variances.shape == (4,) and (variances > 0).all()
    numpy.testing.assert_allclose(variances, model.encode(x)[0].var(axis=0), rtol=1e-12)
    model.params["encoder.mu.W"][:, 0] = 0                    # dimension 0's mean: its bias alone
    dead = active_dimensions(model.latent_point(x))[1]
    assert dead[0] < 1e-28            # a constant: its variance is rounding
    numpy.testing.assert_allclose(dead[1:], variances[1:], rtol=1e-12)


def test_training_logs_how_many_latent_dimensions_are_in_use(tmp_path, capsys):
    """Each evaluation in metrics.jsonl counts the dimensions whose q-mean varies over the
    test subset (Frey's whole test split here), as latent_activity does afterwards, and the
    last line of the command says it: a dimension lost to the prior shows while training."""
    from numpyvae.evaluate import latent_activity
    from numpyvae.latent import ACTIVE_VARIANCE
    from numpyvae.rundir import read_metrics

    require("frey")
    run_dir = tmp_path / "run"
    assert train_main(["--dataset", "frey", "--z-dim", "10", "--samples", "20000",
                       "--out", str(run_dir), "--no-figures"]) == 0
    last = read_metrics(run_dir)[-1]
    assert last["samples_seen"] == 20000
    in_use = int((latent_activity(run_dir) > ACTIVE_VARIANCE).sum())
    assert last["test_active_dimensions"] == in_use
    assert f"latent dimensions in use {in_use} of 10." in capsys.readouterr().err
