"""The benchmark scripts run and print their tables, and their list of a training
step's matrix products matches the model. (Their figures are timings, reported by
running them, never asserted here.)"""
import math
import pathlib
import subprocess
import sys

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
    ("bench_evaluation.py", ["--quick"], "| iwae: 784-200-200-50 | 64 | 2 | "),
])
def test_benchmark_script_prints_its_table(script, arguments, expected):
    if script == "bench_shared_machine.py":
        need_data("frey")   # it runs the training command on Frey Face
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout
