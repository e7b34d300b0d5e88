"""Train a member of the family: ``python -m numpyvae.train --dataset frey [--model NAME]``.

The default is the AEVB model with AEVB's settings. Per minibatch of M examples
(Kingma & Welling 2013, eq. 8 and sec. 5):

    loss = -1/M sum_i objective(x_i) + 1/n_train * sum_theta theta^2 / 2

the objective being the ELBO (``--model vae``), the beta-weighted bound (``--beta``), or
the IWAE bound (``--model iwae --k K``, or ``--objective iwae`` for any model), the
second term -log p(theta) for the prior N(0, I) on the parameters, added once to the
whole data set's bound, hence 1/n_train per example. Reported metrics (the learning
curve, metrics.jsonl) are per-datapoint, without that term, and always include the
true ELBO beside the objective.

This module knows runs, not models: the model comes from ``numpyvae.models`` by name and
is used only through its contract (numpyvae/models/base.py). The run directory's files
and guarantees are described in numpyvae/rundir.py.

``--resume RUN_DIR`` continues exactly where the checkpoint stopped: the same
parameters, optimizer state, random streams and position in the epoch's shuffled
order, so a run stopped at N samples and resumed to 2N ends with the very same
parameters as an uninterrupted 2N run.

Exit status: 0 done; 2 bad arguments, data or run directory; 3 diverged (the last good
checkpoint is kept); 4 disk full; 128 + signal number when stopped by a signal after
writing a checkpoint (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""
import argparse
import math
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy

from . import (__version__, backend, checkpoint, datasets, memory, models, rundir, runconfig,
               threads)
from .cli import (EXIT_DISK_FULL, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_USAGE,  # noqa: F401
                  ArgumentParser, positive_float, positive_int)
from .models.options import Option, cli_type
from .latent import active_dimensions, dimensions_in_use, latent_points
from .likelihoods import independent_pixels_log_likelihood
from .marginal_likelihood import batched_metrics
from .optim import OPTIMIZERS
from .progress import ProgressBar, format_count
from .parts.objectives import Elbo
from .threads import ThreadChooser
from .rundir import (CONFIG_NAME, FIGURES_DIR, DiskFullError, UsageError,
                     read_metrics)

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
DEFAULT_RUNS_DIR = "runs"

# AEVB section 5: tanh MLPs, one hidden layer (200 units for Frey, 500 for MNIST),
# minibatch M = 100, L = 1, N(0, 0.01^2) initialization, Adagrad, the N(0, I) weight
# prior. lr = 0.01 was picked from AEVB's {0.01, 0.02, 0.1}: on Frey (3 seeds) and
# binarized MNIST it led 0.02 at 10^5 samples, and 0.1 is unstable (README).
COMMON_DEFAULTS = dict(model="vae", activation="tanh", output_activation="sigmoid",
                       optimizer="adagrad", lr=0.01, batch_size=100, mc_samples=1, beta=1.0,
                       weight_prior_std=1.0, init="normal", init_std=0.01, seed=0,
                       dtype="float32")
DATASET_DEFAULTS = {
    "frey": dict(hidden=[200], z_dim=10, likelihood="gaussian", samples=3_000_000,
                 eval_size=None),
    "binarized-mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli",
                            samples=1_000_000, eval_size=1000),
    "mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli", samples=1_000_000,
                  eval_size=1000),
    "fashion-mnist": dict(hidden=[500], z_dim=20, likelihood="bernoulli", samples=1_000_000,
                          eval_size=1000),
    # The Chen thesis's CIFAR-10 FGVAE: d = 256, the summed cross-entropy on continuous
    # pixels, 25 epochs (its nets: --hidden 512 256 128 --batch-norm --activation relu,
    # or --net conv).
    "cifar10": dict(hidden=[512, 256, 128], z_dim=256, likelihood="bernoulli",
                    binarize=False, samples=1_250_000, eval_size=1000),
}
# A data set of your own (--dataset PATH: numpyvae/datasets/files.py): the Frey-sized MLP,
# a latent of 10 (at most the data's width), the decoder the values choose (likelihood None:
# files.likelihood_for), 10^6 samples, and minibatches of at most the training rows.
FILE_DEFAULTS = dict(hidden=[200], z_dim=10, likelihood=None, samples=1_000_000, eval_size=1000)
# A conv net's recipe where neither the flags nor the member say otherwise: the Chen
# thesis's CNN FGVAE (batch norm and ReLU after every convolution, Adam 1e-3, batch 128)
# with Glorot's initialization. AEVB's MLP recipe (tanh, Adagrad 0.01, N(0, 0.01^2)
# weights) diverges within a few steps on a conv net (Fashion-MNIST: at step 4).
NET_DEFAULTS = {"conv": dict(activation="relu", batch_norm=True, optimizer="adam", lr=0.001,
                             batch_size=128, init="glorot")}
TEST_SPLIT = "test"
EVALS_PER_DECADE = 8
# Burda et al. (2016), sec. 5: Adam, 3^i epochs at lr 0.001 * 10^(-i/7), i = 0..7.
IWAE_SCHEDULE_STAGES = 8
# Jiang et al.'s VaDE code: lr times 0.9 every 10 epochs, never below 0.0002.
VADE_DECAY, VADE_DECAY_EPOCHS, VADE_MIN_LR = 0.9, 10, 0.0002


def dataset_argument(text):
    """--dataset: a registered data set's name, or a .npy, .npz or .csv file of one's own."""
    if text in DATASET_DEFAULTS or datasets.files.is_data_file(text):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown data set {text!r}: use one of {', '.join(sorted(DATASET_DEFAULTS))}, or a "
        ".npy, .npz or .csv file of your own")


def prior_std(text):
    """A positive float, or 0 / none to train without the weight prior."""
    if text.strip().lower() in ("0", "0.0", "none", "off"):
        return "none"
    return positive_float(text)


# The training run's own settings, described once like the models' options
# (numpyvae.models.options): their flags and the --resume checks derive from these.
TRAIN_OPTIONS = (
    Option("model", "vae", "family member: " + ", ".join(models.names()), str, run=True,
           cli=dict(choices=models.names())),
    Option("optimizer", "adagrad", "adagrad (AEVB), sgd or adam", str, run=True,
           cli=dict(choices=sorted(OPTIMIZERS))),
    Option("lr", 0.01, "step size", positive_float, run=True),
    Option("lr_schedule", None, "iwae: Burda et al.'s 3^i epochs at lr * 10^(-i/7), "
           "i = 0..7 (3280 epochs); vade: lr * 0.9 every 10 epochs, at least 0.0002 (Jiang "
           "et al.'s code)", str, run=True, cli=dict(choices=("iwae", "vade"))),
    Option("adam_eps", None, "Adam's epsilon (1e-8; the IWAE paper used 1e-4)",
           positive_float, run=True),
    Option("batch_size", 100, "minibatch size M", positive_int, run=True),
    Option("beta_warmup", None, "KL warm-up: beta rises linearly from 0 to --beta over this "
           "many samples", positive_int, run=True, cli=dict(metavar="SAMPLES")),
    Option("binarize", None, "binarize grey levels afresh per minibatch for a Bernoulli "
           "decoder (the default; vade: --no-binarize, the cross-entropy on grey levels as "
           "its code does)", bool, run=True, cli=dict(action=argparse.BooleanOptionalAction)),
    Option("train_examples", None, "train on a fixed random subset of this many training "
           "examples, the same for every seed (AEVB's Figure 3: 1000); the weight prior and "
           "evaluate --split train then count those", positive_int, run=True,
           cli=dict(metavar="N")),
    Option("pool_splits", False, "train on the training and test splits pooled (vade's "
           "default: its MNIST protocol); the test metrics are then not held out", bool,
           run=True, cli=dict(action=argparse.BooleanOptionalAction)),
)
# How the command line spells the weight prior's "none": kept as "none" in settings.
COMMAND_LINE_TYPES = {"weight_prior_std": prior_std}


def model_option_owners():
    """Every option of every registered member (Option), by name, with the members
    that have it: the base options belong to all."""
    found = {}
    for name in models.names():
        for option in models.model_class(name).member_options():
            found.setdefault(option.name, (option, []))[1].append(name)
    return found


def setting_options(model_name=None):
    """The options a run keeps in its settings, by setting name: the trainer's, and the
    model options that have a flag (those of ``model_name``, or of every member)."""
    owners = model_option_owners()
    chosen = {option.setting_name: option for option in TRAIN_OPTIONS}
    for option, members in owners.values():
        if option.flags and (model_name is None or model_name in members):
            chosen[option.setting_name] = option
    return chosen


# A run that predates a setting has the model's default for it (None: the model's own),
# and runs from before the family are AEVB's VAE.
FAMILY_DEFAULTS = dict(dict.fromkeys(setting_options()), model="vae", batch_norm=False,
                       pool_splits=False)
LIST_SETTINGS = tuple(name for name, option in setting_options().items()
                      if option.cli.get("nargs") == "+")


# --------------------------------------------------------------------- arguments
def build_parser():
    parser = ArgumentParser(
        prog="python -m numpyvae.train",
        description="Train a member of the VAE family (default: AEVB, Kingma & Welling 2013) "
                    "and write a run directory with config.json, metrics.jsonl, "
                    "checkpoint.npz and figures/.",
        epilog="Defaults per data set: " + "; ".join(
                   f"{name}: " + _as_flags({key: value for key, value in defaults.items()
                                            if key != "eval_size"})
                   for name, defaults in DATASET_DEFAULTS.items()) + " (a gaussian decoder: "
               "sigmoid mean, learned variance; grey MNIST is binarized afresh each "
               "minibatch for a bernoulli one); a .npy/.npz/.csv file of your "
               "own: --hidden 200 --z-dim 10 (at most its width), the likelihood its values "
               "choose (0/1: bernoulli; within [0, 1]: gaussian, sigmoid mean; else gaussian, "
               "identity mean on standardized columns), --samples 1e6, 10% of its rows to "
               "test (README: Your own data). All: Adagrad --lr 0.01, "
               "--batch-size 100, L = 1, N(0, 0.01^2) init, N(0, I) weight prior. "
               f"Models: {', '.join(models.names())}; {member_protocols()}. "
               "--net conv: " + _as_flags(NET_DEFAULTS["conv"]) + ". "
               "Continue a run with --resume RUN_DIR [--samples N].")
    add = parser.add_argument
    add("--dataset", type=dataset_argument, metavar="NAME|FILE",
        help=f"data set: {', '.join(sorted(DATASET_DEFAULTS))}, or a .npy, .npz or .csv file "
             "of your own (required unless --resume)")
    owners = model_option_owners()
    for setting, option in setting_options().items():
        members = owners.get(option.name, (None, models.names()))[1]
        only = "" if len(members) == len(models.names()) else f" (--model {' or '.join(members)})"
        if any(setting in defaults for defaults in DATASET_DEFAULTS.values()):
            default = "; default: per data set (below)"
        else:
            value = COMMON_DEFAULTS.get(setting, option.default)
            default = "" if value is None else f"; default {_format_setting(value)}"
        options = dict(option.cli)
        if "action" not in options:
            options.setdefault("type", COMMAND_LINE_TYPES.get(option.name, cli_type(option.parse)))
        add(*option.flags, dest=setting, help=option.help + default + only, **options)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--samples", type=positive_int,
                        help="total training samples the run should have seen (e.g. 1e6); with "
                             "--resume, the new total; default: per data set (below), or the "
                             "member's protocol in epochs (vade)")
    budget.add_argument("--epochs", type=positive_float,
                        help="the budget in passes over the training set, instead of --samples")
    add("--eval-size", type=positive_int,
        help="examples in the fixed train and test subsets evaluated at intervals; default: "
             + ", ".join(f"{name} {'all' if defaults['eval_size'] is None else defaults['eval_size']}"
                         for name, defaults in DATASET_DEFAULTS.items()))
    add("--evals-per-decade", type=positive_int,
        help="evaluations per decade of samples seen (log-spaced, for the learning curve); "
             f"default {EVALS_PER_DECADE}; with --resume, from there on (recorded)")
    add("--threads", type=threads_flag, default="auto",
        help="BLAS threads: auto (the default) gives BLAS the cores other processes leave "
             "free, counted again every few seconds, or one thread where that trains "
             "faster (both timed on a free machine); N keeps N (bit-for-bit reproducible "
             "across --resume under any load)")
    add("--checkpoint-seconds", type=positive_float, default=60.0,
        help="write a checkpoint at least this often (wall clock), and at the end; "
             "default %(default)g")
    add("--data-dir", help="data directory (default: $NUMPYVAE_DATA or the user cache; "
                           "missing files are downloaded)")
    add("--out", help=f"run directory (default: {DEFAULT_RUNS_DIR}/<dataset>-<model>[-beta<beta>]-"
                      "z<z_dim>-<YYYYmmdd-HHMMSS>, beta where it is not 1; README, Train and "
                      "evaluate)")
    add("--resume", metavar="RUN_DIR",
        help="continue the run in RUN_DIR (a directory this command wrote: config.json, "
             "checkpoint.npz, metrics.jsonl, figures/) from its checkpoint, with its own "
             "settings; --samples/--epochs set the new total")
    add("--backend", choices=("numpy", "cupy"), help="array backend (default numpy, or $NUMPYVAE_BACKEND)")
    add("--no-figures", action="store_true", help="draw no figures (default: drawn in "
        "RUN_DIR/figures at evaluations while training, and at the end or when stopped by a "
        "signal)")
    return parser


def _as_flags(settings):
    """Settings as the flags that give them (False: --no-NAME where that flag exists)."""
    negatable = {name for name, option in setting_options().items()
                 if option.cli.get("action") is argparse.BooleanOptionalAction}
    flags = []
    for name, value in settings.items():
        flag = name.replace("_", "-")
        if value is True:
            flags.append(f"--{flag}")
        elif value is False:
            flags.append(f"--no-{flag}" if name in negatable else f"(no --{flag})")
        elif value is not None and value is not False:
            flags.append(f"--{flag} {_format_setting(value)}")
    return " ".join(flags)


def member_protocols():
    """Each member's own training protocol (its RUN_DEFAULTS), as the flags it implies."""
    return "; ".join(f"--model {name} implies {_as_flags(models.model_class(name).RUN_DEFAULTS)}"
                     for name in models.names() if models.model_class(name).RUN_DEFAULTS)


def threads_flag(text):
    """--threads: "auto", or a positive count."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def _format_setting(value):
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 100_000:
        mantissa, exponent = f"{value:e}".split("e")     # 1250000 -> 1.25e6, as flags take it
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return str(value)


def _given(args, name):
    value = getattr(args, name, None)
    if value is not None and name in LIST_SETTINGS:
        value = list(value)
    return value


def run_setting_names(model_name):
    """The settings a run of this member keeps: the trainer's and the member's options."""
    return tuple(setting_options(model_name))


def _flag_of(setting):
    return setting_options()[setting].flags[0]


def resolve_settings(args, stored=None, stored_model=None, data_defaults=None):
    """The run's settings: per-data-set defaults (``data_defaults``, else
    DATASET_DEFAULTS[args.dataset]), a conv net's recipe (NET_DEFAULTS), then
    the member's protocol (RUN_DEFAULTS), overlaid with the given flags; or, for a resumed run, the stored
    settings, refusing any flag that would change them."""
    if stored is None:
        model_name = args.model or COMMON_DEFAULTS["model"]
        model_class = models.model_class(model_name)
        names = run_setting_names(model_name)
        for setting, option in setting_options().items():
            if setting not in names and getattr(args, setting, None) is not None:
                owners = model_option_owners()[option.name][1]
                raise UsageError(f"{option.flags[0]} applies to --model {' or '.join(owners)}, "
                                 f"not {model_name}: drop it or choose that model.")
        # The member's own options (not the VAE's, whose defaults are the model's).
        own = {option.setting_name: option.default
               for option in model_class.__dict__.get("OPTIONS", ())}
        settings = dict(FAMILY_DEFAULTS, **COMMON_DEFAULTS)
        settings = {name: settings.get(name) for name in names}
        settings.update(own)
        settings["model"] = model_name
        if data_defaults is None:
            data_defaults = DATASET_DEFAULTS[args.dataset]
        settings.update({k: v for k, v in data_defaults.items() if k in names})
        net = _given(args, "net") or model_class.RUN_DEFAULTS.get("net", settings.get("net"))
        settings.update({k: v for k, v in NET_DEFAULTS.get(net, {}).items() if k in names})
        settings.update({k: v for k, v in model_class.RUN_DEFAULTS.items() if k in names})
        for name in run_setting_names(model_name):
            value = _given(args, name)
            if value is not None:
                settings[name] = value
        return settings
    stored = dict(FAMILY_DEFAULTS, **stored)
    options = setting_options(stored["model"])
    conflicts = []
    for name in run_setting_names(stored["model"]):
        value = _given(args, name)
        current = stored.get(name)
        if current is None and name in options:
            # A setting the run left to the model: the model's value is the run's.
            current = (stored_model or {}).get(options[name].name)
        if value is not None and value != current:
            conflicts.append(f"{_flag_of(name)} {_format_setting(value)} (the run has "
                             f"{_flag_of(name)} {_format_setting(current)})")
    if conflicts:
        raise UsageError(
            "Cannot resume with different model or optimizer settings: "
            + "; ".join(conflicts) + ". The checkpoint holds that architecture and optimizer "
            "state. Drop these flags to continue the run, or start a new run without --resume.")
    return stored


def model_options(settings, data):
    """The model's constructor options: its options' settings (those unset take the
    model's defaults), the weight prior's 1/n_train, and what the data set supplies."""
    model_class = models.model_class(settings["model"])
    options = {option.name: settings[option.setting_name]
               for option in model_class.member_options()
               if not option.run and settings.get(option.setting_name) is not None}
    options.update(x_dim=data.x_dim, weight_prior_scale=1.0 / data.n_train)
    options.update(model_class.options_from_data(data.image_shape, data.n_classes))
    return options


# --------------------------------------------------------------------------- data
def load_splits(dataset, data_dir, dtype, source=None, file_data=None):
    """((x, labels) of the training split, (x, labels) of the test split) of a registered
    data set, or of a file of one's own (``source``: its record in config.json; its rows
    scaled as recorded, no labels; ``file_data``: the file already read)."""
    if source is not None:
        rows = datasets.files.load(source, dtype, data=file_data)
        return (rows["train"], None), (rows[TEST_SPLIT], None)
    return (datasets.load(dataset, "train", data_dir=data_dir, dtype=dtype),
            datasets.load(dataset, TEST_SPLIT, data_dir=data_dir, dtype=dtype))


class Data:
    """The training set on the device, fixed evaluation subsets, and how to binarize.

    Rows are whole images; ``model.inputs(images, labels)`` turns them into what the
    model takes (x and a condition), so the loop is the same for every model.
    """

    def __init__(self, dataset, settings, eval_size, data_dir, seed, binary, source=None,
                 file_data=None):
        dtype = numpy.dtype(settings["dtype"])
        try:
            (x_train, train_labels), (x_test, test_labels) = load_splits(
                dataset, data_dir, dtype, source, file_data)
        except datasets.DataError as error:
            raise UsageError(f"Cannot load data set {dataset!r}: {error}") from None
        if settings.get("train_examples") is not None:
            try:
                keep = datasets.training_rows(len(x_train), settings["train_examples"])
            except ValueError as error:
                raise UsageError(f"{dataset}: {error}") from None
            x_train = x_train[keep]
            train_labels = None if train_labels is None else train_labels[keep]
        if settings.get("pool_splits"):
            # Train and test pooled (VaDE's protocol); the test subset stays the test's.
            x_train = numpy.concatenate([x_train, x_test])
            train_labels = (None if train_labels is None
                            else numpy.concatenate([train_labels, test_labels]))
        self.name, self.dtype = dataset, dtype
        self.image_shape = (datasets.image_shape(dataset) if source is None
                            else tuple(source["image_shape"]))
        self.n_train, self.x_dim = x_train.shape
        self.n_classes = None if train_labels is None else int(train_labels.max()) + 1
        # A Bernoulli likelihood needs binary data: grey levels get a fresh draw per
        # minibatch (dynamic binarization); the evaluation subsets one fixed draw.
        grey = not bool(numpy.all((x_train == 0) | (x_train == 1)))
        self.binarize = binary and grey
        self.binary = self.binarize or not grey       # what the model sees is 0s and 1s
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
        self.train_labels = None if train_labels is None else backend.to_device(
            train_labels.astype(numpy.int64))
        self.eval_train = backend.to_device(eval_train)
        self.eval_test = backend.to_device(eval_test)
        self.eval_train_labels = None if train_labels is None else backend.to_device(
            train_labels[train_subset].astype(numpy.int64))
        self.test_labels = None if test_labels is None else test_labels[test_subset]
        self.eval_test_labels = None if test_labels is None else backend.to_device(
            self.test_labels.astype(numpy.int64))
        self.train_count, self.test_count = train_count, test_count

    def batch(self, indices, binarize_rng):
        """(images, labels) of x_train[indices] (binarized afresh if the data are grey)."""
        device_indices = backend.to_device(indices)
        batch = self.x_train[device_indices]
        if self.binarize:
            # Same draw as datasets.binarize, made on the host so every backend agrees.
            uniform = backend.to_device(binarize_rng.random(batch.shape, dtype=self.dtype))
            batch = (uniform < batch).astype(self.dtype)
        labels = None if self.train_labels is None else self.train_labels[device_indices]
        return batch, labels


# ----------------------------------------------------------------------- schedule
def next_evaluation(samples_seen, per_decade, budget):
    """The smallest log-spaced point 10^(k / per_decade) above samples_seen, or the budget."""
    k = math.floor(per_decade * math.log10(max(samples_seen, 1))) + 1
    while True:
        point = round(10 ** (k / per_decade))
        if point > samples_seen:
            return min(point, budget)
        k += 1


def iwae_stage(epoch):
    """The stage i of Burda et al.'s schedule at a (fractional) epoch: stages last 3^i
    epochs, so stage i starts at epoch (3^i - 1) / 2."""
    stage = 0
    while stage < IWAE_SCHEDULE_STAGES - 1 and epoch >= (3 ** (stage + 1) - 1) / 2:
        stage += 1
    return stage


def learning_rate(settings, samples_seen, n_train):
    if settings.get("lr_schedule") == "iwae":
        return settings["lr"] * 10 ** (-iwae_stage(samples_seen / n_train) / 7)
    if settings.get("lr_schedule") == "vade":
        decays = math.floor(samples_seen / n_train / VADE_DECAY_EPOCHS)
        return max(settings["lr"] * VADE_DECAY ** decays, min(settings["lr"], VADE_MIN_LR))
    return settings["lr"]


def kl_weight(settings, samples_seen):
    """beta, or during --beta-warmup W: beta * min(1, samples_seen / W)."""
    warmup = settings.get("beta_warmup")
    if not warmup:
        return settings["beta"]
    return settings["beta"] * min(1.0, samples_seen / warmup)


class Diverged(Exception):
    """Training produced a bound that cannot be right; the message gives advice."""


# --------------------------------------------------------------------------- run
class Run:
    """A training run: model, optimizer, random streams, data order and bookkeeping."""

    def __init__(self, run_dir, config, data, fresh, saved=None, model=None):
        self.run_dir, self.config, self.data = Path(run_dir), config, data
        settings = dict(FAMILY_DEFAULTS, **config["settings"])
        self.settings = settings
        self.model = model if model is not None else models.create(rundir.model_name(config),
                                                                   **config["model"])
        optimizer_options = dict(lr=settings["lr"])
        if settings["optimizer"] == "adam" and settings.get("adam_eps") is not None:
            optimizer_options["eps"] = settings["adam_eps"]
        self.optimizer = OPTIMIZERS[settings["optimizer"]](**optimizer_options)
        self.optimizer.initialize_state(self.model.params)   # every checkpoint resumable
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
        self.best_objective = -math.inf
        self.figure_schedule = None     # a FigureSchedule while the command draws figures
        baseline_x, _ = self.model.inputs(data.eval_train, data.eval_train_labels)
        self.baseline = independent_pixels_log_likelihood(
            backend.to_numpy(baseline_x), self.model.likelihood, self.model.decoder_variance)
        if not fresh:
            self._restore(*saved)

    # -- checkpoints
    def _generators(self):
        return {"data": self.data_rng, "noise": self.noise_rng, "binarize": self.binarize_rng,
                "eval": self.eval_rng, "model": self.model.rng}

    def save(self):
        meta = dict(samples_seen=self.samples_seen, step=self.step, position=self.position,
                    wall_seconds=self.wall_seconds, model=self.config["model"],
                    model_name=rundir.model_name(self.config), settings=self.settings,
                    best_objective=self.best_objective if math.isfinite(self.best_objective) else None,
                    rng={name: checkpoint.generator_state(g) for name, g in self._generators().items()})
        arrays = {"permutation": self.permutation}
        arrays.update(checkpoint.buffer_arrays(self.model.buffers.to_numpy()))
        path = self.run_dir / checkpoint.CHECKPOINT_NAME
        try:
            checkpoint.save(path, self.model.params.to_numpy(), self.optimizer.state_dict(), meta,
                            arrays)
        except OSError as error:
            if rundir.is_disk_full(error):
                raise DiskFullError(path, self.run_dir) from None
            raise
        self.checkpoint_samples = self.samples_seen

    def _restore(self, params, optimizer_state, meta, arrays):
        where = self.run_dir / checkpoint.CHECKPOINT_NAME
        rundir.check_checkpoint(meta, self.config, where)
        try:
            self.model.params.assign(params)
            self.model.buffers.assign(checkpoint.buffers_from(arrays))
            self.optimizer.load_state_dict(optimizer_state, self.model.params)
            if self.optimizer.converted_state:
                print(f"note: {where} holds the {self.settings['optimizer']} state numpyvae "
                      "wrote before this version's; it was converted, so the run agrees with "
                      "an uninterrupted one to float32 rounding, not bit for bit.",
                      file=sys.stderr)
        except (ValueError, KeyError) as error:
            raise UsageError(f"{where} does not fit this run's architecture "
                             f"(model {self.settings['model']}, {self.model.architecture()}, "
                             f"{self.settings['optimizer']}): "
                             f"{error}") from None
        try:
            for name, generator in self._generators().items():
                checkpoint.set_generator_state(generator, meta["rng"][name])
            self.permutation = arrays["permutation"].astype(numpy.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise rundir.RunFileError(f"{where}: its random streams or data order cannot be "
                                      f"restored ({type(error).__name__}: {error}); "
                                      f"{checkpoint.DAMAGED}.") from None
        self.position, self.samples_seen = int(meta["position"]), int(meta["samples_seen"])
        self.step, self.wall_seconds = int(meta["step"]), float(meta["wall_seconds"])
        if meta.get("best_objective") is not None:
            self.best_objective = float(meta["best_objective"])
        self.checkpoint_samples = self.samples_seen
        self._apply_schedules()

    def _apply_schedules(self):
        # The KL weight of this step goes to the loss, not onto the model.
        self.beta = kl_weight(self.settings, self.samples_seen)
        self.optimizer.lr = learning_rate(self.settings, self.samples_seen, self.data.n_train)

    # -- metrics
    def _split_metrics(self, images, labels):
        x, condition = self.model.inputs(images, labels)
        batch = memory.draws_per_batch(model_draws(self.model)[0])
        values = batched_metrics(self.model, x, condition, self.eval_rng, batch, beta=self.beta)
        return {name: float(value.mean()) for name, value in values.items()}

    def _active_dimensions(self, batch=1000):
        """How many latent dimensions the model uses on the test subset: Var_x of its
        latent point (q's mean) above latent.ACTIVE_VARIANCE. A dimension that collapses
        onto the prior early in training rarely comes back, and costs nats ever after
        (README: Wang at Wang's setup), so the log shows when it happens."""
        points = latent_points(self.model, self.data.eval_test, self.data.eval_test_labels, batch)
        return dimensions_in_use(active_dimensions(points)[1])

    def evaluate(self):
        """Every metric of the model on the fixed train and test subsets (fresh noise),
        the objective and the recorded beta and lr those in force at this many samples."""
        self._apply_schedules()
        train = self._split_metrics(self.data.eval_train, self.data.eval_train_labels)
        test = self._split_metrics(self.data.eval_test, self.data.eval_test_labels)
        record = dict(samples_seen=self.samples_seen, step=self.step,
                      epoch=self.samples_seen / self.data.n_train)
        for split, values in (("train", train), ("test", test)):
            for name, value in values.items():
                record[f"{split}_{name}"] = value
        record["test_active_dimensions"] = self._active_dimensions()
        record.update(beta=self.beta, lr=self.optimizer.lr, wall_seconds=self.wall_seconds)
        rundir.append_metrics(self.run_dir, record)   # a full disk: DiskFullError
        return record

    def params_finite(self):
        xp = backend.namespace_of(self.model.params.flat)
        return bool(xp.isfinite(self.model.params.flat).all())

    def check_bound(self, objective, window):
        """Raise Diverged when the running objective (per example, nats) is impossible
        or has collapsed: not finite; above 0 for binary data under a Bernoulli decoder
        (log p(x|z) <= 0 and KL >= 0 bound it); or far below both the trivial
        independent-pixel model's log-likelihood and the run's best so far."""
        lr = self.optimizer.lr
        advice = (f"Lower the step size: this run used --lr {self.settings['lr']}; try "
                  f"--lr {self.settings['lr'] / 10:g}")
        if not (math.isfinite(objective) and self.params_finite()):
            raise Diverged(f"the objective became {objective} {window}. {advice}.")
        if self.model.likelihood == "bernoulli" and objective > 1e-3 * self.data.x_dim:
            raise Diverged(f"the objective reached {objective:.4g} nats {window}, but for binary "
                           "data under a Bernoulli decoder it is at most 0: the arithmetic has "
                           f"broken down (overflow). {advice}.")
        scale = abs(self.baseline) + self.data.x_dim
        floor = min(self.baseline, self.best_objective) - 10.0 * scale
        if objective < floor:
            best = (f"its best was {self.best_objective:.4g}, "
                    if math.isfinite(self.best_objective) else "")
            raise Diverged(f"the objective fell to {objective:.4g} nats {window}; {best}and a "
                           f"model of independent pixels reaches {self.baseline:.4g}: the "
                           f"optimization has diverged (step size {lr:g}). {advice}.")
        self.best_objective = max(self.best_objective, objective)

    # -- the loop
    def train(self, budget, per_decade, checkpoint_seconds, log_every=20, threads=None):
        """Train until samples_seen >= budget. Returns "done", ("signal", number) or
        raises Diverged (the checkpoint on disk is the last good one). ``threads``: a
        ThreadChooser, asked again at each progress update."""
        model, optimizer, data = self.model, self.optimizer, self.data
        batch_size = self.settings["batch_size"]
        bar = ProgressBar(budget, initial=self.samples_seen, unit="samples", label="train")
        stop = {"signal": None}
        signal_names = {number: signal.Signals(number).name for number in STOP_SIGNALS}

        def request_stop(signum, frame):
            if stop["signal"] is not None:  # a second one: stop right now, no checkpoint
                raise KeyboardInterrupt
            stop["signal"] = signum
            bar.message(f"{signal_names.get(signum, signum)}: finishing this step and writing "
                        "a checkpoint (send it again to abort without one)...")

        previous = {}
        for number in STOP_SIGNALS:
            try:
                previous[number] = signal.signal(number, request_stop)
            except ValueError:  # not the main thread: signals cannot reach us anyway
                break
        loss_sum, steps_in_window = 0.0, 0
        next_eval = next_evaluation(self.samples_seen, per_decade, budget)
        last_checkpoint = time.monotonic()
        session_start = time.monotonic() - self.wall_seconds
        last_good = self.samples_seen
        label = "elbo" if model.objective_label == "ELBO" else "objective"
        try:
            with numpy.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                while self.samples_seen < budget and stop["signal"] is None:
                    if self.position >= len(self.permutation):
                        self.permutation = self.data_rng.permutation(data.n_train)
                        self.position = 0
                    indices = self.permutation[self.position:self.position + batch_size]
                    images, labels = data.batch(indices, self.binarize_rng)
                    x, condition = model.inputs(images, labels)
                    self._apply_schedules()
                    loss, grads = model.loss_and_grads(x, condition=condition, rng=self.noise_rng,
                                                      beta=self.beta)
                    # A loss right after one of the optimizer's transient first updates
                    # stays out of the running objective the divergence check reads: on
                    # Wang (2023)'s [500, 500, 3] Adagrad's first update sends the KL to
                    # 10^4-10^5 nats for one step before it falls back.
                    settled = not 0 < optimizer.steps <= optimizer.transient_updates
                    optimizer.step(model.params, grads)
                    self.position += len(indices)
                    self.samples_seen += len(indices)
                    self.step += 1
                    # Accumulate on the device; read back only every log_every steps.
                    if settled:
                        loss_sum = loss_sum + loss
                        steps_in_window += 1
                    due_eval = self.samples_seen >= next_eval
                    if not (due_eval or self.step % log_every == 0 or self.samples_seen >= budget):
                        continue
                    self.wall_seconds = time.monotonic() - session_start
                    if steps_in_window:
                        mean_loss = backend.to_float(loss_sum) / steps_in_window
                        # The loss includes the weight prior's penalty; add back its
                        # current value (it moves slowly) rather than computing it each step.
                        running = backend.to_float(model.weight_prior_penalty()) - mean_loss
                        loss_sum, steps_in_window = 0.0, 0
                        self.check_bound(running, f"between {format_count(last_good)} and "
                                                  f"{format_count(self.samples_seen)} samples "
                                                  f"seen (step {self.step})")
                        last_good = self.samples_seen
                        bar.update(self.samples_seen, **{label: f"{running:.1f}"})
                    if threads is not None:
                        threads.recheck(self.samples_seen)
                    if due_eval:
                        record = self.evaluate()
                        bar.message(f"samples {self.samples_seen:>10d}  epoch {record['epoch']:8.1f}"
                                    f"  train ELBO {record['train_elbo']:9.2f}  test ELBO "
                                    f"{record['test_elbo']:9.2f}{objective_text(model, record)}")
                        next_eval = next_evaluation(self.samples_seen, per_decade, budget)
                        if self.figure_schedule is not None:
                            self.figure_schedule.evaluated()
                    if time.monotonic() - last_checkpoint >= checkpoint_seconds:
                        self.save()
                        last_checkpoint = time.monotonic()
            self.wall_seconds = time.monotonic() - session_start
            if stop["signal"] is not None and not self.params_finite():
                raise Diverged("stopped, but the parameters are not finite; the last good "
                               "checkpoint is kept.")
            self.save()
            bar.close()
            return "done" if stop["signal"] is None else ("signal", stop["signal"])
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)


# -------------------------------------------------------------------- pretraining
def pretrain(run):
    """A member's start before its objective, for a new run: VQ-VAE's codebook set from
    the encoder's outputs on a batch; VaDE's autoencoder pretraining (``pretrain_epochs``
    of minibatches) and the EM fit of its mixture to the codes of the whole training set.
    Nothing for the other members."""
    model, data, settings = run.model, run.data, run.settings
    rng = numpy.random.default_rng([settings["seed"], 12])
    batch_size = settings["batch_size"]
    if hasattr(model, "initialize_from_data"):     # VQ-VAE: codes from the encoder's outputs
        indices = numpy.sort(rng.choice(data.n_train, batch_size, replace=False))
        model.initialize_from_data(*model.inputs(*data.batch(indices, rng)), rng=rng)
    epochs = settings.get("pretrain_epochs")
    if not epochs or not hasattr(model, "pretrain"):
        return
    steps = max(1, math.ceil(epochs * data.n_train / batch_size))

    def batches():
        indices = numpy.sort(rng.choice(data.n_train, batch_size, replace=False))
        return model.inputs(*data.batch(indices, rng))

    bar = ProgressBar(steps, unit="steps", label="pretrain (autoencoder)")
    started = time.monotonic()
    with numpy.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        model.pretrain(batches, steps, progress=lambda done, loss: bar.update(
            done, loss=f"{loss:.1f}") if done % 20 == 0 or done == steps else None)
    bar.close()
    codes = []
    for start in range(0, data.n_train, 1000):
        labels = None if data.train_labels is None else data.train_labels[start:start + 1000]
        codes.append(backend.to_numpy(model.latent_point(
            *model.inputs(data.x_train[start:start + 1000], labels))))
    gmm = model.fit_prior(numpy.concatenate(codes), rng)
    run.config["pretraining"] = dict(epochs=epochs, steps=steps,
                                     seconds=round(time.monotonic() - started, 1),
                                     em_iterations=int(gmm.n_iter),
                                     em_converged=bool(gmm.converged),
                                     em_mean_log_likelihood=float(gmm.history[-1]))
    write_config(run.run_dir, run.config)
    print(f"Pretrained {steps} steps ({epochs:g} epochs) in "
          f"{run.config['pretraining']['seconds']} s; EM fitted the mixture prior in "
          f"{gmm.n_iter} iterations.", file=sys.stderr)


# ------------------------------------------------------------------------ figures
# During training the figures are redrawn at an evaluation point when that keeps the
# time spent drawing them under this share of the session (measured on 2 busy cores:
# every figure of a Frey or MNIST run takes ~1-1.5 s, the learning curve alone ~0.4 s;
# drawing at each of a default Frey run's ~36 evaluations would add ~25%).
FIGURE_TIME_SHARE = 0.03
TRAVERSAL_ROWS, TRAVERSAL_SDS = 10, (-3, -2, -1, 0, 1, 2, 3)
INTERPOLATION_PAIRS, INTERPOLATION_STEPS = 4, 8


class FigureSchedule:
    """When the command draws a run's figures: at an evaluation point if the time spent
    drawing so far plus the last drawing's cost stays within FIGURE_TIME_SHARE of the
    session (``evaluated``), and at the end or a stop (``draw``), so that a run stopped
    by a signal has figures of where it stopped."""

    def __init__(self, run, title):
        self.run, self.title = run, title
        self.started = time.monotonic()
        self.spent, self.cost = 0.0, 1.0    # cost: the last drawing's seconds (a guess first)

    def evaluated(self):
        if self.spent + self.cost <= FIGURE_TIME_SHARE * (time.monotonic() - self.started):
            self.draw()

    def draw(self):
        began = time.monotonic()
        written = write_figures(self.run, self.title)
        self.cost = time.monotonic() - began
        self.spent += self.cost
        return written


def write_figures(run, title):
    """All figures of a run into RUN_DIR/figures (host copies of everything), each file
    written atomically."""
    from . import figures

    model, data = run.model, run.data
    directory = run.run_dir / FIGURES_DIR
    directory.mkdir(exist_ok=True)
    records = read_metrics(run.run_dir)
    written = [figures.learning_curve(records, directory / "learning_curve.png", title,
                                      objective_label=model.objective_label)]
    rng = numpy.random.default_rng([run.settings["seed"], 6])  # fixed: comparable figures
    class_names = datasets.class_names(data.name)
    shown = backend.to_device(figures.display_subset(data.test_count, 32, run.settings["seed"]))
    images = data.eval_test[shown]
    labels = None if data.eval_test_labels is None else data.eval_test_labels[shown]
    x, condition = model.inputs(images, labels)
    point = model.latent_point(x, condition)
    reconstructed = model.images(model.decode(point, condition), condition)
    written.append(figures.reconstructions(backend.to_numpy(model.images(x, condition)),
                                           backend.to_numpy(reconstructed), data.image_shape,
                                           directory / "reconstructions.png", title=title))
    sample_condition = model.figure_conditions(64, condition)
    samples = model.images(model.sample(64, rng, condition=sample_condition), sample_condition)
    written.append(figures.prior_samples(backend.to_numpy(samples), data.image_shape,
                                         directory / "samples.png",
                                         title=f"{model.samples_label} ({title})"))
    means = latent_points(model, data.eval_test[:data.test_count],
                          None if data.eval_test_labels is None
                          else data.eval_test_labels[:data.test_count])
    written.append(figures.latent_scatter(means, data.test_labels, directory / "latent.png",
                                          title=f"encoded test points ({title})",
                                          class_names=class_names))
    clusters = getattr(model, "cluster_probabilities", None)
    if clusters is not None:
        assigned = numpy.concatenate([
            backend.to_numpy(clusters(*model.inputs(data.eval_test[start:start + 1000],
                                                    None))).argmax(axis=1)
            for start in range(0, data.test_count, 1000)])
        written.append(figures.latent_scatter(means, assigned % 10,
                                              directory / "latent_clusters.png",
                                              title=f"encoded test means by cluster ({title})"))
    if model.z_dim == 2 and model.figure_conditions(1, condition) is None:
        written.append(figures.manifold(lambda z: backend.to_numpy(model.decode(z)),
                                        data.image_shape, directory / "manifold.png",
                                        title=f"learned manifold: E[x|z], z on a grid of N(0, I) "
                                              f"quantiles ({title})"))
    if x.shape[0] >= 2:
        written.append(draw_interpolations(model, x, condition, data.image_shape,
                                           directory / "interpolation.png", title, class_names))
    if not model.discrete_latent:
        written.append(draw_traversal(model, x, condition, means, rng, data.image_shape,
                                      directory / "traversal.png", title))
    written += model.figures(directory, images, labels, data.image_shape, rng, title,
                             class_names=class_names)
    return written


def _condition_words(model, condition, index, class_names):
    """The condition of example ``index`` in a row label: its class, or "" (none, or
    an image quadrant, which the row shows)."""
    if model.condition_kind != "label" or condition is None:
        return ""
    label = int(backend.to_numpy(condition[index:index + 1])[0])
    return class_names[label] if class_names else str(label)


def draw_interpolations(model, x, condition, shape, path, title, class_names=None):
    """interpolation.png: rows of test pairs (a, b): a, then numpyvae.latent.interpolate's
    decoded path from a to b (ends included), then b; a conditional model's condition
    held at a's."""
    from . import figures
    from .latent import interpolate

    pairs = min(INTERPOLATION_PAIRS, int(x.shape[0]) // 2)
    rows, row_labels = [], []
    for pair in range(pairs):
        a, b = 2 * pair, 2 * pair + 1
        held = None if condition is None else condition[a:a + 1]
        path_images = interpolate(model, x[a], x[b], INTERPOLATION_STEPS, held)
        repeated = None if held is None else condition[[a] * INTERPOLATION_STEPS]
        rows += [backend.to_numpy(model.images(x[a:a + 1], held)),
                 backend.to_numpy(model.images(path_images, repeated)),
                 backend.to_numpy(model.images(x[b:b + 1], None if held is None
                                               else condition[b:b + 1]))]
        words = _condition_words(model, condition, a, class_names)
        row_labels.append(f"c: {words}" if words else "")
    steps = numpy.linspace(0.0, 1.0, INTERPOLATION_STEPS)
    held = "" if model.condition_kind is None else "; condition held at a's"
    how = ("encoder outputs z_e interpolated, then quantized" if model.discrete_latent
           else "z_t = (1 - t) z(a) + t z(b)")
    return figures.image_grid(numpy.concatenate(rows), shape, path, INTERPOLATION_STEPS + 2,
                              f"interpolation between test pairs: E[x|z_t], {how}{held} ({title})",
                              row_labels=row_labels if any(row_labels) else None,
                              column_labels=["a"] + [f"t={t:.2g}" for t in steps] + ["b"])


def draw_traversal(model, x, condition, points, rng, shape, path, title):
    """traversal.png: one test example's latent point with one dimension moved across
    -3 .. +3 standard deviations of the prior (estimated from its samples), a row per
    dimension, the most active first (numpyvae.latent.active_dimensions of the test
    points); a conditional model's condition held at the example's."""
    from . import figures
    from .latent import active_dimensions, traverse

    order, variances = active_dimensions(points)
    held = None if condition is None else condition[0:1]
    draws = 2000
    prior = backend.to_numpy(model.prior_sample(
        draws, rng, condition=None if held is None else condition[[0] * draws])).astype(numpy.float64)
    centre, spread = prior.mean(axis=0), prior.std(axis=0)
    rows, row_labels = [], []
    sds = numpy.asarray(TRAVERSAL_SDS, dtype=numpy.float64)
    for dimension in order[:TRAVERSAL_ROWS]:
        values = centre[dimension] + sds * spread[dimension]
        decoded = traverse(model, x[0], int(dimension), values, held)
        repeated = None if held is None else condition[[0] * len(sds)]
        rows.append(backend.to_numpy(model.images(decoded, repeated)))
        row_labels.append(f"z[{dimension}] var {variances[dimension]:.2g}")
    shown = min(TRAVERSAL_ROWS, model.z_dim)
    held_words = "" if model.condition_kind is None else ", its condition held"
    return figures.image_grid(
        numpy.concatenate(rows), shape, path, len(sds),
        f"traversal of one test example's z{held_words}: z[d] = mean of p(z) + k sd, {shown} of "
        f"{model.z_dim} dimensions d, most active first ({title})", row_labels=row_labels,
        column_labels=[f"{sd:+g} sd" if sd else "0 sd" for sd in TRAVERSAL_SDS])


def truncate_metrics(run_dir, samples_seen, warn=None):
    """Drop records written after the checkpoint (they will be evaluated again), and
    any torn line."""
    records = [r for r in read_metrics(run_dir, warn) if r["samples_seen"] <= samples_seen]
    rundir.rewrite_metrics(run_dir, records)


# --------------------------------------------------------------------------- main
def model_label(model_name, beta=1.0, in_path=False):
    """A run's model in a name or a title: its registry name, with beta where it is not 1
    ("vae-beta4" in a directory name, "vae, \u03b2 = 4" in a figure title)."""
    if beta is None or float(beta) == 1.0:
        return model_name
    return f"{model_name}-beta{float(beta):g}" if in_path else f"{model_name}, \u03b2 = {float(beta):g}"


def run_name(dataset, model_name, beta, z_dim, stamp):
    """The one naming rule of run directories:
    <dataset>-<model>[-beta<beta>]-z<z_dim>-<YYYYmmdd-HHMMSS>, e.g.
    frey-vae-z10-20261206-101500, mnist-vae-beta4-z20-... (beta where it is not 1)."""
    return f"{dataset}-{model_label(model_name, beta, in_path=True)}-z{z_dim}-{stamp}"


def default_run_dir(dataset, model_name, beta, z_dim):
    """runs/<run_name>, with -2, -3, ... appended while that directory exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(DEFAULT_RUNS_DIR) / run_name(dataset, model_name, beta, z_dim, stamp)
    candidate, suffix = base, 1
    while candidate.exists():
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")
    return candidate


def figure_title(config, model):
    """The run in a figure's title: data set, model (with beta where it is not 1), latent."""
    settings = config["settings"]
    return (f"{config['dataset']}, {model_label(settings['model'], settings.get('beta'))}, "
            f"{model.latent_label}")


def write_config(run_dir, config):
    rundir.write_json(Path(run_dir) / CONFIG_NAME, config)   # a full disk: DiskFullError


def binarizes(settings):
    """Whether grey levels get binarized: --no-binarize says no; else a Bernoulli
    decoder asks for binary data."""
    if settings.get("binarize") is not None:
        return bool(settings["binarize"])
    return settings["likelihood"] == "bernoulli"


def _data_for(config, settings, eval_size, data_dir):
    binary = binarizes(settings)
    return Data(config["dataset"], settings, eval_size, data_dir, settings["seed"], binary,
                source=config.get("data_file"))


def load_run(run_dir, data_dir=None, eval_size=None, purpose="--resume", data_file=None):
    """Rebuild a finished or interrupted run (model with its checkpoint, and data); its
    config.json and checkpoint checked (numpyvae.runconfig): a RunFileError, one line.
    ``data_file``: the record of its own data file when the command moved it."""
    config = runconfig.read_run(run_dir, purpose)
    if data_file is not None:
        config["data_file"] = data_file
    model = runconfig.build_model(config, Path(run_dir) / CONFIG_NAME)
    try:
        saved = checkpoint.load_run_checkpoint(Path(run_dir) / checkpoint.CHECKPOINT_NAME)
    except checkpoint.CheckpointError as error:
        raise rundir.RunFileError(f"{error} Cannot continue {run_dir}.") from None
    settings = dict(FAMILY_DEFAULTS, **config["settings"])
    data = _data_for(config, settings,
                     eval_size if eval_size is not None else config["eval"]["eval_size"],
                     data_dir if data_dir is not None else config.get("data_dir"))
    return Run(run_dir, config, data, fresh=False, saved=saved, model=model), config


def model_draws(model):
    """(S, its flag): the draws per example of the model's training objective."""
    return (model.k, "--k") if model.objective == "iwae" else (model.samples, "--mc-samples")


def budget_from(args, n_train, default):
    if args.samples is not None:
        return args.samples
    if args.epochs is not None:
        return max(1, int(round(args.epochs * n_train)))
    return default


def warn(message):
    print(f"note: {message}", file=sys.stderr)


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in config.json
    if args.resume is None and args.dataset is None:
        parser.error("--dataset is required (e.g. --dataset frey), unless --resume RUN_DIR")
    if args.resume is not None and args.out is not None:
        parser.error("--out and --resume do not go together: a resumed run stays in its directory")
    locks = []   # the run directory's lock, once taken; released however we leave
    try:
        if args.backend is not None:
            backend.set_backend(args.backend)
        run_dir = Path(args.resume) if args.resume is not None else None
        args.run_dir = run_dir   # known once chosen: named in disk-full messages
        if run_dir is not None:
            runconfig.read_run(run_dir)      # a clear message before locking a non-run
            # A read-only run refuses the lock: one line with how to resume a copy.
            locks.append(rundir.RunLock(run_dir, warn).acquire())
        return _run(args, locks)
    except (UsageError, backend.BackendError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DiskFullError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DISK_FULL
    except OSError as error:   # any other write that hits a full disk (figures, ...)
        where = getattr(args, "run_dir", None)
        if rundir.is_not_writable(error) and where is not None:   # a file made read-only
            reason = f"writing {error.filename}: {error.strerror}"
            print(f"error: {rundir.not_writable_message(where, reason)}", file=sys.stderr)
            return EXIT_USAGE
        if not rundir.is_disk_full(error):
            raise
        path = error.filename or where
        if path is None:
            print(f"error: the disk is full ({error.strerror}). Free some space, then run "
                  "the same command again.", file=sys.stderr)
        else:
            print(f"error: {DiskFullError(path, where)}", file=sys.stderr)
        return EXIT_DISK_FULL
    except MemoryError as error:   # what the check before the run did not foresee
        print(f"error: out of memory ({error or 'numpy could not allocate an array'}). Lower "
              "--batch-size, --k or --mc-samples, or the model's size; the last checkpoint "
              "stays in the run directory.", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Aborted. Any checkpoint written before stays in the run directory.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for lock in locks:
            lock.release()


def _resume(args):
    """The run of --resume RUN_DIR, its config (updated by the allowed flags) and budget."""
    run_dir = Path(args.resume)
    config = runconfig.read_run(run_dir)
    if args.dataset is not None:
        check_resumed_dataset(args.dataset, config, run_dir)
    resolve_settings(args, stored=config["settings"], stored_model=config["model"])
    # The learning curve's subsets stay the run's: a new size would mix two in one curve.
    if args.eval_size is not None and args.eval_size != config["eval"]["eval_size"]:
        raise UsageError(f"--eval-size {args.eval_size}, but {run_dir} evaluates its learning "
                         f"curve on {config['eval']['eval_size'] or 'all'} examples: another "
                         "size would mix two subsets in one curve. Drop --eval-size.")
    if args.evals_per_decade is not None:     # the curve's density from here on: recorded
        config["eval"]["evals_per_decade"] = args.evals_per_decade
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    removed = rundir.remove_orphan_temporaries(run_dir)
    if removed:
        warn(f"removed {len(removed)} temporary file(s) left by a killed process: "
             f"{', '.join(sorted(removed))}")
    run = load_run(run_dir, config.get("data_dir"), config["eval"]["eval_size"],
                   data_file=config.get("data_file"))[0]
    run.config = config
    budget = budget_from(args, run.data.n_train, config["budget_samples"])
    truncate_metrics(run_dir, run.samples_seen, warn)
    if budget <= run.samples_seen:
        print(f"{run_dir} has already seen {run.samples_seen} samples (>= {budget}): nothing "
              "to train (its figures are written again). Pass a larger --samples to continue.",
              file=sys.stderr)
        budget = run.samples_seen
    else:
        print(f"Resuming {run_dir} at {run.samples_seen} samples seen (step {run.step}), "
              f"training to {budget}.", file=sys.stderr)
    return run, config, budget


def check_resumed_dataset(given, config, run_dir):
    """--dataset on --resume names the run's data set; for a file of one's own, a path to
    the same bytes (SHA-256), whose new place is then recorded in ``config``."""
    record = config.get("data_file")
    if record is None or not datasets.files.is_data_file(given):
        if record is not None or given != config["dataset"]:
            trained = record["path"] if record is not None else config["dataset"]
            raise UsageError(f"--dataset {given} but {run_dir} was trained on {trained}.")
        return
    try:
        found = datasets.files.read(given, expected_sha256=record["sha256"])
    except datasets.files.ChangedFileError:
        raise UsageError(f"--dataset {given} is not the file {run_dir} was trained on "
                         f"({record['path']}, SHA-256 {record['sha256'][:12]}...): its bytes "
                         "differ. Drop --dataset to read that file, or train a new run on "
                         "this one.") from None
    except datasets.DataError as error:
        raise UsageError(str(error)) from None
    record["path"] = str(found.path)


def dataset_defaults(name):
    """(the checked file or None, the data set's defaults): DATASET_DEFAULTS[name], or for
    a file of one's own FILE_DEFAULTS with the decoder its values choose and z_dim at most
    its width."""
    if not datasets.files.is_data_file(name):
        return None, DATASET_DEFAULTS[name]
    try:
        data = datasets.files.read(name)
    except datasets.DataError as error:
        raise UsageError(str(error)) from None
    width = data.rows.shape[1]
    return data, dict(FILE_DEFAULTS, **datasets.files.likelihood_for(data),
                      z_dim=min(FILE_DEFAULTS["z_dim"], width))


def describe_file(file_data, settings):
    """The record (config.json's data_file) of how this run reads its own file; printed
    once. Refuses a decoder the values do not fit."""
    if settings.get("net") == "conv" and not file_data.images:
        raise UsageError(f"--net conv reads images, but {file_data.path} holds rows (N, D): "
                         "use --net mlp, or save images (N, H, W) or (N, C, H, W).")
    likelihood, activation = settings["likelihood"], settings["output_activation"]
    try:
        record = datasets.files.describe(file_data, likelihood, activation)
    except datasets.DataError as error:
        raise UsageError(str(error)) from None
    print(datasets.files.summary(record, likelihood, activation), file=sys.stderr)
    return record


def _start(args, locks):
    """A new run: settings from defaults and flags, a new run directory, checkpoint 0."""
    file_data, defaults = dataset_defaults(args.dataset)
    settings = resolve_settings(args, data_defaults=defaults)
    if settings["model"] == "iwae" and settings["objective"] not in (None, "iwae"):
        raise UsageError("--model iwae trains the IWAE bound: drop --objective, or use "
                         "--model vae --objective elbo.")
    if settings["k"] is not None and settings["model"] != "iwae" and settings["objective"] != "iwae":
        raise UsageError("--k sets the samples of the IWAE bound: add --objective iwae (or "
                         "use --model iwae).")
    if settings.get("adam_eps") is not None and settings["optimizer"] != "adam":
        raise UsageError("--adam-eps needs --optimizer adam.")
    eval_size = args.eval_size if args.eval_size is not None else defaults["eval_size"]
    model_class = models.model_class(settings["model"])
    source = None if file_data is None else describe_file(file_data, settings)
    name = args.dataset if file_data is None else file_data.name
    data = Data(name, settings, eval_size, args.data_dir, settings["seed"],
                binary=binarizes(settings), source=source, file_data=file_data)
    if settings["batch_size"] > data.n_train:
        if source is None or _given(args, "batch_size") is not None:
            raise UsageError(f"--batch-size {settings['batch_size']} is larger than {name}'s "
                             f"{data.n_train} training examples: use at most {data.n_train}.")
        settings["batch_size"] = data.n_train      # a small table: each minibatch is all of it
        warn(f"{name} has {data.n_train} training rows: --batch-size {data.n_train}.")
    protocol_epochs = model_class.RUN_DEFAULTS.get("epochs")
    budget = budget_from(args, data.n_train, defaults["samples"]
                         if protocol_epochs is None else int(protocol_epochs * data.n_train))
    if settings["batch_norm"] and settings["batch_size"] < 2:
        raise UsageError("--batch-norm with --batch-size 1 normalizes every unit over a single "
                         "example, which sets it to its shift: nothing can be learned. Use "
                         "--batch-size 2 or more (the Chen thesis: 128), or drop --batch-norm.")
    options = model_options(settings, data)
    try:
        memory.check_parameters(model_class, options)   # before allocating them
        model = model_class(**options)  # validates, and normalizes
        draws, draws_flag = model_draws(model)
        memory.check_step(model, data.x_train, data.train_labels, settings["batch_size"],
                          draws, draws_flag)
    except (ValueError, MemoryError) as error:
        raise UsageError(str(error)) from None
    if data.binary and model.likelihood != "bernoulli":
        warn(f"{name} is binary here (0s and 1s), and a continuous {model.likelihood} "
             "density on it grows without bound as its variance shrinks: its \"log p(x)\" can "
             "exceed 0 and means little. Use --likelihood bernoulli for binary data.")
    if settings.get("beta_warmup") and not isinstance(model.objective_part, Elbo):
        raise UsageError(f"--beta-warmup anneals the ELBO's KL weight, but this {settings['model']} "
                         f"run trains the {model.objective_label}, which has none to anneal: "
                         "drop --beta-warmup.")
    run_dir = Path(args.out) if args.out else default_run_dir(
        name, settings["model"], settings.get("beta"), model.z_dim)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"Cannot create run directory {run_dir}: {error.strerror}.") from None
    args.run_dir = run_dir
    locks.append(rundir.RunLock(run_dir, warn).acquire())   # main() releases it
    if (run_dir / checkpoint.CHECKPOINT_NAME).exists():
        raise UsageError(f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
                         "or choose another --out.")
    # A directory is a run (resume it) or new: files of a run without its checkpoint
    # would be overwritten (config, curve) or left describing another model (results).
    left = [name for name in (CONFIG_NAME, rundir.METRICS_NAME, rundir.EVALUATION_NAME)
            if (run_dir / name).exists()]
    if left:
        raise UsageError(f"{run_dir} holds {', '.join(left)} of an earlier run but no checkpoint "
                         "to resume: choose another --out, or move those files away.")
    rundir.remove_orphan_temporaries(run_dir)
    config = dict(dataset=name, model_name=settings["model"], settings=settings,
                  model=model.config(), budget_samples=budget, n_train=data.n_train,
                  test_split=TEST_SPLIT,
                  eval=dict(eval_size=eval_size, train_examples=data.train_count,
                            test_examples=data.test_count,
                            evals_per_decade=args.evals_per_decade or EVALS_PER_DECADE),
                  dynamic_binarization=data.binarize,
                  pixel_scaling=("grey levels / 255 (numpyvae.datasets.load)" if source is None
                                 else "as data_file.scaling says (numpyvae.datasets.files)"),
                  # The resolved directory, so that evaluate and --resume find the data
                  # even when NUMPYVAE_DATA is not set for them.
                  data_dir=str(datasets.resolve_data_dir(args.data_dir)),
                  **({} if source is None else dict(data_file=source)),
                  numpyvae_version=__version__,
                  created=datetime.now().isoformat(timespec="seconds"))
    write_config(run_dir, config)
    rundir.rewrite_metrics(run_dir, [])
    run = Run(run_dir, config, data, fresh=True, model=model)
    pretrain(run)
    run.save()  # a good, resumable checkpoint exists from the start (divergence keeps it)
    print(f"Run directory: {run_dir}", file=sys.stderr)
    return run, config, budget


def objective_text(model, record, separator="  "):
    """The objective a member trains, where it is not the ELBO (an IWAE bound, a
    beta-objective), beside the ELBO in the progress lines: an IWAE-trained encoder's
    one-sample ELBO is loose and noisy (its log-weights are heavy-tailed) while the bound
    it trains rises steadily, and a user watching only the ELBO would think the run
    unstable."""
    label = model.objective_label
    if label == "ELBO" or "train_objective" not in record:
        return ""
    return (f"{separator}{label}: train {record['train_objective']:.2f}, "
            f"test {record['test_objective']:.2f}")


def record_blas_change(config, blas, samples_seen):
    """On --resume: where the BLAS (its kernels above all) differs from the one the run
    last trained under, note it in the run's config with the point it changed, since a
    product's last bits depend on the kernels (a run written before numpyvae recorded
    its BLAS gets no note)."""
    last = (config.get("blas_on_resume") or [{"blas": config.get("blas")}])[-1]["blas"]
    if last is not None and last != blas:
        config.setdefault("blas_on_resume", []).append(dict(samples_seen=samples_seen,
                                                             blas=blas))
        print(f"note: this run trained under BLAS {last}; it resumes under BLAS {blas}, so it "
              f"agrees with an uninterrupted run to float32 rounding, not bit for bit.",
              file=sys.stderr)


def _run(args, locks):
    started = time.monotonic()
    run, config, budget = _resume(args) if args.resume is not None else _start(args, locks)
    return _train(args, run, config, budget, started)


def _train(args, run, config, budget, started):
    run_dir, data, settings = run.run_dir, run.data, run.settings
    config["budget_samples"] = budget
    command = " ".join(["python -m numpyvae.train"] + args.argv)
    blas = threads.blas_description()
    if args.resume is None:
        config["command"] = command
        config["blas"] = blas
    else:
        config.setdefault("resumed_with", []).append(command)
        record_blas_change(config, blas, run.samples_seen)
    write_config(run_dir, config)
    notice = threads.kernel_notice()
    if notice is not None:
        print(notice, file=sys.stderr)
    print(f"{config['dataset']}: {data.n_train} training examples of {data.x_dim} pixels; "
          f"evaluating on {data.train_count} train / {data.test_count} test examples. "
          f"Model: {settings['model']} ({run.model.objective_label}), "
          f"{run.model.architecture()}, {settings['likelihood']}; "
          f"{settings['optimizer']} lr {settings['lr']}, batch {settings['batch_size']}, "
          f"budget {format_count(budget)} samples.", file=sys.stderr)

    schedule = None if args.no_figures else FigureSchedule(run, figure_title(config, run.model))
    run.figure_schedule = schedule
    try:
        chooser = ThreadChooser(None if args.threads == "auto" else args.threads)
        outcome = run.train(budget, config["eval"]["evals_per_decade"], args.checkpoint_seconds,
                            threads=chooser)
    except Diverged as error:
        print(f"error: Training diverged: {error} The last good checkpoint, at "
              f"{run.checkpoint_samples} samples seen, is kept in "
              f"{run_dir / checkpoint.CHECKPOINT_NAME}.", file=sys.stderr)
        return EXIT_DIVERGED
    if outcome != "done":
        number = outcome[1]
        if schedule is not None:   # figures of where it stopped, after the checkpoint
            print(f"Figures: {', '.join(str(p) for p in schedule.draw())}", file=sys.stderr)
        print(f"Stopped by {signal.Signals(number).name}: checkpoint written at "
              f"{run.samples_seen} samples seen. resume with: python -m numpyvae.train "
              f"--resume {run_dir}", file=sys.stderr)
        return 128 + int(number)
    records = read_metrics(run_dir)
    if not records or records[-1]["samples_seen"] != run.samples_seen:
        records.append(run.evaluate())
    if schedule is not None:
        print(f"Figures: {', '.join(str(p) for p in schedule.draw())}", file=sys.stderr)
    last = records[-1]
    in_use = ("" if "test_active_dimensions" not in last else   # evaluated before it was counted
              f", latent dimensions in use {last['test_active_dimensions']} of {run.model.z_dim}")
    print(f"Done: {run.samples_seen} samples seen in {run.wall_seconds:.1f} s of training "
          f"({time.monotonic() - started:.1f} s this session). train ELBO "
          f"{last['train_elbo']:.2f}, test ELBO {last['test_elbo']:.2f}"
          f"{objective_text(run.model, last, separator='; ')}{in_use}. Run directory: "
          f"{run_dir}", file=sys.stderr)
    if chooser.changes:
        print(f"BLAS threads followed the machine's load ({chooser.changes} change(s); now "
              f"{chooser.limit}): pass --threads N for bit-for-bit reproducible runs.",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
