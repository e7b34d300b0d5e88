"""Reproductions for the model family: trains (or resumes) the runs, evaluates them, and
prints each table beside the published numbers.

    python benchmarks/reproduce_family.py iwae  [--epochs 40] [--k 5000] [--n-test all]
    python benchmarks/reproduce_family.py beta  [--samples 1e6]
    python benchmarks/reproduce_family.py wang  [--samples 6e5]
    python benchmarks/reproduce_family.py iwae --report-only    # the table from runs on disk

Every run is an ordinary ``python -m numpyvae.train`` run directory under --runs-dir
(default runs/family), so a table can be grown in pieces: run again with a larger budget
and each run resumes from its checkpoint (``--resume``), bit for bit as if it had not
stopped. Long runs belong in the background: ``nice -n 5 python benchmarks/... &``.

Tables
------
iwae: Burda, Grosse & Salakhutdinov (2016), Table 1 (one stochastic layer): MNIST with
    dynamic binarization, 784-200-200-50 tanh, Adam (eps 1e-4), batch 20, 3^i epochs at
    lr 0.001 * 10^(-i/7); test -log p(x) with K = 5000. Paper (3280 epochs): VAE k=1
    86.76, IWAE k=5 85.54 (k=50 84.78). The paper reports converged values only.
beta: Wang (2023) section 3.1's seed experiment: one hidden layer of 500, z = 20,
    beta in {1, 2, 5, 50} on MNIST; KL and reconstruction terms vs samples, and
    reconstructions and samples per beta (figures into --figures-dir).
wang: Wang (2023) Table 1: VAE vs CVAE with [500, 500, 3] (two hidden layers of 500,
    z = 3) on MNIST; test reconstruction loss, KL and -ELBO.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IWAE_PAPER = {"vae-k1": 86.76, "iwae-k5": 85.54}
IWAE_COMMON = ["--dataset", "mnist", "--hidden", "200", "200", "--z-dim", "50",
               "--likelihood", "bernoulli", "--optimizer", "adam", "--lr", "1e-3",
               "--adam-eps", "1e-4", "--lr-schedule", "iwae", "--batch-size", "20",
               "--init", "glorot", "--weight-prior-std", "none", "--no-figures"]
IWAE_RUNS = {"vae-k1": ["--model", "vae"], "iwae-k5": ["--model", "iwae", "--k", "5"]}
BETAS = (1, 2, 5, 50)
BETA_COMMON = ["--dataset", "mnist", "--hidden", "500", "--z-dim", "20", "--optimizer", "adam",
               "--lr", "1e-3", "--weight-prior-std", "none", "--init", "glorot",
               "--evals-per-decade", "12"]
WANG_COMMON = ["--dataset", "mnist", "--hidden", "500", "500", "--z-dim", "3", "--optimizer",
               "adam", "--lr", "1e-3", "--weight-prior-std", "none", "--init", "glorot"]
WANG_RUNS = {"VAE": ["--model", "vae"], "CVAE": ["--model", "cvae"]}


def command(module, *arguments):
    return [sys.executable, "-m", module, *map(str, arguments)]


def train(run_dir, arguments, budget_flag):
    """Start the run, or resume it to the new budget; returns the seconds it took."""
    started = time.monotonic()
    if (run_dir / "checkpoint.npz").exists():
        argv = command("numpyvae.train", "--resume", run_dir, *budget_flag)
    else:
        argv = command("numpyvae.train", *arguments, *budget_flag, "--out", run_dir)
    print("$", " ".join(argv[1:]), file=sys.stderr)
    subprocess.run(argv, check=True)
    return time.monotonic() - started


def evaluate(run_dir, k, n_test):
    argv = command("numpyvae.evaluate", run_dir, "--k", k, "--n-test", n_test)
    print("$", " ".join(argv[1:]), file=sys.stderr)
    subprocess.run(argv, check=True)
    return latest(run_dir)


def latest(run_dir):
    path = Path(run_dir) / "evaluation.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return stored["results"][stored["latest"]]


def metrics(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def training_seconds(run_dir):
    records = metrics(run_dir)
    return records[-1]["wall_seconds"] if records else float("nan")


def evaluated_runs(args, runs, prefix, common, budget_flag):
    """(name, run directory, latest evaluation) of each run, trained and evaluated
    first unless --report-only; runs never evaluated are left out."""
    for name, extra in runs.items():
        run_dir = args.runs_dir / f"{prefix}{name.lower()}"
        if not args.report_only:
            train(run_dir, common + extra, budget_flag)
            evaluate(run_dir, args.k, args.n_test)
        result = latest(run_dir)
        if result is not None:
            yield name, run_dir, result


# ---------------------------------------------------------------------- tables
def iwae_table(args):
    rows = []
    for name, run_dir, result in evaluated_runs(args, IWAE_RUNS, "iwae-table-", IWAE_COMMON,
                                                ["--epochs", args.epochs]):
        epochs = result["samples_seen"] / 60000
        rows.append((name, epochs, -result["log_likelihood"], result["log_likelihood_standard_error"],
                     -result["elbo_whole_split"], IWAE_PAPER[name], training_seconds(run_dir), result))
    print("\n| model | epochs (of 3280) | test -log p(x), K=%s | ± s.e. | test -ELBO (whole split) | paper (3280 epochs) "
          "| gap to paper | training wall time |" % (rows[0][7]["k"] if rows else args.k))
    print("|---|---|---|---|---|---|---|---|")
    for name, epochs, nll, se, nelbo, paper, seconds, result in rows:
        print(f"| {name} | {epochs:.0f} | {nll:.2f} | {se:.2f} | {nelbo:.2f} | {paper:.2f} | "
              f"{nll - paper:+.2f} | {seconds / 60:.0f} min |")
    if rows:
        print(f"\n(-log p(x) on {rows[0][7]['subset']} test examples; the commands are in each "
              "run's config.json.)")


def beta_experiment(args):
    runs = {}
    for beta in BETAS:
        run_dir = args.runs_dir / f"beta-seed-beta{beta}"
        if not args.report_only:
            train(run_dir, BETA_COMMON + ["--beta", beta], ["--samples", args.samples])
        runs[beta] = run_dir
    print("\n| beta | samples | test reconstruction -E[log p(x|z)] | test KL | test -ELBO | "
          "test -objective | active units (of 20) |")
    print("|---|---|---|---|---|---|---|")
    for beta, run_dir in runs.items():
        last = metrics(run_dir)[-1]
        print(f"| {beta} | {last['samples_seen']:,} | {-last['test_log_likelihood']:.2f} | "
              f"{last['test_kl']:.2f} | {-last['test_elbo']:.2f} | {-last['test_objective']:.2f} | "
              f"{active_units(run_dir)} |")
    beta_figures(runs, args.figures_dir)


def active_units(run_dir):
    """Latent dimensions whose posterior mean varies over the test set (Burda et al.'s
    activity statistic Cov_x(E_q[z]) > 0.01)."""
    from numpyvae import evaluate as evaluation
    from numpyvae.latent import dimensions_in_use

    return dimensions_in_use(evaluation.latent_activity(run_dir))


def beta_figures(runs, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy

    from numpyvae import evaluate as evaluation
    from numpyvae import backend, figures

    directory.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, (beta, run_dir) in enumerate(runs.items()):
        records = [r for r in metrics(run_dir) if r["samples_seen"] > 0]
        seen = [r["samples_seen"] for r in records]
        left.plot(seen, [-r["test_log_likelihood"] for r in records], color=f"C{index}",
                  label=f"beta = {beta}")
        right.plot(seen, [r["test_kl"] for r in records], color=f"C{index}", label=f"beta = {beta}")
    for axis, label in ((left, "reconstruction -E_q[log p(x|z)] (nats)"),
                        (right, "KL(q(z|x) || p(z)) (nats)")):
        axis.set_xscale("log")
        axis.set_xlabel("training samples")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    left.set_ylim(60, 250)
    figure.suptitle("beta-VAE on MNIST (500 hidden, z = 20): the two terms of the bound, test set")
    figure.tight_layout()
    curves = directory / "beta_vae_terms.png"
    figure.savefig(curves, dpi=100)
    plt.close(figure)

    reconstructions, samples = [], []
    for beta, run_dir in runs.items():
        model, config, _ = evaluation.load_model(run_dir)
        images, _ = evaluation.load_split(config, "test", config.get("data_dir"), 0)
        shown = images[figures.display_subset(len(images), 10, 0)]
        mu, _ = model.encode(shown)
        reconstructions.append(numpy.concatenate([shown, backend.to_numpy(model.decode(mu))]))
        samples.append(backend.to_numpy(model.sample(10, numpy.random.default_rng(0))))
    shape = (28, 28)
    figures.image_grid(numpy.concatenate(reconstructions), shape,
                       directory / "beta_vae_reconstructions.png", 10,
                       "per beta in " + ", ".join(map(str, runs)) + ": test images, then reconstructions")
    figures.image_grid(numpy.concatenate(samples), shape, directory / "beta_vae_samples.png", 10,
                       "samples from the prior, one row per beta in " + ", ".join(map(str, runs)))
    print(f"\nFigures: {curves}, beta_vae_reconstructions.png, beta_vae_samples.png in {directory}")


def wang_table(args):
    print("\n| model | samples | test reconstruction loss | test KL | test -ELBO | "
          "test -log p(x) (K=%s) | wall time |" % args.k)
    print("|---|---|---|---|---|---|---|")
    for name, run_dir, result in evaluated_runs(args, WANG_RUNS, "wang-table1-", WANG_COMMON,
                                                ["--samples", args.samples]):
        print(f"| {name} | {result['samples_seen']:,} | {-result['log_likelihood_term']:.2f} | "
              f"{result['kl']:.2f} | {-result['elbo']:.2f} | {-result['log_likelihood']:.2f} | "
              f"{training_seconds(run_dir) / 60:.1f} min |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=("iwae", "beta", "wang"))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "family")
    parser.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--epochs", default="40", help="iwae: passes (stages 0-3 = 40; 0-4 = 121)")
    parser.add_argument("--samples", default=None, help="beta, wang: training samples")
    parser.add_argument("--k", default="5000", help="importance samples for -log p(x)")
    parser.add_argument("--n-test", default="all", help="test examples for -log p(x)")
    parser.add_argument("--report-only", action="store_true", help="print from runs on disk")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.samples is None:
        args.samples = {"beta": "1e6", "wang": "6e5"}.get(args.table, "1e6")
    {"iwae": iwae_table, "beta": beta_experiment, "wang": wang_table}[args.table](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
