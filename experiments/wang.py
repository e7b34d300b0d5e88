"""Wang (2023), "Variational Autoencoder", at Wang's own setup (issue 19, section 1).

    python experiments/wang.py table1 --runs-dir RUNS [--budgets 1e7 6e7 1.2e8]
    python experiments/wang.py search --runs-dir RUNS [--samples 6e7] [--seed 0] [--depths 1 2 3]
    python experiments/wang.py noise  --runs-dir RUNS [--samples 6e7] [--seeds 0 1 2]
    python experiments/wang.py all    --runs-dir RUNS --quick      # every part, in seconds
    python experiments/wang.py table1 --runs-dir RUNS --report-only  # the table from disk

The setup, from Wang's public code (the text leaves it out): MNIST grey levels in [0, 1],
not binarized, under a Bernoulli decoder (the cross-entropy summed over the 784 pixels);
ReLU MLPs, mu and log sigma^2 from two separate towers (``--encoder-towers separate``),
the decoder their mirror with a sigmoid output; every parameter, biases too, drawn from
N(0, 0.01^2) (``--bias-init normal``); Adagrad, lr 0.01, batch 100, no weight prior. An
architecture [h_1, ..., h_{n-1}, d] is ``--hidden h_1 ... h_{n-1} --z-dim d``.

table1   Wang's Table 1: the VAE, the beta-VAE (beta = 5) and the CVAE (the one-hot label
         into encoder and decoder) with [500, 500, 3], at each budget of --budgets (Wang:
         1.2e8 samples, 2000 epochs). Train and test reconstruction, KL, -ELBO and the
         training objective over the whole splits, Wang's numbers beside.
search   Wang's section 5: the minimal-complexity architecture. A "good model" has
         reconstruction <= 120 and KL <= 10 (training split) after --samples (Wang: 6e7,
         1000 epochs). Per depth (hidden layers), from [500, ..., 500, 3]: the largest
         widths with KL <= 10, then Wang's Algorithm 1 (a binary search per layer, the
         latent first) for the smallest good widths, under Wang's assumption that the
         reconstruction falls and the KL rises as any width grows. Stops at the first depth
         with a good model. Every step is printed; an architecture already trained at this
         budget and seed is read, not trained again.
noise    Run-to-run noise: each architecture of --archs at every seed of --seeds; the spread
         of reconstruction and KL, and how often a pair of seeds orders two nested
         architectures against Wang's monotonicity assumption.

Every training is an ordinary ``python -m numpyvae.train`` run directory under
--runs-dir (outside the repository), one per architecture and seed; a larger budget
resumes it (``--resume``, bit for bit as if it had not stopped), and the numbers at a
budget are the evaluation ``metrics.jsonl`` recorded at exactly that many samples, over the
whole training and test splits (``--eval-size 70000``, one z per image; each costs about
25 s on one core, so table 1's runs evaluate twice per decade of samples and the search's
once). Long runs belong in the background:
``nice -n 10 python experiments/wang.py table1 --runs-dir RUNS &``.
"""
import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from numpyvae import cli  # noqa: E402
from numpyvae.latent import ACTIVE_VARIANCE, dimensions_in_use  # noqa: E402
from numpyvae.train import threads_flag  # noqa: E402

WANG_SETUP = ["--dataset", "mnist", "--likelihood", "bernoulli", "--no-binarize",
              "--activation", "relu", "--encoder-towers", "separate", "--init", "normal",
              "--init-std", "0.01", "--bias-init", "normal", "--optimizer", "adagrad",
              "--lr", "0.01", "--batch-size", "100", "--weight-prior-std", "none",
              "--no-figures"]
WHOLE_SPLITS = 70000        # --eval-size: every image of MNIST's 60 000 / 10 000
TABLE1_ARCH = (500, 500, 3)
TABLE1_WANG_SAMPLES = 120_000_000   # Wang's budget: 2000 epochs of the 60 000 images
TABLE1_MODELS = {           # name: (flags, Wang's Table 1: reconstruction, KL, "ELBO loss")
    "VAE": ([], (115.1, 9.1, 124.2)),
    "beta-VAE (beta = 5)": (["--beta", "5"], (116.1, 7.8, 131.7)),
    "CVAE": (["--model", "cvae"], (107.2, 7.2, 114.4)),
}
RUN_NAMES = {"VAE": "vae", "beta-VAE (beta = 5)": "beta5", "CVAE": "cvae"}
WANG_MINUTES = {"VAE": 150, "beta-VAE (beta = 5)": 148, "CVAE": 153}
WANG_ANSWER = ((324, 284, 3), 119.9, 8.7)
WANG_SEARCH_SAMPLES = 60_000_000
N_TRAIN = 60000
QUICK = dict(budgets=[500, 1000], samples=500, arch=(4, 4, 2), max_width=2, max_latent=2,
             depths=[1], eval_size=100, archs=[(2, 2)], seeds=[0, 1])


class TrainingFailed(Exception):
    """A training command did not finish; the message says which and why."""


# ------------------------------------------------------------------ the runs
def arch_flags(arch):
    """[h_1, ..., h_{n-1}, d] as the training command's flags."""
    return ["--hidden", *map(str, arch[:-1]), "--z-dim", str(arch[-1])]


def arch_name(arch):
    return "h" + "-".join(map(str, arch[:-1])) + f"-d{arch[-1]}"


def records(run_dir):
    """The evaluations metrics.jsonl holds (none for a run not started)."""
    from numpyvae import rundir
    if not (Path(run_dir) / "metrics.jsonl").exists():
        return []
    return rundir.read_metrics(run_dir)


def record_at(run_dir, samples):
    """The evaluation at exactly ``samples``, or None when the run is not there yet."""
    found = [r for r in records(run_dir) if r["samples_seen"] == samples]
    if found:
        return found[-1]
    seen = max((r["samples_seen"] for r in records(run_dir)), default=0)
    if seen > samples:
        raise TrainingFailed(f"{run_dir} is past {samples:,} samples ({seen:,}) without an "
                             "evaluation there: use another --runs-dir for this budget.")
    return None


def train(run_dir, argv, samples, args, per_decade=1):
    """Train the run to ``samples`` (start it, or resume it) unless an evaluation there
    is on disk; returns that evaluation (None with --report-only and no run there).
    ``per_decade``: evaluations (each over the whole splits) per decade of samples."""
    found = record_at(run_dir, samples)
    if found is not None or args.report_only:
        return found
    budget = ["--samples", str(samples), "--threads", str(args.threads)]
    if args.backend:
        budget += ["--backend", args.backend]
    if (Path(run_dir) / "checkpoint.npz").exists():
        command = ["--resume", str(run_dir), *budget]
    else:
        command = [*argv, "--eval-size", str(args.eval_size), "--evals-per-decade",
                   str(per_decade), *budget, "--out", str(run_dir)]
    print("$ python -m numpyvae.train " + " ".join(command), file=sys.stderr, flush=True)
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "numpyvae.train", *command],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise TrainingFailed(f"training {run_dir} to {samples:,} samples failed (exit "
                             f"{completed.returncode}): {last}")
    print(f"  done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return record_at(run_dir, samples)


def active_dimensions(run_dir, record):
    """How many latent dimensions the run uses on the test split, as text ("2 of 3"). The
    training command counts them at each evaluation (``test_active_dimensions``, over the
    whole split at ``--eval-size 70000``); a record written before it did is counted from the
    checkpoint (numpyvae.evaluate.latent_activity), or "-" when that checkpoint is past
    ``record``'s budget."""
    from numpyvae import evaluate, runconfig
    if "test_active_dimensions" in record:
        z_dim = runconfig.read_run(run_dir, purpose="evaluate")["model"]["z_dim"]
        return f"{record['test_active_dimensions']} of {z_dim}"
    loaded = evaluate.load_model(run_dir)
    if loaded[2]["samples_seen"] != record["samples_seen"]:
        return "-"
    variances = evaluate.latent_activity(run_dir, loaded=loaded)
    return f"{dimensions_in_use(variances)} of {len(variances)}"


def terms(record, split):
    """(reconstruction -E_q[log p(x|z)], KL, -ELBO, -objective) of a split, in nats."""
    return (-record[f"{split}_log_likelihood"], record[f"{split}_kl"], -record[f"{split}_elbo"],
            -record[f"{split}_objective"])


def samples_label(samples):
    epochs = samples / N_TRAIN
    shown = f"{epochs:,.0f}" if epochs >= 100 else f"{epochs:.3g}"   # 1,000, not 1e+03
    return f"{samples:,} ({shown} epochs)"


# ------------------------------------------------------------------ table 1
def table1(args):
    arch = args.arch
    rows = []
    for budget in args.budgets:
        for name, (flags, _) in TABLE1_MODELS.items():
            run_dir = args.runs_dir / "table1" / RUN_NAMES[name]
            record = train(run_dir, WANG_SETUP + arch_flags(arch) + ["--seed", str(args.seed)]
                           + flags, budget, args, per_decade=2)
            if record is not None:
                rows.append((name, budget, record))
    print(f"\n### Wang (2023) Table 1 at Wang's setup: {list(arch)}, seed {args.seed}\n")
    print("| model | samples (epochs) | split | reconstruction | KL | -ELBO | -objective "
          "| Wang (1.2e8): reconstruction / KL / \"ELBO loss\" | training wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    run_dirs = [args.runs_dir / "table1" / RUN_NAMES[name] for name in TABLE1_MODELS]
    for name, run_dir in zip(TABLE1_MODELS, run_dirs):    # a run between budgets: where it is
        latest = (records(run_dir) or [None])[-1]
        if latest is not None and latest["samples_seen"] not in args.budgets:
            rows.append((name, None, latest))
    for name, budget, record in rows:
        paper = TABLE1_MODELS[name][1]
        seen = samples_label(record["samples_seen"]) + ("" if budget else ", latest evaluation")
        for split in ("train", "test"):
            recon, kl, elbo, objective = terms(record, split)
            wang = " / ".join(map(str, paper)) if split == "train" else ""
            wall = f"{record['wall_seconds'] / 60:.0f} min" if split == "train" else ""
            print(f"| {name} | {seen} | {split} | {recon:.2f} | {kl:.2f} | "
                  f"{elbo:.2f} | {objective:.2f} | {wang} | {wall} |")
    for name, run_dir in zip(TABLE1_MODELS, run_dirs):
        latest = (records(run_dir) or [None])[-1]
        if latest is not None and latest["wall_seconds"] > 0:
            seen = latest["samples_seen"]
            rate = seen / latest["wall_seconds"]
            # The next budget not reached: one of those asked, else Wang's own.
            ahead = [b for b in sorted({*args.budgets, TABLE1_WANG_SAMPLES}) if b > seen]
            rest = (f"; {ahead[0]:,} would take {(ahead[0] - seen) / rate / 3600:.1f} h more "
                    "at that rate" if ahead else ", Wang's whole budget")
            print(f"\n{name}: {seen:,} samples in {latest['wall_seconds'] / 3600:.2f} h of "
                  f"training ({rate:.0f} samples/s){rest}.")
    in_use = [f"{name} {active_dimensions(run_dir, latest)} (at {latest['samples_seen']:,})"
              for name, run_dir in zip(TABLE1_MODELS, run_dirs)
              for latest in (records(run_dir) or [None])[-1:] if latest is not None]
    if in_use:
        print("\nLatent dimensions in use at each run's last evaluation (Var_x E_q[z_d] > "
              f"{ACTIVE_VARIANCE} on the test split; \"-\": the checkpoint is past it): "
              + "; ".join(in_use) + ".")
    print("\nWang's \"ELBO loss\" is reconstruction + KL in the VAE and CVAE rows (115.1 + 9.1 = "
          "124.2, 107.2 + 7.2 = 114.4), but 131.7 = 116.1 + 2 x 7.8 in the beta-VAE row: the KL "
          "weighted by 2, not by 5 (116.1 + 5 x 7.8 = 155.1) nor by 1 (123.9). Wang's code "
          "prints reconstruction + beta KL, so that row's loss is a beta = 2 objective.")
    print("Wang's training times: " + ", ".join(f"{name} {minutes} min" for name, minutes
                                                in WANG_MINUTES.items()) + " (Wang's GPU).")
    if not args.no_figures and any(records(run_dir) for run_dir in run_dirs):
        table1_figures(args, run_dirs)      # the curves so far, even short of a budget
    return rows


def table1_figures(args, run_dirs):
    """Learning curves of the three runs (Wang's 1.2e8 values marked) and their
    reconstructions of the same test digits (benchmarks/compare_reconstructions.py)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = args.figures_dir or args.runs_dir / "figures"
    directory.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for index, (name, run_dir) in enumerate(zip(TABLE1_MODELS, run_dirs)):
        # From 1000 samples on: Adagrad's first step moves every weight by lr, which sends
        # the KL of the first evaluations to thousands of nats.
        curve = [r for r in records(run_dir) if r["samples_seen"] >= 1000]
        if not curve:
            continue
        seen = [r["samples_seen"] for r in curve]
        paper = TABLE1_MODELS[name][1]
        for axis, term, wang in ((axes[0], "recon", paper[0]), (axes[1], "kl", paper[1])):
            for split, style in (("train", "-"), ("test", "--")):
                values = [terms(r, split)[0 if term == "recon" else 1] for r in curve]
                axis.plot(seen, values, style, color=f"C{index}",
                          label=f"{name}, {split}")
            axis.plot([TABLE1_WANG_SAMPLES], [wang], "*", color=f"C{index}", markersize=11)
    for axis, label in ((axes[0], "reconstruction -E_q[log p(x|z)] (nats)"),
                        (axes[1], "KL(q(z|x) || p(z)) (nats)")):
        axis.set_xscale("log")
        axis.set_xlabel("training samples")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[0].set_ylim(100, 220)
    axes[1].set_ylim(0, 12)
    figure.suptitle(f"Wang's setup, {list(args.arch)}: whole MNIST splits (stars: Wang's "
                    "Table 1 at 1.2e8 samples)")
    figure.tight_layout()
    curves = directory / "wang_table1_curves.png"
    figure.savefig(curves, dpi=100)
    plt.close(figure)
    reconstructions = directory / "wang_table1_reconstructions.png"
    specs = [f"{run_dir}={name}" for name, run_dir in zip(TABLE1_MODELS, run_dirs)
             if (run_dir / "checkpoint.npz").exists()]
    if not specs:
        print(f"\nFigures: {curves}")
        return
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_reconstructions.py"),
                    str(reconstructions), *specs], check=True, capture_output=True)
    print(f"\nFigures: {curves}, {reconstructions}")


# ------------------------------------------------------------------ the search
class Evaluator:
    """Whether an architecture is a good model, by training it (or reading its run), and
    the list of every step asked, in order (a repeat is marked, not trained again)."""

    def __init__(self, args):
        self.args, self.steps, self.known = args, [], {}

    def measure(self, arch):
        """(reconstruction, KL) on the chosen split, with both splits' record; None when
        not trained (--report-only)."""
        arch = tuple(arch)
        if arch not in self.known:
            self.known[arch] = train(self.run_dir(arch), WANG_SETUP + arch_flags(arch)
                                     + ["--seed", str(self.args.seed)], self.args.samples,
                                     self.args)
        return self.known[arch]

    def run_dir(self, arch):
        return self.args.runs_dir / "search" / f"{arch_name(arch)}-seed{self.args.seed}"

    def __call__(self, arch, phase):
        repeat = tuple(arch) in self.known
        record = self.measure(arch)
        if record is None:
            raise NotTrained(arch)
        recon, kl = terms(record, self.args.split)[:2]
        good = recon <= self.args.max_recon and kl <= self.args.max_kl
        self.steps.append(dict(arch=tuple(arch), phase=phase, record=record, good=good,
                               kl_ok=kl <= self.args.max_kl, repeat=repeat))
        return self.steps[-1]


class NotTrained(Exception):
    """--report-only reached an architecture with no run on disk."""


def binary_search(left, right, arch, index, accept):
    """Wang's Algorithm 1, Binary_search: the smallest width t in [left, right] at layer
    ``index`` for which ``accept`` holds (0 if none), assuming it holds for every width
    above one that passes. ``accept(arch)`` -> bool."""
    answer = 0
    while left <= right:
        middle = (left + right) // 2
        trial = list(arch)
        trial[index] = middle
        if accept(trial):
            right, answer = middle - 1, middle
        else:
            left = middle + 1
    return answer


def largest(left, right, arch, index, accept):
    """The largest width t in [left, right] at layer ``index`` for which ``accept``
    holds (0 if none), assuming it holds for every width below one that passes."""
    answer = 0
    while left <= right:
        middle = (left + right + 1) // 2
        trial = list(arch)
        trial[index] = middle
        if accept(trial):
            left, answer = middle + 1, middle
        else:
            right = middle - 1
    return answer


def layer_order(depth):
    """(index, lowest width) per layer in the order Wang's algorithm sets them: the latent
    (from 1), then the hidden layers from the last to the first (from the next one's
    width: h_{i+1} <= h_i)."""
    return [(depth, None)] + [(index, index + 1) for index in range(depth - 1, -1, -1)]


def minimal_architecture(depth, evaluate, max_width=500, max_latent=3):
    """Wang's section 5 for one depth (``depth`` hidden layers): from the upper bound
    [max_width] * depth + [max_latent], the largest widths whose KL is within bounds
    (step 1), then Algorithm 1's smallest good widths below those (step 2). Returns the
    architecture, or None where Wang's algorithm outputs "Not Found".
    ``evaluate(arch, phase)`` -> a dict with "good" and "kl_ok"."""
    arch = [max_width] * depth + [max_latent]
    top = evaluate(arch, "upper bound")
    if not top["kl_ok"]:                       # step 1: shrink until the KL is within bounds
        for index, low in layer_order(depth):
            lowest = 1 if low is None else arch[low]
            width = largest(lowest, arch[index], arch, index,
                            lambda trial: evaluate(trial, "largest with KL in bounds")["kl_ok"])
            if width == 0:
                return None
            arch[index] = width
        top = evaluate(arch, "largest with KL in bounds")
    if not top["good"]:                        # nothing below it is good (monotonicity)
        return None
    for index, low in layer_order(depth):      # step 2: Algorithm 1
        lowest = 1 if low is None else arch[low]
        width = binary_search(lowest, arch[index], arch, index,
                              lambda trial: evaluate(trial, "smallest good")["good"])
        if width == 0:
            return None
        arch[index] = width
    return tuple(arch)


def search(args):
    evaluate = Evaluator(args)
    answers = {}
    try:
        for depth in args.depths:
            answers[depth] = minimal_architecture(depth, evaluate, args.max_width,
                                                  args.max_latent)
            if answers[depth] is not None and not args.all_depths:
                break
    except NotTrained as missing:
        answers["missing"] = missing.args[0]
    print(f"\n### Wang (2023) section 5: minimal-complexity search, {args.samples:,} samples "
          f"per training, seed {args.seed}, good = {args.split} reconstruction <= "
          f"{args.max_recon:g} and KL <= {args.max_kl:g}\n")
    print("| step | depth | phase | architecture | train reconstruction | train KL | "
          "test reconstruction | test KL | active latent dimensions | good? |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for number, step in enumerate(evaluate.steps, 1):
        train_terms, test_terms = terms(step["record"], "train"), terms(step["record"], "test")
        active = active_dimensions(evaluate.run_dir(step["arch"]), step["record"])
        print(f"| {number} | {len(step['arch']) - 1} | {step['phase']} | {list(step['arch'])} | "
              f"{train_terms[0]:.2f} | {train_terms[1]:.2f} | {test_terms[0]:.2f} | "
              f"{test_terms[1]:.2f} | {active} | {'yes' if step['good'] else 'no'}"
              f"{' (trained before)' if step['repeat'] else ''} |")
    for depth, answer in answers.items():
        if depth == "missing":
            print(f"\nNot trained yet at this budget: {list(answer)} (the search stops there).")
        else:
            print(f"\nDepth {depth}: " + ("not found (no good model under the upper bound)"
                                          if answer is None else f"{list(answer)}"))
    trainings = len({step["arch"] for step in evaluate.steps})
    print(f"\n{trainings} architectures trained to {args.samples:,} samples. Wang "
          f"({WANG_SEARCH_SAMPLES:,} samples): [500, 3] not good (reconstruction 130.7), "
          f"answer {list(WANG_ANSWER[0])} (reconstruction {WANG_ANSWER[1]}, KL "
          f"{WANG_ANSWER[2]}), 17 steps.")
    return answers, evaluate.steps


# ------------------------------------------------------------------ the noise
def noise(args):
    table, active = {}, {}
    for arch in args.archs:
        for seed in args.seeds:
            run_dir = args.runs_dir / "search" / f"{arch_name(arch)}-seed{seed}"
            record = train(run_dir, WANG_SETUP + arch_flags(arch) + ["--seed", str(seed)],
                           args.samples, args)
            if record is not None:
                table.setdefault(tuple(arch), {})[seed] = terms(record, args.split)[:2]
                active.setdefault(tuple(arch), {})[seed] = active_dimensions(run_dir, record)
    print(f"\n### Run-to-run noise: {args.samples:,} samples, seeds {args.seeds}, "
          f"{args.split} split\n")
    print("| architecture | reconstruction per seed | mean | sd | range | KL per seed | mean "
          "| sd | range | active latent dimensions per seed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch, by_seed in table.items():
        cells = []
        for term in (0, 1):
            values = [by_seed[seed][term] for seed in sorted(by_seed)]
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
            cells += [", ".join(f"{v:.2f}" for v in values), f"{mean:.2f}", f"{sd:.2f}",
                      f"{max(values) - min(values):.2f}"]
        cells.append(", ".join(active[arch][seed] for seed in sorted(by_seed)))
        print(f"| {list(arch)} | " + " | ".join(cells) + " |")
    print(f"\n(Active: a latent dimension whose q-mean varies over the test split, "
          f"Var_x E_q[z_d] > {ACTIVE_VARIANCE}; \"-\": the run is past this budget, so its "
          "parameters here are not on disk.)")
    for bigger, smaller, against, pairs in monotonicity_violations(table):
        print(f"\n{list(bigger)} against {list(smaller)}: {against} of {pairs} pairings of "
              "seeds go against Wang's assumption (the larger has the higher reconstruction "
              "or the lower KL).")
    return table


def monotonicity_violations(table):
    """For every two architectures of one depth, one at least as wide everywhere: how many
    (seed of one, seed of the other) pairings order them against Wang's assumption."""
    found = []
    archs = list(table)
    for bigger in archs:
        for smaller in archs:
            if (bigger == smaller or len(bigger) != len(smaller)
                    or not all(b >= s for b, s in zip(bigger, smaller))):
                continue
            against = pairs = 0
            for big in table[bigger].values():
                for small in table[smaller].values():
                    pairs += 1
                    against += big[0] > small[0] or big[1] < small[1]
            found.append((bigger, smaller, against, pairs))
    return found


# ------------------------------------------------------------------ command line
def architecture(text):
    """'500,500,3' -> (500, 500, 3): hidden widths, then the latent dimension."""
    try:
        arch = tuple(int(part) for part in text.split(","))
    except ValueError:
        arch = ()
    if len(arch) < 2 or min(arch) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an architecture: give h_1,...,d, "
                                         "e.g. 500,500,3")
    return arch


class ArgumentParser(cli.ArgumentParser):
    """The package's one-line usage errors, naming this script's --help."""

    def error(self, message):
        self.exit(cli.EXIT_USAGE, f"error: {message} (python experiments/wang.py --help lists "
                                  "every flag)\n")


def build_parser():
    parser = ArgumentParser(
        prog="python experiments/wang.py", description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (and README, Reproductions) for the setup.")
    parser.add_argument("part", choices=("table1", "search", "noise", "all"))
    parser.add_argument("--runs-dir", type=Path, required=True,
                        help="where the run directories go (outside the repository)")
    parser.add_argument("--budgets", type=cli.positive_int, nargs="+",
                        help="table1: samples per run, in turn (default 1e7 6e7 1.2e8)")
    parser.add_argument("--samples", type=cli.positive_int,
                        help="search, noise: samples per training (default 6e7, Wang's)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="table1, search: the seed "
                        "(default 0)")
    parser.add_argument("--seeds", type=cli.non_negative_int, nargs="+", help="noise: seeds (default 0 1 2)")
    parser.add_argument("--archs", type=architecture, nargs="+",
                        help="noise: architectures (default 500,500,3 500,376,3 500,251,3)")
    parser.add_argument("--depths", type=cli.positive_int, nargs="+", help="search: hidden layers to "
                        "try, in turn (default 1 2 3)")
    parser.add_argument("--all-depths", action="store_true",
                        help="search: go on after the first depth with a good model")
    parser.add_argument("--max-recon", type=cli.positive_float,
                        help="search: a good model's largest reconstruction (default 120; "
                             "--quick: none)")
    parser.add_argument("--max-kl", type=cli.positive_float, default=10.0,
                        help="search: a good model's largest KL (default 10)")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="search, noise: the split a good model is judged on (default train)")
    parser.add_argument("--threads", type=threads_flag, default="1", help="BLAS threads per training "
                        "(default 1: a shared machine; auto to take free cores)")
    parser.add_argument("--backend", choices=("numpy", "cupy"),
                        help="the trainings' array backend (default numpy; cupy: on a GPU)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables from the runs on disk, training nothing")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets and nets (seconds): the suite runs it")
    parser.add_argument("--figures-dir", type=Path,
                        help="table1's figures (default RUNS/figures)")
    parser.add_argument("--no-figures", action="store_true", help="table1: draw no figures")
    return parser


def settle(args):
    """The defaults, or --quick's tiny ones where a flag was not given."""
    quick = args.quick
    args.budgets = args.budgets or (QUICK["budgets"] if quick else [10_000_000, 60_000_000,
                                                                   TABLE1_WANG_SAMPLES])
    args.samples = args.samples or (QUICK["samples"] if quick else WANG_SEARCH_SAMPLES)
    args.seeds = args.seeds or (QUICK["seeds"] if quick else [0, 1, 2])
    args.archs = args.archs or (QUICK["archs"] if quick else [(500, 500, 3), (500, 376, 3),
                                                               (500, 251, 3)])
    args.depths = args.depths or (QUICK["depths"] if quick else [1, 2, 3])
    args.arch = QUICK["arch"] if quick else TABLE1_ARCH
    args.max_width = QUICK["max_width"] if quick else 500
    args.max_latent = QUICK["max_latent"] if quick else 3
    args.eval_size = QUICK["eval_size"] if quick else WHOLE_SPLITS
    if args.max_recon is None:             # tiny budgets: every model judged on its KL
        args.max_recon = math.inf if quick else 120.0
    return args


def main(argv=None):
    args = settle(build_parser().parse_args(argv))
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not args.report_only:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
    parts = ("table1", "search", "noise") if args.part == "all" else (args.part,)
    try:
        for part in parts:
            {"table1": table1, "search": search, "noise": noise}[part](args)
    except TrainingFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
