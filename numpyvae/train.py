"""Train a VAE with AEVB's settings: ``python -m numpyvae.train --dataset frey``.

The objective per minibatch of M examples (Kingma & Welling 2013, eq. 8 and sec. 5):

    loss = -1/M sum_i ELBO(x_i) + 1/n_train * sum_theta theta^2 / 2

the second term being -log p(theta) for the prior p(theta) = N(0, I), which AEVB adds
once to the whole data set's bound, hence 1/n_train per example. Reported ELBOs (the
learning curve, metrics.jsonl) are per-datapoint bounds without that term.

A run directory (default ``runs/<dataset>-z<z_dim>-<timestamp>``) holds

    config.json          every setting, the model's constructor arguments, the command
    metrics.jsonl        one JSON object per evaluation (samples_seen, train/test ELBO, ...)
    checkpoint.npz       parameters, optimizer state, all RNG states, data order position
    figures/*.png        learning curve, reconstructions, prior samples, latent space

``--resume RUN_DIR`` continues exactly where the checkpoint stopped: the same
parameters, optimizer state, random streams and position in the epoch's shuffled
order, so a run stopped at N samples and resumed to 2N ends with the very same
parameters as an uninterrupted 2N run.

Exit status: 0 done, 2 bad arguments or data, 3 diverged (non-finite loss), 130
interrupted (Ctrl-C; a checkpoint was written).
"""
import argparse
import json
import math
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy

from . import backend, checkpoint, datasets
from .marginal_likelihood import elbo_parts
from . import __version__
from .optim import OPTIMIZERS
from .progress import ProgressBar, format_count
from .vae import VAE

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
CONFIG_NAME, METRICS_NAME, FIGURES_DIR = "config.json", "metrics.jsonl", "figures"
DEFAULT_RUNS_DIR = "runs"

# AEVB section 5: tanh MLPs, one hidden layer (200 units for Frey, 500 for MNIST),
# minibatch M = 100, L = 1, N(0, 0.01^2) initialization, Adagrad, the N(0, I) weight
# prior. lr = 0.01 was picked from AEVB's {0.01, 0.02, 0.1}: on Frey (3 seeds) and
# binarized MNIST it led 0.02 at 10^5 samples, and 0.1 is unstable (README).
COMMON_DEFAULTS = dict(activation="tanh", output_activation="sigmoid", optimizer="adagrad",
                       lr=0.01, batch_size=100, mc_samples=1, beta=1.0, weight_prior_std=1.0,
                       init="normal", init_std=0.01, seed=0, dtype="float32")
DATASET_DEFAULTS = {
    "frey": dict(hidden=[200], z_dim=10, likelihood="gaussian", samples=3_000_000,
                 eval_size=None),
    "binarized-mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli",
                            samples=1_000_000, eval_size=1000),
    "mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli", samples=1_000_000,
                  eval_size=1000),
    "fashion-mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli", samples=1_000_000,
                          eval_size=1000),
}
# The settings that define the model and its optimization: a resumed run must keep them.
RUN_SETTINGS = ("hidden", "z_dim", "likelihood", "activation", "output_activation",
                "optimizer", "lr", "batch_size", "mc_samples", "beta", "weight_prior_std",
                "init", "init_std", "seed", "dtype")
TEST_SPLIT = "test"


class UsageError(Exception):
    """A problem with the command line, the data or a run directory: print and exit 2."""


# --------------------------------------------------------------------- arguments
def positive_int(text):
    """An integer >= 1; accepts 1e6-style numbers for budgets."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def prior_std(text):
    """A positive float, or 0 / none to train without the weight prior."""
    if text.strip().lower() in ("0", "0.0", "none", "off"):
        return "none"
    return positive_float(text)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m numpyvae.train",
        description="Train a VAE with AEVB's settings (Kingma & Welling 2013) and write a run "
                    "directory with config.json, metrics.jsonl, checkpoint.npz and figures/.",
        epilog="Defaults per data set: frey: --hidden 200 --z-dim 10 --likelihood gaussian "
               "(sigmoid mean, learned variance) --samples 3e6; binarized-mnist, mnist, "
               "fashion-mnist: --hidden 500 --z-dim 20 --likelihood bernoulli --samples 1e6 "
               "(grey MNIST is binarized afresh each minibatch). All: Adagrad --lr 0.01, "
               "--batch-size 100, L = 1, N(0, 0.01^2) init, N(0, I) weight prior. "
               "Continue a run with --resume RUN_DIR [--samples N].")
    add = parser.add_argument
    add("--dataset", choices=sorted(DATASET_DEFAULTS), help="data set (required unless --resume)")
    add("--z-dim", type=positive_int, help="latent dimension (frey 10, mnist 20)")
    add("--hidden", type=positive_int, nargs="+", metavar="WIDTH",
        help="hidden layer widths of the encoder (the decoder mirrors them), e.g. --hidden 500 500")
    add("--likelihood", choices=("gaussian", "bernoulli", "gaussian-fixed"),
        help="decoder p(x|z): gaussian (learned log-variance; frey) or bernoulli (mnist)")
    add("--activation", choices=("tanh", "relu", "softplus", "sigmoid"), help="hidden activation (tanh)")
    add("--optimizer", choices=sorted(OPTIMIZERS), help="adagrad (AEVB), sgd or adam")
    add("--lr", type=positive_float, help="step size (0.01)")
    add("--batch-size", type=positive_int, help="minibatch size M (100)")
    add("--mc-samples", type=positive_int, help="L, z samples per example (1)")
    add("--beta", type=float, help="weight of the KL term (1 = the ELBO)")
    add("--weight-prior-std", type=prior_std,
        help="std of the N(0, s^2 I) prior on all parameters, scaled by 1/n_train (1.0; 0 or none disables)")
    add("--init", choices=("normal", "glorot"), help="normal = N(0, init_std^2) (AEVB)")
    add("--init-std", type=positive_float, help="std of the normal initialization (0.01)")
    add("--seed", type=int, help="seeds initialization, noise and data order (0)")
    add("--dtype", choices=("float32", "float64"), help="float32 (default) or float64")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--samples", type=positive_int,
                        help="total training samples the run should have seen (e.g. 1e6); with "
                             "--resume, the new total")
    budget.add_argument("--epochs", type=positive_float, help="budget in passes over the training set")
    add("--eval-size", type=positive_int,
        help="examples in the fixed train and test subsets evaluated at intervals (frey: all)")
    add("--evals-per-decade", type=positive_int, default=8,
        help="evaluations per decade of samples seen (log-spaced, for the learning curve)")
    add("--checkpoint-seconds", type=positive_float, default=60.0,
        help="write a checkpoint at least this often (wall clock), and at the end")
    add("--data-dir", help="data directory (default: $NUMPYVAE_DATA or the user cache; "
                           "missing files are downloaded)")
    add("--out", help=f"run directory (default: {DEFAULT_RUNS_DIR}/<dataset>-z<z>-<timestamp>)")
    add("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    add("--backend", choices=("numpy", "cupy"), help="array backend (default numpy, or $NUMPYVAE_BACKEND)")
    add("--no-figures", action="store_true", help="skip the figures at the end")
    return parser


def _flag(name):
    return "--" + name.replace("_", "-")


def _format_setting(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def resolve_settings(args, stored=None):
    """The run's settings: per-data-set defaults overlaid with the given flags, or, for
    a resumed run, the stored settings, refusing any flag that would change them."""
    if stored is None:
        settings = dict(COMMON_DEFAULTS)
        settings.update({k: v for k, v in DATASET_DEFAULTS[args.dataset].items()
                         if k in RUN_SETTINGS})
        for name in RUN_SETTINGS:
            value = getattr(args, name, None)
            if value is not None:
                settings[name] = list(value) if name == "hidden" else value
        return settings
    conflicts = []
    for name in RUN_SETTINGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        value = list(value) if name == "hidden" else value
        if value != stored[name]:
            conflicts.append(f"{_flag(name)} {_format_setting(value)} (the run has "
                             f"{_flag(name)} {_format_setting(stored[name])})")
    if conflicts:
        raise UsageError(
            "Cannot resume with different model or optimizer settings: "
            + "; ".join(conflicts) + ". The checkpoint holds that architecture and optimizer "
            "state. Drop these flags to continue the run, or start a new run without --resume.")
    return dict(stored)


# --------------------------------------------------------------------------- data
class Data:
    """The training set on the device, fixed evaluation subsets, and how to binarize."""

    def __init__(self, dataset, settings, eval_size, data_dir, seed):
        dtype = numpy.dtype(settings["dtype"])
        try:
            x_train, _ = datasets.load(dataset, "train", data_dir=data_dir, dtype=dtype)
            x_test, test_labels = datasets.load(dataset, TEST_SPLIT, data_dir=data_dir, dtype=dtype)
        except datasets.DataError as error:
            raise UsageError(f"Cannot load data set {dataset!r}: {error}") from None
        self.name, self.dtype = dataset, dtype
        self.image_shape = datasets.image_shape(dataset)
        self.n_train, self.x_dim = x_train.shape
        # A Bernoulli likelihood needs binary data: grey levels get a fresh draw per
        # minibatch (dynamic binarization); the evaluation subsets one fixed draw.
        grey = not bool(numpy.all((x_train == 0) | (x_train == 1)))
        self.binarize = settings["likelihood"] == "bernoulli" and grey
        fixed = numpy.random.default_rng([seed, 7])
        subset_rng = numpy.random.default_rng([seed, 8])
        train_count = min(eval_size or self.n_train, self.n_train)
        test_count = min(eval_size or len(x_test), len(x_test))
        train_subset = numpy.sort(subset_rng.choice(self.n_train, train_count, replace=False))
        test_subset = numpy.sort(subset_rng.choice(len(x_test), test_count, replace=False))
        eval_train, eval_test = x_train[train_subset], x_test[test_subset]
        if self.binarize:
            eval_train = datasets.binarize(eval_train, fixed)
            eval_test = datasets.binarize(eval_test, fixed)
        self.x_train = backend.to_device(x_train)
        self.eval_train = backend.to_device(eval_train)
        self.eval_test = backend.to_device(eval_test)
        self.test_labels = None if test_labels is None else test_labels[test_subset]
        self.train_count, self.test_count = train_count, test_count

    def batch(self, indices, binarize_rng):
        """The minibatch x_train[indices] (binarized afresh if the data are grey)."""
        batch = self.x_train[backend.to_device(indices)]
        if self.binarize:
            # Same draw as datasets.binarize, made on the host so every backend agrees.
            uniform = backend.to_device(binarize_rng.random(batch.shape, dtype=self.dtype))
            batch = (uniform < batch).astype(self.dtype)
        return batch


# ----------------------------------------------------------------------- schedule
def next_evaluation(samples_seen, per_decade, budget):
    """The smallest log-spaced point 10^(k / per_decade) above samples_seen, or the budget."""
    k = math.floor(per_decade * math.log10(max(samples_seen, 1))) + 1
    while True:
        point = round(10 ** (k / per_decade))
        if point > samples_seen:
            return min(point, budget)
        k += 1


# --------------------------------------------------------------------------- run
class Run:
    """A training run: model, optimizer, random streams, data order and bookkeeping."""

    def __init__(self, run_dir, config, data, fresh, saved=None):
        self.run_dir, self.config, self.data = Path(run_dir), config, data
        settings = config["settings"]
        self.settings = settings
        self.model = VAE(**config["model"])
        self.optimizer = OPTIMIZERS[settings["optimizer"]](lr=settings["lr"])
        seed = settings["seed"]
        # Independent streams, so that evaluating (or not) never changes training.
        self.data_rng = numpy.random.default_rng([seed, 2])      # epoch permutations
        self.noise_rng = numpy.random.default_rng([seed, 3])     # eps of the training steps
        self.binarize_rng = numpy.random.default_rng([seed, 4])  # dynamic binarization
        self.eval_rng = numpy.random.default_rng([seed, 5])      # eps of the evaluations
        self.permutation = numpy.zeros(0, dtype=numpy.int64)
        self.position = 0
        self.samples_seen = 0
        self.step = 0
        self.wall_seconds = 0.0
        self.checkpoint_samples = None  # samples_seen of the checkpoint on disk
        if not fresh:
            self._restore(*saved)

    # -- checkpoints
    def _generators(self):
        return {"data": self.data_rng, "noise": self.noise_rng, "binarize": self.binarize_rng,
                "eval": self.eval_rng, "model": self.model.rng}

    def save(self):
        meta = dict(samples_seen=self.samples_seen, step=self.step, position=self.position,
                    wall_seconds=self.wall_seconds, model=self.config["model"],
                    settings=self.settings,
                    rng={name: checkpoint.generator_state(g) for name, g in self._generators().items()})
        checkpoint.save(self.run_dir / checkpoint.CHECKPOINT_NAME, self.model.params.to_numpy(),
                        self.optimizer.state_dict(), meta, {"permutation": self.permutation})
        self.checkpoint_samples = self.samples_seen

    def _restore(self, params, optimizer_state, meta, arrays):
        where = self.run_dir / checkpoint.CHECKPOINT_NAME
        if meta.get("model") is not None and meta["model"] != self.config["model"]:
            raise UsageError(f"{where} was written by another model than {CONFIG_NAME} describes "
                             f"(checkpoint: {meta['model']}, config: {self.config['model']}).")
        try:
            self.model.params.assign(params)
            self.optimizer.load_state_dict(optimizer_state, self.model.params)
        except (ValueError, KeyError) as error:
            raise UsageError(f"{where} does not fit this run's architecture "
                             f"(hidden {self.settings['hidden']}, z_dim {self.settings['z_dim']}, "
                             f"{self.settings['optimizer']}): {error}") from None
        for name, generator in self._generators().items():
            checkpoint.set_generator_state(generator, meta["rng"][name])
        self.permutation = arrays["permutation"].astype(numpy.int64)
        self.position, self.samples_seen = int(meta["position"]), int(meta["samples_seen"])
        self.step, self.wall_seconds = int(meta["step"]), float(meta["wall_seconds"])
        self.checkpoint_samples = self.samples_seen

    # -- metrics
    def evaluate(self):
        """Train and test ELBO on the fixed subsets (fresh noise, as the ELBO requires)."""
        # Means of (ELBO, log-likelihood term, KL), one noise draw per example.
        train = elbo_parts(self.model, self.data.eval_train, self.eval_rng).mean(axis=1)
        test = elbo_parts(self.model, self.data.eval_test, self.eval_rng).mean(axis=1)
        record = dict(samples_seen=self.samples_seen, step=self.step,
                      epoch=self.samples_seen / self.data.n_train,
                      train_elbo=train[0], test_elbo=test[0],
                      train_log_likelihood=train[1], train_kl=train[2],
                      test_log_likelihood=test[1], test_kl=test[2],
                      wall_seconds=self.wall_seconds)
        with open(self.run_dir / METRICS_NAME, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        return record

    def params_finite(self):
        xp = backend.namespace_of(self.model.params.flat)
        return bool(xp.isfinite(self.model.params.flat).all())

    # -- the loop
    def train(self, budget, per_decade, checkpoint_seconds, log_every=20):
        """Train until samples_seen >= budget. Returns "done", "interrupted" or a
        divergence message."""
        model, optimizer, data = self.model, self.optimizer, self.data
        batch_size = self.settings["batch_size"]
        bar = ProgressBar(budget, initial=self.samples_seen, unit="samples", label="train")
        stop = {"requested": False}

        def request_stop(signum, frame):
            if stop["requested"]:  # a second Ctrl-C: stop right now, no checkpoint
                raise KeyboardInterrupt
            stop["requested"] = True
            bar.message("Interrupted: finishing this step and writing a checkpoint "
                        "(Ctrl-C again to abort without one)...")

        try:
            previous_handler, installed = signal.signal(signal.SIGINT, request_stop), True
        except ValueError:  # not the main thread: Ctrl-C cannot reach us anyway
            previous_handler, installed = None, False
        loss_sum, steps_in_window = 0.0, 0
        next_eval = next_evaluation(self.samples_seen, per_decade, budget)
        last_checkpoint = time.monotonic()
        session_start = time.monotonic() - self.wall_seconds
        last_good = self.samples_seen
        outcome = "done"
        try:
            with numpy.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                while self.samples_seen < budget and not stop["requested"]:
                    if self.position >= len(self.permutation):
                        self.permutation = self.data_rng.permutation(data.n_train)
                        self.position = 0
                    indices = self.permutation[self.position:self.position + batch_size]
                    batch = data.batch(indices, self.binarize_rng)
                    loss, grads = model.loss_and_grads(batch, rng=self.noise_rng)
                    optimizer.step(model.params, grads)
                    self.position += len(indices)
                    self.samples_seen += len(indices)
                    self.step += 1
                    # Accumulate on the device; read back only every log_every steps.
                    loss_sum = loss_sum + loss
                    steps_in_window += 1
                    due_eval = self.samples_seen >= next_eval
                    if not (due_eval or self.step % log_every == 0 or self.samples_seen >= budget):
                        continue
                    mean_loss = backend.to_float(loss_sum) / steps_in_window
                    # The loss includes the weight prior's penalty; add back its
                    # current value (it moves slowly) rather than computing it each step.
                    running_elbo = backend.to_float(model.weight_prior_penalty()) - mean_loss
                    loss_sum, steps_in_window = 0.0, 0
                    self.wall_seconds = time.monotonic() - session_start
                    if not (math.isfinite(mean_loss) and self.params_finite()):
                        return (f"Training diverged: the loss became {mean_loss} between "
                                f"{format_count(last_good)} and {format_count(self.samples_seen)} "
                                f"samples seen (step {self.step}). The last good checkpoint, at "
                                f"{self.checkpoint_samples} samples seen, is kept in "
                                f"{self.run_dir / checkpoint.CHECKPOINT_NAME}. Try a lower --lr "
                                f"(this run used {self.settings['lr']}).")
                    last_good = self.samples_seen
                    bar.update(self.samples_seen, elbo=f"{running_elbo:.1f}")
                    if due_eval:
                        record = self.evaluate()
                        bar.message(f"samples {self.samples_seen:>10d}  epoch {record['epoch']:8.1f}"
                                    f"  train ELBO {record['train_elbo']:9.2f}  test ELBO "
                                    f"{record['test_elbo']:9.2f}")
                        next_eval = next_evaluation(self.samples_seen, per_decade, budget)
                    if time.monotonic() - last_checkpoint >= checkpoint_seconds:
                        self.save()
                        last_checkpoint = time.monotonic()
            if stop["requested"]:
                outcome = "interrupted"
                self.wall_seconds = time.monotonic() - session_start
                if not (self.params_finite()):
                    return "Interrupted, but the parameters are not finite; the last good checkpoint is kept."
            self.save()
            bar.close()
            return outcome
        finally:
            if installed:
                signal.signal(signal.SIGINT, previous_handler or signal.SIG_DFL)


# ------------------------------------------------------------------------ figures
def write_figures(run, title):
    """All figures of a run into RUN_DIR/figures (host copies of everything)."""
    from . import figures

    model, data = run.model, run.data
    directory = run.run_dir / FIGURES_DIR
    directory.mkdir(exist_ok=True)
    records = read_metrics(run.run_dir)
    written = [figures.learning_curve(records, directory / "learning_curve.png", title)]
    rng = numpy.random.default_rng([run.settings["seed"], 6])  # fixed: comparable figures
    shown = data.eval_test[:32]
    mu, _ = model.encode(shown)
    written.append(figures.reconstructions(backend.to_numpy(shown), backend.to_numpy(model.decode(mu)),
                                           data.image_shape, directory / "reconstructions.png",
                                           title=title))
    written.append(figures.prior_samples(backend.to_numpy(model.sample(64, rng)), data.image_shape,
                                         directory / "samples.png"))
    means = numpy.concatenate([backend.to_numpy(model.encode(data.eval_test[i:i + 1000])[0])
                               for i in range(0, data.test_count, 1000)])
    written.append(figures.latent_scatter(means, data.test_labels, directory / "latent.png",
                                          title=f"encoded test means ({title})"))
    if model.z_dim == 2:
        written.append(figures.manifold(lambda z: backend.to_numpy(model.decode(z)),
                                        data.image_shape, directory / "manifold.png",
                                        title=f"learned manifold ({title})"))
    return written


def read_metrics(run_dir):
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def truncate_metrics(run_dir, samples_seen):
    """Drop records written after the checkpoint (they will be evaluated again)."""
    records = [r for r in read_metrics(run_dir) if r["samples_seen"] <= samples_seen]
    path = Path(run_dir) / METRICS_NAME
    temporary = path.with_suffix(".jsonl.tmp")
    with open(temporary, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(temporary, path)


# --------------------------------------------------------------------------- main
def default_run_dir(dataset, z_dim):
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(DEFAULT_RUNS_DIR) / f"{dataset}-z{z_dim}-{stamp}"
    candidate, suffix = base, 1
    while candidate.exists():
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")
    return candidate


def write_config(run_dir, config):
    temporary = Path(run_dir) / (CONFIG_NAME + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, Path(run_dir) / CONFIG_NAME)


def read_config(run_dir):
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such directory.")
    path = run_dir / CONFIG_NAME
    try:
        with open(path) as handle:
            config = json.load(handle)
    except OSError as error:
        raise UsageError(f"--resume {run_dir}: cannot read {CONFIG_NAME} ({error.strerror}). "
                         "Is this a run directory written by numpyvae.train?") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"--resume {run_dir}: {CONFIG_NAME} is not valid JSON ({error}).") from None
    if not {"dataset", "settings", "model"} <= set(config):
        raise UsageError(f"--resume {run_dir}: {CONFIG_NAME} lacks dataset/settings/model; "
                         "not a numpyvae.train run directory.")
    return config


def load_run(run_dir, data_dir=None, eval_size=None):
    """Rebuild a finished or interrupted run (model with its checkpoint, and data)."""
    config = read_config(run_dir)
    try:
        saved = checkpoint.load(Path(run_dir) / checkpoint.CHECKPOINT_NAME)
    except checkpoint.CheckpointError as error:
        raise UsageError(f"{error} Cannot continue {run_dir}.") from None
    data = Data(config["dataset"], config["settings"],
                eval_size if eval_size is not None else config["eval"]["eval_size"],
                data_dir if data_dir is not None else config.get("data_dir"),
                config["settings"]["seed"])
    return Run(run_dir, config, data, fresh=False, saved=saved), config


def budget_from(args, n_train, default):
    if args.samples is not None:
        return args.samples
    if args.epochs is not None:
        return max(1, int(round(args.epochs * n_train)))
    return default


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in config.json
    if args.resume is None and args.dataset is None:
        parser.error("--dataset is required (e.g. --dataset frey), unless --resume RUN_DIR.")
    if args.resume is not None and args.out is not None:
        parser.error("--out and --resume do not go together: a resumed run stays in its directory.")
    try:
        if args.backend is not None:
            backend.set_backend(args.backend)
        return _run(args)
    except (UsageError, backend.BackendError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Aborted. Any checkpoint written before stays in the run directory.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume(args):
    """The run of --resume RUN_DIR, its config (updated by the allowed flags) and budget."""
    run_dir = Path(args.resume)
    config = read_config(run_dir)
    if args.dataset is not None and args.dataset != config["dataset"]:
        raise UsageError(f"--dataset {args.dataset} but {run_dir} is a {config['dataset']} run.")
    resolve_settings(args, stored=config["settings"])  # refuses conflicting flags
    if args.eval_size is not None:
        config["eval"]["eval_size"] = args.eval_size
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    run = load_run(run_dir, config.get("data_dir"), config["eval"]["eval_size"])[0]
    run.config = config
    budget = budget_from(args, run.data.n_train, config["budget_samples"])
    truncate_metrics(run_dir, run.samples_seen)
    if budget <= run.samples_seen:
        print(f"{run_dir} has already seen {run.samples_seen} samples (>= {budget}): nothing "
              "to train. Pass a larger --samples to continue.", file=sys.stderr)
        budget = run.samples_seen
    print(f"Resuming {run_dir} at {run.samples_seen} samples seen (step {run.step}), "
          f"training to {budget}.", file=sys.stderr)
    return run, config, budget


def _start(args):
    """A new run: settings from defaults and flags, a new run directory, checkpoint 0."""
    settings = resolve_settings(args)
    eval_size = args.eval_size if args.eval_size is not None else \
        DATASET_DEFAULTS[args.dataset]["eval_size"]
    data = Data(args.dataset, settings, eval_size, args.data_dir, settings["seed"])
    budget = budget_from(args, data.n_train, DATASET_DEFAULTS[args.dataset]["samples"])
    prior = None if settings["weight_prior_std"] == "none" else settings["weight_prior_std"]
    model_config = dict(x_dim=data.x_dim, hidden=settings["hidden"], z_dim=settings["z_dim"],
                        likelihood=settings["likelihood"], activation=settings["activation"],
                        output_activation=settings["output_activation"],
                        samples=settings["mc_samples"], beta=settings["beta"],
                        weight_prior_std=prior, weight_prior_scale=1.0 / data.n_train,
                        init=settings["init"], init_std=settings["init_std"],
                        seed=settings["seed"], dtype=settings["dtype"])
    try:
        model_config = VAE(**model_config).config()  # validates, and normalizes
    except ValueError as error:
        raise UsageError(str(error)) from None
    run_dir = Path(args.out) if args.out else default_run_dir(args.dataset, settings["z_dim"])
    if (run_dir / checkpoint.CHECKPOINT_NAME).exists():
        raise UsageError(f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
                         "or choose another --out.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"Cannot create run directory {run_dir}: {error.strerror}.") from None
    config = dict(dataset=args.dataset, settings=settings, model=model_config,
                  budget_samples=budget, n_train=data.n_train, test_split=TEST_SPLIT,
                  eval=dict(eval_size=eval_size, train_examples=data.train_count,
                            test_examples=data.test_count,
                            evals_per_decade=args.evals_per_decade),
                  dynamic_binarization=data.binarize,
                  pixel_scaling="grey levels / 255 (numpyvae.datasets.load)",
                  # The resolved directory, so that evaluate and --resume find the data
                  # even when NUMPYVAE_DATA is not set for them.
                  data_dir=str(datasets.resolve_data_dir(args.data_dir)),
                  numpyvae_version=__version__,
                  created=datetime.now().isoformat(timespec="seconds"))
    write_config(run_dir, config)
    (run_dir / METRICS_NAME).write_text("")
    run = Run(run_dir, config, data, fresh=True)
    run.save()  # a good checkpoint exists from the start (divergence keeps it)
    print(f"Run directory: {run_dir}", file=sys.stderr)
    return run, config, budget


def _run(args):
    started = time.monotonic()
    run, config, budget = _resume(args) if args.resume is not None else _start(args)
    run_dir = run.run_dir
    data = run.data
    settings = run.settings
    config["budget_samples"] = budget
    command = " ".join(["python -m numpyvae.train"] + args.argv)
    if args.resume is None:
        config["command"] = command
    else:
        config.setdefault("resumed_with", []).append(command)
    write_config(run_dir, config)
    print(f"{config['dataset']}: {data.n_train} training examples of {data.x_dim} pixels; "
          f"evaluating on {data.train_count} train / {data.test_count} test examples. "
          f"Model: hidden {settings['hidden']}, z_dim {settings['z_dim']}, "
          f"{settings['likelihood']}; {settings['optimizer']} lr {settings['lr']}, batch "
          f"{settings['batch_size']}, budget {format_count(budget)} samples.", file=sys.stderr)

    outcome = run.train(budget, config["eval"]["evals_per_decade"], args.checkpoint_seconds)
    if outcome == "interrupted":
        print(f"Checkpoint written at {run.samples_seen} samples seen. "
              f"resume with: python -m numpyvae.train --resume {run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome != "done":
        print(f"error: {outcome}", file=sys.stderr)
        return EXIT_DIVERGED
    records = read_metrics(run_dir)
    if not records or records[-1]["samples_seen"] != run.samples_seen:
        records.append(run.evaluate())
    if not args.no_figures:
        title = f"{config['dataset']}, z={settings['z_dim']}"
        written = write_figures(run, title)
        print(f"Figures: {', '.join(str(p) for p in written)}", file=sys.stderr)
    last = records[-1]
    print(f"Done: {run.samples_seen} samples seen in {run.wall_seconds:.1f} s of training "
          f"({time.monotonic() - started:.1f} s this session). train ELBO "
          f"{last['train_elbo']:.2f}, test ELBO {last['test_elbo']:.2f}. Run directory: {run_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
