"""The Chen thesis's latent-size sweep (Figures 4.1 and 4.5) on MNIST and Fashion-MNIST,
with numpyvae.

    python benchmarks/reproduce_chen_sweep.py [--epochs 20] [--only mnist fashion-mnist]
    python benchmarks/reproduce_chen_sweep.py --report-only
    python benchmarks/reproduce_chen_sweep.py --quick

The FC FGVAE (512-256-128 encoder, 128-256-512 decoder, batch norm and ReLU after every
hidden layer), Adam lr 1e-3 with weight decay 1e-5 (a N(0, 1.29^2) weight prior scaled
by 1/60 000 adds the same 1e-5 theta to the gradient), batch 128, grey pixels with the
summed cross-entropy, for d in {2, 5, 10, 15, 20, 25}, 20 epochs. Reported per d: the
test loss (-ELBO, whole test set, 10 noise draws: numpyvae.evaluate --k 1) and the
reconstruction loss -E_q[log p(x|z)] and KL on the run's fixed 1000 test images at the
last evaluation. The thesis gives both only as plots (axes from 70 for MNIST, 220 for
Fashion-MNIST) and concludes that d = 20 suffices for both; one figure per data set
draws ours against d. Each run also writes its reconstructions, the d = 2 manifold and
the latent projection coloured by class (RUN/figures).
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_aevb import evaluate, read_json_lines, train  # noqa: E402

LATENTS = (2, 5, 10, 15, 20, 25)
CHEN_FC = ["--hidden", "512", "256", "128", "--batch-norm", "--activation", "relu",
           "--optimizer", "adam", "--lr", "0.001", "--batch-size", "128", "--likelihood",
           "bernoulli", "--no-binarize", "--weight-prior-std", "1.29", "--init", "glorot"]
TRAINING_EXAMPLES = 60_000


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/chen-sweep"))
    parser.add_argument("--epochs", type=float, default=20.0, help="the thesis: 20")
    parser.add_argument("--only", nargs="+", choices=("mnist", "fashion-mnist"),
                        default=("mnist", "fashion-mnist"))
    parser.add_argument("--latents", nargs="+", type=int, default=LATENTS)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny nets and budgets")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    flags = CHEN_FC
    if args.quick:
        flags = [*CHEN_FC[:1], "16", *CHEN_FC[4:]]        # one hidden layer of 16
        args.epochs = 0.02
    budget = int(round(args.epochs * TRAINING_EXAMPLES))
    rows = {}
    for data in args.only:
        for d in args.latents:
            name = f"{data}-d{d}"
            spec = dict(flags=["--dataset", data, "--z-dim", str(d), *flags], budget=budget)
            run_dir, _ = train(name, spec, args.runs_dir, args.report_only)
            result = evaluate(run_dir, 1, "all", args.runs_dir, args.report_only)[0]
            last = read_json_lines(run_dir / "metrics.jsonl")[-1]
            rows[data, d] = dict(loss=-result["elbo_whole_split"],
                                 reconstruction=-last["test_log_likelihood"], kl=last["test_kl"],
                                 seconds=last["wall_seconds"], figures=run_dir / "figures")
    print(f"\nChen FC FGVAE, {args.epochs:g} epochs (the thesis: 20)")
    print("| data | d | test loss (-ELBO, all test images) | reconstruction loss | KL "
          "| training time |")
    print("|---|---|---|---|---|---|")
    for (data, d), row in rows.items():
        print(f"| {data} | {d} | {row['loss']:.2f} | {row['reconstruction']:.2f} | "
              f"{row['kl']:.2f} | {row['seconds']:.0f} s |")
    for data in args.only:
        path = draw(data, {d: row for (key, d), row in rows.items() if key == data},
                    args.runs_dir / f"chen-sweep-{data}.png")
        print(f"- {data}: {path}; the d = 2 manifold and projections: "
              f"{rows.get((data, 2), {}).get('figures', 'not run')}")
    return 0


def draw(data, rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latents = sorted(rows)
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    axis.plot(latents, [rows[d]["loss"] for d in latents], "o-", label="test loss (-ELBO)")
    axis.plot(latents, [rows[d]["reconstruction"] for d in latents], "s--",
              label="reconstruction loss")
    axis.set_xlabel("latent size d")
    axis.set_ylabel("nats per image")
    axis.set_xticks(latents)
    axis.set_title(f"Chen FC FGVAE on {data}: loss against d (the thesis's Figures 4.1/4.5)")
    axis.legend()
    axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
