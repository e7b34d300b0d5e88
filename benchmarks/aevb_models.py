"""The model architectures the benchmarks time (AEVB's Frey Face and MNIST models, a
larger one for GPUs, and the family's shapes) and the matrix products of their training
step. No imports, so a benchmark can load it before it fixes its thread counts and
imports NumPy."""

MODELS = {
    # name: (x_dim, hidden, z_dim, likelihood, lr, batch)
    "frey": (560, (200,), 20, "gaussian", 0.02, 100),
    "mnist": (784, (500,), 20, "bernoulli", 0.02, 100),
    "large": (784, (2048,), 20, "bernoulli", 0.01, 1000),
}



def aevb_shape(key, **changes):
    """A family entry for MODELS[key]: AEVB's VAE, Adagrad, its batch; ``changes``
    replace numpyvae.models.create options (``name`` the member)."""
    x_dim, hidden, z_dim, likelihood, lr, batch = MODELS[key]
    options = dict(name="vae", x_dim=x_dim, hidden=hidden, z_dim=z_dim, likelihood=likelihood)
    return dict(model={**options, **changes}, optimizer=("adagrad", {"lr": lr}), batch=batch)


# The IWAE paper's architecture (Burda et al., 2016, one stochastic layer), as
# benchmarks/reproduce_family.py trains it: Adam (eps 1e-4), batch 20.
IWAE_ARCHITECTURE = dict(x_dim=784, hidden=(200, 200), z_dim=50, likelihood="bernoulli",
                         activation="tanh", init="glorot")
IWAE_OPTIMIZER = ("adam", {"lr": 1e-3, "eps": 1e-4})

# The family's shapes that bench_family.py times against PyTorch twins (issue 18, goal 3):
# name -> {"label", "model": numpyvae.models.create options, "optimizer": (name,
# options), "batch"}.
FAMILY = {
    "frey": dict(label="AEVB Frey Face 560-200-z20, Gaussian", **aevb_shape("frey")),
    "mnist": dict(label="AEVB MNIST 784-500-z20, Bernoulli", **aevb_shape("mnist")),
    "iwae-arch-k1": dict(label="IWAE paper 784-200-200-z50 tanh, VAE (k = 1)",
                         model=dict(name="vae", **IWAE_ARCHITECTURE), optimizer=IWAE_OPTIMIZER,
                         batch=20),
    "iwae-k5": dict(label="IWAE paper 784-200-200-z50 tanh, IWAE k = 5",
                    model=dict(name="iwae", k=5, **IWAE_ARCHITECTURE), optimizer=IWAE_OPTIMIZER,
                    batch=20),
    "large": dict(label="large 784-2048-z20, Bernoulli", **aevb_shape("large")),
    # Wang (2023) Table 1's CVAE (reproduce_family.py wang): labels into both networks.
    "cvae": dict(label="label CVAE 784+10-500-500-z3, Bernoulli",
                 model=dict(name="cvae", x_dim=784, n_classes=10, hidden=(500, 500), z_dim=3,
                            likelihood="bernoulli", init="glorot"),
                 optimizer=("adam", {"lr": 1e-3}), batch=100),
    # The Chen thesis's FC FGVAE (reproduce_conv_vq.sh chen), without its weight decay.
    "batch-norm": dict(label="Chen FC 784-512-256-128-z20, batch norm + ReLU",
                       model=dict(name="vae", x_dim=784, hidden=(512, 256, 128), z_dim=20,
                                  likelihood="bernoulli", activation="relu", batch_norm=True,
                                  init="glorot"),
                       optimizer=("adam", {"lr": 1e-3}), batch=128),
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
