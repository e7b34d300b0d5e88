"""The commands' --help says every default and what RUN_DIR is, and the defaults it
prints are the ones the code uses (issue 17, item 15)."""
import argparse
import re

import pytest

from numpyvae import evaluate, models, train


def _help(parser):
    return " ".join(parser.format_help().split())     # without argparse's line breaks


@pytest.mark.parametrize("build", [train.build_parser, evaluate.build_parser])
def test_every_option_with_a_default_states_it(build):
    parser = build()
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in (action.help or "").lower(), action.option_strings


def test_run_dir_is_described():
    assert "written by python -m numpyvae.train" in _help(evaluate.build_parser())
    assert re.search(r"--resume RUN_DIR continue the run in RUN_DIR \(a directory this command "
                     r"wrote", _help(train.build_parser()))


def test_printed_per_data_set_and_member_defaults_are_the_codes():
    parser = train.build_parser()
    text = parser.epilog
    for name, defaults in train.DATASET_DEFAULTS.items():
        flags = re.search(rf"{name}: ((?:--[\w-]+(?: [\w.]+)*\s?)+)", text).group(1).split()
        args = parser.parse_args(["--dataset", name, *flags])
        for key, value in defaults.items():
            if key != "eval_size":
                assert getattr(args, key) == value, (name, key)
    for name in models.names():
        protocol = models.model_class(name).RUN_DEFAULTS
        if not protocol:
            continue
        implied = re.split(r"; |\. ", text.split(f"--model {name} implies ", 1)[1])[0]
        absent = re.findall(r"\(no --([\w-]+)\)|--no-([\w-]+)", implied)
        assert sorted("".join(pair) for pair in absent) == sorted(
            key.replace("_", "-") for key, value in protocol.items() if value is False)
        flags = re.sub(r"\(no --[\w-]+\)", "", implied)
        args = parser.parse_args(["--dataset", "mnist", *flags.split()])
        for key, value in protocol.items():
            if value is not None:   # False: the flag's absence
                assert getattr(args, key) == value or value is False, (name, key)
