"""Run files edited by hand, and run directories that cannot be written (issue 17,
items 6 and 7).

Item 6: each corruption of config.json or of the checkpoint's metadata is one line that
names the file and the key, from every entry point that reads a run: ``--resume``,
``numpyvae.evaluate`` (default, ``--codes``, ``--cluster``; exit 2) and ``numpyvae.load``
(an exception). Item 7: on a read-only run directory, evaluate prints its result and then
one line saying what it could not write and where it could go (``--results FILE``);
``--resume`` says in one line how to continue (copy the directory); ``numpyvae.load``
works. Root ignores file permissions, so under root the read-only directory is simulated:
every write under it fails with EACCES, as it would for another user.
"""
import builtins
import errno
import io
import json
import os
import shutil
from pathlib import Path

import numpy
import pytest

import numpyvae as nv
from numpyvae import checkpoint
from numpyvae.evaluate import main as evaluate_main
from numpyvae.rundir import UsageError
from numpyvae.train import main as train_main
from test_evaluate import require


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished Frey run (200 samples of a net with 8 hidden units): copy before use."""
    require("frey")
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert train_main(["--dataset", "frey", "--hidden", "8", "--samples", "200",
                       "--eval-size", "50", "--out", str(run), "--no-figures"]) == 0
    return run


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def edit_config(run_dir, change):
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    config = change(config) or config
    path.write_text(json.dumps(config))


def rewrite_meta(run_dir, change):
    """The checkpoint with its metadata string replaced by ``change(meta_text)``."""
    path = run_dir / checkpoint.CHECKPOINT_NAME
    with numpy.load(path, allow_pickle=False) as archive:
        contents = {key: archive[key] for key in archive.files}
    contents["meta"] = numpy.asarray(change(str(contents["meta"])))
    numpy.savez(path, **contents)


def drop_meta_field(name):
    def change(text):
        meta = json.loads(text)
        del meta[name]
        return json.dumps(meta)
    return change


def set_meta_field(name, value):
    def change(text):
        return json.dumps(dict(json.loads(text), **{name: value}))
    return change


def _pop(*keys):
    def change(config):
        for key in keys[:-1]:
            config = config[key]
        del config[keys[-1]]
    return change


def _set(value, *keys):
    def change(config):
        for key in keys[:-1]:
            config = config[key]
        config[keys[-1]] = value
    return change


# (name, how config.json is edited, the key the message must name)
CONFIG_EDITS = [
    ("missing setting", _pop("settings", "optimizer"), "settings.optimizer"),
    ("missing eval size", _pop("eval", "eval_size"), "eval.eval_size"),
    ("missing model option", _pop("model", "z_dim"), "model.z_dim"),
    ("missing settings", _pop("settings"), "settings"),
    ("lr as text", _set("0.01", "settings", "lr"), "settings.lr"),
    ("budget as text", _set("200", "budget_samples"), "budget_samples"),
    ("z_dim as text", _set("10", "model", "z_dim"), "model.z_dim"),
    ("unknown optimizer", _set("adamw", "settings", "optimizer"), "settings.optimizer"),
    ("negative lr", _set(-0.1, "settings", "lr"), "settings.lr"),
    ("zero batch size", _set(0, "settings", "batch_size"), "settings.batch_size"),
    ("model null", _set(None, "model"), "model"),
    ("model option of the wrong type", _set(True, "model", "hidden"), "model.hidden"),
    ("unknown model option", _set(3, "model", "depth"), "model"),
    ("unknown model name", _set("transformer", "model_name"), "model_name"),
    ("config not an object", lambda config: [config], ""),
]
META_EDITS = [
    ("meta not JSON", lambda text: text[:-7], "not JSON"),
    ("meta lacks samples_seen", drop_meta_field("samples_seen"), "samples_seen"),
    ("meta lacks rng", drop_meta_field("rng"), "rng"),
    ("samples_seen as text", set_meta_field("samples_seen", "200"), "samples_seen"),
    ("meta not an object", lambda text: "[]", "not a JSON object"),
]
ENTRY_POINTS = {
    "resume": lambda run_dir: train_main(["--resume", str(run_dir), "--samples", "400",
                                          "--no-figures"]),
    "evaluate": lambda run_dir: evaluate_main([str(run_dir), "--k", "2", "--draws", "1",
                                               "--n-test", "5"]),
    "evaluate --codes": lambda run_dir: evaluate_main([str(run_dir), "--codes"]),
    "evaluate --cluster": lambda run_dir: evaluate_main([str(run_dir), "--cluster"]),
    "load": nv.load,
}


def one_line_from(entry, run_dir, capsys):
    """The one line the entry point reports: exit status 2 and a single stderr line
    ``error: ...`` from the commands, a UsageError that is also a ValueError from load."""
    capsys.readouterr()
    if entry == "load":
        with pytest.raises(UsageError) as raised:
            nv.load(run_dir)
        assert isinstance(raised.value, ValueError)
        return str(raised.value)
    assert ENTRY_POINTS[entry](run_dir) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0][len("error: "):]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name, change, key", CONFIG_EDITS, ids=[c[0] for c in CONFIG_EDITS])
def test_a_hand_edited_config_is_one_line_naming_file_and_key(name, change, key, entry, run,
                                                              capsys):
    """Item 6: the message starts with the file and the key; the run is left as it was."""
    edit_config(run, change)
    before = (run / "checkpoint.npz").read_bytes()
    message = one_line_from(entry, run, capsys)
    assert message.startswith(f"{run / 'config.json'}: {key}"), message
    assert "\n" not in message and message.endswith("Fix the file, or start a new run.")
    assert (run / "checkpoint.npz").read_bytes() == before
    assert not (run / "evaluation.json").exists() and not (run / ".lock").exists()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name, change, named", META_EDITS, ids=[c[0] for c in META_EDITS])
def test_damaged_checkpoint_metadata_is_one_line_naming_the_checkpoint(name, change, named,
                                                                       entry, run, capsys):
    rewrite_meta(run, change)
    message = one_line_from(entry, run, capsys)
    assert message.startswith(f"{run / 'checkpoint.npz'}: ") and named in message, message


def test_codes_of_a_model_without_codes_is_one_line(run, capsys):
    capsys.readouterr()
    assert evaluate_main([str(run), "--codes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --codes needs a VQ model (vq-vae)") and "vae model" in err
    assert len(err.splitlines()) == 1


def test_every_message_names_what_is_wrong(run):
    """The words of a few messages, beyond the file and key."""
    from numpyvae import runconfig

    def problem(change):
        config = json.loads((run / "config.json").read_text())
        change(config)
        with pytest.raises(UsageError) as raised:
            runconfig.check_config(config, run / "config.json")
        return str(raised.value)
    assert "settings.lr is -0.1: it must be a positive number" in problem(
        _set(-0.1, "settings", "lr"))
    assert 'settings.lr is "0.01", text where a number belongs (write 0.01)' in problem(
        _set("0.01", "settings", "lr"))
    assert "adagrad, adam, sgd" in problem(_set("adamw", "settings", "optimizer"))
    assert "settings.batch_size is 100.0, a number where an integer belongs" in problem(
        _set(100.0, "settings", "batch_size"))
    assert "settings.model is \"iwae\", but model_name is \"vae\"" in problem(
        _set("iwae", "settings", "model"))
    assert "model is null" in problem(_set(None, "model"))


def test_what_numpyvae_writes_passes_the_check(tmp_path):
    """The check refuses nothing numpyvae writes: the legacy fixtures, and the config of
    every member as the training command resolves its settings and builds its model
    (MNIST's shapes; nothing trained)."""
    from types import SimpleNamespace
    from numpyvae import models, runconfig, train
    fixtures = Path(__file__).resolve().parent / "fixtures" / "legacy_runs"
    for legacy in fixtures.iterdir():
        config = json.loads((legacy / "config.json").read_text())
        runconfig.check_config(config, legacy / "config.json")
        runconfig.build_model(config, legacy / "config.json")
    data = SimpleNamespace(x_dim=784, n_train=60000, image_shape=(28, 28), n_classes=10)
    for name in models.names():
        flags = ["--dataset", "mnist", "--model", name]
        if name != "vq-vae":       # its z_dim is its conv net's grid of codes
            flags += ["--hidden", "8", "--z-dim", "4"]
        settings = train.resolve_settings(train.build_parser().parse_args(flags))
        model = models.create(name, **train.model_options(settings, data))
        config = json.loads(json.dumps(dict(
            dataset="mnist", model_name=name, settings=settings, model=model.config(),
            budget_samples=100, eval=dict(eval_size=50, evals_per_decade=8))))
        runconfig.check_config(config, tmp_path / "config.json")
        assert runconfig.build_model(config, tmp_path / "config.json").config() == model.config()


# ------------------------------------------------------------ read-only run dirs
def _writes(mode_or_flags):
    if isinstance(mode_or_flags, str):
        return any(letter in mode_or_flags for letter in "wax+")
    return bool(mode_or_flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
                                 | os.O_TRUNC))


@pytest.fixture
def read_only(monkeypatch):
    """make(directory): chmod -R a-w, and under root (whom permissions do not stop)
    every write under it refused with EACCES, as the kernel refuses another user."""
    made = []

    def make(directory):
        directory = Path(directory).resolve()
        for path in [directory, *directory.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        made.append(directory)
        if os.geteuid() != 0:
            return directory

        def inside(path):
            try:
                return Path(os.fsdecode(path)).resolve().is_relative_to(directory)
            except TypeError:      # a file descriptor
                return False

        def refuse(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

        def guard(real, writes):
            def guarded(path, *args, **kwargs):
                if inside(path) and writes(args, kwargs):
                    refuse(path)
                return real(path, *args, **kwargs)
            return guarded
        opens = guard(builtins.open, lambda a, k: _writes(a[0] if a else k.get("mode", "r")))
        monkeypatch.setattr(builtins, "open", opens)
        monkeypatch.setattr(io, "open", opens)
        monkeypatch.setattr(os, "open", guard(os.open, lambda a, k: _writes(a[0])))
        for name in ("mkdir", "unlink", "remove", "rmdir"):
            monkeypatch.setattr(os, name, guard(getattr(os, name), lambda a, k: True))
        for name in ("replace", "rename"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, lambda source, target, _real=real, **kwargs: (
                refuse(source if inside(source) else target)
                if inside(source) or inside(target) else _real(source, target, **kwargs)))
        return directory
    yield make
    for directory in made:
        for path in [directory, *directory.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def _snapshot(directory):
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_the_read_only_simulation_refuses_writes(run, read_only):
    """The fixture itself: writes under the directory fail, reads do not."""
    read_only(run)
    with pytest.raises(PermissionError):
        open(run / "new", "w")
    with pytest.raises(PermissionError):
        (run / "config.json").write_text("{}")
    assert json.loads((run / "config.json").read_text())["dataset"] == "frey"


def test_evaluate_on_a_read_only_run_prints_the_result_then_one_line(run, read_only, capsys):
    """Item 7: the number is printed, then one line names the file it could not write and
    --results; exit 2 and nothing written."""
    before = _snapshot(run)
    read_only(run)
    capsys.readouterr()
    assert evaluate_main([str(run), "--k", "3", "--draws", "1", "--n-test", "10"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    (error,) = [line for line in lines if line.startswith("error:")]
    assert error == lines[-1]
    assert f"cannot write {run / 'evaluation.json'}" in error and "--results FILE" in error
    assert f"cp -r {run} " in error
    printed = "\n".join(lines[:-1])
    assert "log p(x) (IS, K=3)" in printed and "nats" in printed
    assert "Written to" not in printed
    assert _snapshot(run) == before


def test_the_python_api_keeps_the_result_it_could_not_write(run, read_only, capsys):
    """evaluate() raises ResultsNotSaved, one line, holding the result it printed."""
    from numpyvae.evaluate import ResultsNotSaved, evaluate
    read_only(run)
    with pytest.raises(ResultsNotSaved) as raised:
        evaluate(run, k=3, draws=1, n_test=10)
    assert raised.value.result["complete"] and raised.value.result["k"] == 3
    assert "\n" not in str(raised.value)
    assert f"{raised.value.result['log_likelihood']:10.3f}" in capsys.readouterr().err


def test_results_elsewhere_keep_a_read_only_run_evaluable(run, read_only, tmp_path, capsys):
    """--results FILE adds the result to FILE (as evaluation.json would hold it) and
    writes nothing in the run directory; a second evaluation adds to the same file."""
    before = _snapshot(run)
    read_only(run)
    results = tmp_path / "elsewhere" / "results.json"
    results.parent.mkdir()
    for k in ("3", "4"):
        assert evaluate_main([str(run), "--k", k, "--draws", "1", "--n-test", "10",
                              "--results", str(results)]) == 0
    assert f"Written to {results}" in capsys.readouterr().err
    stored = json.loads(results.read_text())
    assert sorted(result["k"] for result in stored["results"].values()) == [3, 4]
    assert all(result["complete"] for result in stored["results"].values())
    assert _snapshot(run) == before


def test_resume_of_a_read_only_run_says_to_copy_it(run, read_only, capsys):
    """Item 7: --resume on a read-only directory: one line with the copy command; the
    run untouched, no lock left."""
    before = _snapshot(run)
    read_only(run)
    capsys.readouterr()
    assert train_main(["--resume", str(run), "--samples", "400", "--no-figures"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write in {run}"), err
    assert f"cp -r {run} NEW && python -m numpyvae.train --resume NEW" in lines[0]
    assert _snapshot(run) == before


def test_a_read_only_figures_directory_is_one_line(run, read_only, capsys):
    """A write that fails for permissions after training (the figures) is one line with
    what could not be written; the checkpoint of the new budget is kept."""
    (run / "figures").mkdir()
    read_only(run / "figures")
    capsys.readouterr()
    assert train_main(["--resume", str(run), "--samples", "300"]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert line.startswith(f"error: cannot write in {run} (writing {run / 'figures'}")
    assert "Permission denied" in line and f"cp -r {run} NEW" in line
    assert checkpoint.load(run / "checkpoint.npz")[2]["samples_seen"] == 300


def test_a_copy_of_a_read_only_run_resumes(run, read_only, tmp_path):
    """The advice works: the copy (writable again, as cp -r makes it for its owner)
    resumes to the new budget."""
    read_only(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    assert train_main(["--resume", str(copy), "--samples", "400", "--no-figures"]) == 0
    assert checkpoint.load(copy / "checkpoint.npz")[2]["samples_seen"] == 400


def test_load_of_a_read_only_run_works(run, read_only):
    """Item 7: numpyvae.load only reads."""
    params = checkpoint.load(run / "checkpoint.npz")[0]
    read_only(run)
    model = nv.load(run)
    assert all(numpy.array_equal(model.params[name], params[name]) for name in params)
