"""The training command on a quiet machine and beside a CPU-bound process (issue 18, goal 1).

    python benchmarks/bench_shared_machine.py [--samples 300000] [--rounds 2] [--quick]

Runs ``python -m numpyvae.train --dataset frey`` (the default model) for ``--samples``
samples with ``--threads auto``, ``2`` and ``1``: alone, and while one other process
spins on one core (a busy Python loop, as any CPU-bound job would). Every figure is
training samples per second as the command reports it (its "Done" line: training
time, without start-up), the median over the rounds; configurations alternate within
each round. The goal: with a competitor, auto at most 1.2x slower than alone, while
alone it keeps the two-thread speed.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

DONE = re.compile(r"Done: (\d+) samples seen in ([\d.]+) s of training")
SETTINGS = ("auto", "2", "1")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dataset", default="frey")
    parser.add_argument("--quick", action="store_true", help="a seconds-long check that it runs")
    return parser.parse_args()


def train_rate(dataset, samples, threads, directory):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = os.path.join(directory, f"run-{threads}-{time.monotonic_ns()}")
    done = subprocess.run([sys.executable, "-m", "numpyvae.train", "--dataset", dataset,
                           "--samples", str(samples), "--threads", threads, "--no-figures",
                           "--out", out], env=environment, capture_output=True, text=True)
    match = DONE.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"the training command failed:\n{done.stderr[-2000:]}")
    return int(match.group(1)) / float(match.group(2))


def competitor():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    args = parse_arguments()
    samples, rounds = (1000, 1) if args.quick else (args.samples, args.rounds)
    rates = {(load, threads): [] for load in ("alone", "beside one busy process")
             for threads in SETTINGS}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(rounds):
            for threads in SETTINGS:
                rates[("alone", threads)].append(train_rate(args.dataset, samples, threads,
                                                            directory))
                rival = competitor()
                try:
                    rates[("beside one busy process", threads)].append(
                        train_rate(args.dataset, samples, threads, directory))
                finally:
                    rival.kill()
                    rival.wait()
    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"python -m numpyvae.train --dataset {args.dataset} --samples {samples}, "
          f"{os.cpu_count()} cores, median of {rounds} round(s); samples/s of training\n")
    print("| --threads | alone | beside one busy process | slowdown |")
    print("|---|---|---|---|")
    for threads in SETTINGS:
        alone, shared = median[("alone", threads)], median[("beside one busy process", threads)]
        print(f"| {threads} | {alone:,.0f} | {shared:,.0f} | {alone / shared:.2f}x |")
    slowdown = median[("alone", "auto")] / median[("beside one busy process", "auto")]
    kept = median[("alone", "auto")] / median[("alone", "2")]
    print(f"\nauto: {slowdown:.2f}x slower beside a busy process (goal <= 1.2x: "
          f"{'met' if slowdown <= 1.2 else 'not met'}); alone at {kept:.0%} of two threads' "
          "speed")


if __name__ == "__main__":
    main()
