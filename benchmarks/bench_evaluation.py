"""Importance-sampled log p(x), numpyvae against the identical PyTorch model (issue 18, goal 2).

    python benchmarks/bench_evaluation.py [--threads 1 2] [--k 1000] [--examples 300]
                                          [--rounds 3] [--models iwae mnist] [--quick]

For each model (the IWAE paper's 784-200-200-50 and AEVB's MNIST 784-500-20, tanh,
Bernoulli decoder, float32, Glorot-initialized weights), K draws for each of
``--examples`` binarized MNIST test images (random ones where the data set is not
found), at each thread count:

1. builds the same model in PyTorch with the same weights, feeds both the same noise and
   checks that log p(x) agrees to float32 precision; checks numpyvae's fused path
   against its general path (``fused=False``) the same way;
2. times ``numpyvae.marginal_likelihood.log_marginal_likelihood`` (what ``python -m
   numpyvae.evaluate`` runs) and the PyTorch twin (encoder once per batch, decoder and
   ``binary_cross_entropy_with_logits`` per chunk of draws, ``logsumexp`` over K, each
   drawing its own noise; in numpyvae's chunks and in cache-sized ones), interleaved, medians of ``--rounds``; the general path and the fused path
   on one Python thread with BLAS threads instead, once each;
3. times the decoder's three matrix products alone for as many rows (the bound: no
   NumPy implementation can beat it), the faster of BLAS threads on chunk-sized
   products and Python threads on block-sized ones;
4. prints importance weights per second, the ratios, and whether goal 2 (at two
   threads: 60% of the bound and 1.5x PyTorch) is met in this run, with the load
   average beside it (the figures are only as quiet as the machine).
"""
import argparse
import concurrent.futures
import math
import os
import statistics
import sys
import time

import numpy as np
from timing import matmul_runner

import numpyvae as nv
from numpyvae import datasets
from numpyvae.fused_weights import BLOCK_ROWS, FusedLogWeights
from numpyvae.marginal_likelihood import DEFAULT_MAX_FLOATS, chunk_sizes, log_marginal_likelihood
from numpyvae.reparameterize import box_muller
from numpyvae.threads import threadpool_limits

ARCHITECTURES = {   # name: (x_dim, hidden, z_dim)
    "iwae": (784, (200, 200), 50),     # Burda et al. 2016, one stochastic layer
    "mnist": (784, (500,), 20),        # Kingma & Welling 2013
}
TARGET_FRACTION_OF_BOUND = 0.60
TARGET_RATIO_TO_PYTORCH = 1.5
TORCH_KEYS = ("PyTorch in numpyvae's chunks", "PyTorch in 512-row chunks")
IDLE_PAUSE = 0.3   # seconds between timed segments: spinning BLAS / OpenMP threads go idle


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--k", type=int, nargs="+", default=[1000], help="importance samples K")
    parser.add_argument("--examples", type=int, default=300, help="test images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--no-general", action="store_true",
                        help="skip timing the general path (slow: minutes at K = 1000)")
    parser.add_argument("--quick", action="store_true",
                        help="a seconds-long check that it runs (20 images, K = 64, one round)")
    args = parser.parse_args()
    if args.quick:
        args.k, args.examples, args.rounds = [64], 20, 1
    args.pause = 0.0 if args.quick else IDLE_PAUSE
    return args


ARGUMENTS = parse_arguments()
try:
    if ARGUMENTS.no_torch:
        raise ImportError
    import torch
except ImportError:
    torch = None


def test_images(count):
    """``count`` binarized MNIST test images (a fixed random subset), or random binary
    images where the data set is not in the data directory."""
    try:
        images, _ = datasets.load("binarized-mnist", "test", download=False)
    except datasets.DataError as error:
        print(f"({error.__class__.__name__}: random binary images instead of binarized MNIST)")
        return (np.random.default_rng(0).random((count, 784)) < 0.13).astype(np.float32), "random"
    return images[datasets.fixed_subset(len(images), count, 0, stream=10)], "binarized MNIST"


def chunk_counts(model, n, samples, max_floats=DEFAULT_MAX_FLOATS):
    """(batch, the draws of each chunk) as log_marginal_likelihood takes them."""
    batch, chunk = chunk_sizes(n, samples, model.widest_layer(), max_floats)
    return batch, [min(chunk, samples - first) for first in range(0, samples, chunk)]


# ------------------------------------------------------------------ PyTorch twin
def torch_twin(model, max_floats=DEFAULT_MAX_FLOATS):
    """log p(x) of the same VAE in PyTorch: log_px(x, samples, noise) with ``noise(count,
    n)`` giving the eps of each chunk of draws (the chunks numpyvae takes, or those that
    ``max_floats`` gives)."""
    functional = torch.nn.functional

    def layer(prefix):
        return (torch.from_numpy(np.array(model.params[f"{prefix}.W"])),
                torch.from_numpy(np.array(model.params[f"{prefix}.b"])))

    depth = len(model.hidden)
    encoder = [layer(f"encoder.hidden{i}") for i in range(depth)]
    heads = layer("encoder.mu"), layer("encoder.logvar")
    decoder = [layer(f"decoder.hidden{i}") for i in range(len(model.decoder_hidden))]
    logits_layer = layer("decoder.logits")
    log_2pi = math.log(2 * math.pi)

    def log_weights(x, mu, logvar, eps):
        z = mu + torch.exp(0.5 * logvar) * eps
        h = z
        for weight, bias in decoder:
            h = torch.tanh(torch.addmm(bias, h.reshape(-1, h.shape[-1]), weight))
        logits = torch.addmm(logits_layer[1], h, logits_layer[0]).reshape(z.shape[:2] + (-1,))
        log_likelihood = -functional.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)
        log_prior = -0.5 * ((z * z).sum(-1) + z.shape[-1] * log_2pi)
        log_q = -0.5 * ((eps * eps).sum(-1) + logvar.sum(-1) + z.shape[-1] * log_2pi)
        return log_likelihood + log_prior - log_q

    @torch.inference_mode()
    def log_px(x, samples, noise):
        x = torch.from_numpy(x)
        batch, counts = chunk_counts(model, len(x), samples, max_floats)
        result = []
        for start in range(0, len(x), batch):
            rows = x[start:start + batch]
            h = rows
            for weight, bias in encoder:
                h = torch.tanh(torch.addmm(bias, h, weight))
            mu, logvar = (torch.addmm(bias, h, weight) for weight, bias in heads)
            weights = torch.cat([log_weights(rows, mu, logvar, noise(count, len(rows)))
                                 for count in counts])
            result.append(torch.logsumexp(weights.double(), 0) - math.log(samples))
        return torch.cat(result).numpy()
    return log_px


# ----------------------------------------------------------------- the bound
def decoder_shapes(model, rows):
    sizes = (model.z_dim,) + tuple(model.decoder_hidden) + (model.x_dim,)
    return [(rows, n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def bound(model, threads, chunk_rows):
    """(rows per second, CPU seconds per row) through the decoder's products alone: the
    faster of ``threads`` BLAS threads on products of ``chunk_rows`` rows (the general
    path's chunks) and ``threads`` Python threads with one BLAS thread each on blocks of
    BLOCK_ROWS rows (the fused path's)."""
    with threadpool_limits(threads, user_api="blas"):
        run = matmul_runner(decoder_shapes(model, chunk_rows))
        run()
        blas = best_of(lambda: [run() for _ in range(2)], 2 * chunk_rows)
    runners = [matmul_runner(decoder_shapes(model, BLOCK_ROWS)) for _ in range(threads)]
    repeats = max(4, 2 * chunk_rows // BLOCK_ROWS // threads)

    def work(run):
        for _ in range(repeats):
            run()
    with threadpool_limits(1, user_api="blas"), \
            concurrent.futures.ThreadPoolExecutor(threads) as pool:
        split = best_of(lambda: list(pool.map(work, runners)), threads * repeats * BLOCK_ROWS)
    return max(blas, split)


def best_of(function, rows, tries=3):
    """The best of ``tries`` timings of ``function()``, which computes ``rows`` rows:
    (rows per second, CPU seconds per row)."""
    timings = [timed(function) for _ in range(tries)]
    return max(rows / wall for wall, _ in timings), min(cpu for _, cpu in timings) / rows


# ----------------------------------------------------------------- one row
def timed(function):
    """(wall seconds, CPU seconds of the whole process) of one call of ``function()``."""
    time.sleep(ARGUMENTS.pause)
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def agreement(model, x, samples, twin):
    """Largest |difference| in log p(x) (nats) of the fused path against the general
    path and against PyTorch, all from the same noise."""
    with np.errstate(over="ignore", under="ignore"):
        fused = log_marginal_likelihood(model, x, np.random.default_rng(7), samples)
        general = log_marginal_likelihood(model, x, np.random.default_rng(7), samples, fused=False)
    result = {"general": float(np.abs(fused - general).max())}
    if twin is not None:
        rng = np.random.default_rng(7)
        theirs = twin(x, samples, lambda count, n: torch.from_numpy(
            box_muller(rng, (count, n, model.z_dim), np.float32)))
        result["torch"] = float(np.abs(fused - theirs).max())
    result["scale"] = float(np.abs(fused).mean())
    return result


def benchmark(name, samples, threads, x):
    x_dim, hidden, z_dim = ARCHITECTURES[name]
    model = nv.VAE(x_dim, hidden, z_dim, likelihood="bernoulli", init="glorot", seed=0)
    twin = torch_twin(model) if torch is not None else None
    weights = len(x) * samples
    row = {"model": f"{name}: {x_dim}-{'-'.join(map(str, hidden))}-{z_dim}", "k": samples,
           "threads": threads, "agreement": agreement(model, x, samples, twin)}

    def ours():
        with np.errstate(over="ignore", under="ignore"):
            log_marginal_likelihood(model, x, np.random.default_rng(1), samples, threads=threads)
    runners = {"numpyvae": ours}
    if twin is not None:
        generator = torch.Generator().manual_seed(1)

        def noise(count, n):
            return torch.randn(count, n, z_dim, generator=generator)
        # PyTorch in numpyvae's chunks (up to 10^7 floats, as numpyvae's general path),
        # and in chunks of about BLOCK_ROWS rows that stay in the cache (as its fused path).
        small = torch_twin(model, BLOCK_ROWS * x_dim)
        runners[TORCH_KEYS[0]] = lambda: twin(x, samples, noise)
        runners[TORCH_KEYS[1]] = lambda: small(x, samples, noise)
        torch.set_num_threads(threads)
    with threadpool_limits(threads, user_api="blas"):
        for run in runners.values():
            run()   # warm-up
        speeds = {key: [] for key in runners}
        cpu = []
        for _ in range(ARGUMENTS.rounds):
            for key, run in runners.items():
                wall, seconds = timed(run)
                speeds[key].append(weights / wall)
                if key == "numpyvae":
                    cpu.append(seconds / weights)
        row.update({key: statistics.median(values) for key, values in speeds.items()})
        row["cpu"] = statistics.median(cpu)
        with np.errstate(over="ignore", under="ignore"):
            if not ARGUMENTS.no_general:
                row["general"] = weights / timed(lambda: log_marginal_likelihood(
                    model, x, np.random.default_rng(1), samples, fused=False))[0]
            if threads > 1:
                blas = FusedLogWeights(model, threads=1, blas_threads=threads)
                row["blas_threaded"] = weights / timed(lambda: log_marginal_likelihood(
                    model, x, np.random.default_rng(1), samples, fused=blas))[0]
    batch, counts = chunk_counts(model, len(x), samples)
    row["bound"], row["bound_cpu"] = bound(model, threads, batch * counts[0])
    row["load"] = os.getloadavg()[0]
    return row


def main():
    x, source = test_images(ARGUMENTS.examples)
    print(f"numpyvae {nv.__version__}, NumPy {np.__version__} with "
          f"{nv.threads.blas_description()}, PyTorch "
          f"{torch.__version__ if torch else 'not installed'}, {os.cpu_count()} cores, float32; "
          f"{len(x)} {source} test images; importance weights per second, medians of "
          f"{ARGUMENTS.rounds} interleaved round(s)")
    rows = [benchmark(name, samples, threads, x) for name in ARGUMENTS.models
            for samples in ARGUMENTS.k for threads in ARGUMENTS.threads]
    print()
    print("| model | K | threads | numpyvae | general path | fused, BLAS threads | PyTorch, "
          "numpyvae's chunks | PyTorch, 512-row chunks | ratios | NumPy GEMM bound | fraction "
          "of bound | CPU us per weight, bound's, fraction | max abs diff of log p(x): general "
          "path, PyTorch | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def number(row, key):
        return f"{row[key]:,.0f}" if key in row else "n/a"

    def ratios(row):
        return ", ".join(f"{row['numpyvae'] / row[key]:.2f}x" for key in TORCH_KEYS if key in row)
    for row in rows:
        agree = row["agreement"]
        print(f"| {row['model']} | {row['k']} | {row['threads']} | {row['numpyvae']:,.0f} | "
              f"{number(row, 'general')} | {number(row, 'blas_threaded')} | "
              f"{number(row, TORCH_KEYS[0])} | {number(row, TORCH_KEYS[1])} | "
              f"{ratios(row) or 'n/a'} | {row['bound']:,.0f} | "
              f"{row['numpyvae'] / row['bound']:.0%} | {1e6 * row['cpu']:.2f}, "
              f"{1e6 * row['bound_cpu']:.2f}, {row['bound_cpu'] / row['cpu']:.0%} | "
              f"{agree['general']:.1e}, "
              f"{agree.get('torch', float('nan')):.1e} (of {agree['scale']:.0f}) | "
              f"{row['load']:.1f} |")
    print()
    for row in rows:
        if row["threads"] < 2:
            continue
        fraction = row["numpyvae"] / row["bound"]
        verdicts = [f"{fraction:.0%} of the bound ("
                    f"{'met' if fraction >= TARGET_FRACTION_OF_BOUND else 'NOT met'}: target "
                    f"{TARGET_FRACTION_OF_BOUND:.0%})"]
        for key in TORCH_KEYS:
            if key in row:
                ratio = row["numpyvae"] / row[key]
                verdicts.append(f"{ratio:.2f}x {key} ("
                                f"{'met' if ratio >= TARGET_RATIO_TO_PYTORCH else 'NOT met'}: "
                                f"target {TARGET_RATIO_TO_PYTORCH}x)")
        print(f"goal 2, {row['model']}, K = {row['k']}, {row['threads']} threads: "
              + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
