"""The benchmark scripts run and print their tables, and their list of a training
step's matrix products matches the model. (Their figures are timings, reported by
running them, never asserted here.)"""
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import need_data

import numpyvae as nv

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from aevb_models import MODELS, matmul_shapes  # noqa: E402


@pytest.mark.parametrize("name", ["frey", "mnist", "large"])
def test_matmul_shapes_are_the_models_products(name):
    # Every dense layer costs a forward product x W and a weight gradient x^T g,
    # each batch * n_in * n_out multiply-adds, and an input gradient g W^T of the
    # same size, except the first encoder layer, whose input is the data.
    x_dim, hidden, z_dim, likelihood, _, batch = MODELS[name]
    model = nv.VAE(x_dim, hidden, z_dim, likelihood=likelihood)
    weights = [value.size for key, value in model.params.items() if key.endswith(".W")]
    first_layer = model.params["encoder.hidden0.W"].size
    expected = batch * (3 * sum(weights) - first_layer)
    assert sum(math.prod(shape) for shape in matmul_shapes(x_dim, hidden, z_dim, likelihood, batch)) == expected


@pytest.mark.parametrize("script, arguments, expected", [
    ("bench_training.py", ["--no-torch", "--rounds", "1", "--steps", "2"], "| frey: 560-200-z20"),
    ("bench_optimizer.py", ["--rounds", "1", "--steps", "2"], "| mnist | 815,824 | adagrad |"),
    ("bench_threads.py", ["--rounds", "1"], "), 2 threads | "),
    ("bench_conv.py", ["--quick"], "| vq-vae: tiny shapes | 8 | 1 |"),
    ("bench_shared_machine.py", ["--quick"], "| auto | "),
    ("bench_command_cost.py", ["--quick", "--datasets", "frey"], "| frey | 2e+03 | "),
    ("bench_family.py", ["--quick"], "| batch-norm: Chen FC 784-512-256-128-z20, batch norm + ReLU | 128 | 1 |"),
    ("bench_scaling.py", ["--quick"], "| 25 |"),
    ("bench_evaluation.py", ["--quick"], "| iwae: 784-200-200-50 | 64 | 2 | "),
    ("bench_kernels.py", ["--quick"], "| evaluation: IWAE decoder, 512 rows | "),
])
def test_benchmark_script_prints_its_table(script, arguments, expected):
    if script in ("bench_shared_machine.py", "bench_command_cost.py"):
        need_data("frey")   # it runs the training command on Frey Face
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout


def test_aevb_sweeps_quick_mode_trains_evaluates_and_reports(tmp_path):
    """benchmarks/reproduce_aevb_sweeps.py --quick: every Figure 2 run and both Figure 3
    runs train, evaluate and print their tables; a second call resumes nothing."""
    need_data("frey")
    need_data("binarized-mnist", "test")
    need_data("mnist")
    command = [sys.executable, str(BENCHMARKS / "reproduce_aevb_sweeps.py"), "--quick",
               "--runs-dir", str(tmp_path), "--latents", "2", "3"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| frey | 2 | 1e+06 | 672.9 | not reached" in completed.stdout
    assert "| mnist | 3 | 1e+06 | -153 |" in completed.stdout
    assert (tmp_path / "figure2-frey.png").exists() and (tmp_path / "figure2-mnist.png").exists()
    def table(stdout):
        return [line for line in stdout.splitlines() if line.startswith(("| 1000 |", "| 50000 |"))]
    assert len(table(completed.stdout)) == 2 and all("±" in row for row in table(completed.stdout))
    again = subprocess.run(command + ["--report-only"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert table(again.stdout) == table(completed.stdout)
    assert (tmp_path / "figure3.png").exists()


def test_chen_sweep_quick_mode_reports_every_latent(tmp_path):
    need_data("mnist")
    command = [sys.executable, str(BENCHMARKS / "reproduce_chen_sweep.py"), "--quick",
               "--only", "mnist", "--latents", "2", "5", "--runs-dir", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| mnist |")]
    assert [row.split("|")[2].strip() for row in rows] == ["2", "5"]
    assert (tmp_path / "chen-sweep-mnist.png").exists()
    assert (tmp_path / "mnist-d2" / "figures" / "manifold.png").exists()


# The PyTorch twins (benchmarks/torch_twins.py), in float64 so that a wrong formula, order
# or constant shows far above rounding: the loss, every gradient and the batch norms'
# running statistics over three Adam steps, against numpyvae's.
TWIN_CASES = {
    "vae-gaussian": ("vae", dict(likelihood="gaussian")),
    "iwae-k4": ("iwae", dict(likelihood="bernoulli", k=4)),
    "cvae": ("cvae", dict(likelihood="bernoulli", n_classes=3)),
    "batch-norm-relu": ("vae", dict(likelihood="bernoulli", batch_norm=True, activation="relu")),
    "cvae-batch-norm-2-samples": ("cvae", dict(likelihood="bernoulli", n_classes=3,
                                               batch_norm=True, samples=2)),
    "fixed-variance-beta": ("vae", dict(likelihood="gaussian-fixed", output_activation="identity",
                                        samples=3, beta=0.5, activation="softplus")),
}


@pytest.mark.parametrize("case", sorted(TWIN_CASES))
def test_torch_twin_matches_numpyvae(case):
    pytest.importorskip("torch")
    import torch_twins  # noqa: PLC0415  (loads PyTorch)

    name, options = TWIN_CASES[case]
    build = dict(x_dim=12, hidden=(7, 5), z_dim=3, dtype="float64", seed=0, init="glorot", **options)
    model = nv.models.create(name, **build)
    twin = torch_twins.mlp_twin(nv.models.create(name, **build))
    rng = np.random.default_rng(0)
    data = rng.random((40, 12))
    if options["likelihood"] == "bernoulli":
        data = (data > 0.5).astype(np.float64)
    labels = rng.integers(0, 3, 40) if name == "cvae" else None
    check = torch_twins.cross_check(
        model, twin, data, 6, torch_twins.optimizer_pair(("adam", {"lr": 1e-2}), model, twin),
        steps=3, labels=labels)
    assert max(check["losses"]) < 1e-12
    assert check["worst_grad"][1] < 1e-10, check["worst_grad"]
    assert check["buffers"] < 1e-12


def test_torch_twin_refuses_what_it_does_not_build():
    pytest.importorskip("torch")
    import torch_twins  # noqa: PLC0415

    model = nv.models.create("planar-flow", x_dim=12, hidden=(7,), z_dim=3, likelihood="bernoulli")
    with pytest.raises(ValueError, match="posterior other than the diagonal Gaussian"):
        torch_twins.mlp_twin(model)
