"""Long checks of ``python -m numpyvae.train`` (issue #12, item 13): ``pytest -m slow``.

Deselected by default (setup.cfg: addopts = -m "not slow"). Each runs for minutes:

* convergence: AEVB's default Frey settings train to a test ELBO above a recorded bound;
* the kill loop: a run SIGKILLed at 15 random moments and resumed each time leaves only
  loadable checkpoints, no temporaries, and ends with the parameters of a run that was
  never interrupted.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest

from conftest import need_data
from numpyvae import checkpoint, datasets

pytestmark = pytest.mark.slow


@pytest.fixture
def frey_data():
    need_data("frey")


def command(*argv):
    return [sys.executable, "-m", "numpyvae.train", *map(str, argv)]


def run(cwd, *argv, timeout=900):
    """The command in a subprocess (one BLAS thread: the recorded numbers are exact)."""
    return subprocess.run(command(*argv), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg"))


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


# Measured 2026-12-01 with the command below (OMP_NUM_THREADS=1, numpy's OpenBLAS):
# test ELBO 1004.79 after 10^6 samples (train 997.04; 912.65 at 562 400 samples), in
# 87 s of training on a loaded 2-core machine.
# The bound leaves 5% of it: a model that learns at all but worse (e.g. a broken
# gradient, a wrong weight prior scale) stays far below; the run-to-run noise of one
# seed across BLAS builds is a few nats.
CONVERGENCE_ARGV = ("--dataset", "frey", "--samples", "1e6", "--no-figures")
MEASURED_TEST_ELBO = 1004.79
TEST_ELBO_BOUND = 0.95 * MEASURED_TEST_ELBO


@pytest.mark.usefixtures("frey_data")
def test_frey_converges_with_the_default_aevb_settings(tmp_path):
    """Item 13 (a): ``python -m numpyvae.train --dataset frey --samples 1e6`` (hidden
    200, z 10, Adagrad 0.01, batch 100) ends with a test ELBO above 95% of the value
    measured when this test was written."""
    run_dir = tmp_path / "frey"
    result = run(tmp_path, *CONVERGENCE_ARGV, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_metrics(run_dir)
    last = records[-1]
    assert last["samples_seen"] == 10 ** 6
    assert last["test_elbo"] > TEST_ELBO_BOUND, last
    # It got there by learning: the curve rises over the run.
    assert records[0]["test_elbo"] < 0 < last["test_elbo"]
    print(f"frey, 10^6 samples: test ELBO {last['test_elbo']:.2f} (bound {TEST_ELBO_BOUND:.1f})")


KILLS = 15
TINY = ("--dataset", "frey", "--hidden", "20", "--evals-per-decade", "8", "--no-figures")
FINAL_STRETCH = 50_000   # samples trained, uninterrupted, after the last kill


def _leftovers(run_dir):
    return sorted(p.name for p in Path(run_dir).iterdir() if p.name.endswith(".tmp"))


@pytest.mark.usefixtures("frey_data")
def test_sigkill_at_random_moments_never_loses_the_run(tmp_path):
    """Item 13 (b): SIGKILL a run at 15 random moments (start-up, training, mid
    checkpoint: one is written every 50 ms) and resume it each time. Every checkpoint
    left behind loads, with finite parameters and samples_seen never going back; the
    run completes its budget with no temporaries or lock left; and it ends with exactly
    the parameters of the same run never interrupted. (The budget, 10^8, is out of
    reach until the last resume sets it to FINAL_STRETCH past the last checkpoint, so
    no machine is fast enough to finish between kills.)"""
    run_dir, straight = tmp_path / "killed", tmp_path / "straight"
    fresh = (*TINY, "--samples", "1e8", "--checkpoint-seconds", 0.05, "--out", run_dir)
    resume = ("--resume", run_dir, "--checkpoint-seconds", 0.05)
    rng = random.Random(13)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    history, seen_temporaries, kills = [], 0, 0
    while kills < KILLS:
        has_checkpoint = (run_dir / checkpoint.CHECKPOINT_NAME).exists()
        argv = resume if has_checkpoint else fresh
        process = subprocess.Popen(command(*argv), cwd=tmp_path, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 2.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, err = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, err
        assert "Traceback" not in err, err
        seen_temporaries += bool(_leftovers(run_dir)) if run_dir.exists() else 0
        if (run_dir / checkpoint.CHECKPOINT_NAME).exists():
            params, _, meta, _ = checkpoint.load(run_dir / checkpoint.CHECKPOINT_NAME)
            assert all(numpy.isfinite(value).all() for value in params.values())
            history.append(meta["samples_seen"])
    assert history == sorted(history) and history[-1] > 0, history

    budget = history[-1] + FINAL_STRETCH
    final = run(tmp_path, *resume, "--samples", budget)
    assert final.returncode == 0, final.stderr[-3000:]
    params, optimizer_state, meta, _ = checkpoint.load(run_dir / checkpoint.CHECKPOINT_NAME)
    assert meta["samples_seen"] == budget
    assert _leftovers(run_dir) == [] and not (run_dir / ".lock").exists()
    records = read_metrics(run_dir)
    seen = [r["samples_seen"] for r in records]
    assert seen == sorted(set(seen)) and seen[-1] == budget

    assert run(tmp_path, *TINY, "--samples", budget, "--out", straight).returncode == 0
    params_b, optimizer_b, meta_b, _ = checkpoint.load(straight / checkpoint.CHECKPOINT_NAME)
    assert meta_b["step"] == meta["step"]
    for name in params_b:
        assert numpy.array_equal(params[name], params_b[name]), name
    for key in optimizer_b:
        assert numpy.array_equal(optimizer_state[key], optimizer_b[key]), key
    print(f"kill loop: checkpoints at {history}; temporaries left by {seen_temporaries} "
          "of the kills (removed on resume)")
