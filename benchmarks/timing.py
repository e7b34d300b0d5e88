"""Timing helpers shared by the benchmarks: best-of-N wall time, numpyvae's training
step as a user's loop runs it, and a step's matrix products alone. Import it after the thread counts are fixed: it loads NumPy."""
import time

import numpy as np


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


def numpyvae_runner(model, optimizer, data, batch):
    """run(steps): that many training steps through the public API a user's loop calls
    (loss_and_grads with the model's noise, then optimizer.step), cycling through
    ``data`` in batches; returns the last loss."""
    from numpyvae import backend   # noqa: PLC0415  (after the thread counts, like NumPy)
    rng = np.random.default_rng(1)
    data = backend.to_device(data, model.xp)  # once, not per batch
    position = [0]

    def run(steps):
        for _ in range(steps):
            start = position[0]
            x = data[start:start + batch]
            position[0] = (start + batch) % (len(data) - batch + 1)
            loss, grads = model.loss_and_grads(x, rng=rng)
            optimizer.step(model.params, grads)
        return float(loss)
    return run
