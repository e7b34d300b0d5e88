"""Options, each described once: name, default, help text and the function that
validates a value. A model's constructor, its ``config()`` (and so a run's
config.json), the training command's flags and its ``--resume`` checks all derive from
these descriptions, so a new option is written in one place.

``BASE_OPTIONS`` are every member's (the VAE's); a member adds its own in ``OPTIONS``
(numpyvae/models/planar_flow.py: ``flow_length``). On the command line an option is
``--name-with-dashes`` unless ``flag`` says otherwise, and a run's settings keep it
under ``setting`` (default: its name).
"""
import argparse
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy

from ..decoders import DECODERS
from ..layers import ACTIVATIONS

OBJECTIVES = ("elbo", "iwae")
NETS = ("mlp", "conv")
INITS = ("normal", "glorot")
BIAS_INITS = ("zero", "normal")
TOWERS = ("shared", "separate")
DTYPES = ("float32", "float64")


@dataclass(frozen=True, eq=False)
class Option:
    """One option: ``parse(value)`` turns a stored value or a command-line string into
    the model's (raising ValueError with what was wrong); ``run``: a setting of the
    training run rather than a constructor argument; ``flag``, ``setting`` and ``cli``
    (argparse's nargs, choices, metavar, type of one token, action) say how the command
    line spells it; ``flag=False``: no flag. ``omit_when(model, value)``: left out of
    ``config()`` then (options that came with the family stay out of an AEVB model's
    config.json, which reads as it did before them)."""

    name: str
    default: object
    help: str
    parse: Callable
    run: bool = False
    flag: object = None
    setting: str = None
    cli: dict = field(default_factory=dict)
    omit_when: Callable = None

    @property
    def flags(self):
        if self.flag is False:
            return ()
        if self.flag is None:
            return ("--" + self.name.replace("_", "-"),)
        return (self.flag,) if isinstance(self.flag, str) else tuple(self.flag)

    @property
    def setting_name(self):
        return self.setting or self.name

    def value(self, given):
        """The validated value of ``given`` (the default when it is None)."""
        return self.parse(self.default if given is None else given)


# ------------------------------------------------------------------- validators
def finite_number(value, what, low=None, low_inclusive=True):
    """float(value), finite and (if ``low``) at least ``low``, or a one-line ValueError."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}.")
    if low is not None and (number < low or (number == low and not low_inclusive)):
        raise ValueError(f"{what} must be {'>=' if low_inclusive else '>'} {low}, got {value!r}.")
    return number


def integer_at_least(what, low):
    """An integer >= low (1: "a positive integer", 0: "a non-negative integer"); a
    command-line string or an integral float is accepted."""
    kind = "a positive integer" if low == 1 else "a non-negative integer"

    def parse(value):
        number = finite_number(value, what) if isinstance(value, str) else value
        if (isinstance(number, bool) or not isinstance(number, (int, float, numpy.integer,
                                                                 numpy.floating))
                or number != int(number) or number < low):
            raise ValueError(f"{what} must be {kind}, got {value!r}.")
        return int(number)
    return parse


def positive_int(what):
    return integer_at_least(what, 1)


def non_negative_int(what):
    return integer_at_least(what, 0)


def number_at_least(what, low, inclusive=True):
    return lambda value: finite_number(value, what, low, inclusive)


def optional(parse, off=("none", "off", "0", "0.0")):
    """None (or one of ``off`` on the command line) for "none", else ``parse``."""
    def parse_optional(value):
        if value is None or (isinstance(value, str) and value.strip().lower() in off):
            return None
        return parse(value)
    return parse_optional


def one_of(choices, what, advice=None):
    def parse(value):
        if value not in choices:
            raise ValueError(f"Unknown {what} {value!r}: "
                             f"{advice or 'choose one of ' + ', '.join(choices)}.")
        return value
    return parse


def widths(what):
    one = positive_int(f"Every {what} width")

    def parse(value):
        if isinstance(value, (int, numpy.integer, str)) and not isinstance(value, bool):
            value = (value,)
        if isinstance(value, (bool, dict)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{what} must be a list of positive integers, got {value!r}.")
        return tuple(one(width) for width in value)
    return parse


def image_shape(value):
    """(C, H, W) from (C, H, W) or a grey (H, W)."""
    shape = widths("image_shape")(value)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W) or (H, W), got {value!r}.")
    return shape


def prior_std(value):
    """A weight prior's std: positive, and large enough that 1 / std^2 is a finite float."""
    std = finite_number(value, "weight_prior_std", 0.0, low_inclusive=False)
    square = std * std
    if square == 0.0 or not math.isfinite(1.0 / square):
        raise ValueError(f"weight_prior_std {value!r} is so small that 1 / std^2 overflows: "
                         "use at least 1e-150, or none for no prior.")
    return std


def flag_value(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def dtype_name(value):
    dtype = numpy.dtype(value)
    if dtype not in (numpy.float32, numpy.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    return dtype


def cli_type(parse):
    """An argparse type from a validator: its ValueError becomes argparse's one line."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


WIDTH = dict(nargs="+", metavar="WIDTH", type=cli_type(positive_int("width")))
MLP_CODES = 16   # a vq-vae's codes per example with an MLP encoder, unless z_dim says otherwise

BASE_OPTIONS = (
    Option("hidden", (200,), "hidden layer widths of the encoder, e.g. --hidden 500 500",
           widths("hidden"), flag=("--hidden", "--encoder-hidden"), cli=WIDTH),
    Option("z_dim", 10, "latent dimension (vq-vae: the width M D of z_q, M codes of "
           f"--code-dim each; by default a conv net's grid, or {MLP_CODES} codes for an MLP)",
           positive_int("z_dim")),
    Option("likelihood", "gaussian", "decoder p(x|z): gaussian (a learned log-variance per "
           "pixel), bernoulli, or gaussian-fixed (variance --decoder-variance)",
           one_of(tuple(DECODERS), "likelihood"), cli=dict(choices=tuple(DECODERS))),
    Option("activation", "tanh", "hidden activation", one_of(tuple(ACTIVATIONS), "activation"),
           cli=dict(choices=tuple(ACTIVATIONS))),
    Option("seed", 0, "seeds initialization, noise and data order",
           non_negative_int("seed")),
    Option("dtype", "float32", "float32 (for speed) or float64 (for checks)", dtype_name,
           cli=dict(choices=DTYPES, type=str)),
    Option("output_activation", "sigmoid", "activation of a Gaussian decoder's mean "
           "(sigmoid: values in [0, 1]; identity)", one_of(tuple(ACTIVATIONS), "activation"),
           cli=dict(choices=("sigmoid", "identity"))),
    Option("decoder_variance", 1.0, "the variance of the gaussian-fixed decoder",
           number_at_least("decoder_variance", 0.0, inclusive=False)),
    Option("samples", 1, "L, z samples per example of the ELBO", positive_int("samples (L)"),
           flag="--mc-samples", setting="mc_samples"),
    Option("beta", 1.0, "weight of the KL term (1 = the ELBO; >= 0)",
           number_at_least("beta (the KL weight)", 0.0)),
    Option("weight_prior_std", None, "std of the N(0, s^2 I) prior on all parameters, scaled "
           "by 1/n_train (0 or none: no prior)",
           optional(prior_std)),
    Option("weight_prior_scale", 1.0, "weight of the prior's log-density in the loss "
           "(the trainer sets 1/n_train)", number_at_least("weight_prior_scale", 0.0),
           flag=False),
    Option("init", "normal", "weight initialization: normal = N(0, init_std^2) (AEVB) or "
           "glorot", one_of(INITS, "init", "use 'normal' (AEVB) or 'glorot'"),
           cli=dict(choices=INITS)),
    Option("init_std", 0.01, "std of the normal initialization",
           number_at_least("init_std", 0.0, inclusive=False)),
    Option("bias_init", "zero", "the networks' biases at the start: zero, or normal = "
           "N(0, init_std^2) like the weights (Wang (2023)'s code draws every parameter so)",
           one_of(BIAS_INITS, "bias_init"), cli=dict(choices=BIAS_INITS),
           omit_when=lambda model, value: value == "zero"),
    Option("encoder_towers", "shared", "the encoder's MLPs: shared (one trunk, a linear "
           "head each for mu and logvar) or separate (one MLP per head, no trunk shared: "
           "Wang (2023)'s code); --net mlp only",
           one_of(TOWERS, "encoder_towers"), cli=dict(choices=TOWERS),
           omit_when=lambda model, value: value == "shared"),
    Option("decoder_hidden", None, "hidden widths of the decoder (default: the encoder's, "
           "mirrored)", optional(widths("decoder hidden"), off=()), cli=WIDTH,
           omit_when=lambda model, value: value == model.hidden[::-1]),
    Option("batch_norm", False, "batch normalization after every hidden layer", flag_value,
           cli=dict(action="store_const", const=True), omit_when=lambda model, value: not value),
    Option("objective", "elbo", "training objective: elbo or iwae, the K-sample bound (--k)",
           one_of(OBJECTIVES, "objective"), cli=dict(choices=OBJECTIVES),
           omit_when=lambda model, value: model.objective == "elbo" and model.k == 1),
    Option("k", 1, "importance samples K of the iwae objective", positive_int("k (importance samples)"),
           omit_when=lambda model, value: model.objective == "elbo" and model.k == 1),
    Option("net", "mlp", "the encoder's and decoder's kind: mlp (--hidden widths) or conv "
           "(--channels, --kernel-size, --stride, --padding; the decoder mirrors the encoder)",
           one_of(NETS, "net"), cli=dict(choices=NETS),
           omit_when=lambda model, value: value == "mlp"),
    Option("channels", (32, 64, 128), "a conv net's filters per convolution (the Chen thesis: "
           "32 64 128)", widths("channels"), cli=dict(WIDTH, metavar="CHANNELS"),
           omit_when=lambda model, value: model.net == "mlp"),
    Option("kernel_size", 4, "a conv net's kernel size", positive_int("kernel_size"),
           omit_when=lambda model, value: model.net == "mlp"),
    Option("stride", 2, "a conv net's stride", positive_int("stride"),
           omit_when=lambda model, value: model.net == "mlp"),
    Option("padding", 1, "a conv net's zero padding", non_negative_int("padding"),
           omit_when=lambda model, value: model.net == "mlp"),
    Option("image_shape", None, "(C, H, W) of the images a conv net reads (the training "
           "command takes it from the data set)", optional(image_shape, off=()), flag=False,
           omit_when=lambda model, value: model.net == "mlp"),
)


def option_named(options, name):
    """The Option called ``name`` among ``options`` (a member's change of one starts there)."""
    (option,) = (option for option in options if option.name == name)
    return option
