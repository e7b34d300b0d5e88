"""What the commands share: exit statuses, one-line usage errors, and argument types."""
import argparse
import math

EXIT_USAGE, EXIT_DIVERGED, EXIT_DISK_FULL, EXIT_INTERRUPTED = 2, 3, 4, 130


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors in one line (the full usage is one --help away); ``--version``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from . import __version__   # noqa: PLC0415  (the package imports this module)
        self.add_argument("--version", action="version", version=f"numpyvae {__version__}")

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (python -m {self.prog.split()[-1]} --help "
                              "lists every flag)\n")


def positive_int(text):
    """An integer >= 1; accepts 1e6-style numbers for budgets."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _finite_float(text, allowed, expected, out_of_range=None):
    """float(text) if it is finite and ``allowed(value)``; else a one-line type error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (math.isfinite(value) and allowed(value)):
        raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}, got {text!r}")
    return value


def positive_float(text):
    return _finite_float(text, lambda value: value > 0, "a positive number")


def non_negative_float(text):
    return _finite_float(text, lambda value: value >= 0, "a number >= 0",
                         "a finite number >= 0")
