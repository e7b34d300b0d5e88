"""What can go wrong with a training run (project issue #12): one test per item.

Each test fails on the training command before its rewrite (commit 11ae7f6, the parent
of 920a862) and passes now. Runs are tiny Frey runs (hidden 20, a few hundred samples),
except the divergence run (MNIST, hidden 100: the case the old code finished with exit 0).
Subprocesses run in tmp_path, so that PYTHONPATH decides which package they import.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy
import pytest

from conftest import need_data
from numpyvae import checkpoint, datasets
from numpyvae.train import main

TINY = ["--dataset", "frey", "--hidden", "20", "--evals-per-decade", "4"]


needs_frey = pytest.mark.usefixtures("frey_data")


def train(*argv):
    """The command in-process; its exit status (argparse's SystemExit included)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_info:
        return exit_info.code


def read_checkpoint(run_dir):
    return checkpoint.load(Path(run_dir) / checkpoint.CHECKPOINT_NAME)


def metrics_lines(run_dir):
    return (Path(run_dir) / "metrics.jsonl").read_text().splitlines()


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def start(tmp_path, *argv, name="child"):
    """``python -m numpyvae.train ARGV`` in the background, stderr to a file (a pipe
    nobody reads could fill and block the child). Returns (process, stderr path)."""
    err_path = tmp_path / f"{name}.err"
    with open(err_path, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "numpyvae.train", *map(str, argv)], cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=err, text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg"))
    return process, err_path


def wait_for(process, err_path, text, timeout=60):
    """Wait until ``text`` appears in the child's stderr; returns that stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        err = err_path.read_text()
        if text in err:
            return err
        if process.poll() is not None:
            break
        time.sleep(0.05)
    err = err_path.read_text()
    process.kill()
    pytest.fail(f"{text!r} never appeared (exit {process.poll()}):\n{err}")


def finish(process, timeout=60):
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def children():
    """Background processes to kill, whatever happens to the test."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


# ------------------------------------------------------ 1. step-0 checkpoints
@needs_frey
@pytest.mark.parametrize("optimizer", ["adagrad", "adam", "sgd"])
def test_young_run_resumes_from_its_step0_checkpoint(optimizer, tmp_path, monkeypatch):
    """Item 1: a run stopped before its first periodic checkpoint leaves the step-0
    checkpoint, and --resume accepts it for every optimizer, continuing exactly."""
    from numpyvae import train as train_module

    young, straight = tmp_path / "young", tmp_path / "straight"
    flags = [*TINY, "--optimizer", optimizer, "--no-figures"]

    def killed(self, *args, **kwargs):    # dies before its first step
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_module.Run, "train", killed)
        assert train(*flags, "--samples", 1000, "--out", young) == 130
    assert read_checkpoint(young)[2]["samples_seen"] == 0
    assert train("--resume", young, "--samples", 300, "--no-figures") == 0
    assert train(*flags, "--samples", 300, "--out", straight) == 0
    params_a, optim_a, meta_a, _ = read_checkpoint(young)
    params_b, optim_b, meta_b, _ = read_checkpoint(straight)
    assert meta_a["samples_seen"] == meta_b["samples_seen"] == 300
    for name in params_b:
        assert numpy.array_equal(params_a[name], params_b[name]), name
    assert optim_a.keys() == optim_b.keys()
    for key in optim_b:
        assert numpy.array_equal(optim_a[key], optim_b[key]), key


# ------------------------------------------------------ 2. SIGTERM, SIGHUP
@needs_frey
@pytest.mark.parametrize("signal_name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_write_a_resumable_checkpoint(signal_name, status, tmp_path,
                                                         children):
    """Item 2: SIGTERM and SIGHUP checkpoint, print how to resume and exit 128 + signal."""
    run_dir = tmp_path / "run"
    process, err_path = start(tmp_path, *TINY, "--samples", "1e8", "--out", run_dir,
                              "--no-figures", "--checkpoint-seconds", 1e6)
    children.append(process)
    wait_for(process, err_path, "train ELBO")
    time.sleep(0.3)
    process.send_signal(getattr(signal, signal_name))
    assert finish(process) == status, err_path.read_text()
    err = err_path.read_text()
    assert f"resume with: python -m numpyvae.train --resume {run_dir}" in err
    assert signal_name in err and "Traceback" not in err
    stopped_at = read_checkpoint(run_dir)[2]["samples_seen"]
    assert 0 < stopped_at < 10 ** 8       # written at the signal, not the step-0 one
    assert train("--resume", run_dir, "--samples", stopped_at + 300, "--no-figures") == 0
    assert read_checkpoint(run_dir)[2]["samples_seen"] == stopped_at + 300


# ------------------------------------------------------ 3. the run lock
@needs_frey
def test_a_run_directory_in_use_is_refused(tmp_path, children, capsys):
    """Item 3: a second process on the same --out, and --resume of a run still
    training, are refused with exit 2 and one line naming the live process's pid."""
    run_dir = tmp_path / "run"
    process, err_path = start(tmp_path, *TINY, "--samples", "1e8", "--out", run_dir,
                              "--no-figures")
    children.append(process)
    wait_for(process, err_path, "train ELBO")
    for argv in ([*TINY, "--samples", 200, "--out", run_dir, "--no-figures"],
                 ["--resume", run_dir, "--samples", 200, "--no-figures"]):
        assert train(*argv) == 2
        err = capsys.readouterr().err
        (line,) = error_lines(err)
        assert f"process {process.pid}" in line, err
        assert "Traceback" not in err
    assert process.poll() is None         # the live run is untouched
    process.send_signal(signal.SIGINT)
    assert finish(process) == 130


@needs_frey
def test_a_stale_lock_is_taken_over(tmp_path, children, capsys):
    """Item 3: the lock of a process killed with SIGKILL is taken over with a note, and
    the resumed run proceeds."""
    run_dir = tmp_path / "run"
    process, err_path = start(tmp_path, *TINY, "--samples", "1e8", "--out", run_dir,
                              "--no-figures")
    children.append(process)
    wait_for(process, err_path, "train ELBO")
    process.kill()
    finish(process)
    assert (run_dir / ".lock").exists()
    samples = read_checkpoint(run_dir)[2]["samples_seen"]
    assert train("--resume", run_dir, "--samples", samples + 200, "--no-figures") == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and str(process.pid) in err
    assert read_checkpoint(run_dir)[2]["samples_seen"] == samples + 200
    assert not (run_dir / ".lock").exists()


# ------------------------------------------------------ 4. disk full
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@needs_frey
@pytest.mark.parametrize("target", ["savez", "fsync"])
def test_disk_full_is_one_line_and_keeps_the_checkpoint(target, tmp_path, monkeypatch, capsys):
    """Item 4: a write failing with ENOSPC (the checkpoint's numpy.savez, or every
    fsync: metrics.jsonl and config.json too) exits 4 with one line naming the path,
    saying to free space and giving the resume command; the checkpoint stays intact."""
    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run_dir, "--no-figures") == 0
    before = read_checkpoint(run_dir)
    capsys.readouterr()
    with monkeypatch.context() as patch:
        if target == "savez":
            patch.setattr(checkpoint.numpy, "savez", _disk_full)
        else:
            patch.setattr(os, "fsync", _disk_full)
        assert train("--resume", run_dir, "--samples", 400, "--no-figures") == 4
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert err.rstrip("\n").splitlines()[-1] == line
    assert str(run_dir) in line and "ENOSPC" in line and "Free some space" in line
    assert f"python -m numpyvae.train --resume {run_dir}" in line
    params, optimizer_state, meta, _ = read_checkpoint(run_dir)     # intact, loadable
    assert meta["samples_seen"] == before[2]["samples_seen"] == 200
    for name, value in before[0].items():
        assert numpy.array_equal(params[name], value), name
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))
    assert not (run_dir / ".lock").exists()
    # Space freed: the very command it printed continues the run.
    assert train("--resume", run_dir, "--samples", 400, "--no-figures") == 0


# ------------------------------------------------------ 5. torn metrics line
@needs_frey
def test_a_torn_metrics_line_does_not_break_resume(tmp_path, capsys):
    """Item 5: half a JSON object at the end of metrics.jsonl (a crash mid-append) is
    dropped with a note on --resume, and metrics.jsonl is clean afterwards."""
    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run_dir, "--no-figures") == 0
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"samples_seen": 300, "step": 3, "train_el')
    capsys.readouterr()
    assert train("--resume", run_dir, "--samples", 400, "--no-figures") == 0
    err = capsys.readouterr().err
    assert "dropped 1 unreadable line" in err
    records = [json.loads(line) for line in metrics_lines(run_dir)]    # every line parses
    seen = [r["samples_seen"] for r in records]
    assert seen == sorted(set(seen)) and seen[-1] == 400


# ------------------------------------------------------ 6. orphan temporaries
@needs_frey
def test_orphan_checkpoint_temporary_is_removed_on_resume(tmp_path, capsys):
    """Item 6: the temporaries a killed process leaves (checkpoint.save's
    .checkpoint-XXXX.npz.tmp, and those of config.json and metrics.jsonl, named as
    their atomic writes name them) are removed on --resume, with a note; other files
    are not touched."""
    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run_dir, "--no-figures") == 0
    orphans = []
    for prefix, suffix in ((".checkpoint-", ".npz.tmp"), (".config.json.", ".tmp"),
                           (".metrics.jsonl.", ".tmp")):
        descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=run_dir)
        os.write(descriptor, b"PK\x03\x04 half a file")
        os.close(descriptor)
        orphans.append(Path(name))
    mine = run_dir / "notes.tmp"
    mine.write_text("not the run's")
    capsys.readouterr()
    assert train("--resume", run_dir, "--samples", 300, "--no-figures") == 0
    err = capsys.readouterr().err
    for orphan in orphans:
        assert not orphan.exists() and orphan.name in err, orphan.name
    assert "removed 3 temporary file" in err
    assert mine.exists()


# ------------------------------------------------------ 7. divergence
def test_diverging_mnist_run_exits_3_with_a_good_checkpoint(tmp_path, capsys):
    """Item 7: --lr 0.3 on MNIST (hidden 100): the old command finished with exit 0 and
    a test ELBO of about -4100 nats (the independent-pixel model reaches -205); now it
    stops with exit 3, advice on --lr, and keeps the last good checkpoint."""
    need_data("mnist")
    run_dir = tmp_path / "run"
    assert train("--dataset", "mnist", "--hidden", 100, "--lr", 0.3, "--samples", 3000,
                 "--eval-size", 200, "--out", run_dir) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Done" not in err
    (line,) = error_lines(err)
    assert "diverged" in line and "--lr 0.03" in line and "last good checkpoint" in line
    params, _, meta, _ = read_checkpoint(run_dir)
    assert meta["samples_seen"] < 3000
    assert all(numpy.isfinite(value).all() for value in params.values())
    assert not (run_dir / "figures").exists()


def _bound_checker(likelihood, baseline, x_dim, best=-numpy.inf):
    """What Run.check_bound reads of a run, without data or a model."""
    return types.SimpleNamespace(
        optimizer=types.SimpleNamespace(lr=0.1), settings={"lr": 0.1},
        params_finite=lambda: True, baseline=baseline, best_objective=best,
        data=types.SimpleNamespace(x_dim=x_dim),
        model=types.SimpleNamespace(likelihood=likelihood))


def test_check_bound_rules():
    """Item 7: the divergence rules of Run.check_bound: not finite; above 0 for binary
    data under a Bernoulli decoder; more than 10 (|L0| + D) below both the trivial
    model's L0 and the run's best. Anything else passes and raises the best."""
    from numpyvae.train import Diverged, Run

    bernoulli = _bound_checker("bernoulli", baseline=-205.0, x_dim=784)
    for impossible in (float("nan"), float("inf"), -float("inf"), 1.0, 100.0):
        with pytest.raises(Diverged, match="--lr 0.01"):
            Run.check_bound(bernoulli, impossible, "in test")
    for fine in (-543.0, -100.0, -0.1, -9000.0):
        Run.check_bound(bernoulli, fine, "in test")
    assert bernoulli.best_objective == -0.1
    # floor = min(L0, best) - 10 (|L0| + D) = -205 - 9890 = -10095
    with pytest.raises(Diverged, match="fell to"):
        Run.check_bound(bernoulli, -10100.0, "in test")

    # A Gaussian density can exceed 1: positive bounds are fine (Frey reaches ~ +1200).
    gaussian = _bound_checker("gaussian", baseline=573.0, x_dim=560, best=1200.0)
    Run.check_bound(gaussian, 1250.0, "in test")
    Run.check_bound(gaussian, -10000.0, "in test")   # floor 573 - 11330 = -10757
    with pytest.raises(Diverged, match="independent pixels"):
        Run.check_bound(gaussian, -10800.0, "in test")
    assert gaussian.best_objective == 1250.0


# ------------------------------------------------------ 8. flag validation
@pytest.mark.parametrize("flags, named", [
    (["--beta", "nan"], "--beta"),
    (["--beta", "inf"], "--beta"),
    (["--beta", "-1"], "--beta"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_beta_and_seed_are_one_line_usage_errors(flags, named, tmp_path, capsys):
    """Item 8: --beta nan / inf / -1 and --seed -1 are refused by the parser: exit 2,
    one line, no traceback, nothing created."""
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--samples", "200", "--out", str(tmp_path / "run"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error:") and named in err
    assert not (tmp_path / "run").exists()


@needs_frey
def test_batch_larger_than_the_training_set_is_refused(tmp_path, capsys):
    """Item 8: --batch-size 5000 on Frey: exit 2, naming its 1600 training examples."""
    assert train(*TINY, "--batch-size", 5000, "--samples", 10000, "--out",
                 tmp_path / "run") == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "1600 training examples" in line and "--batch-size 5000" in line
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


# ------------------------------------------------------ 10. evaluate's messages
def test_evaluate_of_a_missing_directory_does_not_mention_resume(tmp_path):
    """Item 10: ``python -m numpyvae.evaluate /nonexistent`` names itself, not --resume."""
    for target in ("/nonexistent", str(tmp_path)):        # no directory; no config.json
        result = subprocess.run([sys.executable, "-m", "numpyvae.evaluate", target],
                                cwd=tmp_path, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert result.returncode == 2, result.stderr
        assert "--resume" not in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: evaluate ") and target in result.stderr
        assert len(result.stderr.splitlines()) == 1


# ------------------------------------------------------ 12. one-line usage errors
@pytest.mark.parametrize("command, argv", [
    ("train", ["--dataset", "nope"]),
    ("train", []),                                    # --dataset missing
    ("train", ["--dataset", "frey", "--samples"]),   # a value missing
    ("train", ["--dataset", "frey", "--no-such-flag"]),
    ("train", ["--resume", "somewhere", "--out", "elsewhere"]),
    ("evaluate", []),                                 # RUN_DIR missing
    ("evaluate", ["runs/x", "--k", "0"]),
    ("evaluate", ["runs/x", "--no-such-flag"]),
])
def test_usage_errors_are_one_line(command, argv, capsys):
    """Item 12: usage errors of train and evaluate print one line starting with
    'error:' (not argparse's usage block) and exit 2."""
    if command == "train":
        entry = main
    else:
        from numpyvae.evaluate import main as entry
    with pytest.raises(SystemExit) as exit_info:
        entry(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "--help" in err


# ------------------------------------------------------ figures
@needs_frey
def test_reconstructions_show_the_fixed_random_display_subset(tmp_path, monkeypatch):
    """Issue 12, figures: the reconstructions figure shows figures.display_subset of
    the test examples (a fixed random subset), not the first 32."""
    from numpyvae import figures

    shown = []
    real = figures.reconstructions

    def capture(originals, reconstructed, *args, **kwargs):
        shown.append(numpy.array(originals))
        return real(originals, reconstructed, *args, **kwargs)

    monkeypatch.setattr(figures, "reconstructions", capture)
    assert train(*TINY, "--samples", 200, "--out", tmp_path / "run") == 0
    x_test, _ = datasets.load("frey", "test", dtype=numpy.float32)
    indices = figures.display_subset(len(x_test), 32, 0)
    assert not numpy.array_equal(indices, numpy.arange(32))
    (originals,) = shown
    assert numpy.array_equal(originals.reshape(32, -1), x_test[indices])


@needs_frey
def test_evaluate_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 4 (evaluate): a full disk while writing evaluation.json exits 4 with one
    line that names the file and says to run the evaluation again (not --resume)."""
    from numpyvae.evaluate import main as evaluate_main

    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run_dir, "--no-figures") == 0
    capsys.readouterr()
    monkeypatch.setattr(os, "fsync", _disk_full)
    assert evaluate_main([str(run_dir), "--k", "10", "--n-test", "20", "--draws", "1"]) == 4
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "Traceback" not in err and "--resume" not in line
    assert str(run_dir / "evaluation.json") in line and "Free some space" in line
    assert not (run_dir / "evaluation.json").exists() and not list(run_dir.glob(".*.tmp"))


@needs_frey
def test_disk_full_while_drawing_figures_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 4 (figures): ENOSPC from a write that numpyvae does not wrap itself (here
    matplotlib saving a figure) still exits 4 with the one-line message and the resume
    command; the final checkpoint is complete."""
    from numpyvae import figures

    run_dir = tmp_path / "run"

    def full(originals, reconstructed, shape, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(figures, "reconstructions", full)
    assert train(*TINY, "--samples", 200, "--out", run_dir) == 4
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "Traceback" not in err and "reconstructions.png" in line
    assert f"python -m numpyvae.train --resume {run_dir}" in line
    assert read_checkpoint(run_dir)[2]["samples_seen"] == 200
    assert not (run_dir / ".lock").exists()
