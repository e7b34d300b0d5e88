"""AEVB's latent-size sweeps (Kingma & Welling 2013, Figure 2) and its Figure 3, with
numpyvae, printed beside the paper's values.

    python benchmarks/reproduce_aevb_sweeps.py [--budget 1e7] [--only frey mnist figure3]
    python benchmarks/reproduce_aevb_sweeps.py --report-only     # the table from runs on disk
    python benchmarks/reproduce_aevb_sweeps.py --quick           # a minutes-long trial

Figure 2: the ELBO against training samples for every latent size the paper shows,
binarized MNIST N_z in {3, 5, 10, 20, 200} with 500 hidden units and Frey Face N_z in
{2, 5, 10, 20} with 200 (AEVB's settings: numpyvae.train's defaults). One figure per
data set holds every N_z's train and test curves, with the paper's test values at 10^6,
10^7 and 10^8 samples as markers (read off the paper's vector figure, about +-0.5 nats).

Figure 3: the marginal log-likelihood (importance-sampled with K = 5000 here, where the
paper ran HMC) against training samples, N_z = 3, 100 hidden units, trained on 1000 and
on 50 000 MNIST images (--train-examples), train and test. Each budget point trains
the run on (--resume) and evaluates it on --figure3-n examples of each split.

Every run is an ordinary run directory under --runs-dir: a run that reached its budget
is reused, a shorter one resumed, so the script continues where it stopped.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_aevb import (evaluate, find_result, read_json_lines,  # noqa: E402
                             samples_seen, train)

# Test ELBO read off AEVB Figure 2 at 10^6, 10^7, 10^8 training samples.
FIGURE2 = {
    "mnist": dict(dataset="binarized-mnist", hidden=500, paper={
        3: (-153.0, -138.0, -133.4), 5: (-138.9, -124.1, -119.1), 10: (-128.3, -108.5, -103.7),
        20: (-124.3, -104.8, -100.1), 200: (-119.9, -103.9, -100.2)}),
    "frey": dict(dataset="frey", hidden=200, paper={
        2: (672.9, 822.5, 872.4), 5: (761.7, 1044.4, 1115.0), 10: (791.4, 1170.4, 1308.4),
        20: (753.8, 1200.0, 1311.3)}),
}
PAPER_POINTS = (10 ** 6, 10 ** 7, 10 ** 8)
# AEVB Figure 3's AEVB test (train) values: N_train -> {samples: (test, train)}.
FIGURE3 = {1000: {5 * 10 ** 6: (-143.2, -118.0), 6 * 10 ** 7: (-143.2, -109.1)},
           50000: {5 * 10 ** 6: (-144.0, -137.7), 6 * 10 ** 7: (-138.1, -131.1)}}
FIGURE3_POINTS = (10 ** 5, 10 ** 6, 5 * 10 ** 6, 2 * 10 ** 7, 6 * 10 ** 7)


def count(text):
    return int(float(text))


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/aevb-sweeps"))
    parser.add_argument("--budget", type=count, default=10 ** 7,
                        help="training samples of every Figure 2 run (default 1e7; the paper: 1e8)")
    parser.add_argument("--only", nargs="+", choices=("mnist", "frey", "figure3"),
                        default=("frey", "mnist", "figure3"))
    parser.add_argument("--latents", nargs="+", type=int, help="a subset of the latent sizes")
    parser.add_argument("--figure3-budget", type=count, default=6 * 10 ** 7)
    parser.add_argument("--figure3-k", type=int, default=5000)
    parser.add_argument("--figure3-n", type=int, default=1000,
                        help="examples of each split importance-sampled (default 1000)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets and nets: checks that every step runs")
    return parser.parse_args(argv)


def figure2_runs(args):
    """(data set key, N_z, run name, spec) of every Figure 2 run asked for."""
    for key in ("frey", "mnist"):
        if key not in args.only:
            continue
        setup = FIGURE2[key]
        hidden = 8 if args.quick else setup["hidden"]
        for z_dim in setup["paper"]:
            if args.latents and z_dim not in args.latents:
                continue
            flags = ["--dataset", setup["dataset"], "--z-dim", str(z_dim), "--hidden", str(hidden)]
            yield key, z_dim, f"{key}-z{z_dim}", dict(flags=flags, budget=args.budget)


def value_at(records, samples, name):
    """The metric at exactly ``samples`` (numpyvae.train evaluates at every power of 10)."""
    for record in records:
        if record["samples_seen"] == samples:
            return record[name]
    return None


def figure2(args):
    rows, curves = [], {}
    for key, z_dim, name, spec in figure2_runs(args):
        run_dir = args.runs_dir / name
        if not args.report_only:
            train(name, spec, args.runs_dir, args.report_only)
        elif not (run_dir / "metrics.jsonl").exists():    # the report: what is on disk
            continue
        records = read_json_lines(run_dir / "metrics.jsonl")
        curves.setdefault(key, []).append((z_dim, records))
        paper = FIGURE2[key]["paper"][z_dim]
        for samples, paper_test in zip(PAPER_POINTS, paper):
            test = value_at(records, samples, "test_elbo")
            train_value = value_at(records, samples, "train_elbo")
            rows.append((key, z_dim, samples, paper_test, train_value, test,
                         value_at(records, samples, "wall_seconds")))
    for key, runs in curves.items():
        draw_figure2(key, runs, args.runs_dir / f"figure2-{key}.png")
    print("\n| data | N_z | samples | AEVB test | numpyvae train | numpyvae test | training time |")
    print("|---|---|---|---|---|---|---|")
    for key, z_dim, samples, paper, train_value, test, seconds in rows:
        ours = "not reached | not reached" if test is None else f"{train_value:.1f} | {test:.1f}"
        time_text = "" if seconds is None else f"{seconds:.0f} s"
        print(f"| {key} | {z_dim} | {samples:.0e} | {paper:g} | {ours} | {time_text} |")
    for key in curves:
        print(f"- figure: {args.runs_dir / f'figure2-{key}.png'}")


def draw_figure2(key, runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 6), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (z_dim, records) in zip(colours, sorted(runs)):
        samples = [record["samples_seen"] for record in records]
        axis.plot(samples, [r["train_elbo"] for r in records], color=colour, linestyle="--",
                  linewidth=1)
        axis.plot(samples, [r["test_elbo"] for r in records], color=colour,
                  label=f"N_z = {z_dim}")
        axis.plot(PAPER_POINTS, FIGURE2[key]["paper"][z_dim], "o", color=colour,
                  markerfacecolor="none")
    finals = [r["test_elbo"] for _, records in runs for r in records[len(records) // 2:]]
    papers = [value for z_dim, _ in runs for value in FIGURE2[key]["paper"][z_dim]]
    low, high = min(finals + papers), max(finals + papers)
    axis.set_ylim(low - 0.15 * (high - low), high + 0.05 * (high - low))
    save_against_samples(figure, axis, "ELBO per datapoint (nats)",
                         f"AEVB Figure 2, {FIGURE2[key]['dataset']}: numpyvae test (solid), "
                         "train (dashed); AEVB test (circles)", path)


def save_against_samples(figure, axis, ylabel, title, path):
    """Label a figure of some quantity against training samples (log axis) and save it."""
    import matplotlib.pyplot as plt

    axis.set_xscale("log")
    axis.set_xlabel("training samples evaluated")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def figure3(args):
    budget = args.figure3_budget
    points = [p for p in FIGURE3_POINTS if p < budget] + [budget]
    hidden, n, k = (8, 50, 20) if args.quick else (100, args.figure3_n, args.figure3_k)
    print(f"\nFigure 3 (N_z = 3, {hidden} hidden units; log p(x) by importance sampling, K = {k}, "
          f"on {n} examples of each split)")
    print("| N_train | samples | AEVB test (train) | numpyvae test | numpyvae train |")
    print("|---|---|---|---|---|")
    curves = {}     # (N_train, split) -> [(samples, log p(x), standard error)]
    for n_train in FIGURE3:
        examples = max(100, n_train // 25) if args.quick else n_train
        name = f"figure3-n{examples}"
        flags = ["--dataset", "mnist", "--z-dim", "3", "--hidden", str(hidden),
                 "--train-examples", str(examples)]
        run_dir = args.runs_dir / name
        sizes = {"test": n if n < 10000 else "all", "train": n if n < examples else "all"}
        for point in points:
            seen = samples_seen(run_dir) if run_dir.exists() else None
            paper = FIGURE3[n_train].get(point)
            paper_text = "" if paper is None else f"{paper[0]:g} ({paper[1]:g})"
            if (seen is None or seen < point) and args.report_only:
                print(f"| {n_train} | {point:.0e} | {paper_text} | not reached | not reached |")
                continue
            if seen is None or seen < point:      # train to this point, evaluate it there
                train(name, dict(flags=flags, budget=point), args.runs_dir, args.report_only)
                for split in ("test", "train"):
                    evaluate(run_dir, k, sizes[split], args.runs_dir, args.report_only, split)
            results = {split: find_result(run_dir, k, sizes[split], split, seen=point)
                       for split in ("test", "train")}
            for split, result in results.items():
                if result is not None:
                    curves.setdefault((n_train, split), []).append(
                        (point, result["log_likelihood"], result["log_likelihood_standard_error"]))
            ours = " | ".join("not evaluated" if results[split] is None else
                              f"{results[split]['log_likelihood']:.1f} ± "
                              f"{results[split]['log_likelihood_standard_error']:.1f}"
                              for split in ("test", "train"))
            print(f"| {n_train} | {point:.0e} | {paper_text} | {ours} |", flush=True)
    if curves:
        path = args.runs_dir / "figure3.png"
        draw_figure3(curves, k, path)
        print(f"- figure: {path}")


def draw_figure3(curves, k, path):
    """log p(x) against training samples, one colour per training-set size, test solid
    and train dashed with standard-error bars; AEVB's values as circles (test) and
    squares (train)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 6), dpi=110)
    colours = dict(zip(FIGURE3, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for (n_train, split), points in sorted(curves.items()):
        samples, values, errors = zip(*points)
        axis.errorbar(samples, values, yerr=errors, color=colours[n_train], capsize=2,
                      linestyle="-" if split == "test" else "--",
                      label=f"N_train = {n_train}, {split}")
    for n_train, paper in FIGURE3.items():
        points = sorted(paper)
        axis.plot(points, [paper[p][0] for p in points], "o", color=colours[n_train],
                  markerfacecolor="none", markersize=8)
        axis.plot(points, [paper[p][1] for p in points], "s", color=colours[n_train],
                  markerfacecolor="none", markersize=8)
    save_against_samples(figure, axis, f"log p(x), importance-sampled with K = {k} (nats)",
                         "AEVB Figure 3 (N_z = 3): numpyvae test (solid), train (dashed); "
                         "AEVB test (circles), train (squares)", path)


def main(argv=None):
    args = parse_arguments(argv)
    if args.quick:
        args.budget, args.figure3_budget = 20_000, 20_000
    if any(key in args.only for key in ("frey", "mnist")):
        figure2(args)
    if "figure3" in args.only:
        figure3(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
