"""Run directories written by an earlier numpyvae still resume and evaluate.

tests/fixtures/legacy_runs/ holds tiny runs trained by the code of commit 31d7d12 (the
main before the engine of parts): a Frey VAE, a binarized-on-the-fly MNIST IWAE (k = 3)
and a quadrant CVAE, each to 1000 or 500 samples, and the parameters that code reached
when it resumed them to 1500 samples (``resumed_to_1500_params.npz``). Today's code must
resume them to the very same parameters, bit for bit, and evaluate them.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpyvae import evaluate, threads

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy_runs"
RUNS = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())
DATA = os.environ.get("NUMPYVAE_DATA")


def _copy(name, tmp_path):
    run_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, run_dir)
    (run_dir / "resumed_to_1500_params.npz").unlink()
    config = json.loads((run_dir / "config.json").read_text())
    config["data_dir"] = DATA   # the machine that wrote it had its data elsewhere
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def _needs_data(name):
    dataset = json.loads((FIXTURES / name / "config.json").read_text())["dataset"]
    from numpyvae import datasets
    try:
        datasets.load(dataset, "test", data_dir=DATA)
    except Exception as error:   # noqa: BLE001 - any reason the data is absent
        pytest.skip(f"{dataset} is not available here ({error})")


def _blas_environment():
    """One BLAS thread and OpenBLAS's SkylakeX kernels, as the old code ran: the fixtures
    were computed on an AVX-512 Intel machine, and a matrix product's last bits depend on
    how many threads split it and on the kernels (an environment may name others: the AMD
    EPYC of stop 31 sets OPENBLAS_CORETYPE=Haswell, whose products sum in another order).
    Skips where the CPU cannot run those kernels."""
    if not threads.cpu_has_avx512():
        pytest.skip("the fixtures' parameters come from OpenBLAS's SkylakeX kernels, which "
                    "need AVX-512 (F, BW, DQ, VL); this CPU lacks it, so a bit-for-bit "
                    "comparison cannot hold")
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                MKL_NUM_THREADS="1", OPENBLAS_CORETYPE="SkylakeX")


def test_the_fixtures_are_there():
    assert set(RUNS) == {"frey-vae", "mnist-cvae-quadrant", "mnist-iwae"}


@pytest.mark.parametrize("name", RUNS)
def test_a_legacy_run_resumes_to_the_same_parameters(name, tmp_path):
    _needs_data(name)
    run_dir = _copy(name, tmp_path)
    environment = _blas_environment()
    finished = subprocess.run([sys.executable, "-m", "numpyvae.train", "--resume", str(run_dir),
                               "--samples", "1500", "--no-figures"], env=environment,
                              capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    expected = np.load(FIXTURES / name / "resumed_to_1500_params.npz", allow_pickle=False)
    with np.load(run_dir / "checkpoint.npz", allow_pickle=False) as saved:
        got = {key.replace("/", "__"): saved[key] for key in saved.files if key.startswith("param")}
    assert set(got) == set(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@pytest.mark.parametrize("name", RUNS)
def test_a_legacy_run_evaluates(name, tmp_path):
    _needs_data(name)
    run_dir = _copy(name, tmp_path)
    result = evaluate.evaluate(run_dir, k=20, n_test=30, draws=2)
    assert np.isfinite(result["log_likelihood"]) and np.isfinite(result["elbo"])
    assert result["log_likelihood"] >= result["elbo"] - 5.0
