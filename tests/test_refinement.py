"""Per-example refinement of q and the gaps of inference (numpyvae.inference.refinement,
``python -m numpyvae.evaluate RUN --gaps``; Cremer, Li & Duvenaud, 2018).

The gradient of each example's ELBO with respect to its local parameters comes from the
parts' backward passes: checked against central differences in float64. Where the answer
is exact -- the linear Gaussian model, whose posterior N(m, S) is Gaussian with a full
covariance -- the best factorized q is known too: mean m and variances 1 / Lambda_dd
(Lambda = S^-1), with KL(q* || p(z|x)) = 1/2 (sum_d log Lambda_dd - log det Lambda). The
refinement must reach it, and the approximation gap must be that KL.
"""
import json
import math

import numpy
import pytest

import numpyvae as nv
from numpyvae import linear_gaussian, models
from numpyvae.evaluate import main as evaluate_main
from numpyvae.gradcheck import check_gradients
from numpyvae.inference import refinement
from numpyvae.train import main as train_main

TOLERANCE = 1e-6

MEMBERS = {   # name -> options: every member with a continuous z and local parameters
    "vae": dict(activation="elu"),
    "iwae": dict(k=3),
    "planar-flow": dict(flow_length=2),
    "cvae": dict(n_classes=3),          # a label condition and a prior network
    "vade": dict(n_components=3),       # a mixture prior: the KL by Monte Carlo
}


def small_model(name, seed=0):
    return models.create(name, x_dim=6, hidden=(5,), z_dim=3, likelihood="bernoulli",
                         dtype="float64", seed=seed, **MEMBERS[name])


def binary_rows(rng, n, width=6):
    return (rng.random((n, width)) > 0.5).astype(float)


@pytest.mark.parametrize("name", MEMBERS)
def test_local_gradient_matches_central_differences(name):
    rng = numpy.random.default_rng(1)
    model = small_model(name)
    x = binary_rows(rng, 4)
    condition = rng.integers(0, 3, 4) if name == "cvae" else None
    # Away from the encoder's output, where refinement takes q.
    local = {head: numpy.array(value) + 0.3 * rng.standard_normal(value.shape)
             for head, value in model.local_parameters(x, condition).items()}
    eps = rng.standard_normal((2, 4, 3))
    elbo, grads = model.local_elbo(x, local, condition, eps=eps, grads=True)
    assert elbo.shape == (4,) and set(grads) == set(local)
    errors = check_gradients(lambda: model.local_elbo(x, local, condition, eps=eps).sum(),
                             local, grads)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name", ["vae", "planar-flow", "cvae"])
def test_local_elbo_at_the_encoders_parameters_is_the_models_elbo(name):
    rng = numpy.random.default_rng(2)
    model = small_model(name)
    x = binary_rows(rng, 5)
    condition = rng.integers(0, 3, 5) if name == "cvae" else None
    eps = rng.standard_normal((3, 5, 3))
    numpy.testing.assert_allclose(
        model.local_elbo(x, model.local_parameters(x, condition), condition, eps=eps),
        model.elbo(x, condition, eps=eps, samples=3).elbo, rtol=1e-12)
    # ... and the importance weights of the encoder's q, given as local parameters.
    numpy.testing.assert_allclose(
        model.log_importance_weights(x, condition, eps=eps, samples=3,
                                     local=model.local_parameters(x, condition)),
        model.log_importance_weights(x, condition, eps=eps, samples=3), rtol=1e-12)


# --------------------------------------------------------- the exact answer
def correlated_linear_model(n=8, seed=1):
    """A linear Gaussian VAE whose posterior's two latent dimensions are correlated (a
    factorized q cannot be exact), data from the model, and the exact answers: log p(x),
    the optimal factorized q's mean and log-variance, and KL(q* || p(z|x))."""
    rng = numpy.random.default_rng(seed)
    model = nv.VAE(4, hidden=(), z_dim=2, likelihood="gaussian-fixed",
                   output_activation="identity", decoder_variance=0.5, dtype="float64", seed=3)
    weight = numpy.array([[1.0, 0.6, 0.3, -0.5], [0.5, 1.0, 0.1, -0.6]])
    bias = numpy.array([0.3, -0.2, 0.1, 0.5])
    model.params["decoder.mean.W"][...] = weight
    model.params["decoder.mean.b"][...] = bias
    x = rng.standard_normal((n, 2)) @ weight + bias + math.sqrt(0.5) * rng.standard_normal((n, 4))
    decoder = linear_gaussian.decoder_parameters(model)
    mean, covariance = linear_gaussian.exact_posterior(x, *decoder)
    precision = numpy.linalg.inv(covariance)
    kl = 0.5 * (numpy.log(numpy.diag(precision)).sum() - numpy.linalg.slogdet(precision)[1])
    exact = dict(log_px=linear_gaussian.marginal_log_likelihood(x, *decoder), mean=mean,
                 logvar=-numpy.log(numpy.diag(precision)), kl=kl)
    return model, x, exact


def exact_elbo(model, x, local):
    """The ELBO with no Monte Carlo error: sigma points (the log-likelihood is quadratic in z)."""
    return model.local_elbo(x, local, eps=linear_gaussian.sigma_point_noise(len(x), 2),
                            samples=4)


@pytest.mark.parametrize("start", ["encoder", "prior"])
def test_refinement_reaches_the_optimal_factorized_q(start):
    model, x, exact = correlated_linear_model()
    assert exact["kl"] > 0.25          # a gap the factorized family cannot close
    begin = (refinement.encoder_start if start == "encoder" else
             lambda model, x: refinement.prior_start(model, x))(model, x)
    # Large steps to get there, then small steps with more draws to settle
    # (Adam at a fixed rate wanders in a ball whose size grows with the rate).
    refined, history = refinement.refine(model, x, begin, 1000, numpy.random.default_rng(0),
                                         lr=1e-2, samples=16)
    refined, _ = refinement.refine(model, x, refined, 1000, numpy.random.default_rng(1),
                                   lr=1e-3, samples=64)
    assert history[-50:].mean() > history[:50].mean()
    numpy.testing.assert_allclose(refined["mu"], exact["mean"], atol=0.03)
    numpy.testing.assert_allclose(refined["logvar"], numpy.broadcast_to(exact["logvar"], (8, 2)),
                                  atol=0.05)
    optimum = exact["log_px"] - exact["kl"]            # L[q*] = log p(x) - KL(q* || p)
    assert numpy.abs(exact_elbo(model, x, refined) - optimum).max() < 5e-3
    assert (exact_elbo(model, x, begin) < optimum - 0.1).all()
    # The start is left as it was.
    assert not numpy.allclose(begin["mu"], refined["mu"])


def test_the_approximation_gap_is_the_known_kl():
    model, x, exact = correlated_linear_model()
    gaps = refinement.inference_gaps(model, x, numpy.random.default_rng(2), steps=2000, k=5000,
                                     draws=2000, lr=3e-3, samples=16)
    assert abs(gaps.approximation.mean() - exact["kl"]) < 0.05
    assert abs((gaps.log_likelihood - exact["log_px"]).mean()) < 0.05
    exact_amortized = exact_elbo(model, x, refinement.encoder_start(model, x))
    assert abs(gaps.amortized.mean() - exact_amortized.mean()) < 0.05
    assert abs(gaps.amortization.mean() - (exact["log_px"] - exact["kl"] - exact_amortized).mean()) < 0.05
    numpy.testing.assert_allclose(gaps.approximation + gaps.amortization,
                                  gaps.log_likelihood - gaps.amortized, rtol=1e-12)


@pytest.mark.parametrize("name", ["vae", "planar-flow"])
def test_the_bounds_are_in_order_on_a_nonlinear_model(name):
    """log p(x) >= L[q*] >= L[q] on average, up to Monte Carlo error."""
    rng = numpy.random.default_rng(3)
    model = models.create(name, x_dim=12, hidden=(8,), z_dim=2, likelihood="bernoulli",
                          seed=4, **({"flow_length": 2} if name == "planar-flow" else {}))
    # Weights large enough that the decoder reads z and the encoder's guess is off.
    model.params.flat[...] = rng.normal(0.0, 0.7, model.params.flat.shape)
    x = binary_rows(rng, 30, 12)
    gaps = refinement.inference_gaps(model, x, numpy.random.default_rng(4), steps=300, k=500,
                                     draws=50, lr=1e-2)
    error = lambda values: 3 * values.std(ddof=1) / math.sqrt(len(values))   # noqa: E731
    assert gaps.amortization.mean() > error(gaps.amortization)
    assert gaps.approximation.mean() > -error(gaps.approximation)
    assert gaps.history.shape == (300,) and gaps.history[-30:].mean() > gaps.history[:30].mean()


def test_bad_local_parameters_are_refused_in_one_line():
    model = small_model("planar-flow")
    x = binary_rows(numpy.random.default_rng(0), 3)
    local = model.local_parameters(x)
    with pytest.raises(ValueError, match="exactly q's heads"):
        model.local_elbo(x, {"mu": local["mu"], "logvar": local["logvar"]})
    with pytest.raises(ValueError, match=r"local\['mu'\] must have shape \(3, 3\)"):
        model.local_elbo(x, dict(local, mu=local["mu"][:2]))
    with pytest.raises(ValueError, match="needs a diagonal Gaussian q"):
        refinement.prior_start(model, x)


def test_prior_start_is_the_prior():
    model = small_model("cvae")
    x = binary_rows(numpy.random.default_rng(0), 3)
    labels = numpy.array([0, 2, 1])
    start = refinement.prior_start(model, x, labels)
    mu_p, logvar_p = model.prior_parameters(labels)
    numpy.testing.assert_array_equal(start["mu"], mu_p)
    numpy.testing.assert_array_equal(start["logvar"], logvar_p)
    plain = refinement.prior_start(small_model("vae"), x)
    assert not plain["mu"].any() and not plain["logvar"].any()


# --------------------------------------------------------------- the command
@pytest.fixture
def tiny_run(tmp_path):
    rng = numpy.random.default_rng(0)
    data = tmp_path / "bits.npy"
    numpy.save(data, (rng.random((200, 10)) > 0.5).astype(numpy.float32))
    run = tmp_path / "run"
    assert train_main(["--dataset", str(data), "--hidden", "8", "--z-dim", "2", "--samples",
                       "400", "--out", str(run), "--no-figures"]) == 0
    return run


def test_evaluate_gaps_prints_and_saves_the_decomposition(tiny_run, capsys):
    capsys.readouterr()
    assert evaluate_main([str(tiny_run), "--gaps", "--n-test", "12", "--refine-steps", "40",
                          "--refine-lr", "0.01", "--k", "50", "--draws", "5"]) == 0
    printed = capsys.readouterr().err
    for words in ("L[q]", "L[q*]", "importance-sampled from q*", "approximation gap",
                  "amortization gap", "±"):
        assert words in printed
    stored = json.loads((tiny_run / "evaluation.json").read_text())
    result = stored["results"][stored["latest"]]
    assert stored["latest"].startswith("gaps-test-k50-n12-seed0-")
    assert result["kind"] == "gaps" and result["quantity"] == "log p(x)"
    assert result["proposal"] == "refined q*" and result["refine_steps"] == 40
    assert len(result["refinement_curve"]) == 40
    for name in ("elbo_amortized", "elbo_refined", "log_likelihood", "approximation_gap",
                 "amortization_gap", "inference_gap"):
        assert math.isfinite(result[name]) and result[f"{name}_standard_error"] > 0
    assert result["approximation_gap"] + result["amortization_gap"] == pytest.approx(
        result["inference_gap"], abs=1e-9)
    # A plain evaluation of the same run is kept beside it.
    assert evaluate_main([str(tiny_run), "--n-test", "12", "--k", "5", "--draws", "1"]) == 0
    assert len(json.loads((tiny_run / "evaluation.json").read_text())["results"]) == 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the diverging refinement's overflow
def test_evaluate_gaps_refusals_are_one_line(tiny_run, capsys):
    with pytest.raises(SystemExit) as stopped:
        evaluate_main([str(tiny_run), "--refine-steps", "10"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --refine-steps") and "--gaps" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        evaluate_main([str(tiny_run), "--gaps", "--codes"])
    capsys.readouterr()
    # A refinement that diverges says what to change.
    assert evaluate_main([str(tiny_run), "--gaps", "--n-test", "4", "--refine-steps", "30",
                          "--refine-lr", "1e30", "--k", "2", "--draws", "1"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: the refinement diverged") and "smaller learning rate" in err
