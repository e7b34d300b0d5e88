"""The amortization gap (Cremer, Li & Duvenaud, 2018; the survey's section 6.1): trains the
runs, splits each one's inference gap with ``python -m numpyvae.evaluate RUN --gaps``, prints
the table, and draws one figure: SVI from scratch against amortized inference + refinement.

    python experiments/amortization_gap.py [--epochs 100] [--n-test 300] [--steps 3000]
    python experiments/amortization_gap.py --report-only    # the table (and figure) from disk
    python experiments/amortization_gap.py --quick          # a minute-long version (the suite's)

The setup of the paper's code: z = 50, encoder and decoder 784-200-200 with ELU, a
Bernoulli decoder on MNIST and Fashion-MNIST binarized afresh per minibatch, Adam
(lr 1e-3, eps 1e-4), batch 100, the KL weight warmed up linearly from 0 to 1 over the
first 10^6 samples; posteriors: the factorized Gaussian (FFG), a planar flow (K = 10
steps, numpyvae's flow, whose parameters the encoder gives per example; the paper's flow
is another kind), and the FFG with a wider encoder (784-500-500, the decoder still
200-200). Then, on a fixed random --n-test test images,

    log p(x) - L[q] = (log p(x) - L[q*]) + (L[q*] - L[q])
                      approximation gap     amortization gap

q* being each example's q refined by --steps Adam steps on its local parameters (all of
them, the flow's included) and log p(x) importance-sampled with K = 5000 from q*.

Every run is an ordinary ``python -m numpyvae.train`` run directory under --runs-dir: run
again with a larger --epochs and each resumes from its checkpoint (``--resume``); an
evaluation already made at the same training budget and settings is not repeated. Long
runs belong in the background: ``nice -n 5 python experiments/amortization_gap.py &``.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMON = ["--z-dim", "50", "--hidden", "200", "200", "--activation", "elu",
          "--likelihood", "bernoulli", "--optimizer", "adam", "--lr", "1e-3",
          "--adam-eps", "1e-4", "--batch-size", "100", "--beta-warmup", "1000000",
          "--init", "glorot", "--weight-prior-std", "none", "--no-figures"]
POSTERIORS = {   # name -> (flags, q in words, encoder in words)
    "ffg": (["--model", "vae"], "FFG", "200-200"),
    "flow": (["--model", "planar-flow", "--flow-length", "10"], "planar flow, K = 10", "200-200"),
    "ffg-wide": (["--model", "vae", "--hidden", "500", "500", "--decoder-hidden", "200", "200"],
                 "FFG", "500-500"),
}
DATASETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
RUNS = {f"{dataset}-{posterior}": ["--dataset", dataset, *COMMON, *flags]
        for dataset in DATASETS for posterior, (flags, _, _) in POSTERIORS.items()}
FIGURE_RUN = "mnist-ffg"
FIGURE_NAME = "amortization_gap_svi.png"
CURVES_NAME = "svi_curves.json"
QUICK = dict(n_test=8, steps=20, k=20, draws=3, svi_n=8, svi_steps=20)


def train(run_dir, arguments, epochs, threads=1, quick=False):
    """Start the run, or resume it to ``epochs`` (nothing to do once there); --quick
    trains 300 samples on a 100-image evaluation subset."""
    from numpyvae.train import main as train_main
    budget = ["--samples", "300"] if quick else ["--epochs", str(epochs)]
    if (Path(run_dir) / "checkpoint.npz").exists():
        n_train = json.loads((Path(run_dir) / "config.json").read_text())["n_train"]
        if samples_seen(run_dir) >= (300 if quick else max(1, round(epochs * n_train))):
            return      # there already (the trainer would load the data to say so)
        argv = ["--resume", str(run_dir), *budget, "--threads", str(threads), "--no-figures"]
    else:
        argv = [*arguments, *budget, "--threads", str(threads), "--out", str(run_dir)]
        argv += ["--eval-size", "100"] if quick else []
    print("$ python -m numpyvae.train", " ".join(argv), file=sys.stderr, flush=True)
    if train_main(argv) != 0:
        raise SystemExit(f"training {run_dir} failed (the lines above say why)")


def samples_seen(run_dir):
    from numpyvae import checkpoint
    return int(checkpoint.load_run_checkpoint(Path(run_dir) / "checkpoint.npz")[2]["samples_seen"])


def stored_gaps(run_dir, settings):
    """The run's --gaps result at its current training budget with these settings, or None."""
    from numpyvae.evaluate import read_results
    if not (Path(run_dir) / "checkpoint.npz").exists():
        return None
    seen = samples_seen(run_dir)
    for result in read_results(run_dir).values():
        if (result.get("kind") == "gaps" and result["samples_seen"] == seen
                and all(result.get(key) == value for key, value in settings.items())):
            return result
    return None


def evaluate(run_dir, args):
    """``python -m numpyvae.evaluate RUN --gaps`` unless done at this budget: the result."""
    from numpyvae.evaluate import main as evaluate_main
    settings = dict(k=args.k, n_examples=args.n_test, refine_steps=args.steps,
                    refine_lr=args.lr, draws=args.draws, split="test")
    found = stored_gaps(run_dir, settings)
    if found is None and not args.report_only:
        argv = [str(run_dir), "--gaps", "--n-test", str(args.n_test), "--refine-steps",
                str(args.steps), "--refine-lr", str(args.lr), "--k", str(args.k), "--draws",
                str(args.draws)]
        print("$ python -m numpyvae.evaluate", " ".join(argv), file=sys.stderr, flush=True)
        if evaluate_main(argv) != 0:
            raise SystemExit(f"evaluating {run_dir} failed (the lines above say why)")
        found = stored_gaps(run_dir, settings)
    return found


def training_seconds(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return records[-1]["wall_seconds"] if records else float("nan")


# ---------------------------------------------------------------------- the table
def plus_minus(result, name):
    return f"{result[name]:.2f} ± {result[name + '_standard_error']:.2f}"


def table(rows):
    """The Markdown table of the decomposition, one row per evaluated run."""
    lines = ["| data | q | encoder | epochs | L[q] | L[q*] | log p(x), K = %s, from q* | "
             "approximation gap | amortization gap | larger part | training wall time | "
             "--gaps wall time |" % (rows[0][1]["k"] if rows else "K"), "|" + "---|" * 12]
    for name, result, seconds in rows:
        dataset, posterior = next((d, p) for d in DATASETS for p in POSTERIORS
                                  if name == f"{d}-{p}")
        _, q, encoder = POSTERIORS[posterior]
        larger = ("amortization" if result["amortization_gap"] > result["approximation_gap"]
                  else "approximation")
        lines.append(
            f"| {DATASETS[dataset]} | {q} | {encoder} | {result['samples_seen'] / 60000:.0f} | "
            f"{plus_minus(result, 'elbo_amortized')} | {plus_minus(result, 'elbo_refined')} | "
            f"{plus_minus(result, 'log_likelihood')} | {plus_minus(result, 'approximation_gap')} | "
            f"{plus_minus(result, 'amortization_gap')} | {larger} | {seconds / 60:.0f} min | "
            f"{result['seconds'] / 60:.0f} min |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the figure
def svi_curves(run_dir, n, steps, lr, draws):
    """Mean ELBO against refinement steps on a fixed random ``n`` test images, started at
    the encoder's q and at the prior; with L[q] and L[q*] of each start ({draws} draws)."""
    from numpyvae import evaluate as evaluation
    from numpyvae.inference import refinement

    model, config, meta = evaluation.load_model(run_dir)
    *_, subset, x, _ = evaluation.evaluation_data(model, config, "test", None, n, 1, sys.stderr)
    curves = dict(run=Path(run_dir).name, samples_seen=int(meta["samples_seen"]), n=len(x),
                  subset=subset, steps=steps, lr=lr, draws=draws)
    for start_name, start in (("amortized", refinement.encoder_start(model, x)),
                              ("prior", refinement.prior_start(model, x))):
        rng = numpy.random.default_rng(0)
        began = time.monotonic()
        refined, history = refinement.refine(model, x, start, steps, rng, lr=lr)
        curves[start_name] = dict(
            history=[round(float(value), 3) for value in history],
            start_elbo=float(refinement.elbo_estimate(model, x, start, rng, draws).mean()),
            final_elbo=float(refinement.elbo_estimate(model, x, refined, rng, draws).mean()),
            seconds=round(time.monotonic() - began, 1))
        print(f"{start_name}: ELBO {curves[start_name]['start_elbo']:.2f} -> "
              f"{curves[start_name]['final_elbo']:.2f} after {steps} steps", file=sys.stderr)
    return curves


def draw_figure(curves, path):
    """Two panels of the same curves: the whole climb from the prior, and the last nats
    near L[q*]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = numpy.arange(1, curves["steps"] + 1)
    top = curves["amortized"]["final_elbo"]
    for axis, (low, high) in zip(axes, ((curves["prior"]["start_elbo"] - 20, top + 20),
                                        (top - 12, top + 3))):
        for key, label, color in (("amortized", "amortized q, then refinement", "C0"),
                                  ("prior", "SVI from scratch (q = the prior at step 0)", "C1")):
            axis.plot(steps, curves[key]["history"], color=color, lw=1, label=label)
        axis.axhline(curves["amortized"]["start_elbo"], color="C0", ls=":", lw=1,
                     label=f"L[q] of the encoder ({curves['amortized']['start_elbo']:.1f})")
        axis.axhline(top, color="k", ls="--", lw=1,
                     label=f"L[q*] after {curves['steps']} refinement steps ({top:.1f})")
        axis.set_ylim(low, high)
        axis.set_xscale("log")
        axis.set_xlabel(f"Adam steps on the local parameters (lr {curves['lr']:g}, one draw a step)",
                        fontsize=8)
        axis.set_ylabel("mean ELBO (nats)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="center left")
    axes[1].set_title("the last nats", fontsize=9)
    axes[0].set_title("the whole climb", fontsize=9)
    figure.suptitle(f"{curves['n']} MNIST test images, FFG (z = 50), "
                    f"{curves['samples_seen'] / 60000:.0f} epochs: SVI from scratch "
                    f"reaches {curves['prior']['final_elbo']:.1f} in {curves['steps']} steps",
                    fontsize=10)
    figure.tight_layout()
    from numpyvae.checkpoint import write_atomically
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=80))
    plt.close(figure)
    return path


def figure(args):
    """The SVI figure: its curves computed once per training budget, then drawn."""
    from numpyvae.rundir import write_json
    run_dir = args.runs_dir / FIGURE_RUN
    stored = args.runs_dir / CURVES_NAME
    curves = json.loads(stored.read_text()) if stored.exists() else None
    wanted = dict(n=args.svi_n, steps=args.svi_steps, lr=args.lr)
    path = args.figures_dir / FIGURE_NAME
    if not args.report_only and (run_dir / "checkpoint.npz").exists() and (
            curves is None or curves["samples_seen"] != samples_seen(run_dir)
            or any(curves.get(key) != value for key, value in wanted.items())):
        curves = svi_curves(run_dir, args.svi_n, args.svi_steps, args.lr, args.draws)
        write_json(stored, curves)
    elif curves is None or (path.exists() and path.stat().st_mtime >= stored.stat().st_mtime):
        return path if curves is not None else None     # drawn from these curves already
    return draw_figure(curves, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "amortization-gap")
    parser.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--epochs", type=float, default=100, help="training epochs per run")
    parser.add_argument("--n-test", type=int, default=300, help="test images of the gaps")
    parser.add_argument("--steps", type=int, default=3000, help="refinement steps (Adam)")
    parser.add_argument("--lr", type=float, default=1e-3, help="the refinement's learning rate")
    parser.add_argument("--k", type=int, default=5000, help="importance samples for log p(x)")
    parser.add_argument("--draws", type=int, default=100, help="noise draws per ELBO estimate")
    parser.add_argument("--svi-n", type=int, default=200, help="test images of the figure")
    parser.add_argument("--svi-steps", type=int, default=5000, help="steps in the figure")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of training")
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), help="these runs alone")
    parser.add_argument("--report-only", action="store_true", help="print from runs on disk")
    parser.add_argument("--quick", action="store_true",
                        help="300 training samples a run, tiny evaluations: checks the script")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    rows = []
    for name in args.only or RUNS:
        run_dir = args.runs_dir / name
        if not args.report_only:
            train(run_dir, RUNS[name], args.epochs, args.threads, args.quick)
        result = evaluate(run_dir, args) if (run_dir / "checkpoint.npz").exists() else None
        if result is not None:
            rows.append((name, result, training_seconds(run_dir)))
    print(f"\nInference gaps on {args.n_test} test images (mean ± standard error over them; "
          f"q* after {args.steps} Adam steps, lr {args.lr:g}; ELBOs of {args.draws} draws):\n")
    print(table(rows))
    path = figure(args)
    if path is not None:
        print(f"\nFigure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
