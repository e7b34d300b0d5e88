"""Training throughput of numpyvae against the identical PyTorch model, side by side.

    python benchmarks/bench_training.py [--threads 2] [--rounds 7] [--steps 60]

For each model (AEVB's Frey and MNIST architectures, batch 100, Adagrad, float32):

1. builds the numpyvae model and, when PyTorch is installed, the same model in
   PyTorch with the same initial weights (its twin, from torch_twins.py), and checks that the first steps' losses
   agree to float32 precision when both are fed the same noise (this cross-checks
   numpyvae's hand-written gradients against autograd);
2. times training steps of both, interleaved (numpyvae, PyTorch, numpyvae, ...), each
   drawing its own noise as a user's loop would, and reports the medians;
3. times the step's matrix products alone (same shapes, preallocated outputs): the
   bound no implementation of this model on this BLAS can beat. With PyTorch
   installed it times the same products through ``torch.mm`` too, which calls
   PyTorch's own BLAS (MKL on x86 builds): the bound PyTorch works against;
4. prints samples/s, the ratio to PyTorch, GFLOP/s, the fraction of each bound, peak
   memory, and whether the targets of issue #5 (1.25x PyTorch, 60% of the bound)
   are met in this run.

numpyvae is timed through its public API: ``model.loss_and_grads(x, rng=rng)`` then
``opt.step(model.params, grads)`` -- the same path the training command uses.
PyTorch is a benchmark extra (``pip install -e ".[bench]"``), never a dependency.
"""
import argparse
import os
import statistics
import sys
import time
import tracemalloc


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=60, help="training steps per round")
    parser.add_argument("--models", nargs="+", default=["frey", "mnist"],
                        choices=["frey", "mnist", "large"])  # the keys of aevb_models.MODELS
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"],
                        help="numpyvae's array backend (PyTorch stays on the CPU)")
    return parser.parse_args()


ARGUMENTS = parse_arguments()
# Thread counts must be fixed before NumPy / PyTorch load their BLAS.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGUMENTS.threads)

import numpy as np  # noqa: E402
from aevb_models import MODELS, matmul_shapes  # noqa: E402  (beside this script)
from timing import IDLE_PAUSE, best_seconds, matmul_runner, numpyvae_runner  # noqa: E402

import numpyvae as nv  # noqa: E402

try:
    if ARGUMENTS.no_torch:
        raise ImportError
    import torch  # noqa: E402
    torch.set_num_threads(ARGUMENTS.threads)
except ImportError:
    torch = None
if torch is not None:
    from torch_twins import cross_check, mlp_twin, optimizer_pair, torch_runner  # noqa: E402

# The targets of issue #5, checked at the end of every run.
TARGET_RATIO_TO_PYTORCH = 1.25
TARGET_FRACTION_OF_BOUND = 0.60


def make_data(x_dim, likelihood, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, x_dim), dtype=np.float32)
    return (x > 0.5).astype(np.float32) if likelihood == "bernoulli" else x


# ----------------------------------------------------------------- the bounds
def time_matmuls(shapes, repeats, library="numpy"):
    """Seconds per step spent in the step's matrix products alone: through NumPy
    (numpyvae's BLAS) or through ``torch.mm`` (PyTorch's own BLAS, MKL on x86)."""
    return best_seconds(matmul_runner(shapes, library), repeats)


def peak_step_memory(run):
    tracemalloc.start()
    run(3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def benchmark(name):
    x_dim, hidden, z_dim, likelihood, lr, batch = MODELS[name]
    data = make_data(x_dim, likelihood)
    build = dict(x_dim=x_dim, hidden=hidden, z_dim=z_dim, likelihood=likelihood, seed=0)

    row = {"name": name, "model": f"{name}: {x_dim}-{'-'.join(map(str, hidden))}-z{z_dim}, {likelihood}, batch {batch}"}
    if torch is not None and ARGUMENTS.backend == "numpy":
        model, twin = nv.VAE(**build), mlp_twin(nv.VAE(**build))
        # PyTorch's default Adagrad (its for-loop over tensors on the CPU)
        check = cross_check(model, twin, data, batch,
                            optimizer_pair(("adagrad", {"lr": lr}), model, twin, foreach=None))
        row["agreement"] = (check["losses"][0], check["worst_grad"][1], max(check["losses"]))

    model = nv.VAE(**build)
    ours = numpyvae_runner(model, nv.optim.Adagrad(lr=lr), data, batch)
    runners = {"numpyvae": ours}
    if torch is not None:
        twin = mlp_twin(nv.VAE(**build))
        torch_optimizer = optimizer_pair(("adagrad", {"lr": lr}), model, twin, foreach=None)[1]
        runners["pytorch"] = torch_runner(twin, torch_optimizer, data, batch, (batch, z_dim))
    for run in runners.values():
        run(10)  # warm-up
    speeds = {key: [] for key in runners}
    for _ in range(ARGUMENTS.rounds):
        for key, run in runners.items():
            # OpenBLAS and PyTorch's OpenMP keep their worker threads spinning for a
            # while after each call; a pause lets them go idle, so neither runner
            # is timed while the other's threads still occupy the cores.
            time.sleep(IDLE_PAUSE)
            start = time.perf_counter()
            run(ARGUMENTS.steps)
            speeds[key].append(ARGUMENTS.steps * batch / (time.perf_counter() - start))
    row.update({key: statistics.median(values) for key, values in speeds.items()})

    time.sleep(IDLE_PAUSE)
    shapes = matmul_shapes(x_dim, hidden, z_dim, likelihood, batch)
    flops = sum(2 * m * k * n for m, k, n in shapes)
    matmul_seconds = time_matmuls(shapes, max(5, ARGUMENTS.steps // 2))
    row["bound"] = batch / matmul_seconds
    if torch is not None:
        time.sleep(IDLE_PAUSE)
        row["torch_bound"] = batch / time_matmuls(shapes, max(5, ARGUMENTS.steps // 2), "torch")
    row["gflops"] = flops * row["numpyvae"] / batch / 1e9
    row["peak_mib"] = peak_step_memory(ours) / 2**20 if ARGUMENTS.backend == "numpy" else float("nan")
    return row


def main():
    nv.backend.set_backend(ARGUMENTS.backend)
    print(f"numpyvae {nv.__version__}, NumPy {np.__version__}, "
          f"PyTorch {torch.__version__ if torch else 'not installed'}, "
          f"backend {ARGUMENTS.backend}, threads {ARGUMENTS.threads}, float32, Adagrad, "
          f"medians of {ARGUMENTS.rounds} interleaved rounds of {ARGUMENTS.steps} steps")
    rows = [benchmark(name) for name in ARGUMENTS.models]
    print()
    print("| model | numpyvae samples/s | PyTorch samples/s | ratio | NumPy matmul bound samples/s "
          "| numpyvae fraction of it | PyTorch matmul bound samples/s | PyTorch fraction of it "
          "| GFLOP/s | peak step memory (numpyvae) | agreement with PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        torch_speed = row.get("pytorch")
        torch_bound = row.get("torch_bound")
        torch_text = f"{torch_speed:,.0f}" if torch_speed else "n/a"
        ratio_text = f"{row['numpyvae'] / torch_speed:.2f}x" if torch_speed else "n/a"
        torch_bound_text = f"{torch_bound:,.0f}" if torch_bound else "n/a"
        torch_fraction_text = f"{torch_speed / torch_bound:.0%}" if torch_bound else "n/a"
        agreement_text = ("loss {:.0e}, grads {:.0e}; 5 steps {:.0e}".format(*row["agreement"])
                          if "agreement" in row else "n/a")
        print(f"| {row['model']} | {row['numpyvae']:,.0f} | {torch_text} | {ratio_text} | "
              f"{row['bound']:,.0f} | {row['numpyvae'] / row['bound']:.0%} | {torch_bound_text} | "
              f"{torch_fraction_text} | {row['gflops']:.1f} | {row['peak_mib']:.1f} MiB | "
              f"{agreement_text} |")
    print()
    for row in rows:
        fraction = row["numpyvae"] / row["bound"]
        verdicts = [f"{fraction:.0%} of the NumPy matmul bound "
                    f"({'met' if fraction >= TARGET_FRACTION_OF_BOUND else 'NOT met'}: "
                    f"target {TARGET_FRACTION_OF_BOUND:.0%})"]
        if row.get("pytorch"):
            ratio = row["numpyvae"] / row["pytorch"]
            verdicts.insert(0, f"{ratio:.2f}x PyTorch "
                               f"({'met' if ratio >= TARGET_RATIO_TO_PYTORCH else 'NOT met'}: "
                               f"target {TARGET_RATIO_TO_PYTORCH}x)")
        print(f"{row['name']}: " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
