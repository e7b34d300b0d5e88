"""PyTorch twins of numpyvae's models, for the benchmarks: the same network built from a
numpyvae model's parameters, checked against it, and timed the way a PyTorch user trains.

    mlp_twin(model)       the MLP family: vae, iwae, cvae; any activation, batch norm, the
                          bernoulli / gaussian / gaussian-fixed decoders; the ELBO (beta, L
                          samples, closed-form KL) or the IWAE bound (K samples, logsumexp)
    cross_check(...)      same weights, batches and noise: losses, every gradient, the batch
                          norms' running statistics, over a few optimizer steps
    check_shape(shape)    cross_check on a benchmark shape (aevb_models.FAMILY's entries)
    torch_runner(...)     run(steps): training steps as a PyTorch loop runs them

A twin maps each numpyvae prefix to its module in ``twin.links`` (prefix -> (module, kind),
kind "dense", "conv", "deconv", "bn" or "codebook"), which is all ``copy_weights`` and
``twin_gradients`` need, so bench_conv.py's conv twins share them.

Import it after the thread counts are fixed: it loads NumPy and PyTorch.
"""
import math

import numpy as np
import timing  # beside this script
import torch

import numpyvae as nv
from numpyvae import batchnorm
from numpyvae.likelihoods import LOG_2PI
from numpyvae.parts.posteriors import DiagonalGaussianPosterior
from numpyvae.parts.priors import StandardNormalPrior

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid,
               "softplus": torch.nn.Softplus, "identity": torch.nn.Identity}
DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
LOSS_TOLERANCE = 1e-6       # relative, the first step's loss, float32
# max |a - b| / max(|a|, |b|) per array, float32. The IWAE bound's float32 gradients on
# random data sit up to 9e-5 from the float64 gradient, numpyvae's and PyTorch's alike
# (the normalized weights are extreme and the encoder's terms nearly cancel), so the
# tolerance is bench_conv.py's; a wrong formula is off by far more.
GRAD_TOLERANCE = 1e-3


# ------------------------------------------------------------------ weights across
def copy_weights(model, links):
    """Copy the numpyvae model's parameters (and batch-norm buffers) into the twin's
    modules: a dense W (n_in, n_out) becomes PyTorch's (n_out, n_in) weight."""
    def tensor(array):
        return torch.from_numpy(np.array(array))    # a copy: the twin owns its weights

    with torch.no_grad():
        for prefix, (module, kind) in links.items():
            if kind == "codebook":
                module.copy_(tensor(model.params[prefix]))
            elif kind == "bn":
                module.weight.copy_(tensor(model.params[f"{prefix}.scale"]))
                module.bias.copy_(tensor(model.params[f"{prefix}.shift"]))
                module.running_mean.copy_(tensor(model.buffers[f"{prefix}.running_mean"]))
                module.running_var.copy_(tensor(model.buffers[f"{prefix}.running_var"]))
            else:
                weight = model.params[f"{prefix}.W"]
                module.weight.copy_(tensor(weight.T if kind == "dense" else weight))
                module.bias.copy_(tensor(model.params[f"{prefix}.b"]))


def twin_gradients(links):
    """PyTorch's gradients and batch-norm buffers under numpyvae's names and layouts."""
    grads, buffers = {}, {}
    for prefix, (module, kind) in links.items():
        if kind == "codebook":
            grads[prefix] = module.grad.numpy()
        elif kind == "bn":
            grads[f"{prefix}.scale"] = module.weight.grad.numpy()
            grads[f"{prefix}.shift"] = module.bias.grad.numpy()
            buffers[f"{prefix}.running_mean"] = module.running_mean.numpy()
            buffers[f"{prefix}.running_var"] = module.running_var.numpy()
        else:
            weight = module.weight.grad.numpy()
            grads[f"{prefix}.W"] = weight.T if kind == "dense" else weight
            grads[f"{prefix}.b"] = module.bias.grad.numpy()
    return grads, buffers


def gradient_errors(grads, reference):
    """Max-abs relative error of each array of ``grads`` against ``reference``.

    A bias right before a batch norm has a gradient of zero in exact arithmetic (the norm
    subtracts the batch mean): both sides hold rounding noise, so its error is measured
    against the scale of its layer's weight gradient."""
    floors = {f"{name[:-2]}.b": float(np.abs(reference[name]).max()) for name in reference
              if name.endswith(".W") and f"{name[:-2]}.bn.scale" in reference}
    return {name: nv.gradcheck.relative_error(grads[name], reference[name], floors.get(name, 0.0))
            for name in reference}


# ---------------------------------------------------------------- the MLP family
def _supported(model):
    """Refuse, in one line, what the MLP twin does not build."""
    problems = []
    if model.net != "mlp":
        problems.append(f"net {model.net!r} (bench_conv.py twins conv nets)")
    if type(model.prior) is not StandardNormalPrior:
        problems.append("a prior other than N(0, I)")
    if type(model.posterior) is not DiagonalGaussianPosterior:
        problems.append("a posterior other than the diagonal Gaussian")
    if model.condition_kind not in (None, "label"):
        problems.append(f"a condition of kind {model.condition_kind!r}")
    if model.weight_prior_std is not None:
        problems.append("a weight prior")
    if model.objective not in ("elbo", "iwae"):
        problems.append(f"the objective {model.objective!r}")
    if problems:
        raise ValueError(f"mlp_twin cannot build the {model.name} model with "
                         + ", ".join(problems) + ".")


def _network(description, links):
    """The MLP ``description`` (a numpyvae.networks.MLPNetwork) in PyTorch: a trunk (Linear,
    then BatchNorm1d with numpyvae's eps and momentum where it has batch norm, then the
    activation: numpyvae's MLP order) and one Linear per head."""
    nn = torch.nn
    sizes, prefix = description.sizes, description.prefix
    trunk = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        links[f"{prefix}.hidden{i}"] = (linear, "dense")
        trunk.append(linear)
        if description.batch_norm:
            norm = nn.BatchNorm1d(n_out, eps=batchnorm.DEFAULT_EPS,
                                  momentum=batchnorm.DEFAULT_MOMENTUM)
            links[f"{prefix}.hidden{i}.bn"] = (norm, "bn")
            trunk.append(norm)
        trunk.append(ACTIVATIONS[description.activation]())
    head_modules = []
    for name, size in description.heads:
        linear = nn.Linear(sizes[-1], size)
        links[f"{prefix}.{name}"] = (linear, "dense")
        head_modules.append(linear)
    return _Network(nn.Sequential(*trunk), nn.ModuleList(head_modules))


class _Network(torch.nn.Module):
    """Rows in, one output per head out; leading sample axes folded into the batch
    (as numpyvae's Encoder does, so a batch norm sees every sample's rows)."""

    def __init__(self, trunk, heads):
        super().__init__()
        self.trunk, self.heads = trunk, heads

    def forward(self, inputs):
        lead = inputs.shape[:-1]
        h = self.trunk(inputs.reshape(-1, inputs.shape[-1]))
        return [head(h).reshape(lead + (-1,)) for head in self.heads]


class MLPTwin(torch.nn.Module):
    """forward(x, eps, labels=None) -> the loss numpyvae's ``loss_and_grads`` returns for
    the same x, eps ((N, z_dim) or (S, N, z_dim)) and labels (int64, the CVAE's)."""

    def __init__(self, model):
        super().__init__()
        _supported(model)
        self.links = {}
        self.encoder = _network(model.encoder_network, self.links)
        self.decoder = _network(model.decoder_network, self.links)
        self.likelihood, self.objective = model.likelihood, model.objective
        self.beta, self.n_classes = model.beta, getattr(model, "n_classes", 0)
        self.output_activation = model.output_activation
        self.variance = model.decoder_variance

    def log_likelihood(self, x, heads):
        """log p(x|z) summed over pixels, one per row of the heads (x broadcast)."""
        nn = torch.nn
        if self.likelihood == "bernoulli":
            (logits,) = heads
            return -nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(-1)
        mean = torch.sigmoid(heads[0]) if self.output_activation == "sigmoid" else heads[0]
        if self.likelihood == "gaussian":
            out_logvar = heads[1]
            return -0.5 * (out_logvar + (x - mean) ** 2 * torch.exp(-out_logvar)
                           + np.log(2 * np.pi)).sum(-1)
        return -0.5 * (((x - mean) ** 2).sum(-1) / self.variance
                       + x.shape[-1] * (LOG_2PI + math.log(self.variance)))

    def forward(self, x, eps, labels=None):
        features = None
        if self.n_classes:
            features = one_hot(labels, self.n_classes, x.dtype)
            x_in = torch.cat([x, features], -1)           # numpyvae's Concatenate: x, then c
        else:
            x_in = x
        mu, logvar = self.encoder(x_in)
        z = mu + torch.exp(0.5 * logvar) * eps
        z_in = z if features is None else torch.cat(
            [z, features.expand(z.shape[:-1] + features.shape[-1:])], -1)
        log_likelihood = self.log_likelihood(x, self.decoder(z_in))
        if self.objective == "iwae":
            if eps.dim() == 2:
                z, eps, log_likelihood = z[None], eps[None], log_likelihood[None]
            d = z.shape[-1]
            log_prior = -0.5 * ((z * z).sum(-1) + d * LOG_2PI)
            # log q(z|x) written in eps, as numpyvae's ReparameterizedLogDensity does
            log_q = -0.5 * ((eps * eps).sum(-1) + logvar.sum(-1) + d * LOG_2PI)
            log_weights = log_likelihood + log_prior - log_q
            bound = torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])
            return -bound.mean()
        kl = 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar).sum(-1)
        if log_likelihood.dim() == 2:                     # L samples: their mean
            log_likelihood = log_likelihood.mean(0)
        return -(log_likelihood - (kl if self.beta == 1 else self.beta * kl)).mean()


def one_hot(labels, classes, dtype):
    """One-hot rows of int labels, as numpyvae's CVAE turns labels into features."""
    return torch.nn.functional.one_hot(labels, classes).to(dtype)


def mlp_twin(model):
    """The numpyvae MLP model ``model`` in PyTorch, with its current parameters and
    batch-norm buffers, in the model's dtype."""
    twin = MLPTwin(model).to(DTYPES[np.dtype(model.dtype)])
    copy_weights(model, twin.links)
    return twin


# ----------------------------------------------------------------- optimizers
def optimizer_pair(spec, model, twin, foreach=True):
    """numpyvae's and PyTorch's optimizer from one spec (name, options), e.g.
    ("adam", {"lr": 1e-3, "eps": 1e-4}); PyTorch's Adagrad with numpyvae's eps 1e-10."""
    name, options = spec
    ours = nv.optim.OPTIMIZERS[name](**options)
    if name == "adagrad":
        theirs = torch.optim.Adagrad(twin.parameters(), lr=ours.lr, eps=ours.eps, foreach=foreach)
    elif name == "adam":
        theirs = torch.optim.Adam(twin.parameters(), lr=ours.lr, betas=(ours.beta1, ours.beta2),
                                  eps=ours.eps, foreach=foreach)
    else:
        theirs = torch.optim.SGD(twin.parameters(), lr=ours.lr, momentum=ours.momentum,
                                 foreach=foreach)
    return ours, theirs


# ----------------------------------------------------------------- checking
def noise_shape(model, batch):
    """eps per step: (batch, z_dim) for one draw, (draws, batch, z_dim) for more."""
    draws = model.k if model.objective == "iwae" else model.samples
    return (batch, model.z_dim) if draws == 1 else (draws, batch, model.z_dim)


def cross_check(model, twin, data, batch, optimizers, steps=5, labels=None):
    """Same weights, same batches, same noise, ``steps`` optimizer steps
    (``optimizers``: numpyvae's and PyTorch's). Returns {"losses": relative difference
    of each step's loss, "ours"/"torch": the first losses, "grads": {name: max-abs
    relative error at the first step}, "worst_grad": [name, error], "buffers": the batch
    norms' running statistics after the first step}.

    Float32 rounding differs between the two, and an optimizer's first steps move every
    coordinate by about +-lr whatever the gradient's size, so later losses agree less
    tightly than the first one."""
    optimizer, torch_optimizer = optimizers
    rng = np.random.default_rng(5)
    result = {"losses": []}
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        x = data[rows]
        eps = rng.standard_normal(noise_shape(model, batch), dtype=model.dtype)
        condition = None if labels is None else labels[rows]
        loss, grads = model.loss_and_grads(x, condition=condition, eps=eps)
        torch_optimizer.zero_grad()
        arguments = [torch.from_numpy(x), torch.from_numpy(eps)]
        if condition is not None:
            arguments.append(torch.from_numpy(condition))
        torch_loss = twin(*arguments)
        torch_loss.backward()
        result["losses"].append(abs(float(loss) - torch_loss.item()) / abs(torch_loss.item()))
        if step == 0:
            reference, buffers = twin_gradients(twin.links)
            missing = sorted(set(model.params.keys()) - set(reference))
            if missing:
                raise RuntimeError(f"the twin has no counterpart of {missing}")
            errors = gradient_errors(grads, reference)
            worst = max(errors, key=errors.get)
            result.update(ours=float(loss), torch=torch_loss.item(), grads=errors,
                          worst_grad=[worst, errors[worst]],
                          buffers=max((nv.gradcheck.relative_error(model.buffers[name], value)
                                       for name, value in buffers.items()), default=0.0))
        optimizer.step(model.params, grads)
        torch_optimizer.step()
    return result


def check_shape(shape, steps):
    """A benchmark shape's model against its twin over ``steps`` steps of the shape's
    optimizer (foreach): cross_check's result, with "ok" when the first loss and every
    gradient and running statistic agree to LOSS_TOLERANCE and GRAD_TOLERANCE."""
    model, twin = timing.build(shape), mlp_twin(timing.build(shape))
    data, labels = timing.shape_data(model, (steps + 1) * shape["batch"])
    check = cross_check(model, twin, data, shape["batch"],
                        optimizer_pair(shape["optimizer"], model, twin), steps, labels)
    check["ok"] = bool(check["losses"][0] < LOSS_TOLERANCE
                       and check["worst_grad"][1] < GRAD_TOLERANCE
                       and check["buffers"] < GRAD_TOLERANCE)
    return check


# ----------------------------------------------------------------- timing
def torch_runner(twin, optimizer, data, batch, shape, labels=None):
    """run(steps): that many PyTorch training steps (zero_grad, loss, backward, step),
    cycling through ``data`` (and ``labels``) in batches, each drawing noise of ``shape``
    (None: none) from its own generator; returns the last loss."""
    tensor = torch.from_numpy(data)
    label_tensor = None if labels is None else torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(1)
    position = [0]

    def run(steps):
        for _ in range(steps):
            start = position[0]
            x = tensor[start:start + batch]
            position[0] = (start + batch) % (len(data) - batch + 1)
            eps = None if shape is None else torch.randn(*shape, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            if label_tensor is None:
                loss = twin(x, eps)
            else:
                loss = twin(x, eps, label_tensor[start:start + batch])
            loss.backward()
            optimizer.step()
        return loss.item()
    return run
