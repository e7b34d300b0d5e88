"""What the training command costs beyond its training steps (issue 18, goal 4).

    python benchmarks/bench_command_cost.py [--datasets frey mnist] [--rounds 1]
                                            [--threads 1] [--samples N] [--quick]

For each data set, ``python -m numpyvae.train --dataset D --threads T`` at its default
budget (Frey 3e6 samples, MNIST 1e6: what a user runs), without figures, and the bare
step timed in a child process with the same thread count: the minibatch gathered
(and binarized afresh, as the command does), ``loss_and_grads`` and the optimizer's
step, nothing else, for as many samples as the command trains and from the same start (a
run of the command stopped after its first step, resumed by the bare loop: the same
model, data order and noise, so both time the same stretch of training, whose steps
need not all cost the same). The command's figure
is its own "Done: N samples seen in S s of training", which counts everything its loop
does besides the steps: the log-spaced evaluations on the fixed train and test subsets,
the progress line, the divergence check, checkpoints, the thread re-count. Rounds
alternate command and bare loop; medians. The goal: the command at most 5% slower than
the bare step.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

DONE = re.compile(r"Done: (\d+) samples seen in ([\d.]+) s of training")
MARKER = "BARE "
DEFAULT_SAMPLES = {"frey": 3_000_000, "mnist": 1_000_000}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["frey", "mnist"],
                        choices=sorted(DEFAULT_SAMPLES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", default="1", help="--threads of the command (default 1)")
    parser.add_argument("--samples", type=int, help="budget (default: the data set's own)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long trial (the suite)")
    parser.add_argument("--bare-child", nargs=2, metavar=("RUN_DIR", "STEPS"),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def bare_child(run_dir, steps):
    """Time ``steps`` bare steps of the run in RUN_DIR (resumed from its checkpoint, at
    its first step) and print samples per second after a MARKER."""
    from numpyvae import threads
    from numpyvae.train import load_run
    run, _ = load_run(run_dir)
    threads.ThreadChooser(fixed=None if ARGUMENTS.threads == "auto" else int(ARGUMENTS.threads))
    model, optimizer, data = run.model, run.optimizer, run.data
    batch_size = run.settings["batch_size"]
    permutation, position = run.permutation, run.position

    def step():
        nonlocal permutation, position
        if position >= len(permutation):
            permutation, position = run.data_rng.permutation(data.n_train), 0
        indices = permutation[position:position + batch_size]
        position += len(indices)
        images, labels = data.batch(indices, run.binarize_rng)
        x, condition = model.inputs(images, labels)
        _, grads = model.loss_and_grads(x, condition=condition, rng=run.noise_rng,
                                        beta=run.beta)
        optimizer.step(model.params, grads)
        return len(indices)

    start, seen = time.monotonic(), 0
    for _ in range(steps):
        seen += step()
    print(MARKER + json.dumps({"rate": seen / (time.monotonic() - start)}), flush=True)


def command_rate(dataset, samples, threads, out):
    done = subprocess.run([sys.executable, "-m", "numpyvae.train", "--dataset", dataset,
                           "--samples", str(samples), "--threads", threads, "--no-figures",
                           "--out", out], capture_output=True, text=True)
    match = DONE.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"the training command failed:\n{done.stderr[-2000:]}")
    seconds = float(match.group(2))
    return int(match.group(1)) / seconds if seconds else None


def bare_rate(run_dir, steps, threads):
    environment = dict(os.environ)
    if threads != "auto":
        environment.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--threads", threads,
                           "--bare-child", run_dir, str(steps)],
                          env=environment, capture_output=True, text=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"the bare loop failed:\n{done.stderr[-2000:]}")
    return json.loads(line[len(MARKER):])["rate"]


def main():
    rows = []
    rounds = 1 if ARGUMENTS.quick else ARGUMENTS.rounds
    with tempfile.TemporaryDirectory() as directory:
        for dataset in ARGUMENTS.datasets:
            samples = 2000 if ARGUMENTS.quick else (ARGUMENTS.samples or DEFAULT_SAMPLES[dataset])
            commands, bares = [], []
            for round_ in range(rounds):
                start = os.path.join(directory, f"{dataset}-start-{round_}")
                command_rate(dataset, 1, ARGUMENTS.threads, start)     # one step, then stop
                bares.append(bare_rate(start, samples // 100, ARGUMENTS.threads))
                out = os.path.join(directory, f"{dataset}-{round_}")
                commands.append(command_rate(dataset, samples, ARGUMENTS.threads, out))
            command, bare = statistics.median(commands), statistics.median(bares)
            rows.append((dataset, samples, command, bare))
    print(f"python -m numpyvae.train --dataset D --threads {ARGUMENTS.threads} --no-figures "
          f"against its bare step; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; samples/s, medians of {rounds} round(s)\n")
    print("| data set | samples | command | bare step | the command's own cost | goal (<= 5%) |")
    print("|---|---|---|---|---|---|")
    for dataset, samples, command, bare in rows:
        cost = bare / command - 1
        print(f"| {dataset} | {samples:.0e} | {command:,.0f} | {bare:,.0f} | {cost:+.1%} | "
              f"{'met' if cost <= 0.05 else 'not met'} |")


ARGUMENTS = parse_arguments()

if __name__ == "__main__":
    if ARGUMENTS.bare_child:
        bare_child(ARGUMENTS.bare_child[0], int(ARGUMENTS.bare_child[1]))
    else:
        main()
