"""What a second core buys a NumPy training step here: BLAS threads and Python threads.

    python benchmarks/bench_threads.py [--rounds 3]

A numpyvae step is matrix products (threaded by the BLAS NumPy links) plus element-wise
work (NumPy runs it on one thread). This script measures both ways a NumPy program can
put a second core to work, on the matrix products of AEVB's Frey and MNIST steps and on
the Adagrad update of the MNIST model's 816k parameters:

* BLAS threads: the products through NumPy (OpenBLAS in the NumPy wheels) and, when
  PyTorch is installed, through ``torch.mm`` (MKL in its x86 builds), with 1 and 2
  threads;
* Python threads, BLAS single-threaded: every large product split in two halves, one
  computed on a worker thread while the calling thread computes the other (NumPy
  releases the GIL inside a product), and the Adagrad update split the same way, each
  thread updating half of the parameters with numpyvae's blocked flat update.

A BLAS fixes its thread count when it loads, so each configuration runs in a process of
its own (the parent sets the thread counts in the child's environment); the processes
alternate over the rounds and every figure is a median.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading

import numpy as np
from aevb_models import MODELS, matmul_shapes  # beside this script
from timing import best_seconds, matmul_runner

import numpyvae as nv

ADAGRAD_MODEL = "mnist"


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating processes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


# ------------------------------------------------------------ in the child process
class Worker:
    """One thread that runs a function when told to; the caller waits for it.

    Two locks, not a queue: the handoff is the cost being measured, so it is kept
    as small as Python allows."""

    def __init__(self):
        self.start_signal, self.done_signal = threading.Lock(), threading.Lock()
        self.start_signal.acquire()
        self.done_signal.acquire()
        self.job = None
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            self.start_signal.acquire()
            function, arguments = self.job
            function(*arguments)
            self.done_signal.release()

    def run_beside(self, background, foreground):
        """background() on the worker while foreground() runs here; both finish."""
        self.job = (background, ())
        self.start_signal.release()
        foreground()
        self.done_signal.acquire()


def adagrad_timer(worker):
    """A function that runs one Adagrad step over the MNIST model's parameter count:
    one optimizer over the whole buffer, or two over its halves (one on the worker)."""
    size = nv.VAE(*MODELS[ADAGRAD_MODEL][:3], likelihood=MODELS[ADAGRAD_MODEL][3]).params.flat.size
    rng = np.random.default_rng(0)
    parts = [size] if worker is None else [size // 2, size - size // 2]
    steps = []
    for part in parts:
        params = nv.parameters.ParameterDict([("theta", (part,))])
        grads = params.zeros_like()
        grads.flat[...] = rng.standard_normal(part, dtype=np.float32)
        # A tiny learning rate keeps the parameters where they are: every repeat
        # times the same arithmetic.
        optimizer = nv.optim.Adagrad(lr=1e-12)
        steps.append(lambda optimizer=optimizer, params=params, grads=grads:
                     optimizer.step(params, grads))
    if worker is None:
        return steps[0]
    return lambda: worker.run_beside(steps[1], steps[0])


def child(configuration):
    """Print, as JSON, seconds per step of the products (and of Adagrad, for NumPy)."""
    library, threads, split = configuration.split(":")
    worker = Worker() if split == "split" else None
    results = {}
    for name in ("frey", "mnist"):
        x_dim, hidden, z_dim, likelihood, _, batch = MODELS[name]
        shapes = matmul_shapes(x_dim, hidden, z_dim, likelihood, batch)
        results[name] = best_seconds(matmul_runner(shapes, library, worker), 30)
        results[f"{name}_flops"] = sum(2 * m * k * n for m, k, n in shapes)
    if library == "numpy":
        results["adagrad"] = best_seconds(adagrad_timer(worker), 30)
    if worker is not None:
        results["handoff"] = best_seconds(lambda: worker.run_beside(int, int), 1000)
    print(json.dumps(results))
    return 0


# ------------------------------------------------------------ in the parent process
CONFIGURATIONS = [
    # (label, library:BLAS threads:split, cores used); {blas} is NumPy's BLAS
    ("NumPy ({blas}), 1 thread", "numpy:1:whole", 1),
    ("NumPy ({blas}), 2 threads", "numpy:2:whole", 2),
    ("NumPy ({blas}) 1 thread, work split over 2 Python threads", "numpy:1:split", 2),
    ("PyTorch (torch.mm), 1 thread", "torch:1:whole", 1),
    ("PyTorch (torch.mm), 2 threads", "torch:2:whole", 2),
]


def numpy_blas_name():
    """The BLAS NumPy was built against, e.g. scipy-openblas (NumPy 1.26 and later)."""
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy, or a build that does not record it
        return "its BLAS"


def run_child(configuration):
    threads = configuration.split(":")[1]
    environment = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                       MKL_NUM_THREADS=threads)
    completed = subprocess.run([sys.executable, __file__, "--child", configuration],
                               env=environment, capture_output=True, text=True,
                               cwd=os.path.dirname(os.path.abspath(__file__)))
    if completed.returncode != 0:
        raise RuntimeError(f"{configuration} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    arguments = parse_arguments()
    if arguments.child:
        return child(arguments.child)
    try:
        import torch
    except ImportError:
        torch = None
    blas = numpy_blas_name()
    configurations = [(label.format(blas=blas), configuration, cores)
                      for label, configuration, cores in CONFIGURATIONS
                      if torch is not None or not configuration.startswith("torch")]
    samples = {entry[1]: [] for entry in configurations}
    for _ in range(arguments.rounds):
        for _, configuration, _ in configurations:
            samples[configuration].append(run_child(configuration))
    medians = {configuration: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for configuration, runs in samples.items()}

    print(f"NumPy {np.__version__}, PyTorch {torch.__version__ if torch else 'not installed'}, "
          f"{os.cpu_count()} cores, float32, medians of {arguments.rounds} processes each; "
          "products: every matrix product of one training step at batch 100")
    print()
    print("| configuration | Frey products, ms/step | GFLOP/s | MNIST products, ms/step | GFLOP/s "
          f"| Adagrad, {ADAGRAD_MODEL} model, ms/step |")
    print("|---|---|---|---|---|---|")
    for label, configuration, _ in configurations:
        row = medians[configuration]
        adagrad = f"{row['adagrad'] * 1e3:.2f}" if "adagrad" in row else "n/a"
        print(f"| {label} | {row['frey'] * 1e3:.2f} | {row['frey_flops'] / row['frey'] / 1e9:.0f} | "
              f"{row['mnist'] * 1e3:.2f} | {row['mnist_flops'] / row['mnist'] / 1e9:.0f} | {adagrad} |")
    print()
    for label, configuration, cores in configurations:
        if cores == 2:
            single = medians[configuration.replace(":2:", ":1:").replace(":split", ":whole")]
            text = (f"{label}: the second core speeds the products up "
                    f"{single['frey'] / medians[configuration]['frey']:.2f}x (Frey), "
                    f"{single['mnist'] / medians[configuration]['mnist']:.2f}x (MNIST)")
            if "adagrad" in medians[configuration]:
                text += f", the Adagrad update {single['adagrad'] / medians[configuration]['adagrad']:.2f}x"
            print(text)
    handoff = medians.get("numpy:1:split", {}).get("handoff")
    if handoff:
        print(f"Handing an empty job to the worker thread and waiting for it: {handoff * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
