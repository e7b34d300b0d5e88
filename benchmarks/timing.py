"""Timing helpers shared by the benchmarks: best-of-N wall time, numpyvae's training
step as a user's loop runs it, a step's matrix products alone, interleaved rounds, and
one child process per thread count. Import it after the thread counts are fixed: it
loads NumPy."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# Seconds between timed segments. OpenBLAS and PyTorch's OpenMP keep their worker
# threads spinning for a while after each call; a pause lets them go idle, so that
# neither runner is timed while the other's threads still occupy the cores.
IDLE_PAUSE = 0.5
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def best_seconds(function, repeats, tries=5):
    """Seconds per call of ``function()``: one warm-up call, then the best of ``tries``
    timings of ``repeats`` calls each."""
    function()
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def matmul_runner(shapes, library="numpy", worker=None, split_min_multiply_adds=1 << 20):
    """A function that computes one product of each (m, k, n) in ``shapes`` into a
    preallocated output, through NumPy (numpyvae's BLAS) or ``torch.mm`` (PyTorch's
    own BLAS, MKL on x86).

    With a ``worker`` (an object with ``run_beside(background, foreground)``), each
    product of at least ``split_min_multiply_adds`` is split in two halves along the
    longer side of its output, one half computed by the worker."""
    rng = np.random.default_rng(0)
    operands = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32),
                 np.empty((m, n), np.float32)) for m, k, n in shapes]
    multiply = np.matmul
    if library == "torch":
        import torch
        operands = [tuple(torch.from_numpy(array) for array in triple) for triple in operands]
        multiply = torch.mm
    tasks = []
    for (a, b, out), (m, k, n) in zip(operands, shapes):
        if worker is None or m * k * n < split_min_multiply_adds:
            tasks.append(lambda a=a, b=b, out=out: multiply(a, b, out=out))
        elif m >= n:
            h = m // 2
            tasks.append(lambda a=a, b=b, out=out, h=h: worker.run_beside(
                lambda: multiply(a[h:], b, out=out[h:]), lambda: multiply(a[:h], b, out=out[:h])))
        else:
            h = n // 2
            tasks.append(lambda a=a, b=b, out=out, h=h: worker.run_beside(
                lambda: multiply(a, b[:, h:], out=out[:, h:]),
                lambda: multiply(a, b[:, :h], out=out[:, :h])))

    def run():
        for task in tasks:
            task()
    return run


def numpyvae_runner(model, optimizer, data, batch, conditions=None):
    """run(steps): that many training steps through the public API a user's loop calls
    (loss_and_grads with the model's noise, then optimizer.step), cycling through
    ``data`` (and its ``conditions``, a CVAE's labels) in batches; returns the last loss."""
    from numpyvae import backend   # noqa: PLC0415  (after the thread counts, like NumPy)
    rng = np.random.default_rng(1)
    data = backend.to_device(data, model.xp)  # once, not per batch
    position = [0]

    def run(steps):
        for _ in range(steps):
            start = position[0]
            x = data[start:start + batch]
            condition = None if conditions is None else conditions[start:start + batch]
            position[0] = (start + batch) % (len(data) - batch + 1)
            loss, grads = model.loss_and_grads(x, condition=condition, rng=rng)
            optimizer.step(model.params, grads)
        return float(loss)
    return run


def build(shape):
    """The numpyvae model of a benchmark shape (aevb_models.FAMILY's entries), seed 0."""
    import numpyvae  # noqa: PLC0415  (after the thread counts, like NumPy)
    options = dict(shape["model"])
    return numpyvae.models.create(options.pop("name"), seed=0, **options)


def shape_data(model, rows, seed=0):
    """``rows`` random rows for ``model`` (binary for a Bernoulli decoder), and labels
    for a label-conditioned one (else None)."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, model.x_dim), dtype=np.float32)
    if model.likelihood == "bernoulli":
        x = (x > 0.5).astype(np.float32)
    labels = rng.integers(0, model.n_classes, rows) if model.condition_kind == "label" else None
    return x, labels


def shape_runners(shape, with_torch):
    """{"numpyvae": run, "pytorch": run}: training steps of a shape (its optimizer, its
    batch) through numpyvae's public API and, ``with_torch``, through its PyTorch twin
    with the same optimizer (foreach), each from the same initial weights."""
    import numpyvae  # noqa: PLC0415
    model, batch = build(shape), shape["batch"]
    data, labels = shape_data(model, max(2000, 2 * batch))
    name, options = shape["optimizer"]
    runners = {"numpyvae": numpyvae_runner(model, numpyvae.optim.OPTIMIZERS[name](**options),
                                           data, batch, labels)}
    if with_torch:
        import torch_twins  # noqa: PLC0415  (beside this script; loads PyTorch)
        twin = torch_twins.mlp_twin(build(shape))
        torch_optimizer = torch_twins.optimizer_pair(shape["optimizer"], build(shape), twin)[1]
        runners["pytorch"] = torch_twins.torch_runner(
            twin, torch_optimizer, data, batch, torch_twins.noise_shape(model, batch), labels)
    return runners


def steps_for(run, seconds, least=3):
    """How many calls of ``run(steps)`` fill about ``seconds`` (at least ``least``),
    from one timed step after a warm-up step."""
    run(1)
    start = time.perf_counter()
    run(1)
    return max(least, round(seconds / max(time.perf_counter() - start, 1e-9)))


def interleaved_ms(runners, rounds, steps, pause=IDLE_PAUSE):
    """Median milliseconds per step of each ``runners[key](steps)``: ``rounds`` rounds
    in which each runner runs once, the order reversed every round, after ``pause``
    seconds."""
    times = {key: [] for key in runners}
    order = list(runners)
    for _ in range(rounds):
        for key in order:
            time.sleep(pause)
            start = time.perf_counter()
            runners[key](steps)
            times[key].append(1e3 * (time.perf_counter() - start) / steps)
        order.reverse()
    return {key: statistics.median(values) for key, values in times.items()}


def add_round_arguments(parser, rounds, round_seconds, what):
    """The options of a benchmark that times interleaved rounds in a child process per
    thread count: --threads, --rounds, --round-seconds, --quick, --no-torch, --child."""
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="BLAS / PyTorch thread counts, one process each (default 1 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"interleaved timing rounds ({rounds})")
    parser.add_argument("--round-seconds", type=float, default=None,
                        help=f"about how long each side runs per round ({round_seconds})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{what}, one thread, one short round (for the test suite)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(full_defaults=dict(threads=[1, 2], rounds=rounds,
                                           round_seconds=round_seconds))


def settle_round_arguments(parser, arguments):
    """Fill what was not given (--quick: one thread, one round of a few steps) and
    refuse non-positive counts with a one-line error (exit status 2)."""
    defaults = (dict(threads=[1], rounds=1, round_seconds=0.001) if arguments.quick
                else arguments.full_defaults)
    for key, value in defaults.items():
        if getattr(arguments, key) is None:
            setattr(arguments, key, value)
    if min(arguments.threads) < 1 or arguments.rounds < 1 or not arguments.round_seconds > 0:
        parser.exit(2, "error: --threads, --rounds and --round-seconds must be positive; "
                       f"got threads {arguments.threads}, rounds {arguments.rounds}, "
                       f"round-seconds {arguments.round_seconds}.\n")
    return arguments


def run_children(script, threads, arguments, marker):
    """Run ``script --child N *arguments`` once per thread count N, the BLAS thread
    counts set in its environment (a BLAS fixes them when it loads), and return each
    child's result: the JSON on its stdout line that starts with ``marker``. A child
    that fails ends the run: its stderr is shown and its exit status returned as
    (status, None)."""
    results = []
    for count in threads:
        environment = dict(os.environ, **{name: str(count) for name in THREAD_VARIABLES})
        completed = subprocess.run([sys.executable, os.path.abspath(script), "--child",
                                    str(count), *arguments], env=environment,
                                   capture_output=True, text=True)
        sys.stderr.write(completed.stderr)
        if completed.returncode != 0:
            print(completed.stdout)
            return completed.returncode, None
        line = next(line for line in completed.stdout.splitlines() if line.startswith(marker))
        results.append(json.loads(line[len(marker):]))
    return 0, results


def child_record(threads, numpyvae, torch, **fields):
    """What every benchmark child reports beside its timings: the thread count, the
    versions and the load average at its start (the child adds "load_end")."""
    return {"threads": threads, "numpy": np.__version__, "numpyvae": numpyvae.__version__,
            "blas": numpyvae.threads.blas_description(),
            "torch": torch.__version__ if torch else None, "load_start": os.getloadavg(),
            **fields}


def versions_text(record):
    """The versions, and NumPy's BLAS with its kernels: OPENBLAS_CORETYPE in the
    environment can hold OpenBLAS to slower ones (README, "Speed")."""
    return (f"numpyvae {record['numpyvae']}, NumPy {record['numpy']} with "
            f"{record['blas']}, PyTorch {record['torch'] or 'not installed'}, "
            f"{os.cpu_count()} cores")


def load_text(results):
    """The load average over each child's run: what the figures are only as quiet as."""
    return "load average " + ", ".join(f"{r['threads']} thread(s): {r['load_start'][0]:.2f} -> "
                                       f"{r['load_end'][0]:.2f}" for r in results)


def run_and_describe(script, arguments, marker, what):
    """run_children at ARGUMENTS' thread counts, then the run's first line: versions,
    ``what`` (the setup in words) and the load; returns (status, results)."""
    status, results = run_children(script, arguments.threads, sys.argv[1:], marker)
    if not status:
        print(f"{versions_text(results[0])}, float32{what}; medians of {arguments.rounds} "
              f"interleaved rounds of about {arguments.round_seconds:g} s each; "
              f"{load_text(results)}")
    return status, results
