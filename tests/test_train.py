"""`python -m numpyvae.train` end to end on the real Frey faces, with tiny budgets.

Covers: every artefact of a run directory; exact resumption (N then 2N samples gives
the parameters of an uninterrupted 2N run, bit for bit); SIGINT writes a resumable
checkpoint; a diverging learning rate stops with a message and keeps a good
checkpoint; bad flags and bad run directories fail cleanly.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest

from conftest import need_data
import numpyvae as nv
from numpyvae import checkpoint, datasets
from numpyvae.train import kl_weight, main, next_evaluation

TINY = ["--dataset", "frey", "--hidden", "20", "--evals-per-decade", "4"]


needs_frey = pytest.mark.usefixtures("frey_data")


def train(*argv):
    """Run the command in-process; returns its exit status."""
    return main([str(a) for a in argv])


def read_checkpoint(run_dir):
    return checkpoint.load(Path(run_dir) / "checkpoint.npz")


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- end to end
@needs_frey
def test_run_writes_config_metrics_checkpoint_and_figures(tmp_path, capsys):
    run_dir = tmp_path / "z2"
    assert train(*TINY, "--z-dim", 2, "--samples", 2000, "--out", run_dir) == 0
    err = capsys.readouterr().err
    assert "train ELBO" in err and "samples/s" in err and "ETA" in err and "elbo" in err

    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "frey" and config["budget_samples"] == 2000
    assert config["settings"]["optimizer"] == "adagrad" and config["settings"]["batch_size"] == 100
    assert config["model"]["hidden"] == [20] and config["model"]["z_dim"] == 2
    assert config["model"]["weight_prior_scale"] == pytest.approx(1 / 1600)

    records = read_metrics(run_dir)
    seen = [r["samples_seen"] for r in records]
    assert seen == sorted(set(seen)) and seen[-1] == 2000 and len(seen) >= 5
    for record in records:
        assert {"samples_seen", "epoch", "train_elbo", "test_elbo", "wall_seconds"} <= set(record)
        assert numpy.isfinite(record["train_elbo"]) and numpy.isfinite(record["test_elbo"])
    assert records[-1]["train_elbo"] > records[0]["train_elbo"]  # it learns

    params, optimizer_state, meta, _ = read_checkpoint(run_dir)
    assert meta["samples_seen"] == 2000 and "encoder.mu.W" in params
    assert any(key.startswith("sum_of_squares/") for key in optimizer_state)
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".checkpoint-*"))

    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert figures == {"learning_curve.png", "reconstructions.png", "samples.png",
                       "latent.png", "manifold.png", "interpolation.png", "traversal.png"}
    for png in (run_dir / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


@needs_frey
def test_z_above_two_draws_pca_scatter_and_no_manifold(tmp_path):
    run_dir = tmp_path / "z3"
    assert train(*TINY, "--z-dim", 3, "--samples", 500, "--out", run_dir) == 0
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert "latent.png" in figures and "manifold.png" not in figures


@needs_frey
def test_default_run_directory_is_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train(*TINY, "--samples", 200, "--no-figures") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("frey-vae-z10-") and (run_dir / "checkpoint.npz").exists()


def test_evaluation_schedule_is_log_spaced():
    points, seen = [], 0
    while seen < 10 ** 6:
        seen = next_evaluation(seen, 4, 10 ** 6)
        points.append(seen)
    assert points[-1] == 10 ** 6 and 10 ** 4 in points and 10 ** 5 in points
    ratios = numpy.diff(numpy.log10(points[3:]))
    assert numpy.allclose(ratios, 0.25, atol=0.01)


# ------------------------------------------------------------------- resume
@needs_frey
def test_resume_continues_exactly(tmp_path, capsys):
    # 2000 is not a multiple of Frey's 1600: the resume starts mid-epoch.
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert train(*TINY, "--samples", 2000, "--out", resumed, "--no-figures") == 0
    assert train("--resume", resumed, "--samples", 4000, "--no-figures") == 0
    assert train(*TINY, "--samples", 4000, "--out", straight, "--no-figures") == 0
    assert "Resuming" in capsys.readouterr().err

    params_a, optim_a, meta_a, arrays_a = read_checkpoint(resumed)
    params_b, optim_b, meta_b, arrays_b = read_checkpoint(straight)
    assert meta_a["samples_seen"] == meta_b["samples_seen"] == 4000
    assert meta_a["step"] == meta_b["step"] == 40
    for name in params_b:
        assert numpy.array_equal(params_a[name], params_b[name]), name
    for key in optim_b:
        assert numpy.array_equal(optim_a[key], optim_b[key]), key
    # Every training stream is where the straight run's is (the evaluation stream
    # differs: the first run evaluated at its 2000-sample budget).
    for stream in ("data", "noise", "binarize", "model"):
        assert meta_a["rng"][stream] == meta_b["rng"][stream], stream
    assert numpy.array_equal(arrays_a["permutation"], arrays_b["permutation"])

    # The learning curve continues: one record per point, and after the resume the
    # ELBOs match the uninterrupted run's (same parameters; only eval noise differs).
    records = read_metrics(resumed)
    seen = [r["samples_seen"] for r in records]
    assert seen == sorted(set(seen)) and seen[-1] == 4000
    straight_records = {r["samples_seen"]: r for r in read_metrics(straight)}
    after = [r for r in records if r["samples_seen"] > 2000 and r["samples_seen"] in straight_records]
    assert after
    for record in after:
        assert abs(record["train_elbo"] - straight_records[record["samples_seen"]]["train_elbo"]) < 5
    config = json.loads((resumed / "config.json").read_text())
    assert config["budget_samples"] == 4000


@needs_frey
def test_the_run_records_its_blas_and_a_resume_under_another(tmp_path, capsys, monkeypatch):
    # A product's last bits depend on the BLAS kernels: the config says which ran, and
    # where a resume ran under others.
    from numpyvae import threads
    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run_dir, "--no-figures") == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["blas"] == threads.blas_description() and "blas_on_resume" not in config
    assert train("--resume", run_dir, "--samples", 300, "--no-figures") == 0
    assert "blas_on_resume" not in json.loads((run_dir / "config.json").read_text())
    capsys.readouterr()
    monkeypatch.setattr(threads, "blas_description", lambda: "openblas 9.9 (Other kernels)")
    monkeypatch.setattr(threads, "kernel_notice", lambda: "note: slow kernels")
    assert train("--resume", run_dir, "--samples", 400, "--no-figures") == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["blas_on_resume"] == [dict(samples_seen=300, blas="openblas 9.9 (Other kernels)")]
    err = capsys.readouterr().err
    assert "resumes under BLAS openblas 9.9 (Other kernels)" in err
    assert "note: slow kernels" in err


@needs_frey
def test_the_progress_lines_name_the_objective_a_member_trains_beside_the_elbo(tmp_path, capsys):
    # An IWAE-trained encoder's one-sample ELBO is loose and jumps from one evaluation to
    # the next; the bound it trains is printed beside it, from the run's own records.
    assert train(*TINY, "--model", "iwae", "--k", 3, "--samples", 1000,
                 "--out", tmp_path / "iwae", "--no-figures") == 0
    err = capsys.readouterr().err
    last = read_metrics(tmp_path / "iwae")[-1]
    assert (f"IWAE bound (k=3): train {last['train_objective']:.2f}, "
            f"test {last['test_objective']:.2f}") in err
    assert f"test ELBO {last['test_elbo']:.2f}; IWAE bound (k=3)" in err    # the Done line
    assert train(*TINY, "--samples", 1000, "--out", tmp_path / "vae", "--no-figures") == 0
    err = capsys.readouterr().err
    assert "train ELBO" in err and "bound" not in err and "objective" not in err.split("Done")[1]


@needs_frey
def test_an_adam_checkpoint_holding_m_and_v_resumes_with_a_note(tmp_path, capsys):
    # Adam's state was m and v before it held the decayed sums M = m / (1 - beta1) and
    # V = v / (1 - beta2): such a checkpoint still resumes, converted, and says so.
    run_dir = tmp_path / "run"
    assert train(*TINY, "--optimizer", "adam", "--lr", "0.001", "--samples", 200,
                 "--out", run_dir, "--no-figures") == 0
    path = run_dir / checkpoint.CHECKPOINT_NAME
    params, state, meta, arrays = checkpoint.load(path)
    legacy = {"steps": state["steps"]}
    for name, moment, factor in (("decayed_gradient_sum", "first_moment", 1 - 0.9),
                                 ("decayed_square_sum", "second_moment", 1 - 0.999)):
        legacy.update({f"{moment}/{key[len(name) + 1:]}": value * numpy.float32(factor)
                       for key, value in state.items() if key.startswith(f"{name}/")})
    assert len(legacy) == len(state)
    checkpoint.save(path, params, legacy, meta, arrays)
    capsys.readouterr()
    assert train("--resume", run_dir, "--samples", 300, "--no-figures") == 0
    assert "it was converted" in capsys.readouterr().err
    assert train("--resume", run_dir, "--samples", 400, "--no-figures") == 0
    assert "it was converted" not in capsys.readouterr().err


@needs_frey
def test_sigint_writes_a_resumable_checkpoint(tmp_path):
    run_dir = tmp_path / "interrupted"
    command = [sys.executable, "-m", "numpyvae.train", *TINY, "--samples", "1e8",
               "--out", str(run_dir), "--no-figures"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        lines = []
        for line in process.stderr:  # wait until the training loop runs
            lines.append(line)
            if "train ELBO" in line:
                break
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    err = "".join(lines) + rest
    assert process.returncode == 130, err
    assert f"resume with: python -m numpyvae.train --resume {run_dir}" in err
    assert "Traceback" not in err

    _, _, meta, _ = read_checkpoint(run_dir)
    stopped_at = meta["samples_seen"]
    assert 0 < stopped_at < 10 ** 8
    assert train("--resume", run_dir, "--samples", stopped_at + 300, "--no-figures") == 0
    _, _, meta, _ = read_checkpoint(run_dir)
    assert meta["samples_seen"] == stopped_at + 300


@needs_frey
def test_diverging_learning_rate_stops_and_keeps_a_good_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "diverged"
    assert train(*TINY, "--lr", 1000, "--samples", 20000, "--out", run_dir) == 3
    err = capsys.readouterr().err
    assert "diverged" in err and "--lr" in err and "Traceback" not in err
    params, _, meta, _ = read_checkpoint(run_dir)
    assert meta["samples_seen"] < 20000
    assert all(numpy.isfinite(value).all() for value in params.values())
    assert not (run_dir / "figures").exists()


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("flags", [
    ["--dataset", "cifar"],
    ["--dataset", "frey", "--z-dim", "-1"],
    ["--dataset", "frey", "--hidden", "0"],
    ["--dataset", "frey", "--batch-size", "0"],
    ["--dataset", "frey", "--samples", "-5"],
    ["--dataset", "frey", "--lr", "-0.1"],
    [],
])
def test_bad_flags_are_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@needs_frey
def test_unreadable_resume_directory(tmp_path, capsys):
    assert train("--resume", tmp_path / "nowhere") == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert train("--resume", tmp_path / "empty") == 2
    assert "config.json" in capsys.readouterr().err
    broken = tmp_path / "broken"
    assert train(*TINY, "--samples", 100, "--out", broken, "--no-figures") == 0
    (broken / "checkpoint.npz").write_bytes(b"not a zip file")
    assert train("--resume", broken) == 2
    assert "Cannot read checkpoint" in capsys.readouterr().err


@needs_frey
def test_resume_with_another_architecture_is_refused(tmp_path, capsys):
    first, other = tmp_path / "first", tmp_path / "other"
    assert train(*TINY, "--z-dim", 2, "--samples", 100, "--out", first, "--no-figures") == 0
    capsys.readouterr()
    assert train("--resume", first, "--z-dim", 5, "--hidden", 30) == 2
    err = capsys.readouterr().err
    assert "--z-dim 5 (the run has --z-dim 2)" in err and "--hidden 30" in err

    # A checkpoint of another architecture dropped into the directory.
    assert train(*TINY, "--z-dim", 3, "--samples", 100, "--out", other, "--no-figures") == 0
    shutil.copy(other / "checkpoint.npz", first / "checkpoint.npz")
    capsys.readouterr()
    assert train("--resume", first, "--samples", 200) == 2
    err = capsys.readouterr().err
    assert "another model" in err and "Traceback" not in err


@needs_frey
def test_out_directory_with_a_run_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(*TINY, "--samples", 100, "--out", run_dir, "--no-figures") == 0
    assert train(*TINY, "--samples", 100, "--out", run_dir, "--no-figures") == 2
    assert "--resume" in capsys.readouterr().err


def test_missing_data_is_a_clean_error(tmp_path, capsys, monkeypatch):
    def unavailable(name, split="train", **options):
        raise datasets.DataNotFoundError(f"{name}: file frey_rawface.mat is not in the data directory")

    monkeypatch.setattr(datasets, "load", unavailable)
    assert train("--dataset", "frey", "--samples", 100, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "Cannot load data set 'frey'" in err and "frey_rawface.mat" in err
    assert "Traceback" not in err


# ------------------------------------------------------------ helpers' units
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, {"w": numpy.ones(3)}, {"steps": numpy.asarray(1)}, {"samples_seen": 100})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(numpy, "savez", disk_full)
    with pytest.raises(OSError):
        checkpoint.save(path, {"w": numpy.zeros(3)}, {"steps": numpy.asarray(2)}, {"samples_seen": 200})
    params, optimizer_state, meta, _ = checkpoint.load(path)  # the old one, intact
    assert meta["samples_seen"] == 100 and numpy.array_equal(params["w"], numpy.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_generator_state_round_trip():
    generator = numpy.random.default_rng(3)
    generator.standard_normal(5)
    state = json.loads(json.dumps(checkpoint.generator_state(generator)))
    restored = checkpoint.restore_generator(state)
    assert numpy.array_equal(restored.standard_normal(7), generator.standard_normal(7))


class _Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_bar_redraws_one_line_on_a_terminal():
    from numpyvae.progress import ProgressBar

    clock = iter(numpy.arange(0.0, 100.0, 1.0))
    terminal = _Terminal()
    bar = ProgressBar(1000, stream=terminal, clock=lambda: next(clock))
    bar.update(250, elbo="-100.0")
    bar.update(500, elbo="-90.0")
    bar.close()
    assert terminal.text.count("\n") == 1 and terminal.text.count("\r") >= 3
    assert "50.0%" in terminal.text and "samples/s" in terminal.text and "elbo -90.0" in terminal.text


# -------------------------------------------------------------- KL warm-up
def test_kl_weight_schedule():
    """beta * min(1, s / W): linear from 0 to beta over W samples, then beta."""
    settings = dict(beta=2.0, beta_warmup=1000)
    values = [kl_weight(settings, s) for s in (0, 250, 500, 999, 1000, 5000)]
    assert values == [0.0, 0.5, 1.0, 2.0 * 999 / 1000, 2.0, 2.0]
    assert kl_weight(dict(beta=0.5, beta_warmup=None), 10) == 0.5


@needs_frey
def test_warmup_as_the_training_command_applies_it(tmp_path, monkeypatch):
    """Each step's loss gets beta * min(1, seen / W) for the samples seen before it, and
    each record of metrics.jsonl the beta at its own count, with its objective
    log-likelihood - beta KL."""
    from numpyvae.models.base import LatentGaussianModel
    passed = []
    original = LatentGaussianModel.loss_and_grads

    def recording(self, *args, beta=None, **kwargs):
        passed.append(beta)
        return original(self, *args, beta=beta, **kwargs)
    monkeypatch.setattr(LatentGaussianModel, "loss_and_grads", recording)
    run = tmp_path / "warm"
    assert train(*TINY, "--beta", 2, "--beta-warmup", 600, "--samples", 1000, "--out", run,
                 "--no-figures") == 0
    expected = [2.0 * min(1.0, 100 * step / 600) for step in range(10)]   # batch 100
    steps = [beta for beta in passed if beta is not None]   # None: the memory check's probes
    assert steps == pytest.approx(expected, rel=1e-15, abs=0)
    records = read_metrics(run)
    assert {r["samples_seen"] for r in records} >= {600, 1000}
    assert any(0 < r["samples_seen"] < 600 for r in records)
    for record in records:
        assert record["beta"] == pytest.approx(2.0 * min(1.0, record["samples_seen"] / 600), rel=1e-15)
        objective = record["train_log_likelihood"] - record["beta"] * record["train_kl"]
        assert record["train_objective"] == pytest.approx(objective, rel=1e-6)   # float32 means


# ------------------------------------------------- batch norm across a resume
@needs_frey
def test_batch_norm_statistics_survive_a_resume_bit_for_bit(tmp_path):
    """A --batch-norm run stopped and resumed ends with the running statistics (and
    parameters) of an uninterrupted run: the buffers are restored, not restarted."""
    flags = (*TINY, "--batch-norm", "--no-figures")
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert train(*flags, "--samples", 2000, "--out", resumed) == 0
    first = checkpoint.buffers_from(read_checkpoint(resumed)[3])
    assert first and all(not numpy.all(value == (name.endswith("running_var")))
                         for name, value in first.items())     # they moved off 0 and 1
    assert train("--resume", resumed, "--samples", 4000, "--no-figures") == 0
    assert train(*flags, "--samples", 4000, "--out", straight) == 0
    params_a, optim_a, _, arrays_a = read_checkpoint(resumed)
    params_b, optim_b, _, arrays_b = read_checkpoint(straight)
    buffers_a, buffers_b = checkpoint.buffers_from(arrays_a), checkpoint.buffers_from(arrays_b)
    assert set(buffers_a) == set(buffers_b) == set(first)
    for name in buffers_b:
        assert numpy.array_equal(buffers_a[name], buffers_b[name]), name
    for name in params_b:
        assert numpy.array_equal(params_a[name], params_b[name]), name
    for key in optim_b:
        assert numpy.array_equal(optim_a[key], optim_b[key]), key


@needs_frey
def test_out_directory_with_files_of_a_run_but_no_checkpoint_is_refused(tmp_path, capsys):
    """--out on a directory holding config.json, metrics.jsonl or evaluation.json but no
    checkpoint: refused, and those files untouched (issue 17, item 3)."""
    for name in ("config.json", "metrics.jsonl", "evaluation.json"):
        run = tmp_path / name.split(".")[0]
        run.mkdir()
        (run / name).write_text('{"from": "an earlier run"}\n')
        assert train(*TINY, "--samples", 100, "--out", run, "--no-figures") == 2
        assert (run / name).read_text() == '{"from": "an earlier run"}\n'
        assert sorted(path.name for path in run.iterdir()) == [name]
        message = capsys.readouterr().err
        assert name in message and "no checkpoint" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(*TINY, "--samples", 100, "--out", empty, "--no-figures") == 0


@needs_frey
def test_flags_on_resume_apply_or_are_refused(tmp_path, capsys):
    """Issue 17, item 4: --beta-warmup where there is no KL weight to anneal is refused;
    on --resume a flag equal to the run's own value (even one the run left to the model,
    --k 5 of a default IWAE run) is accepted, --evals-per-decade is applied and recorded,
    and another --eval-size is refused rather than mixing two subsets in one curve."""
    assert train(*TINY, "--model", "iwae", "--beta-warmup", 100, "--samples", 100,
                 "--out", tmp_path / "refused", "--no-figures") == 2
    assert "--beta-warmup" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "config.json").exists()
    run = tmp_path / "iwae"
    assert train(*TINY, "--model", "iwae", "--samples", 200, "--out", run, "--no-figures") == 0
    assert train("--resume", run, "--k", 5, "--samples", 300, "--evals-per-decade", 2,
                 "--no-figures") == 0
    assert json.loads((run / "config.json").read_text())["eval"]["evals_per_decade"] == 2
    assert train("--resume", run, "--k", 3, "--samples", 400, "--no-figures") == 2
    assert "the run has --k 5" in capsys.readouterr().err
    assert train("--resume", run, "--eval-size", 50, "--samples", 400, "--no-figures") == 2
    assert "mix two subsets" in capsys.readouterr().err


@needs_frey
def test_runs_that_cannot_learn_are_refused_or_warned(tmp_path, capsys):
    """Issue 17, item 5: batch norm on batches of one is refused (by the command and by
    the model); a continuous density on binary data is trained with a warning that says
    what to use instead."""
    assert train(*TINY, "--batch-norm", "--batch-size", 1, "--samples", 10,
                 "--out", tmp_path / "bn", "--no-figures") == 2
    assert "--batch-size 2 or more" in capsys.readouterr().err
    model = nv.VAE(6, hidden=(4,), batch_norm=True)
    with pytest.raises(ValueError, match="batches of 2 or more"):
        model.loss_and_grads(numpy.full((1, 6), 0.5, dtype=numpy.float32))
    model.metrics(numpy.full((1, 6), 0.5, dtype=numpy.float32))     # evaluation mode: fine
    try:
        datasets.load("binarized-mnist", "test", download=False)
    except datasets.DataError:
        return
    assert train("--dataset", "binarized-mnist", "--likelihood", "gaussian", "--hidden", 8,
                 "--samples", 100, "--eval-size", 50, "--out", tmp_path / "g",
                 "--no-figures") == 0
    assert "Use --likelihood bernoulli" in capsys.readouterr().err


@needs_frey
def test_small_things_a_user_reads(tmp_path, capsys):
    """Issue 17, item 15: --version; resuming a finished run says one thing; --n-test
    beyond the split says it uses all."""
    from numpyvae.evaluate import main as evaluate_main
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and "numpyvae 0." in capsys.readouterr().out
    run = tmp_path / "run"
    assert train(*TINY, "--samples", 200, "--out", run, "--no-figures") == 0
    capsys.readouterr()
    assert train("--resume", run, "--no-figures") == 0
    printed = capsys.readouterr().err
    assert "nothing to train" in printed and "Resuming" not in printed
    assert evaluate_main([str(run), "--k", "2", "--draws", "1", "--n-test", "100000"]) == 0
    assert "is more than the 365 examples" in capsys.readouterr().err


@needs_frey
def test_tiny_evaluation_subsets_and_priors(tmp_path, capsys):
    """Issue 17, item 8 (in part): --eval-size 1 draws its latent figure; a weight prior
    whose square underflows is a one-line usage error."""
    run = tmp_path / "one"
    assert train(*TINY, "--samples", 200, "--eval-size", 1, "--out", run) == 0
    assert (run / "figures" / "latent.png").exists()
    assert train(*TINY, "--samples", 200, "--weight-prior-std", "1e-200", "--out",
                 tmp_path / "tiny", "--no-figures") == 2
    assert "1 / std^2 overflows" in capsys.readouterr().err


def test_train_examples_trains_and_evaluates_on_one_fixed_subset(tmp_path, capsys):
    """AEVB's Figure 3 trains on 1000 MNIST images: --train-examples N keeps N fixed
    rows of the training split (the same for every seed), the weight prior counts N,
    and evaluate --split train scores those rows."""
    need_data("mnist")
    from numpyvae import evaluate as evaluate_module
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"s{seed}"
        assert train("--dataset", "mnist", "--hidden", 20, "--z-dim", 3, "--train-examples", 300,
                     "--samples", 600, "--seed", seed, "--no-figures", "--out", run) == 0
        runs.append(run)
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["n_train"] == 300 and config["model"]["weight_prior_scale"] == 1 / 300
    rows = datasets.training_rows(60000, 300)
    assert numpy.array_equal(rows, datasets.training_rows(60000, 300)) and len(set(rows)) == 300
    x_all, _ = datasets.load("mnist", "train")
    x_eval, _ = evaluate_module.load_split(config, "train", None, 0)
    assert x_eval.shape[0] == 300
    grey = evaluate_module.load_split(dict(config, dynamic_binarization=False), "train", None, 0)[0]
    assert numpy.array_equal(grey, x_all[rows].astype(grey.dtype))
    assert train("--dataset", "mnist", "--train-examples", 70000, "--samples", 100,
                 "--out", tmp_path / "big") == 2
    assert "at most 60000" in capsys.readouterr().err
