"""The optimizer step on AEVB-sized models: blocked flat update against one pass per
formula over the whole flat buffer, interleaved in one run.

    python benchmarks/bench_optimizer.py [--rounds 9] [--steps 100]

numpyvae's flat update (numpyvae/optim.py) runs block by block so that a block's
arrays stay in cache across the update's passes. This script measures what that
buys: for each optimizer and model it times ``opt.step(model.params, grads)`` with
the default ``BLOCK_ELEMENTS`` and with one block spanning the whole buffer (the
unblocked update), alternating the two, and prints the medians. Both run the same
element-wise formulas, so their results are identical; only the memory traffic
differs. NumPy's element-wise operations run on one thread, so the thread count
does not matter here.

The last column is a floor for the blocked update: one block's step timed over and
over (its arrays never leave the cache), times the number of blocks. It is what the
passes cost at NumPy's speed when memory costs nothing.
"""
import argparse
import statistics
import time

import numpy as np
from aevb_models import MODELS  # beside this script

import numpyvae as nv


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per round")
    return parser.parse_args()


def time_steps(optimizer, params, grads, steps, block):
    nv.optim.BLOCK_ELEMENTS = block
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step(params, grads)
    return (time.perf_counter() - start) / steps


def in_cache_seconds(optimizer_class, size, block, steps):
    """One block's step, repeated on the same cached arrays, scaled to ``size``."""
    params = nv.parameters.ParameterDict([("block", (block,))])
    grads = params.zeros_like()
    grads.flat[...] = np.random.default_rng(1).standard_normal(block, dtype=np.float32)
    optimizer = optimizer_class(lr=1e-12)
    seconds = min(time_steps(optimizer, params, grads, steps * 10, block) for _ in range(5))
    return seconds * size / block


def main():
    arguments = parse_arguments()
    default_block = nv.optim.BLOCK_ELEMENTS
    print(f"NumPy {np.__version__}, float32, BLOCK_ELEMENTS = {default_block}, medians of "
          f"{arguments.rounds} interleaved rounds of {arguments.steps} steps")
    print()
    print("| model | parameters | optimizer | unblocked, ms/step | blocked, ms/step | speed-up "
          "| floor: blocks in cache, ms/step |")
    print("|---|---|---|---|---|---|---|")
    for name in ("frey", "mnist"):
        x_dim, hidden, z_dim, likelihood, _, batch_size = MODELS[name]
        model = nv.VAE(x_dim, hidden, z_dim, likelihood=likelihood)
        rng = np.random.default_rng(0)
        batch = rng.random((batch_size, x_dim), dtype=np.float32)
        _, grads = model.loss_and_grads(batch, rng=rng)
        size = model.params.flat.size
        for optimizer_name, optimizer_class in nv.optim.OPTIMIZERS.items():
            # Tiny learning rates keep the parameters where they are over thousands
            # of steps, so every round times the same arithmetic.
            optimizer = optimizer_class(lr=1e-12)
            times = {"unblocked": [], "blocked": []}
            time_steps(optimizer, model.params, grads, 5, default_block)  # state, warm-up
            for _ in range(arguments.rounds):
                times["unblocked"].append(time_steps(optimizer, model.params, grads,
                                                     arguments.steps, size))
                times["blocked"].append(time_steps(optimizer, model.params, grads,
                                                   arguments.steps, default_block))
            unblocked, blocked = (statistics.median(times[key]) for key in ("unblocked", "blocked"))
            floor = in_cache_seconds(optimizer_class, size, default_block, arguments.steps)
            print(f"| {name} | {size:,} | {optimizer_name} | {unblocked * 1e3:.3f} | "
                  f"{blocked * 1e3:.3f} | {unblocked / blocked:.2f}x | {floor * 1e3:.3f} |")
    nv.optim.BLOCK_ELEMENTS = default_block
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
