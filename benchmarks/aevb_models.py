"""The model architectures the benchmarks time (AEVB's Frey Face and MNIST models, and
a larger one for GPUs) and the matrix products of their training step. No imports, so
a benchmark can load it before it fixes its thread counts and imports NumPy."""

MODELS = {
    # name: (x_dim, hidden, z_dim, likelihood, lr, batch)
    "frey": (560, (200,), 20, "gaussian", 0.02, 100),
    "mnist": (784, (500,), 20, "bernoulli", 0.02, 100),
    "large": (784, (2048,), 20, "bernoulli", 0.01, 1000),
}


def matmul_shapes(x_dim, hidden, z_dim, likelihood, batch):
    """(m, k, n) of every matrix product in one training step (forward + backward)."""
    shapes = []
    encoder = [x_dim, *hidden]
    decoder = [z_dim, *hidden[::-1]]
    heads = 1 if likelihood == "bernoulli" else 2
    layers = [(a, b, i > 0) for i, (a, b) in enumerate(zip(encoder[:-1], encoder[1:]))]
    layers += [(encoder[-1], z_dim, True)] * 2
    layers += [(a, b, True) for a, b in zip(decoder[:-1], decoder[1:])]
    layers += [(decoder[-1], x_dim, True)] * heads
    for n_in, n_out, needs_input_grad in layers:
        shapes.append((batch, n_in, n_out))          # forward  x W
        shapes.append((n_in, batch, n_out))          # backward x^T g
        if needs_input_grad:
            shapes.append((batch, n_out, n_in))      # backward g W^T
    return shapes
