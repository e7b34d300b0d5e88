"""The model architectures the benchmarks time: AEVB's Frey Face and MNIST models, and
a larger one for GPUs. Plain data, no imports, so a benchmark can load it before it
fixes its thread counts and imports NumPy."""

MODELS = {
    # name: (x_dim, hidden, z_dim, likelihood, lr, batch)
    "frey": (560, (200,), 20, "gaussian", 0.02, 100),
    "mnist": (784, (500,), 20, "bernoulli", 0.02, 100),
    "large": (784, (2048,), 20, "bernoulli", 0.01, 1000),
}
