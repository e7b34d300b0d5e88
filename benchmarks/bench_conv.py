"""Conv training step of numpyvae against the identical PyTorch model, side by side.

    python benchmarks/bench_conv.py [--threads 1 2] [--rounds 5] [--steps 8]
                                    [--batches 128 100] [--quick] [--no-torch]

Three conv nets on 28 x 28 one-channel (MNIST-like) images, float32, Adam (lr 1e-3):

* ``vae-bn``: the Chen thesis's CNN VAE: convolutions 32-64-128 (kernel 4, stride 2,
  padding 1), each with batch norm and ReLU, Dense heads mu/logvar (z 20); the decoder
  a Dense stem onto 128 x 3 x 3 with batch norm and ReLU, transposed convolutions
  128->64->32 (batch norm, ReLU) and a transposed-convolution head onto Bernoulli logits;
* ``vae``: the same without batch norm;
* ``vq-vae``: the Keras example's VQ-VAE: convolutions 32-64 (kernel 3, stride 2) to a
  7 x 7 grid of 16-dimensional codes (a 1 x 1 convolution), K = 128, the mirror decoder
  with a linear output and a fixed-variance Gaussian (0.0475); straight-through estimator.

For each thread count, in a process of its own (a BLAS fixes its threads when it loads;
the parent sets them in the child's environment, as bench_threads.py does), the child:

1. builds each numpyvae model and, when PyTorch is installed, the same network in
   PyTorch with the numpyvae model's initial weights copied across, feeds both one batch
   and the same noise, and checks the losses (relative difference under 1e-4) and every
   parameter's gradient (and the batch norms' running statistics) against autograd
   (max-abs relative error under 1e-3 per array; a bias right before a batch norm, whose
   gradient is zero in exact arithmetic, against its layer's weight gradient); the
   script exits with status 1 if they disagree;
2. times full training steps of both (loss, backward, Adam step; PyTorch's Adam with
   foreach=True), each drawing its own noise as a training loop would, in interleaved
   rounds, and reports median ms/step;
3. for ``vae-bn`` at the first batch size: where numpyvae's step goes, piece by piece
   (the library's own layers, timed by wrapping their methods: im2col gathers, col2im
   scatters, channel-first copies, batch norm, activations, the loss, Adam), each conv
   or dense piece beside its matrix products timed alone at the same shapes and memory
   layout; then the GEMM totals through NumPy and through torch.mm, and PyTorch's own
   top operators (torch.profiler) for the same step.

``--init glorot`` (the default) initializes as conv nets are trained (the VQ-VAE's
training defaults); timings do not depend on it. ``--quick`` runs tiny shapes once (the
test suite runs it). PyTorch is a benchmark extra, never a dependency.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict

MARKER = "BENCH_CONV_RESULT "
LOSS_TOLERANCE = 1e-4       # relative, float32
GRAD_TOLERANCE = 1e-3       # max |a - b| / max(|a|, |b|) per array, float32
LEARNING_RATE = 1e-3


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="BLAS / PyTorch thread counts, one process each (default 1 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (5)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per round (8)")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default 128 100)")
    parser.add_argument("--cases", nargs="+", default=["vae-bn", "vae", "vq-vae"],
                        choices=["vae-bn", "vae", "vq-vae"])
    parser.add_argument("--init", default="glorot", choices=["glorot", "normal"])
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one round of two steps, one thread")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-piece breakdown")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    defaults = (dict(threads=[1], rounds=1, steps=2, batches=[8]) if arguments.quick else
                dict(threads=[1, 2], rounds=5, steps=8, batches=[128, 100]))
    for key, value in defaults.items():
        if getattr(arguments, key) is None:
            setattr(arguments, key, value)
    return arguments


def case_options(name, quick, init):
    """numpyvae.models.create arguments of a case (tiny shapes with ``quick``)."""
    side = 8 if quick else 28
    common = dict(x_dim=side * side, net="conv", image_shape=(1, side, side), stride=2,
                  padding=1, activation="relu", init=init)
    if name in ("vae-bn", "vae"):
        return dict(name="vae", **common, channels=(4, 8, 16) if quick else (32, 64, 128),
                    kernel_size=4, z_dim=4 if quick else 20, likelihood="bernoulli",
                    batch_norm=name == "vae-bn")
    return dict(name="vq-vae", **common, channels=(4, 8) if quick else (32, 64), kernel_size=3,
                likelihood="gaussian-fixed", decoder_variance=0.0475,
                output_activation="identity", codebook_size=8 if quick else 128,
                code_dim=4 if quick else 16)


# ====================================================================== the child
def load_libraries(threads):
    """Fix the thread counts, then import NumPy, numpyvae and (maybe) PyTorch."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    global np, nv, torch, best_seconds, matmul_runner, numpyvae_runner, twins
    global IDLE_PAUSE, interleaved_ms
    import numpy as np  # noqa: PLC0415
    from timing import (IDLE_PAUSE, best_seconds,  # noqa: PLC0415  (beside this script)
                        interleaved_ms, matmul_runner, numpyvae_runner)

    import numpyvae as nv  # noqa: PLC0415
    try:
        if ARGUMENTS.no_torch:
            raise ImportError
        import torch  # noqa: PLC0415
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    if torch is not None:
        import torch_twins as twins  # noqa: PLC0415  (beside this script)


def build(options):
    options = dict(options)
    return nv.models.create(options.pop("name"), seed=0, **options)


def make_data(model, n=1024, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, model.x_dim), dtype=np.float32)
    return (x > 0.5).astype(np.float32) if model.likelihood == "bernoulli" else x


# ------------------------------------------------------------- PyTorch twins
def torch_twin(model):
    """The same network in PyTorch, with the numpyvae model's current parameters (and
    batch-norm buffers). ``twin.links`` maps numpyvae prefixes to (module, kind)."""
    nn = torch.nn
    activations = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                   "softplus": nn.Softplus, "identity": nn.Identity}
    g = model.conv_geometry()
    k, s, p = g.kernel_size, g.stride, g.padding
    image_channels = g.image_shape[0]
    paddings = g.output_paddings()[::-1]          # decoder transposed layer j, then the head
    reverse = g.channels[::-1]
    links = {}

    def add(prefix, module, kind, norm_width=None, norm_class=None):
        links[prefix] = (module, kind)
        pieces = [module]
        if model.batch_norm and norm_width is not None:
            norm = norm_class(norm_width)
            links[f"{prefix}.bn"] = (norm, "bn")
            pieces.append(norm)
        if norm_width is not None:
            pieces.append(activations[model.activation]())
        return pieces

    encoder = []
    for i, (c_in, c_out) in enumerate(zip((image_channels,) + g.channels[:-1], g.channels)):
        encoder += add(f"encoder.conv{i}", nn.Conv2d(c_in, c_out, k, s, p), "conv", c_out,
                       nn.BatchNorm2d)
    decoder = []
    feature = math.prod(g.feature_shape)
    if model.conv_latent == "vector":
        decoder += add("decoder.stem0", nn.Linear(model.z_dim, feature), "dense", feature,
                       nn.BatchNorm1d)
        decoder.append(nn.Unflatten(1, g.feature_shape))
    else:
        decoder += add("decoder.stem0", nn.Conv2d(model.code_dim, g.channels[-1], 1), "conv",
                       g.channels[-1], nn.BatchNorm2d)
    for j, (c_in, c_out) in enumerate(zip(reverse, reverse[1:])):
        decoder += add(f"decoder.deconv{j}", nn.ConvTranspose2d(
            c_in, c_out, k, s, p, output_padding=paddings[j]), "deconv", c_out, nn.BatchNorm2d)
    head_name = {"bernoulli": "logits", "gaussian-fixed": "mean"}[model.likelihood]
    head = nn.ConvTranspose2d(g.channels[0], image_channels, k, s, p, output_padding=paddings[-1])
    links[f"decoder.{head_name}"] = (head, "deconv")

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)
            self.head = head
            self.links = links
            if model.conv_latent == "vector":
                self.mu = nn.Linear(feature, model.z_dim)
                self.logvar = nn.Linear(feature, model.z_dim)
                links.update({"encoder.mu": (self.mu, "dense"),
                              "encoder.logvar": (self.logvar, "dense")})
            else:
                self.z_e = nn.Conv2d(g.channels[-1], model.code_dim, 1)
                self.codebook = nn.Parameter(torch.empty(model.codebook_size, model.code_dim))
                links.update({"encoder.z_e": (self.z_e, "conv"),
                              "quantizer.codebook": (self.codebook, "codebook")})

        def forward(self, x, eps=None):
            n = x.shape[0]
            h = self.encoder(x.view((n,) + tuple(g.image_shape)))
            if model.conv_latent == "vector":
                h = h.flatten(1)
                mu, logvar = self.mu(h), self.logvar(h)
                z = mu + torch.exp(0.5 * logvar) * eps
                logits = self.head(self.decoder(z)).flatten(1)
                log_likelihood = -nn.functional.binary_cross_entropy_with_logits(
                    logits, x, reduction="none").sum(1)
                kl = 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar).sum(1)
                return -(log_likelihood - kl).mean()
            z_e = self.z_e(h).permute(0, 2, 3, 1)                    # (N, h, w, D)
            vectors = z_e.reshape(-1, model.code_dim)
            e = self.codebook
            with torch.no_grad():                                    # numpyvae's argmin
                scores = -2.0 * (vectors @ e.T) + (e * e).sum(1)
                self.codes = scores.argmin(1)
            z_q = e[self.codes]
            codebook_loss = ((vectors.detach() - z_q) ** 2).reshape(n, -1).sum(1)
            commitment = ((vectors - z_q.detach()) ** 2).reshape(n, -1).sum(1)
            straight = vectors + (z_q - vectors).detach()            # straight-through
            mean = self.head(self.decoder(straight.view(z_e.shape).permute(0, 3, 1, 2))).flatten(1)
            variance = model.decoder_variance
            log_likelihood = -0.5 * (((x - mean) ** 2).sum(1) / variance
                                     + x.shape[1] * (math.log(2 * math.pi) + math.log(variance)))
            objective = log_likelihood - model.commitment * commitment - codebook_loss
            return -objective.mean()

    twin = Twin()
    twins.copy_weights(model, links)
    return twin


def cross_check(options, batch, steps=3):
    """Same weights, same batch, same noise: the first loss, every gradient and buffer,
    then the losses over ``steps`` Adam steps."""
    model = build(options)
    twin = torch_twin(model)
    data = make_data(model)
    rng = np.random.default_rng(5)
    optimizer = nv.optim.Adam(lr=LEARNING_RATE)
    torch_optimizer = torch.optim.Adam(twin.parameters(), lr=LEARNING_RATE, foreach=True)
    result = {"later_loss": 0.0}
    for step in range(steps):
        x = data[step * batch:(step + 1) * batch]
        eps = rng.standard_normal((batch, model.z_dim), dtype=np.float32)
        loss, grads = model.loss_and_grads(x, eps=eps)
        torch_optimizer.zero_grad()
        torch_loss = twin(torch.from_numpy(x), torch.from_numpy(eps))
        torch_loss.backward()
        difference = abs(float(loss) - torch_loss.item()) / abs(torch_loss.item())
        if step == 0:
            reference, buffers = twins.twin_gradients(twin.links)
            errors = twins.gradient_errors(grads, reference)   # biases before a norm: floors
            missing = sorted(set(model.params.keys()) - set(reference))
            if missing:
                raise RuntimeError(f"the twin has no counterpart of {missing}")
            buffer_errors = {name: nv.gradcheck.relative_error(model.buffers[name], value)
                             for name, value in buffers.items()}
            worst = max(errors, key=errors.get)
            result.update(ours=float(loss), torch=torch_loss.item(), loss=difference,
                          grads=errors, worst_grad=[worst, errors[worst]],
                          buffers=max(buffer_errors.values(), default=0.0))
            if model.conv_latent == "grid":     # the codes each chose for this batch
                ours_codes = model.codes(x).reshape(-1)
                result["codes_agree"] = float((ours_codes == twin.codes.numpy()).mean())
        else:
            result["later_loss"] = max(result["later_loss"], difference)
        optimizer.step(model.params, grads)
        torch_optimizer.step()
    result["ok"] = bool(result["loss"] < LOSS_TOLERANCE and result["worst_grad"][1] < GRAD_TOLERANCE
                        and result["buffers"] < GRAD_TOLERANCE)
    return result


# ---------------------------------------------------------------- timing
def torch_runner(twin, data, batch, z_dim, vector):
    """PyTorch's training steps with Adam (foreach), noise only for a vector latent."""
    optimizer = torch.optim.Adam(twin.parameters(), lr=LEARNING_RATE, foreach=True)
    return twins.torch_runner(twin, optimizer, data, batch, (batch, z_dim) if vector else None)


def time_case(options, batch):
    """Median ms/step of numpyvae and PyTorch, interleaved rounds (the order alternates)."""
    model = build(options)
    data = make_data(model)
    runners = {"numpyvae": numpyvae_runner(model, nv.optim.Adam(lr=LEARNING_RATE), data, batch)}
    if torch is not None:
        runners["pytorch"] = torch_runner(torch_twin(build(options)), data, batch, model.z_dim,
                                          model.conv_latent == "vector")
    for run in runners.values():
        run(2)  # warm-up: allocations, oneDNN primitives
    return interleaved_ms(runners, ARGUMENTS.rounds, ARGUMENTS.steps)


# ------------------------------------------------------------- the breakdown
class PieceTimer:
    """Wraps methods and functions of the library to time them: each call's own time,
    less the wrapped calls it makes (a stack), summed per label."""

    def __init__(self, names):
        self.names = names            # parameter data pointer -> numpyvae name
        self.stack, self.patches = [], []
        self.own, self.calls = defaultdict(float), defaultdict(int)

    def name_of(self, array, suffix):
        name = self.names.get(array.__array_interface__["data"][0], "?")
        return name[:-len(suffix)] if name.endswith(suffix) else name

    def parent(self):
        return self.stack[-1][0] if self.stack else ""

    def wrap(self, owner, attribute, label_of):
        original = (owner.__dict__[attribute] if isinstance(owner, type)
                    else getattr(owner, attribute))

        def wrapper(*args, **kwargs):
            frame = [label_of(*args), 0.0]
            self.stack.append(frame)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.stack.pop()
                self.own[frame[0]] += elapsed - frame[1]
                self.calls[frame[0]] += 1
                if self.stack:
                    self.stack[-1][1] += elapsed
        setattr(owner, attribute, wrapper)
        self.patches.append((owner, attribute, original))

    def remove(self):
        for owner, attribute, original in reversed(self.patches):
            setattr(owner, attribute, original)
        self.patches.clear()

    def install(self, model, optimizer):
        from numpyvae import (batchnorm, conv, layers, likelihoods,  # noqa: PLC0415
                              networks, quantize)

        def layer(direction):
            return lambda piece, *_: f"{self.name_of(piece.params['W'], '.W')} {direction}"

        def norm(direction):
            def label(piece, *_):
                own = f"{self.name_of(piece.params['scale'], '.scale')} {direction}"
                return f"{own} > normalize" if self.parent() == own else own
            return label

        def inside(what):
            return lambda *_: f"{self.parent()} > {what}" if self.parent() else what

        def network(direction):
            return lambda piece, *_: f"{piece.prefix} {direction} (glue, reshapes)"

        for klass in (conv.Conv2D, conv.ConvTranspose2D, layers.Dense):
            self.wrap(klass, "forward", layer("fwd"))
            self.wrap(klass, "backward", layer("bwd"))
        for klass in (batchnorm.BatchNorm, conv.BatchNorm2D):
            self.wrap(klass, "forward", norm("fwd"))
            self.wrap(klass, "backward", norm("bwd"))
        self.wrap(conv, "gather_windows", inside("im2col gather"))
        self.wrap(conv, "scatter_windows", inside("col2im scatter"))
        self.wrap(conv, "channel_first", inside("channel-first copy"))
        for direction, short in (("forward", "fwd"), ("backward", "bwd")):
            self.wrap(networks._ConvNet, direction, network(short))
            self.wrap(layers.ReLU, direction, inside(f"ReLU {short}"))
            self.wrap(quantize.VectorQuantize, direction, lambda *_, d=direction: f"quantize {d}")
            for klass in (likelihoods.BernoulliLogLikelihood,
                          likelihoods.FixedVarianceGaussianLogLikelihood):
                self.wrap(klass, direction, lambda *_, d=direction, k=klass.__name__: f"{k} {d}")
        self.wrap(model, "loss_and_grads",
                  lambda *_: "loss_and_grads rest (noise, checks, tape, KL, reparam.)")
        self.wrap(optimizer, "step", lambda *_: "Adam step")


def step_gemms(model, batch):
    """label -> the matrix products that piece computes: (m, k, n, A transposed,
    B transposed), in the memory layout numpyvae's layers use (numpyvae/conv.py)."""
    g = model.conv_geometry()
    k = g.kernel_size
    gemms = defaultdict(list)

    def conv(prefix, c_in, c_out, kernel, out_size, input_grad):
        positions, depth = batch * math.prod(out_size), c_in * kernel * kernel
        gemms[f"{prefix} fwd"].append((c_out, depth, positions, False, False))    # W cols
        gemms[f"{prefix} bwd"].append((c_out, positions, depth, False, True))     # g cols^T
        if input_grad:
            gemms[f"{prefix} bwd"].append((depth, c_out, positions, True, False))  # W^T g

    def deconv(prefix, c_in, c_out, in_size):
        positions, depth = batch * math.prod(in_size), c_out * k * k
        gemms[f"{prefix} fwd"].append((depth, c_in, positions, True, False))      # W^T rows
        gemms[f"{prefix} bwd"].append((c_in, positions, depth, False, True))      # rows cols^T
        gemms[f"{prefix} bwd"].append((c_in, depth, positions, False, False))     # W cols

    def dense(prefix, n_in, n_out):
        gemms[f"{prefix} fwd"].append((batch, n_in, n_out, False, False))         # x W
        gemms[f"{prefix} bwd"].append((n_in, batch, n_out, True, False))          # x^T g
        gemms[f"{prefix} bwd"].append((batch, n_out, n_in, False, True))          # g W^T

    ins = (g.image_shape[0],) + g.channels[:-1]
    for i, (c_in, c_out) in enumerate(zip(ins, g.channels)):
        conv(f"encoder.conv{i}", c_in, c_out, k, g.sizes[i + 1], i > 0)
    feature = math.prod(g.feature_shape)
    if model.conv_latent == "vector":
        for head in ("mu", "logvar"):
            dense(f"encoder.{head}", feature, model.z_dim)
        dense("decoder.stem0", model.z_dim, feature)
    else:
        conv("encoder.z_e", g.channels[-1], model.code_dim, 1, g.sizes[-1], True)
        conv("decoder.stem0", model.code_dim, g.channels[-1], 1, g.sizes[-1], True)
    reverse, levels = g.channels[::-1], len(g.channels)
    for j, (c_in, c_out) in enumerate(zip(reverse, reverse[1:])):
        deconv(f"decoder.deconv{j}", c_in, c_out, g.sizes[levels - j])
    head = {"bernoulli": "logits", "gaussian-fixed": "mean"}[model.likelihood]
    deconv(f"decoder.{head}", g.channels[0], g.image_shape[0], g.sizes[1])
    return gemms


def gemm_seconds(products):
    """Seconds for the products alone, preallocated, in the layers' layouts."""
    rng = np.random.default_rng(0)
    tasks = []
    for m, k, n, a_t, b_t in products:
        a = rng.random((k, m) if a_t else (m, k), dtype=np.float32)
        b = rng.random((n, k) if b_t else (k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        tasks.append((a.T if a_t else a, b.T if b_t else b, out))

    def run():
        for a, b, out in tasks:
            np.matmul(a, b, out=out)
    return best_seconds(run, 3, tries=3)


def torch_top_operators(options, batch, steps, count=12):
    model = build(options)
    data = make_data(model)
    run = torch_runner(torch_twin(model), data, batch, model.z_dim, model.conv_latent == "vector")
    run(2)
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run(steps)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total,
                    reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    return {"total_ms": total / 1e3 / steps,
            "top": [[event.key, event.self_cpu_time_total / 1e3 / steps, event.count // steps]
                    for event in events[:count]]}


def breakdown(options, batch):
    model = build(options)
    data = make_data(model)
    optimizer = nv.optim.Adam(lr=LEARNING_RATE)
    rng = np.random.default_rng(1)
    names = {value.__array_interface__["data"][0]: name for name, value in model.params.items()}
    steps = max(ARGUMENTS.steps, 3)
    batches = [data[i * batch % (len(data) - batch):][:batch] for i in range(steps)]

    def run():
        for x in batches:
            loss, grads = model.loss_and_grads(x, rng=rng)
            optimizer.step(model.params, grads)
    run()
    time.sleep(IDLE_PAUSE)
    start = time.perf_counter()
    run()
    plain = (time.perf_counter() - start) / steps
    timer = PieceTimer(names)
    timer.install(model, optimizer)
    run()                                       # warm the wrappers
    timer.own.clear()
    timer.calls.clear()
    time.sleep(IDLE_PAUSE)
    start = time.perf_counter()
    run()
    timed = (time.perf_counter() - start) / steps
    timer.remove()
    rows = [[label, seconds / steps * 1e3, timer.calls[label] // steps]
            for label, seconds in timer.own.items()]
    rows.append(["outside the step calls (loop, batch slicing)",
                 (timed - sum(timer.own.values()) / steps) * 1e3, 1])
    time.sleep(IDLE_PAUSE)
    gemms = step_gemms(model, batch)
    gemm_ms = {label: gemm_seconds(products) * 1e3 for label, products in gemms.items()}
    every = [(m, k, n) for products in gemms.values() for m, k, n, _, _ in products]
    totals = {"numpy_layouts": sum(gemm_ms.values()),
              "numpy_nn": best_seconds(matmul_runner(every), 3, tries=3) * 1e3,
              "flops": sum(2 * m * k * n for m, k, n in every)}
    if torch is not None:
        totals["torch_mm_nn"] = best_seconds(matmul_runner(every, "torch"), 3, tries=3) * 1e3
    result = {"plain_ms": plain * 1e3, "instrumented_ms": timed * 1e3, "rows": rows,
              "gemm_ms": gemm_ms, "gemm_totals": totals}
    if torch is not None:
        time.sleep(IDLE_PAUSE)
        result["torch"] = torch_top_operators(options, batch, steps)
    return result


def child(threads):
    load_libraries(threads)
    result = {"threads": threads, "numpy": np.__version__, "numpyvae": nv.__version__,
              "torch": torch.__version__ if torch else None,
              "mkldnn": bool(torch and torch.backends.mkldnn.is_available()),
              "agreement": {}, "timings": [], "load_start": os.getloadavg()}
    for name in ARGUMENTS.cases:
        options = case_options(name, ARGUMENTS.quick, ARGUMENTS.init)
        if torch is not None:
            result["agreement"][name] = cross_check(options, ARGUMENTS.batches[0])
        for batch in ARGUMENTS.batches:
            result["timings"].append({"case": name, "batch": batch, **time_case(options, batch)})
    if not ARGUMENTS.no_breakdown and "vae-bn" in ARGUMENTS.cases:
        result["breakdown"] = breakdown(case_options("vae-bn", ARGUMENTS.quick, ARGUMENTS.init),
                                        ARGUMENTS.batches[0])
    result["load_end"] = os.getloadavg()
    print(MARKER + json.dumps(result))
    return 0


# ===================================================================== the parent
CATEGORIES = [
    ("im2col gathers", lambda label: label.endswith("> im2col gather")),
    ("col2im scatters", lambda label: label.endswith("> col2im scatter")),
    ("channel-first copies", lambda label: label.endswith("> channel-first copy")),
    ("batch norm", lambda label: ".bn " in label),
    ("ReLU", lambda label: "> ReLU" in label),
    ("loss (likelihood, quantize, KL, tape, noise)",
     lambda label: "LogLikelihood" in label or label.startswith(("loss_and_grads", "quantize"))),
    ("Adam", lambda label: label == "Adam step"),
    ("network glue, loop", lambda label: "glue" in label or label.startswith("outside")),
]


def print_breakdown(threads, data, case_label):
    gemm_ms = data["gemm_ms"]
    print(f"\n### Where numpyvae's step goes: {case_label}, {threads} thread(s)\n")
    print(f"Step {data['plain_ms']:.1f} ms uninstrumented, {data['instrumented_ms']:.1f} ms "
          "with the pieces timed. Own time of each piece (less the pieces it calls); a conv "
          "or dense piece's own time holds its matrix products, timed alone beside it.\n")
    print("| piece | ms/step | calls/step | of which GEMM alone (ms) |")
    print("|---|---|---|---|")
    rows = sorted(data["rows"], key=lambda row: -row[1])
    for label, ms, calls in rows[:TOP_PIECES]:
        gemm = f"{gemm_ms[label]:.2f}" if label in gemm_ms else ""
        print(f"| {label} | {ms:.2f} | {calls} | {gemm} |")
    rest = rows[TOP_PIECES:]
    if rest:
        print(f"| {len(rest)} smaller pieces | {sum(row[1] for row in rest):.2f} | | "
              f"{sum(gemm_ms.get(row[0], 0.0) for row in rest):.2f} |")
    categories = defaultdict(float)
    for label, ms, _ in rows:
        for category, test in CATEGORIES:
            if test(label):
                categories[category] += ms
                break
        else:  # a conv / deconv / dense piece: its products, and the rest
            gemm = gemm_ms.get(label, 0.0)
            categories["GEMMs (timed alone)"] += gemm
            categories["conv/dense besides GEMM (pad, bias, reshape copies)"] += ms - gemm
    total = sum(categories.values())
    print("\n| category | ms/step | share |\n|---|---|---|")
    for category, ms in sorted(categories.items(), key=lambda item: -item[1]):
        print(f"| {category} | {ms:.2f} | {ms / total:.0%} |")
    totals = data["gemm_totals"]
    torch_mm = (f", through torch.mm {totals['torch_mm_nn']:.2f} ms"
                if "torch_mm_nn" in totals else "")
    print(f"\nThe step's {totals['flops'] / 1e9:.2f} GFLOP of matrix products alone: "
          f"{totals['numpy_layouts']:.2f} ms in the layers' layouts "
          f"({totals['flops'] / totals['numpy_layouts'] / 1e6:.1f} GFLOP/s); all as plain "
          f"(m, k) @ (k, n): through NumPy {totals['numpy_nn']:.2f} ms{torch_mm}.")
    if "torch" in data:
        print(f"\nPyTorch, the same step, top operators by own CPU time "
              f"({data['torch']['total_ms']:.1f} ms/step in all operators; under the profiler):\n")
        print("| operator | ms/step | calls/step |\n|---|---|---|")
        for key, ms, calls in data["torch"]["top"]:
            print(f"| {key} | {ms:.2f} | {calls} |")


TOP_PIECES = 28

CASE_LABELS = {"vae-bn": "CNN VAE 32-64-128 k4, batch norm, Bernoulli",
               "vae": "CNN VAE 32-64-128 k4, no batch norm, Bernoulli",
               "vq-vae": "VQ-VAE 32-64 k3, 7x7 codes K128 D16, Gaussian"}


def parent():
    results = []
    for threads in ARGUMENTS.threads:
        command = [sys.executable, os.path.abspath(__file__), "--child", str(threads),
                   *sys.argv[1:]]
        completed = subprocess.run(command, capture_output=True, text=True)
        sys.stderr.write("".join(line for line in completed.stderr.splitlines(keepends=True)
                                 if not line.startswith("USDT:")))   # torch.profiler's chatter
        if completed.returncode != 0:
            print(completed.stdout)
            return completed.returncode
        line = next(line for line in completed.stdout.splitlines() if line.startswith(MARKER))
        results.append(json.loads(line[len(MARKER):]))
    first = results[0]
    shapes = "tiny shapes (--quick)" if ARGUMENTS.quick else "28x28x1 images"
    print(f"numpyvae {first['numpyvae']}, NumPy {first['numpy']}, PyTorch "
          f"{first['torch'] or 'not installed'} (oneDNN {'on' if first['mkldnn'] else 'off'}), "
          f"{os.cpu_count()} cores, float32, Adam, {shapes}, init {ARGUMENTS.init}; medians of "
          f"{ARGUMENTS.rounds} interleaved rounds of {ARGUMENTS.steps} steps; load average "
          + ", ".join(f"{r['threads']} thread(s): {r['load_start'][0]:.2f} -> "
                      f"{r['load_end'][0]:.2f}" for r in results))
    status = 0
    if first["agreement"]:
        print("\n### Agreement with PyTorch (one batch, the same noise, step 0)\n")
        print("| model | threads | loss numpyvae | loss PyTorch | relative difference | "
              "worst gradient (max-abs relative) | BN running stats | "
              "losses over 3 Adam steps | ok |")
        print("|---|---|---|---|---|---|---|---|---|")
        for result in results:
            for name, check in result["agreement"].items():
                worst, error = check["worst_grad"]
                codes = (f"; codes agree {check['codes_agree']:.1%}"
                         if "codes_agree" in check else "")
                print(f"| {name} | {result['threads']} | {check['ours']:.6f} | "
                      f"{check['torch']:.6f} | {check['loss']:.1e} | {error:.1e} ({worst}){codes} | "
                      f"{check['buffers']:.1e} | "
                      f"{check['later_loss']:.1e} | {'yes' if check['ok'] else 'NO'} |")
                if not check["ok"]:
                    status = 1
        print("\nGradients, a few arrays (1 thread):")
        for name, check in first["agreement"].items():
            print(f"  {name}: " + ", ".join(f"{key} {value:.1e}" for key, value in
                                            list(check["grads"].items())[::4]))
    print("\n### Training step, numpyvae against PyTorch\n")
    print("| model | batch | threads | numpyvae ms/step | PyTorch ms/step | numpyvae time / "
          "PyTorch time | numpyvae samples/s |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        for row in result["timings"]:
            ours, torch_ms = row["numpyvae"], row.get("pytorch")
            torch_text = f"{torch_ms:.1f}" if torch_ms else "n/a"
            ratio_text = f"{ours / torch_ms:.2f}x" if torch_ms else "n/a"
            label = "tiny shapes" if ARGUMENTS.quick else CASE_LABELS[row["case"]]
            print(f"| {row['case']}: {label} | {row['batch']} | "
                  f"{result['threads']} | {ours:.1f} | {torch_text} | {ratio_text} | "
                  f"{row['batch'] / ours * 1e3:,.0f} |")
    for result in results:
        if "breakdown" in result:
            print_breakdown(result["threads"], result["breakdown"],
                            f"vae-bn, batch {ARGUMENTS.batches[0]}")
    if status:
        print("\nnumpyvae and PyTorch DISAGREE (see the agreement table).")
    return status


ARGUMENTS = parse_arguments()

if __name__ == "__main__":
    sys.exit(child(ARGUMENTS.child) if ARGUMENTS.child is not None else parent())
