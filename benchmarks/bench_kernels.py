"""Which kernels OpenBLAS runs, and what they cost: the family's matrix products under
each choice of OPENBLAS_CORETYPE.

    python benchmarks/bench_kernels.py [--kernels environment auto Haswell SkylakeX]
                                       [--threads 1 2] [--rounds 5] [--quick]

OpenBLAS (in the NumPy wheels) is built for many CPUs at once and picks its kernels
when it loads, from the CPU, unless OPENBLAS_CORETYPE names them. A machine's
environment can pin older kernels than its CPU runs (this project's AMD EPYC sets
OPENBLAS_CORETYPE=Haswell, AVX2, on a CPU with AVX-512), and every product of a
training step or an evaluation then runs at their speed. The training and evaluation
commands say so in one line (numpyvae.threads.kernel_notice); this script measures it.

Each setting is a process of its own, since the kernels are fixed when OpenBLAS loads:
"environment" keeps OPENBLAS_CORETYPE as this shell has it, "auto" removes it (OpenBLAS's
own choice), any other word sets it. The processes alternate over the rounds; each
times one training step's matrix products of every family shape (bench_family.py's
shapes, benchmarks/aevb_models.py) and the IWAE decoder's 512-row products of an
importance-sampled evaluation, at each thread count, and reports the kernels OpenBLAS
says it runs. Figures are medians over rounds of the best of a few timings.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# Every process gets its OPENBLAS_CORETYPE in its environment at start, so NumPy (and its
# BLAS) may load with these imports.
import numpy
from aevb_models import FAMILY, matmul_shapes  # beside this script
from timing import THREAD_VARIABLES, best_seconds, matmul_runner

from numpyvae.fused_weights import BLOCK_ROWS  # an evaluation's block of decoder rows
from numpyvae.threads import blas_pool

MARKER = "BENCH_KERNELS_RESULT "


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", nargs="+", default=["environment", "auto", "Haswell",
                                                         "SkylakeX"],
                        help="settings of OPENBLAS_CORETYPE: 'environment' (as it is), "
                             "'auto' (unset) or a kernel name")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of alternating processes")
    parser.add_argument("--quick", action="store_true",
                        help="one round, few repeats, the first two settings (for the test suite)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rounds < 1 or min(arguments.threads) < 1:
        parser.exit(2, "error: --rounds and --threads must be positive.\n")
    if arguments.quick:
        arguments.rounds, arguments.kernels = 1, arguments.kernels[:2]
    return arguments


def workloads():
    """name -> the (m, k, n) of its products: a training step of each family shape, and
    the IWAE architecture's decoder on one block of an evaluation."""
    loads = {}
    for name, shape in FAMILY.items():
        model = shape["model"]
        rows = shape["batch"] * model.get("k", 1)
        x_dim = model["x_dim"] + model.get("n_classes", 0)
        loads[name] = matmul_shapes(x_dim, model["hidden"], model["z_dim"],
                                    model["likelihood"], rows)
    iwae = FAMILY["iwae-arch-k1"]["model"]
    widths = [iwae["z_dim"], *iwae["hidden"][::-1], iwae["x_dim"]]
    loads[f"evaluation: IWAE decoder, {BLOCK_ROWS} rows"] = [
        (BLOCK_ROWS, a, b) for a, b in zip(widths[:-1], widths[1:])]
    return loads


def child(arguments):
    threads = int(arguments.child)
    pool = blas_pool() or {}
    result = {"kernels": pool.get("architecture") or pool.get("internal_api", "?"),
              "threads": threads, "gflops": {}}
    for name, shapes in workloads().items():
        run = matmul_runner(shapes)
        flops = 2 * sum(m * k * n for m, k, n in shapes)
        repeats = 2 if arguments.quick else max(3, int(2e9 / flops))
        result["gflops"][name] = flops / best_seconds(run, repeats, tries=1 if arguments.quick
                                                      else 3) / 1e9
    print(MARKER + json.dumps(result))


def run_child(setting, threads, arguments):
    environment = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    if setting == "auto":
        environment.pop("OPENBLAS_CORETYPE", None)
    elif setting != "environment":
        environment["OPENBLAS_CORETYPE"] = setting
    command = [sys.executable, os.path.abspath(__file__), "--child", str(threads)]
    completed = subprocess.run(command + (["--quick"] if arguments.quick else []),
                               env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"error: the child for {setting}, {threads} thread(s) failed:\n"
                 f"{completed.stderr}")
    line = next(line for line in completed.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER):])


def main():
    arguments = parse_arguments()
    if arguments.child is not None:
        return child(arguments)
    runs = {(setting, threads): [] for setting in arguments.kernels
            for threads in arguments.threads}
    for round_number in range(arguments.rounds):
        order = list(runs) if round_number % 2 == 0 else list(runs)[::-1]
        for setting, threads in order:
            runs[setting, threads].append(run_child(setting, threads, arguments))
    print(f"NumPy {numpy.__version__}; OPENBLAS_CORETYPE in this environment: "
          f"{os.environ.get('OPENBLAS_CORETYPE', '(not set)')}; {os.cpu_count()} cores; "
          f"float32 matrix products, GFLOP/s, medians of {arguments.rounds} round(s)\n")
    columns = [(setting, threads, runs[setting, threads][0]["kernels"])
               for setting, threads in runs]
    print("| products of | " + " | ".join(f"{setting} ({kernels}), {threads} thr."
                                          for setting, threads, kernels in columns) + " |")
    print("|---|" + "---|" * len(columns))
    names = list(runs[columns[0][:2]][0]["gflops"])
    for name in names:
        cells = []
        for setting, threads, _ in columns:
            value = statistics.median(r["gflops"][name] for r in runs[setting, threads])
            same_threads = statistics.median(r["gflops"][name]
                                             for r in runs[columns[0][0], threads])
            cells.append(f"{value:.0f} ({value / same_threads:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n(x: against {columns[0][0]} at the same thread count.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
