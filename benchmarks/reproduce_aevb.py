"""Reproduce AEVB Figure 2 (Kingma & Welling 2013) with numpyvae and print ours vs the paper.

    python benchmarks/reproduce_aevb.py                      # train what is missing, then report
    python benchmarks/reproduce_aevb.py --report-only        # only read finished runs
    python benchmarks/reproduce_aevb.py --mnist-n-test all   # K = 5000 on all 10000 test images

Runs (AEVB's architecture and optimizer: tanh MLP, Adagrad, minibatch 100, L = 1,
N(0, 0.01^2) init, N(0, I) weight prior; numpyvae.train's defaults):

    frey-z10    Frey Face, z = 10, 200 hidden units, Gaussian decoder, to 10^7 samples
    frey-z2     Frey Face, z = 2,  200 hidden units, to 10^6 samples
    bmnist-z20  binarized MNIST (Larochelle & Murray), z = 20, 500 hidden, Bernoulli, to 10^6

Each lives in RUNS_DIR/<name>; a run that already reached its budget is reused, a
shorter one is resumed. The train/test ELBOs are those metrics.jsonl recorded at
exactly 10^6 and 10^7 samples (one noise draw per example; Frey: all 1600 train and
365 test faces; MNIST: fixed 1000-image subsets). For MNIST, numpyvae.evaluate then
adds the test ELBO averaged over 10 draws and the importance-sampled log p(x), K = 5000.

Paper values are read off AEVB Figure 2 by eye (about +-5 nats). Pixel scaling:
numpyvae divides grey levels by 255; Kingma's code divides Frey by 256, which raises a
continuous-density bound by 560 * log(256/255) = 2.19 nats (column "ours /256").
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

FREY_SHIFT_256 = 560 * math.log(256 / 255)  # nats, /256 instead of /255 on 560 pixels

EXPERIMENTS = {
    "frey-z10": dict(flags=["--dataset", "frey", "--z-dim", "10"], budget=10 ** 7,
                     paper={10 ** 6: (756, 791), 10 ** 7: (1216, 1170)}, continuous=True),
    "frey-z2": dict(flags=["--dataset", "frey", "--z-dim", "2"], budget=10 ** 6,
                    paper={10 ** 6: (664, 673)}, continuous=True),
    "bmnist-z20": dict(flags=["--dataset", "binarized-mnist", "--z-dim", "20", "--hidden", "500"],
                       budget=10 ** 6, paper={10 ** 6: (-126.5, -124.3)}, continuous=False),
}


def read_json_lines(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def samples_seen(run_dir):
    """samples_seen of a run's checkpoint, or None when there is none."""
    from numpyvae import checkpoint

    try:
        return checkpoint.load(Path(run_dir) / "checkpoint.npz")[2]["samples_seen"]
    except checkpoint.CheckpointError:
        return None


def run_command(command, log_path):
    """Run a numpyvae command, its progress going to the terminal and a log; wall time."""
    print("$ " + " ".join(command), flush=True)
    start = time.monotonic()
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:
            sys.stderr.write(line)
            log.write(line)
        code = process.wait()
    if code != 0:
        sys.exit(f"{' '.join(command)} failed with status {code}; see {log_path}")
    return time.monotonic() - start


def train(name, spec, runs_dir, report_only):
    run_dir = runs_dir / name
    seen = samples_seen(run_dir) if run_dir.exists() else None
    if seen is not None and seen >= spec["budget"]:
        return run_dir, None
    if report_only:
        sys.exit(f"{run_dir} has not reached {spec['budget']} samples; run without --report-only.")
    python = [sys.executable, "-m", "numpyvae.train"]
    if seen is None:
        command = python + spec["flags"] + ["--samples", str(spec["budget"]), "--out", str(run_dir)]
    else:
        command = python + ["--resume", str(run_dir), "--samples", str(spec["budget"])]
    runs_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, run_command(command, runs_dir / f"{name}.log")


def find_result(run_dir, k, n_test, split="test", seen=None):
    """The evaluation of ``run_dir`` after ``seen`` training samples (default: its
    checkpoint's) with K = k on n_test examples of ``split`` (a fixed random subset, or
    "all"), or None."""
    from numpyvae.evaluate import read_results

    seen = samples_seen(run_dir) if seen is None else seen
    for result in read_results(run_dir).values():
        if (result.get("kind") is None and result["split"] == split and result["k"] == k
                and result["samples_seen"] == seen
                and (result["subset"] == "all" if n_test == "all"
                     else result["n_examples"] == int(n_test) and result["subset"] != "all")):
            return result
    return None


def evaluate(run_dir, k, n_test, runs_dir, report_only, split="test"):
    result = find_result(run_dir, k, n_test, split)
    if result is not None:
        return result, None
    if report_only:
        sys.exit(f"{run_dir} has no evaluation with K={k} on {n_test} {split} images.")
    command = [sys.executable, "-m", "numpyvae.evaluate", str(run_dir), "--k", str(k),
               "--n-test", str(n_test), "--split", split]
    seconds = run_command(command, runs_dir / f"{run_dir.name}-evaluate.log")
    return find_result(run_dir, k, n_test, split), seconds


def command_text(config):
    command = config.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def record_at(run_dir, samples):
    for record in read_json_lines(run_dir / "metrics.jsonl"):
        if record["samples_seen"] == samples:
            return record
    raise SystemExit(f"{run_dir}/metrics.jsonl has no evaluation at exactly {samples} samples.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", default="runs/aevb", type=Path,
                        help="where the runs live (default runs/aevb)")
    parser.add_argument("--report-only", action="store_true",
                        help="read finished runs; train or evaluate nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), help="a subset of the runs")
    parser.add_argument("--mnist-k", type=int, default=5000, help="importance samples (5000)")
    parser.add_argument("--mnist-n-test", default="2000",
                        help="binarized-MNIST test images (fixed random subset) for log p(x), or 'all' (2000)")
    args = parser.parse_args(argv)

    from numpyvae import figures

    rows, notes = [], []
    for name in args.only or EXPERIMENTS:
        spec = EXPERIMENTS[name]
        run_dir, seconds = train(name, spec, args.runs_dir, args.report_only)
        config = json.loads((run_dir / "config.json").read_text())
        for samples, (paper_train, paper_test) in spec["paper"].items():
            record = record_at(run_dir, samples)
            rows.append(dict(run=name, samples=samples, paper=(paper_train, paper_test),
                             ours=(record["train_elbo"], record["test_elbo"]),
                             shift=FREY_SHIFT_256 if spec["continuous"] else None,
                             train_seconds=record["wall_seconds"]))
        records = read_json_lines(run_dir / "metrics.jsonl")
        reference = [(samples, *values) for samples, values in spec["paper"].items()]
        figure = figures.learning_curve(records, run_dir / "figures" / "learning_curve_vs_aevb.png",
                                        title=f"{name}: numpyvae (lines) vs AEVB Fig. 2 (markers)",
                                        reference={"AEVB": reference})
        notes.append(f"{name}: learning curve with the paper's points: {figure}")
        last = records[-1]
        notes.append(f"{name}: {last['samples_seen']:.3g} samples in {last['wall_seconds']:.0f} s of "
                     f"training ({last['samples_seen'] / last['wall_seconds']:.0f} samples/s)"
                     + (f", this invocation {seconds:.0f} s wall" if seconds else "")
                     + f"; command: {command_text(config)}")
        if name == "bmnist-z20":
            result, eval_seconds = evaluate(run_dir, args.mnist_k, args.mnist_n_test,
                                            args.runs_dir, args.report_only)
            notes.append(
                f"{name} test ELBO (10 draws) on all {result['whole_split_examples']} test images: "
                f"{result['elbo_whole_split']:.2f}; on the {result['subset']} subset: ELBO "
                f"{result['elbo']:.2f} +- {result['elbo_standard_error']:.2f}, log p(x) (K="
                f"{result['k']}) {result['log_likelihood']:.2f} +- "
                f"{result['log_likelihood_standard_error']:.2f} nats; IS took "
                f"{result['log_likelihood_seconds']:.0f} s")

    print()
    print("| run | samples | paper train / test | numpyvae train / test | numpyvae /256 train / test | training time to here |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        paper = f"{row['paper'][0]:g} / {row['paper'][1]:g}"
        ours = f"{row['ours'][0]:.1f} / {row['ours'][1]:.1f}"
        shifted = ("n/a (binary data)" if row["shift"] is None else
                   f"{row['ours'][0] + row['shift']:.1f} / {row['ours'][1] + row['shift']:.1f}")
        print(f"| {row['run']} | {row['samples']:.0e} | {paper} | {ours} | {shifted} | "
              f"{row['train_seconds']:.0f} s |")
    print()
    for note in notes:
        print("- " + note)
    print(f"- ELBO in nats per datapoint, weight prior excluded. /256: + 560 log(256/255) = "
          f"{FREY_SHIFT_256:.2f} nats (Frey only). Paper values read off AEVB Figure 2.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
