"""A run's config.json, checked against the descriptions that write it.

config.json holds the run's structure (``CONFIG_FIELDS``), its settings (each an Option:
numpyvae.train.TRAIN_OPTIONS and the member's options, numpyvae/models/options.py) and
the model's constructor options (what the model's ``config()`` writes). A file edited by
hand can break any of them; ``check_config`` reports the first problem in one line that
names the file, the key and what is wrong, and ``build_model`` rebuilds the model and
checks that it writes back what was read. ``--resume``, ``numpyvae.evaluate`` (every
mode) and ``numpyvae.load`` read a run through ``read_run`` and ``build_model``.

A value is what numpyvae writes when its Option accepts it and it is of the kind the
writer gives it: the number 0.01, not the text "0.01" (which the command line's parser
would accept); a count 100, not 100.0.
"""
import argparse
import json
from pathlib import Path

from . import models
from .models.base import json_value
from .models.options import one_of, optional, positive_int
from .rundir import CONFIG_NAME, RunFileError, model_name, read_config

ADVICE = "Fix the file, or start a new run."


def _kind(what, test):
    def parse(value):
        if not test(value):
            raise ValueError(f"it must be {what}")
        return value
    return parse


OBJECT = "an object"
# The structure, by dotted key: (validator, required). The settings and the model's
# options are checked option by option (check_settings, check_model_options).
CONFIG_FIELDS = (
    ("dataset", _kind("a data set's name (text)", lambda v: isinstance(v, str)), True),
    ("model_name", one_of(models.names(), "model"), False),
    ("settings", _kind(f"{OBJECT} of the run's settings", lambda v: isinstance(v, dict)), True),
    ("model", _kind(f"{OBJECT} of the model's constructor options",
                    lambda v: isinstance(v, dict)), True),
    ("budget_samples", positive_int("budget_samples"), True),
    ("eval", _kind(f"{OBJECT} of the learning curve's evaluations",
                   lambda v: isinstance(v, dict)), True),
    ("eval.eval_size", optional(positive_int("eval_size"), off=()), True),
    ("eval.evals_per_decade", positive_int("evals_per_decade"), True),
    ("data_dir", optional(_kind("a directory (text)", lambda v: isinstance(v, str)), off=()),
     False),
    ("dynamic_binarization", _kind("true or false", lambda v: isinstance(v, bool)), False),
    ("resumed_with", _kind("a list of commands", lambda v: isinstance(v, list)), False),
)


def read_run(run_dir, purpose="--resume"):
    """config.json of ``run_dir``, checked (a RunFileError names the first problem)."""
    config = read_config(run_dir, purpose)
    check_config(config, Path(run_dir) / CONFIG_NAME)
    return config


def problem(path, message):
    return RunFileError(f"{path}: {message}. {ADVICE}")


def check_config(config, path):
    """Raise RunFileError naming the first thing in ``config`` (read from ``path``) that
    numpyvae would not have written: its structure, then each setting, then each model
    option (the model's constructor checks the rest: ``build_model``)."""
    if not isinstance(config, dict):
        raise problem(path, f"it holds {_json_kind(config)}, not {OBJECT} of a run's "
                            "settings")
    for key, parse, required in CONFIG_FIELDS:
        *parents, name = key.split(".")
        holder = config
        for parent in parents:
            holder = holder[parent]         # checked to be an object above it
        if name not in holder:
            if required:
                raise problem(path, f"{key} is missing")
            continue
        check_value(path, key, holder[name], parse)
    check_settings(config, path)
    check_model_options(config, path)


def _setting_options(member):
    """The Options of a run of ``member``'s settings, by setting name: the trainer's and
    the member's own (numpyvae.train.setting_options, with the member's own versions)."""
    from . import train      # noqa: PLC0415 (train imports this module)
    options = {option.setting_name: option for option in train.TRAIN_OPTIONS}
    options.update((option.setting_name, option)
                   for option in models.model_class(member).member_options() if option.flags)
    return options


def required_settings():
    """The settings every run has recorded a value for: the common defaults (every
    member's settings start from them) and the likelihood (every data set's defaults give
    one). "model" may be missing: a run from before the family is a VAE."""
    from . import train      # noqa: PLC0415
    return tuple(name for name in (*train.COMMON_DEFAULTS, "likelihood")
                 if train.FAMILY_DEFAULTS.get(name) is None)


def check_settings(config, path):
    """Each setting through its Option (and its command line's choices); the member's
    name agrees with model_name; no setting another member's or unknown."""
    from . import train      # noqa: PLC0415
    settings, member = config["settings"], model_name(config)
    recorded = settings.get("model", train.FAMILY_DEFAULTS["model"])
    if recorded != member:
        raise problem(path, f"settings.model is {_json(recorded)}, but model_name is "
                            f"{_json(member)}")
    options, required = _setting_options(member), required_settings()
    for name, value in settings.items():
        if name not in options and value is not None:
            raise problem(path, f"settings.{name} is {_json(value)}, but a {member} run "
                                "has no such setting")
    for name, option in options.items():
        key = f"settings.{name}"
        if name not in settings or settings[name] is None:
            if name in required:
                raise problem(path, f"{key} is {'null' if name in settings else 'missing'} "
                                    f"({option.help})")
            continue                  # unset: the model's, or the option's, default
        value = settings[name]
        # The command line's own spelling where it has one (the weight prior's "none").
        parse = (train.COMMAND_LINE_TYPES.get(option.name, option.parse)
                 if isinstance(value, str) else option.parse)
        check_value(path, key, value, parse, option.cli.get("choices"))


def check_model_options(config, path):
    """Each of the model's options through its Option (the values; which options a
    member writes, and its own arguments, are build_model's to check)."""
    options = {option.name: option for option in
               models.model_class(model_name(config)).member_options() if not option.run}
    for name, value in config["model"].items():
        if name in options:
            check_value(path, f"model.{name}", value, options[name].parse, written=False)


def check_value(path, key, value, parse, choices=None, written=True):
    """``parse(value)`` (an Option's validator), one of ``choices`` if given, and (if
    ``written``) of the kind numpyvae writes for it; else RunFileError naming ``key``."""
    try:
        parsed = parse(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
        raise problem(path, f"{key} is {_json(value)}: {_reason(error)}") from None
    if choices is not None and parsed not in choices:
        raise problem(path, f"{key} is {_json(value)}: it must be one of "
                            f"{', '.join(map(str, choices))}")
    if written:
        check_written(path, key, value, json_value(parsed))


def check_written(path, key, value, written):
    """RunFileError unless ``value`` is ``written`` as numpyvae writes it."""
    if _as_written(value, written):
        return
    kind, expected = _json_kind(value), _json_kind(written)
    if kind != expected:
        raise problem(path, f"{key} is {_json(value)}, {kind} where {expected} belongs "
                            f"(write {_json(written)})")
    raise problem(path, f"{key} is {_json(value)}, but numpyvae writes {_json(written)} here")


def build_model(config, path):
    """The model ``config`` describes (read from ``path``), its constructor's refusals
    and what it writes back checked: a missing option, a number written as text, an
    option the member does not write, each one line naming model.KEY."""
    stored = config["model"]
    try:
        model = models.create(model_name(config), **stored)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
        raise problem(path, f"model: {_reason(error)}") from None
    written = json.loads(json.dumps(model.config()))
    for name, value in written.items():
        if name not in stored:
            raise problem(path, f"model.{name} is missing (this model writes "
                                f"{_json(value)})")
        check_written(path, f"model.{name}", stored[name], value)
    for name in stored:
        if name not in written:
            raise problem(path, f"model.{name} is {_json(stored[name])}, but this model does "
                                "not write it (it is the default): remove it")
    return model


# ------------------------------------------------------------------------ words
def _as_written(value, written):
    """Whether ``value`` read from JSON is ``written`` as numpyvae writes it: equal, and of
    the same JSON kind (a count is an integer; a float may be written as 1)."""
    if isinstance(written, list):
        return (isinstance(value, list) and len(value) == len(written)
                and all(map(_as_written, value, written)))
    if isinstance(value, bool) or isinstance(written, bool):
        return value is written
    if isinstance(written, int):
        return isinstance(value, int) and value == written
    if isinstance(written, float):
        return isinstance(value, (int, float)) and value == written
    return type(value) is type(written) and value == written


def _json_kind(value):
    if isinstance(value, bool):
        return "true or false"
    for kind, words in ((str, "text"), (int, "an integer"), (float, "a number"),
                        (list, "a list"), (dict, OBJECT), (type(None), "null")):
        if isinstance(value, kind):
            return words
    return type(value).__name__


def _json(value):
    return json.dumps(value)


def _reason(error):
    """A validator's message, in the words that follow "KEY is VALUE:" (which names the
    value already): argparse types say "expected X, got V", the Options "WHAT must be X,
    got V." or "Unknown WHAT V: choose one of ..."."""
    reason = str(error).rstrip(".")
    reason = reason.rsplit(", got ", 1)[0]
    if reason.startswith("expected "):
        reason = "it must be " + reason[len("expected "):]
    if reason.startswith("Unknown ") and ": " in reason:    # one_of: "Unknown WHAT V: ..."
        reason = reason.split(": ", 1)[1]
    return reason
