"""Evaluate a trained run: ``python -m numpyvae.evaluate RUN_DIR``.

Two numbers per test example, averaged over the test set:

* the ELBO, averaged over ``--draws`` independent noise draws (an unbiased estimate
  of E_q[log p(x|z)] - KL(q || p), with less Monte Carlo noise than one draw);
* the importance-sampled log-likelihood (IWAE protocol, Burda et al. 2016)

      log p(x) ~ logsumexp_k(log w_k) - log K,   w_k = p(x, z_k) / q(z_k | x),  K = 5000,

  computed in chunks of draws so memory stays bounded (numpyvae.marginal_likelihood).

With ``--gaps``, the decomposition of the inference gap (Cremer, Li & Duvenaud, 2018):
each example's q refined by Adam on its local parameters to q* (numpyvae.inference.refinement),

    log p(x) - L[q] = (log p(x) - L[q*]) + (L[q*] - L[q])
                       approximation gap    amortization gap,

log p(x) importance-sampled with q* as the proposal.

For a conditional model both are of log p(x|c) (the CVAE's label, the quadrant CVAE's
given quadrant). Results are printed and added to RUN_DIR/evaluation.json (or the file of
``--results``), keyed by what was evaluated (split, K, subset, seed), so evaluating
another split or K keeps the earlier results. A result that cannot be written (a
read-only run directory) is printed all the same, then one line says where it could go.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy

from . import backend, checkpoint, datasets, fused_weights, rundir, runconfig, threads
from .marginal_likelihood import (DEFAULT_MAX_FLOATS, IMPORTANCE_NOISE, log_marginal_likelihood,
                                  metric_draws)
from .progress import ProgressBar
from .rundir import EVALUATION_NAME, RunFileError, UsageError
from .cli import (EXIT_DISK_FULL, EXIT_USAGE, ArgumentParser, non_negative_int, positive_float,
                  positive_int)
from .inference import refinement


def count_or_all(text):
    if text.strip().lower() == "all":
        return None
    return positive_int(text)


GAPS_N_TEST = 500   # refinement costs --refine-steps passes per example
UNSET = object()    # --n-test not given: the mode's default ('all' gives None)
REFINE_FLAGS = (    # (flag, type, default, help) of the refinement's settings
    ("--refine-steps", positive_int, refinement.DEFAULT_STEPS,
     "Adam steps on each example's local parameters"),
    ("--refine-lr", positive_float, refinement.DEFAULT_LR,
     "Adam's learning rate for the refinement"),
    ("--refine-samples", positive_int, 1, "noise draws per refinement step"),
)


def build_parser():
    parser = ArgumentParser(
        prog="python -m numpyvae.evaluate",
        description="Test ELBO and importance-sampled log p(x) (K = 5000, IWAE protocol) of a "
                    "run written by numpyvae.train; results go to RUN_DIR/evaluation.json.")
    add = parser.add_argument
    add("run_dir", metavar="RUN_DIR",
        help="a run directory written by python -m numpyvae.train (its config.json and "
             "checkpoint.npz are read; results are added to its evaluation.json)")
    add("--k", type=positive_int, default=5000, help="importance samples K per example; default %(default)s")
    add("--n-test", type=count_or_all, default=UNSET,
        help="importance-sample a fixed random subset of N examples (seeded by --seed), or "
             f"'all' (default: all; {GAPS_N_TEST} with --gaps). The ELBO is also reported on "
             "the whole split")
    add("--draws", type=positive_int, default=None,
        help="noise draws averaged for each ELBO; default 10 "
             f"({refinement.DEFAULT_DRAWS} with --gaps: L[q*] - L[q] needs small errors)")
    add("--split", default="test", help="data split: test (default) or train; binarized-mnist "
                                        "also has valid")
    add("--batch", type=positive_int, default=None,
        help="examples per importance-sampling batch (default: as many as memory allows)")
    add("--max-floats", type=positive_int, default=DEFAULT_MAX_FLOATS,
        help="bound on one chunk's activations, in floats; default %(default)s (~40 MB in "
             "float32)")
    add("--seed", type=non_negative_int, default=0,
        help="seeds the evaluation noise and the --n-test subset; default 0")
    add("--data-dir", help="data directory (default: the run's, else $NUMPYVAE_DATA or cache)")
    add("--results", metavar="FILE",
        help="add the results to FILE instead of RUN_DIR/evaluation.json (same format, "
             "locked the same way): for a run directory you cannot write")
    add("--backend", choices=("numpy", "cupy"),
        help="array backend (default numpy, or $NUMPYVAE_BACKEND)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--gaps", action="store_true",
                       help="the approximation and amortization gaps: refine each example's q "
                            "by Adam on its local parameters (--refine-steps), then L[q], "
                            "L[q*] and log p(x) (K importance samples from q*), each with "
                            "its standard error")
    for flag, parse, default, words in REFINE_FLAGS:
        add(flag, type=parse, default=None, help=f"with --gaps: {words}; default {default}")
    add = modes.add_argument
    add("--cluster", action="store_true",
        help="clustering accuracy (best one-to-one matching of clusters to labels) and NMI of "
             "a clustering model (vade) instead of the likelihoods; on the split, and on "
             "train and test pooled when the run trained on them pooled")
    add("--codes", action="store_true",
        help="for a VQ model (vq-vae): reconstruction error (MSE per pixel, nats), codebook "
             "perplexity and dead codes over the whole split, and the bound log p(x|z_q) - "
             "M log K, instead of importance sampling (its q is deterministic)")
    return parser


def load_model(run_dir):
    """The model of a run directory, with its checkpoint's parameters, and its config.
    Only reads. A config.json or checkpoint that numpyvae did not write so raises
    RunFileError (a UsageError and a ValueError), one line naming the file and the key."""
    config = runconfig.read_run(run_dir, purpose="evaluate")
    model = runconfig.build_model(config, Path(run_dir) / rundir.CONFIG_NAME)
    where = Path(run_dir) / checkpoint.CHECKPOINT_NAME
    try:
        params, _, meta, arrays = checkpoint.load_run_checkpoint(where)
    except checkpoint.CheckpointError as error:
        raise RunFileError(str(error)) from None
    rundir.check_checkpoint(meta, config, where)
    broken = [name for name, value in params.items() if not numpy.all(numpy.isfinite(value))]
    if broken:
        raise UsageError(f"{where} holds non-finite parameters ({', '.join(broken[:3])}"
                         f"{', ...' if len(broken) > 3 else ''}): the run diverged before it "
                         "was saved; resume from an earlier checkpoint or train again.")
    try:
        model.params.assign(params)
        model.buffers.assign(checkpoint.buffers_from(arrays))
    except ValueError as error:
        raise UsageError(f"The checkpoint in {run_dir} does not fit its config.json: "
                         f"{error}") from None
    return model, config, meta


def load_split(config, split, data_dir, seed):
    """The whole split, binarized once (fixed seed) when the run trained a Bernoulli
    decoder on grey levels; a file of one's own (config's data_file) read again, checked
    against its SHA-256 and scaled as in training."""
    dtype = numpy.dtype(config["model"]["dtype"])
    try:
        if config.get("data_file") is not None:
            x, labels = datasets.files.load_split(config["data_file"], split, dtype), None
        else:
            x, labels = datasets.load(config["dataset"], split, data_dir=data_dir, dtype=dtype)
    except (datasets.DataError, ValueError, KeyError) as error:
        raise UsageError(f"Cannot load {config['dataset']} {split!r}: {error}") from None
    count = config["settings"].get("train_examples")
    if split == "train" and count is not None:   # the rows the run trained on
        keep = datasets.training_rows(len(x), count)
        x, labels = x[keep], None if labels is None else labels[keep]
    if config.get("dynamic_binarization"):
        x = datasets.binarize(x, numpy.random.default_rng([seed, 9]))
    return x, (None if labels is None else labels.astype(numpy.int64))


def subset_indices(n_examples, n_test, seed):
    """The fixed random test subset to importance-sample (everything when n_test is None);
    random because a prefix is biased: the first 2000 binarized-MNIST test images score
    ~20 nats above the rest."""
    return datasets.fixed_subset(n_examples, n_test, seed, stream=10)


def evaluation_data(model, config, split, data_dir, n_test, seed, stream):
    """(x, condition) of the whole split on the device, the indices of the fixed random
    subset of ``n_test`` (all when None), that subset in words, and its (x, condition)."""
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    images, labels = load_split(config, split, data_dir, seed)
    if n_test is not None and n_test > len(images):
        print(f"--n-test {n_test} is more than the {len(images)} examples of {split}: "
              f"importance-sampling all {len(images)}.", file=stream)
    indices = subset_indices(len(images), n_test, seed)
    subset = "all" if len(indices) == len(images) else f"random {len(indices)} (seed {seed})"
    images = backend.to_device(images)
    labels = None if labels is None else backend.to_device(labels)
    x_all, condition_all = model.inputs(images, labels)
    device_indices = backend.to_device(indices)
    x = x_all[device_indices]
    condition = None if condition_all is None else condition_all[device_indices]
    return x_all, condition_all, indices, subset, x, condition


def evaluate(run_dir, k=5000, n_test=None, draws=10, split="test", batch=None,
             max_floats=DEFAULT_MAX_FLOATS, seed=0, data_dir=None, stream=None, results=None):
    """Compute, print and save the evaluation of RUN_DIR (into ``results``, default
    RUN_DIR/evaluation.json); returns the result dict (ResultsNotSaved holds it when the
    file cannot be written)."""
    model, config, meta = load_model(run_dir)
    if hasattr(model, "codes"):
        print("A VQ model's q is deterministic, so importance sampling adds nothing: "
              "evaluating its codes (--codes).", file=sys.stderr if stream is None else stream)
        return evaluate_codes(run_dir, split=split, data_dir=data_dir, stream=stream,
                              results=results)
    stream = sys.stderr if stream is None else stream
    x_all, condition_all, indices, subset, x, condition = evaluation_data(
        model, config, split, data_dir, n_test, seed, stream)
    n = int(x.shape[0])
    rng = numpy.random.default_rng([seed, 11])

    start = time.monotonic()
    with numpy.errstate(over="ignore", under="ignore"):
        metrics_all = metric_draws(model, x_all, condition_all, rng, draws)
    elbo_seconds = time.monotonic() - start
    elbo_all = metrics_all["elbo"]
    elbo = elbo_all[indices]
    print(f"{split} ELBO over all {len(elbo_all)} examples, {draws} draws: {elbo_all.mean():.3f}"
          + ("" if subset == "all" else f" (on the {subset} subset: {elbo.mean():.3f})"),
          file=stream)
    elbo_result = dict(
        dataset=config["dataset"], model=rundir.model_name(config), split=split, n_examples=n,
        subset=subset, samples_seen=int(meta["samples_seen"]), k=k, draws=draws, seed=seed,
        elbo=float(elbo.mean()), elbo_whole_split=float(elbo_all.mean()),
        whole_split_examples=len(elbo_all), elbo_seconds=elbo_seconds,
        log_likelihood=None, complete=False, quantity=model.evidence_label,
        importance_noise=IMPORTANCE_NOISE)
    # Saved now, so that it is kept if the long part below is stopped.
    unwritable = save_or_reason(run_dir, elbo_result, stream, results)
    # One importance weight costs about one ELBO draw on the general path: the ELBO's pace
    # predicts the rest. The fused path (numpyvae.fused_weights) is faster: timed on a trial.
    pace = len(elbo_all) * draws / max(elbo_seconds, 1e-9)
    if condition is None and fused_weights.unsupported(model) is None:
        pace = importance_pace(model, x, k, seed)
    print(f"{model.evidence_label} by importance sampling: {n} examples x K = {k} = "
          f"{n * k:.3g} weights, about {format_seconds(n * k / pace)} at this pace"
          + ("" if n < 2000 else f" (--n-test {max(n // 10, 1)} takes a tenth of it)")
          + ("; Ctrl-C keeps the ELBO, which is saved." if unwritable is None else
             f"; {results_path(run_dir, results)} cannot be written ({unwritable}): the "
             "result will be printed, not saved (--results FILE saves it elsewhere)."),
          file=stream)
    notice = threads.kernel_notice()
    if notice is not None:
        print(notice, file=stream)

    bar = ProgressBar(n * k, unit="weights", label=f"{model.evidence_label}, K={k}", stream=stream)
    start = time.monotonic()
    with numpy.errstate(over="ignore", under="ignore"):
        log_px = log_marginal_likelihood(model, x, rng, samples=k, max_floats=max_floats,
                                         batch_size=batch, progress=bar.update,
                                         condition=condition)
    bar.close()
    is_seconds = time.monotonic() - start
    result = dict(
        dataset=config["dataset"], model=rundir.model_name(config), split=split,
        n_examples=n,
        subset=subset, samples_seen=int(meta["samples_seen"]), k=k, draws=draws, seed=seed,
        elbo=float(elbo.mean()), elbo_standard_error=standard_error(elbo),
        elbo_whole_split=float(elbo_all.mean()), whole_split_examples=len(elbo_all),
        # The ELBO's two terms where the model reports them (every member today).
        **{name: float(metrics_all[metric][indices].mean())
           for name, metric in (("log_likelihood_term", "log_likelihood"), ("kl", "kl"))
           if metric in metrics_all},
        log_likelihood=float(log_px.mean()),
        log_likelihood_standard_error=standard_error(log_px),
        elbo_seconds=elbo_seconds, log_likelihood_seconds=is_seconds,
        fixed_binarization=bool(config.get("dynamic_binarization")),
        quantity=model.evidence_label, complete=True, importance_noise=IMPORTANCE_NOISE,
    )

    label = model.evidence_label
    print(f"{config['dataset']} {split}, {result['subset']} examples, after "
          f"{result['samples_seen']} training samples (mean ± standard error):\n"
          f"  ELBO of {label} (mean of {draws} draws)  "
          f"{plus_minus(result['elbo'], result['elbo_standard_error'])} nats\n"
          f"  {label} (IS, K={k})  "
          f"{plus_minus(result['log_likelihood'], result['log_likelihood_standard_error'])} nats  "
          f"({is_seconds:.1f} s)", file=stream)
    keep(run_dir, result, stream, results)
    return result


GAP_ROWS = (   # (result key, what it is, in the printed table)
    ("elbo_amortized", "L[q]      the encoder's q (amortized)"),
    ("elbo_refined", "L[q*]     q refined per example"),
    ("log_likelihood", "{label}  importance-sampled from q*"),
    ("approximation_gap", "approximation gap  {label} - L[q*]"),
    ("amortization_gap", "amortization gap   L[q*] - L[q]"),
    ("inference_gap", "inference gap      {label} - L[q]"),
)


def evaluate_gaps(run_dir, k=5000, n_test=GAPS_N_TEST, draws=refinement.DEFAULT_DRAWS,
                  steps=refinement.DEFAULT_STEPS, lr=refinement.DEFAULT_LR, refine_samples=1,
                  split="test", max_floats=DEFAULT_MAX_FLOATS, seed=0, data_dir=None,
                  stream=None, results=None):
    """The inference gap of RUN_DIR's model split into its approximation and amortization
    parts (Cremer et al., 2018) on a fixed random ``n_test`` examples of ``split``:
    computed, printed and saved like ``evaluate``'s results; returns the result dict."""
    model, config, meta = load_model(run_dir)
    if model.discrete_latent:
        raise UsageError(f"--gaps needs a model with a continuous z; {run_dir} holds a "
                         f"{rundir.model_name(config)} model, whose q is deterministic: "
                         "evaluate it with --codes.")
    stream = sys.stderr if stream is None else stream
    *_, subset, x, condition = evaluation_data(model, config, split, data_dir, n_test, seed,
                                                 stream)
    n, label = int(x.shape[0]), model.evidence_label
    print(f"Refining q on {n} {split} examples: {steps} Adam steps (lr {lr:g}, {refine_samples} "
          f"draw(s) a step), then L[q] and L[q*] ({draws} draws each) and {label} (K = {k}, "
          "proposal q*).", file=stream)
    bars = [ProgressBar(n * steps, unit="example-steps", label="refinement", stream=stream)]

    def weighed(done):
        if len(bars) == 1:     # the refinement is over: its bar ends, the weights' starts
            bars[0].close()
            bars.append(ProgressBar(n * k, initial=done, unit="weights", label=f"{label}, K={k}",
                                    stream=stream))   # its rate from the first chunk on
        bars[-1].update(done)
    start = time.monotonic()
    try:
        with numpy.errstate(over="ignore", under="ignore"):
            gaps = refinement.inference_gaps(
                model, x, numpy.random.default_rng([seed, 12]), steps=steps, k=k, draws=draws,
                condition=condition, lr=lr, samples=refine_samples, max_floats=max_floats,
                refine_progress=bars[0].update, weights_progress=weighed)
    except ValueError as error:      # a diverged refinement says what to change
        raise UsageError(str(error)) from None
    bars[-1].close()
    per_example = {"elbo_amortized": gaps.amortized, "elbo_refined": gaps.refined,
                   "log_likelihood": gaps.log_likelihood,
                   "approximation_gap": gaps.approximation, "amortization_gap": gaps.amortization,
                   "inference_gap": gaps.log_likelihood - gaps.amortized}
    result = dict(
        kind="gaps", dataset=config["dataset"], model=rundir.model_name(config), split=split,
        n_examples=n, subset=subset, samples_seen=int(meta["samples_seen"]), k=k, draws=draws,
        seed=seed, refine_steps=steps, refine_lr=lr, refine_samples=refine_samples,
        proposal="refined q*", quantity=label, importance_noise=IMPORTANCE_NOISE,
        **{name: float(values.mean()) for name, values in per_example.items()},
        **{f"{name}_standard_error": standard_error(values)
           for name, values in per_example.items()},
        refinement_curve=[round(float(value), 4) for value in gaps.history],
        seconds=round(time.monotonic() - start, 1), complete=True)
    print(f"{config['dataset']} {split}, {subset} examples, after {result['samples_seen']} "
          f"training samples; q* after {steps} Adam steps (mean ± standard error over the "
          "examples):", file=stream)
    for name, words in GAP_ROWS:
        print(f"  {words.format(label=label):40s}{plus_minus(result[name], result[name + '_standard_error'])} nats",
              file=stream)
    for warning in gap_warnings(result, gaps.history):
        print(f"note: {warning}", file=stream)
    keep(run_dir, result, stream, results)
    return result


def gap_warnings(result, history):
    """What makes a decomposition doubtful, in words: a refinement still climbing at its
    end, or bounds out of order beyond three standard errors."""
    warnings = []
    tenth = max(len(history) // 10, 1)
    if len(history) >= 20:
        rise = history[-tenth:].mean() - history[-2 * tenth:-tenth].mean()
        if rise > 0.05:
            warnings.append(f"the refinement was still climbing ({rise:.2f} nats over its last "
                            "tenth of steps): L[q*] is low and the amortization gap with it; "
                            "more --refine-steps or a larger --refine-lr")
    for lower, upper, advice in (("elbo_amortized", "elbo_refined", "a smaller --refine-lr"),
                                 ("elbo_refined", "log_likelihood", "a larger --k")):
        margin = 3 * (result[f"{upper}_standard_error"] or 0.0)
        if result[upper] < result[lower] - margin:
            warnings.append(f"{upper} is below {lower} by more than 3 standard errors: "
                            f"{advice}")
    return warnings


def standard_error(values):
    """The standard error of the mean of per-example values (None for one example)."""
    n = len(values)
    return float(numpy.std(values, ddof=1) / math.sqrt(n)) if n > 1 else None


def plus_minus(mean, error):
    return f"{mean:10.3f}" + ("" if error is None else f" ± {error:.3f}")


def importance_pace(model, x, k, seed, weights=32768):
    """Importance weights per second, the better of two trials of about ``weights`` each
    (the first also starts the threads) for the first examples of x, from noise of their
    own (the evaluation's stream is untouched)."""
    rows = x[:max(1, min(int(x.shape[0]), weights // min(k, 32)))]
    draws = max(1, weights // int(rows.shape[0]))
    best = float("inf")
    for trial in range(2):
        start = time.monotonic()
        with numpy.errstate(over="ignore", under="ignore"):
            log_marginal_likelihood(model, rows, numpy.random.default_rng([seed, 12, trial]),
                                    samples=draws)
        best = min(best, time.monotonic() - start)
    return int(rows.shape[0]) * draws / max(best, 1e-9)


def format_seconds(seconds):
    """A duration as a person reads it: 40 s, 3.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def evaluate_codes(run_dir, split="test", data_dir=None, batch=500, stream=None, results=None):
    """What users of a VQ model look at, over the whole split: the reconstruction's mean
    squared error per pixel and -log p(x|z_q) in nats, the codebook's perplexity and
    dead codes over the split (a batch's perplexity depends on its size), and the bound
    log p(x) >= log p(x|z_q) - M log K that the uniform prior over codes gives."""
    from .quantize import code_usage

    model, config, meta = load_model(run_dir)
    if not hasattr(model, "codes"):
        raise UsageError(f"--codes needs a VQ model (vq-vae); {run_dir} holds a "
                         f"{rundir.model_name(config)} model: evaluate it without --codes.")
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    stream = sys.stderr if stream is None else stream
    images, labels = load_split(config, split, data_dir, 0)
    squared, log_likelihood, bound, codes = [], [], [], []
    start = time.monotonic()
    for first in range(0, len(images), batch):
        rows = None if labels is None else labels[first:first + batch]
        x, condition = model.inputs(backend.to_device(images[first:first + batch]), rows)
        reconstruction = model.decode(model.latent_point(x, condition), condition)
        squared.append(backend.to_numpy(((reconstruction - x) ** 2).mean(axis=1)))
        metrics = model.metrics(x, condition)
        log_likelihood.append(backend.to_numpy(metrics["log_likelihood"]))
        bound.append(backend.to_numpy(metrics["elbo"]))
        codes.append(model.codes(x, condition))
    counts, perplexity, dead = code_usage(numpy.concatenate(codes), model.codebook_size)
    mse = numpy.concatenate(squared)
    result = dict(dataset=config["dataset"], model=rundir.model_name(config), kind="codes",
                  split=split, seed=0, k=0, subset="all", n_examples=int(len(mse)),
                  samples_seen=int(meta["samples_seen"]),
                  mse_per_pixel=float(mse.mean()),
                  reconstruction_nats=float(-numpy.concatenate(log_likelihood).mean()),
                  bound=float(numpy.concatenate(bound).mean()),
                  codes_per_example=int(model.code_count), codebook_size=int(model.codebook_size),
                  perplexity=perplexity, dead_codes=dead,
                  seconds=round(time.monotonic() - start, 1))
    print(f"{config['dataset']} {split} ({len(mse)} examples, after {result['samples_seen']} "
          f"training samples):\n"
          f"  reconstruction MSE per pixel  {result['mse_per_pixel']:.5f}\n"
          f"  -log p(x|z_q)                 {result['reconstruction_nats']:.3f} nats\n"
          f"  bound log p(x|z_q) - M log K  {result['bound']:.3f} nats (M = {model.code_count}, "
          f"K = {model.codebook_size})\n"
          f"  codebook perplexity           {perplexity:.2f} of {model.codebook_size} "
          f"({dead} dead codes)", file=stream)
    keep(run_dir, result, stream, results)
    return result


def latent_activity(run_dir, split="test", data_dir=None, batch=1000, loaded=None):
    """Each latent dimension's variance over ``split`` of RUN_DIR's latent points (q's
    mean for a diagonal Gaussian): Cov_x(E_q[z_d]), Burda et al.'s activity statistic; a
    dimension is active above ``numpyvae.latent.ACTIVE_VARIANCE``. (z_dim,) float64.
    ``loaded``: what ``load_model(run_dir)`` returned, where the caller has it already."""
    from .latent import active_dimensions, latent_points

    model, config, _ = loaded if loaded is not None else load_model(run_dir)
    images, labels = load_split(config, split, data_dir if data_dir is not None
                                else config.get("data_dir"), 0)
    return active_dimensions(latent_points(model, backend.to_device(images), labels, batch))[1]


def cluster_assignments(model, images, labels, batch=1000):
    """argmax_c q(c|x) of every row, in batches: (N,) host ints."""
    parts = []
    for start in range(0, int(images.shape[0]), batch):
        rows = None if labels is None else labels[start:start + batch]
        x, condition = model.inputs(images[start:start + batch], rows)
        parts.append(backend.to_numpy(model.cluster_probabilities(x, condition)).argmax(axis=1))
    return numpy.concatenate(parts)


def evaluate_clustering(run_dir, split="test", data_dir=None, stream=None, results=None):
    """Accuracy under the best matching of clusters to labels, and NMI, of RUN_DIR's
    clustering model on ``split`` (and on train + test pooled for a pooled run)."""
    from .inference.clustering import cluster_accuracy, normalized_mutual_information

    model, config, meta = load_model(run_dir)
    if not hasattr(model, "cluster_probabilities"):
        raise UsageError(f"--cluster needs a clustering model (vade); {run_dir} holds a "
                         f"{rundir.model_name(config)} model.")
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    stream = sys.stderr if stream is None else stream
    splits = [split]
    if config.get("settings", {}).get("pool_splits"):
        splits.append("train+test")
    result = dict(dataset=config["dataset"], model=rundir.model_name(config), kind="cluster",
                  samples_seen=int(meta["samples_seen"]), split=split, seed=0, k=0,
                  subset="all", n_examples=0, pooled=bool(len(splits) > 1))
    for name in splits:
        parts = [name] if name != "train+test" else ["train", "test"]
        loaded = [load_split(config, part, data_dir, 0) for part in parts]
        if any(labels is None for _, labels in loaded):
            raise UsageError(f"{config['dataset']} has no labels to score clusters against.")
        images = numpy.concatenate([images for images, _ in loaded])
        labels = numpy.concatenate([labels for _, labels in loaded])
        assigned = cluster_assignments(model, backend.to_device(images), None)
        accuracy, mapping = cluster_accuracy(labels, assigned)
        nmi = normalized_mutual_information(labels, assigned)
        result[name] = dict(examples=int(len(labels)), accuracy=float(accuracy), nmi=float(nmi),
                            clusters_used=int(len(numpy.unique(assigned))),
                            mapping={str(k): int(v) for k, v in mapping.items()})
        print(f"{config['dataset']} {name} ({len(labels)} examples): clustering accuracy "
              f"{100 * accuracy:.2f}%, NMI {nmi:.4f}, {result[name]['clusters_used']} clusters "
              "used", file=stream)
    result["n_examples"] = result[split]["examples"]
    keep(run_dir, result, stream, results)
    return result


def result_key(result):
    """What an evaluation measured: split, K, subset and seed (and the training budget,
    and how log p(x)'s noise was drawn)."""
    if result.get("kind") in ("cluster", "codes"):
        return f"{result['kind']}-{result['split']}-at{result['samples_seen']}"
    subset = "all" if result["subset"] == "all" else f"n{result['n_examples']}"
    key = (f"{result['split']}-k{result['k']}-{subset}-seed{result['seed']}"
           f"-at{result['samples_seen']}")
    if "importance_noise" in result:
        # Results of versions whose z's came from NumPy's ziggurat have none, and keep
        # their keys: the same K and seed now give other draws, kept beside them.
        key += f"-{result['importance_noise']}"
    if result.get("kind") == "gaps":
        return f"gaps-{key}-steps{result['refine_steps']}-lr{result['refine_lr']:g}"
    return key


def results_path(run_dir, results=None):
    """Where results go: ``results`` (--results FILE), else RUN_DIR/evaluation.json."""
    return Path(results) if results is not None else Path(run_dir) / EVALUATION_NAME


def read_results(run_dir, damaged=None, results=None):
    """Every result in RUN_DIR/evaluation.json (or ``results``), by key ({} when there is
    none). A file that cannot be read as results is ``damaged(reason)``'s to handle
    (default: an error; nothing recorded is ever dropped silently)."""
    path = results_path(run_dir, results)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise UsageError(f"Cannot read {path} ({error.strerror}).") from None
    try:
        stored = json.loads(text)
    except json.JSONDecodeError as error:
        stored, reason = None, f"not valid JSON: {error}"
    if isinstance(stored, dict) and isinstance(stored.get("results"), dict):
        return stored["results"]
    if isinstance(stored, dict) and "split" in stored:   # one result, as written before
        return {result_key(stored): stored}
    if stored is not None:
        reason = "not a set of numpyvae.evaluate results"
    if damaged is None:
        raise UsageError(f"{path} is damaged ({reason}).")
    damaged(reason)
    return {}


def save_result(run_dir, result, stream=None, results=None):
    """Add ``result`` to evaluation.json (or ``results``) under its key (replacing only
    the same key), under a lock so that evaluations at the same time keep each other's
    results. A damaged file is kept aside under another name, with a line that says so."""
    path = results_path(run_dir, results)
    warn = (lambda message: print(message, file=stream or sys.stderr))
    with rundir.evaluation_lock(path):
        stored = read_results(run_dir, lambda reason: rundir.set_aside(path, reason, warn), path)
        key = result_key(result)
        stored[key] = result
        rundir.write_json(path, {"latest": key, "results": stored})
    return path


class ResultsNotSaved(UsageError):
    """A result was computed and printed, but its file cannot be written (a read-only run
    directory): the message says where it could go; ``result`` holds it."""

    def __init__(self, path, run_dir, reason, result):
        self.path, self.result = path, result
        super().__init__(f"cannot write {path} ({reason}): the result above is not saved. "
                         "To keep it, evaluate again with --results FILE (a file you can "
                         f"write), or copy the run (cp -r {run_dir} NEW) and evaluate the copy.")


def save_or_reason(run_dir, result, stream=None, results=None):
    """save_result, or why the results file cannot be written (None once saved)."""
    try:
        save_result(run_dir, result, stream, results)
    except OSError as error:
        if not rundir.is_not_writable(error):
            raise
        return error.strerror
    return None


def keep(run_dir, result, stream, results=None):
    """Save a result that was printed and say where; where the file cannot be written,
    raise ResultsNotSaved (one line: what could not be written, where it could go)."""
    path = results_path(run_dir, results)
    reason = save_or_reason(run_dir, result, stream, results)
    if reason is not None:
        raise ResultsNotSaved(path, run_dir, reason, result)
    print(f"Written to {path}", file=stream)
    return path


def refine_settings(args, given_only=False):
    """flag -> value of each refinement flag: as given, else its default (None with
    ``given_only``)."""
    settings = {}
    for flag, _, default, _ in REFINE_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        settings[flag] = default if value is None and not given_only else value
    return settings


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    given = [flag for flag, value in refine_settings(args, given_only=True).items()
             if value is not None]
    if given and not args.gaps:
        parser.error(f"{', '.join(given)} set(s) the refinement of --gaps: add --gaps, or "
                     "drop them")
    try:
        if args.backend is not None:
            backend.set_backend(args.backend)
        if args.cluster:
            evaluate_clustering(args.run_dir, split=args.split, data_dir=args.data_dir,
                                results=args.results)
        elif args.codes:
            evaluate_codes(args.run_dir, split=args.split, data_dir=args.data_dir,
                           results=args.results)
        elif args.gaps:
            steps, lr, samples = refine_settings(args).values()
            evaluate_gaps(args.run_dir, k=args.k,
                          n_test=GAPS_N_TEST if args.n_test is UNSET else args.n_test,
                          draws=args.draws or refinement.DEFAULT_DRAWS, steps=steps, lr=lr,
                          refine_samples=samples, split=args.split, max_floats=args.max_floats,
                          seed=args.seed, data_dir=args.data_dir, results=args.results)
        else:
            evaluate(args.run_dir, k=args.k, n_test=None if args.n_test is UNSET else args.n_test,
                     draws=args.draws or 10,
                     split=args.split, batch=args.batch, max_floats=args.max_floats,
                     seed=args.seed, data_dir=args.data_dir, results=args.results)
    except (UsageError, backend.BackendError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except rundir.DiskFullError as error:
        print(f"error: the disk holding {error.run_dir} is full (writing {error.path} failed "
              f"with ENOSPC); {error.path.name} keeps its earlier results. Free some space "
              "on that disk (or quota), then run the evaluation again.", file=sys.stderr)
        return EXIT_DISK_FULL
    except KeyboardInterrupt:
        print(f"Interrupted: what was finished and saved is in "
              f"{results_path(args.run_dir, args.results)} (an ELBO whose importance "
              "sampling was stopped has log_likelihood null).", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
