"""The contract every member of the family implements, and the latent variable model
that every member is a configuration of: networks, a posterior family, a prior and an
objective, composed on a tape (numpyvae.parts).

The contract (what ``numpyvae.train`` and ``numpyvae.evaluate`` use, nothing more):

    model.name, model.config()       its registry name; the keyword arguments that rebuild it
    model.member_options(), model.RUN_DEFAULTS, model.options_from_data(image_shape, n_classes)
                                     its own options (Option), its training protocol, and
                                     what it takes from the data set (class methods)
    model.params, model.grads        ParameterDicts (one flat buffer each)
    model.buffers, model.rng         non-trained state to checkpoint (batch norm); its noise
    model.likelihood, model.decoder_variance, model.x_dim, model.z_dim
    model.inputs(images, labels)     -> (x, condition): a data set's batch as the model's
    model.images(x, condition)       -> whole images again, for figures
    model.loss_and_grads(x, condition=None, eps=None, rng=None, beta=None) -> (loss, grads)
        ``beta`` replaces the KL weight for this step (a warm-up schedule)
    model.metrics(x, condition=None, eps=None, rng=None, beta=None) -> {name: (N,) array}
        always "elbo" (the true ELBO), "log_likelihood", "kl" and "objective"
    model.weight_prior_penalty()     the loss's share that is not the objective
    model.log_importance_weights(x, condition=None, rng=None, samples=K, local=None) -> (K, N)
    model.local_parameters(x, condition) -> {head: (N, width)}: q's per-example parameters
    model.local_elbo(x, local, condition=None, eps=None, rng=None, samples=None,
                     grads=False) -> (N,) [, {head: (N, width)}]: the ELBO of another q of
                                     the family, and its gradient (numpyvae.inference.refinement)
    model.widest_layer()             sizes evaluation chunks
    model.latent_point(x, condition) a point in z per example, for figures
    model.latent_path(x_ends, steps, condition) -> (steps, z_dim): from one example's
                                     latent point to another's (numpyvae.latent.interpolate)
    model.discrete_latent            True where z is codes (nothing to traverse)
    model.sample(n, rng=None, condition=None), model.decode(z, condition=None)
    model.figure_conditions(count, condition), model.figures(directory, images, labels,
                                     image_shape, rng, title, class_names) -> paths: what
                                     figures show (class_names: the labels' names, or None)
    model.objective_label            what the objective is called, in progress lines
    model.samples_label              what ``sample`` draws, in words (figure titles)

and, for every member with a continuous z, ``model.log_joint(x, z, condition)``:
log p(x, z | c) for z (S, N, D), the quantity the exactness checks integrate.

The model:

    q(z|x, c)     a posterior family over the encoder's heads (diagonal Gaussian; planar flow)
    p(z|c)        a prior (N(0, I); a prior network N(mu_p(c), diag exp(logvar_p(c)));
                  a Gaussian mixture)
    p(x|z, c)     the decoder

    objective "elbo":  1/L sum_l log p(x|z_l, c) - beta KL  (closed-form KL where the pair has
                       one, Monte Carlo otherwise; beta = 1: the ELBO)
    objective "iwae":  log 1/K sum_k w_k,  w_k = p(x|z_k, c) p(z_k|c) / q(z_k|x, c)

Tutorials: 02 (the ELBO), 07 (beta and warm-up), 08 (the IWAE bound and its
gradient), 09 (conditional VAEs), 10 (flows), 11 (VaDE).

Forward state never lives on the model: every pass (a loss, a metric, an encode)
builds its own pieces over the shared parameter views and its own tape, so calling
``model.decode`` between someone's forward and backward cannot change their gradients.
"""
import math
from types import SimpleNamespace
from typing import NamedTuple

import numpy

from .. import backend
from ..decoders import DECODERS
from ..networks import ConvGeometry, ConvNetwork, MLPNetwork
from ..kl import KLDiagonalGaussians, KLStandardNormal
from ..layers import Concatenate
from ..parameters import ParameterDict, initialize_bias, initialize_weight
from ..parts.objectives import Elbo, IwaeBound, kl_term, log_weights
from ..parts.posteriors import DiagonalGaussianPosterior
from ..parts.priors import ConditionalGaussianPrior, StandardNormalPrior
from ..parts.tape import Tape
from ..reparameterize import Reparameterize
from .options import (BASE_OPTIONS, Option, finite_number,  # noqa: F401 (Option: for members)
                      integer_at_least, widths)



class ElboParts(NamedTuple):
    """Per-example terms of the ELBO, each of shape (N,)."""

    elbo: object            # log_likelihood - kl: the evidence lower bound itself
    log_likelihood: object  # 1/L sum_l log p(x | z_l), the reconstruction term
    kl: object              # KL(q(z|x) || p(z)), closed form


def positive_int(value, what):
    return integer_at_least(what, 1)(value)


def json_value(value):
    """An option's value as config.json holds it (lists, dtype names)."""
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    if isinstance(value, numpy.dtype):
        return value.name
    return value


def as_generator(rng, default):
    """A numpy Generator from ``rng``: a Generator, an integer seed, or None (default)."""
    if rng is None:
        return default
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, (int, numpy.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"A seed must be a non-negative integer, got {rng}.")
        return numpy.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy.random.Generator or an integer seed, got "
                     f"{type(rng).__name__}: pass numpy.random.default_rng(seed).")


class LatentGaussianModel:
    """A latent variable model with a diagonal Gaussian q, trained by the ELBO or the
    IWAE bound. Subclasses choose the condition (none, a label, an input) and the prior.

    Arguments (those of ``nv.VAE``; subclasses add their own)
    ---------
    x_dim, z_dim : data and latent dimensions.
    hidden : widths of the encoder's hidden layers, e.g. (200,) or (500, 500).
    decoder_hidden : the decoder's widths (default: ``hidden`` reversed, a mirror).
    likelihood : ``"bernoulli"`` (logits), ``"gaussian"`` (learned per-pixel
        log-variance) or ``"gaussian-fixed"`` (variance ``decoder_variance``).
    activation : hidden activation, one of tanh, sigmoid, relu, softplus, elu, identity.
    output_activation : activation of a Gaussian decoder's mean, ``"sigmoid"`` or
        ``"identity"``.
    batch_norm : batch normalization after every hidden layer (before its activation).
    samples : L, the z samples per example of the ELBO objective.
    objective : ``"elbo"`` or ``"iwae"`` (then ``k`` samples per example).
    beta : weight of the KL term in the "elbo" objective (1 gives the ELBO), >= 0.
    weight_prior_std, weight_prior_scale : sigma_w of a Gaussian prior on the
        parameters (None: none) and the weight of its negative log-density in the loss.
    init, init_std : ``"normal"`` with std 0.01 (AEVB) or ``"glorot"``.
    bias_init : ``"zero"`` (AEVB) or ``"normal"``, N(0, init_std^2) (Wang (2023)).
    encoder_towers : ``"shared"`` (one MLP trunk, a linear head per output of q) or
        ``"separate"`` (one MLP per head, no trunk shared; Wang (2023)).
    seed : seeds the initialization and the model's own noise generator ``self.rng``.
    dtype : float32 (default, for speed) or float64 (for gradient checks).
    """

    name = None              # the registry name (numpyvae.models)
    evidence_label = "log p(x)"   # what the bound bounds, in what users read
    condition_kind = None    # None, "label" or "input": what ``condition`` holds
    learned_prior = False    # p(z|c) from a prior network instead of N(0, I)
    discrete_latent = False  # z made of codebook vectors: one coordinate cannot be moved alone
    OPTIONS = BASE_OPTIONS   # a member adds its own Options in OPTIONS
    surrogate_gradients = () # parameter-name prefixes whose gradient is an estimator's
                             # by design, not the loss's derivative (VQ-VAE's straight-through)
    RUN_DEFAULTS = {}        # the member's training protocol: numpyvae.train settings

    @classmethod
    def member_options(cls):
        """Every Option of this class and its bases, each once."""
        found = {}
        for klass in reversed(cls.__mro__):
            for option in klass.__dict__.get("OPTIONS", ()):
                found[option.name] = option
        return tuple(found.values())

    def _take_options(self, given):
        """Every option of this class from ``given`` (its default where absent),
        validated, onto self; anything else in ``given`` is an error."""
        for option in self.member_options():
            value = given.pop(option.name, option.default)
            if not option.run:
                setattr(self, option.name, option.parse(value))
        if given:
            known = ", ".join(option.name for option in self.member_options())
            raise TypeError(f"{type(self).__name__} got unknown option(s) "
                            f"{', '.join(sorted(given))}; its options are: {known}.")

    def __init__(self, x_dim, *positional, condition_dim=0, prior_hidden=None, **options):
        # Positional arguments after x_dim are the VAE's options in their order
        # (nv.VAE(560, (200,), 10) as before the options were described).
        if len(positional) > len(BASE_OPTIONS):
            raise TypeError(f"{type(self).__name__} takes x_dim and at most "
                            f"{len(BASE_OPTIONS)} positional options.")
        for option, value in zip(BASE_OPTIONS, positional):
            if option.name in options:
                raise TypeError(f"{type(self).__name__} got {option.name} twice.")
            options[option.name] = value
        self.x_dim = positive_int(x_dim, "x_dim")
        self._take_options(options)       # every Option of the class: validated, on self
        if self.image_shape is not None and math.prod(self.image_shape) != self.x_dim:
            raise ValueError(f"image_shape {self.image_shape} holds "
                             f"{math.prod(self.image_shape)} pixels but x_dim is {self.x_dim}.")
        self.settle_options()
        self.decoder_hidden = (self.hidden[::-1] if self.decoder_hidden is None
                               else self.decoder_hidden)
        self.prior_hidden = (self.hidden if prior_hidden is None
                             else widths("prior hidden")(prior_hidden))
        self._check_beta(self._beta)
        if self.encoder_towers == "separate" and self.net != "mlp":
            raise ValueError("encoder_towers='separate' needs net='mlp': a conv encoder's "
                             "heads share its convolutions. Use the mlp net, or shared towers.")
        if self.objective == "iwae" and self.samples != 1:
            raise ValueError("The IWAE objective draws k samples per example: set k, "
                             f"not samples (got samples={self.samples}).")
        self.condition_dim = int(condition_dim)
        self.check_finite = True  # one pass over a host batch; cheap next to the matmuls
        self.xp = backend.get_backend()

        self.encoder_sizes = (self.x_dim + self.condition_dim,) + self.hidden + (self.z_dim,)
        self.decoder_sizes = ((self.z_dim + self.condition_dim,) + self.decoder_hidden
                              + (self.x_dim,))
        self.prior_sizes = (self.condition_dim,) + self.prior_hidden + (self.z_dim,)
        # The parts. Each owns the names and shapes of its parameters; the model lays
        # them out back to back in one buffer (encoder, decoder, prior: the order fixes
        # the initialization's draws).
        self.posterior = self.posterior_part()
        self.prior = self.prior_part()
        self._heads = tuple(self.posterior.heads())
        self._q_names = tuple(f"q.{name}" for name, _ in self._heads)
        self.objective_part = self.objective_part_for()
        decoder_class = DECODERS[self.likelihood]
        self.encoder_network, self.decoder_network = self.networks(decoder_class)
        parts = (self.encoder_network, self.decoder_network, self.prior, self.posterior)
        layout = [entry for part in parts for entry in part.layout()]
        buffer_layout = [entry for part in parts for entry in part.buffer_layout()]
        self.params = ParameterDict(layout, dtype=self.dtype, xp=self.xp)
        self.grads = self.params.zeros_like()
        self.buffers = ParameterDict(buffer_layout, dtype=self.dtype, xp=self.xp)

        init_rng = numpy.random.default_rng(self.seed)
        for name, value in self.params.items():
            if name.endswith(".W"):
                initialize_weight(value, init_rng, self.init, self.init_std)
            elif name.endswith(".b"):
                initialize_bias(value, init_rng, self.bias_init, self.init_std)
            elif name.endswith(".bn.scale"):
                value[...] = 1
        for name, value in self.buffers.items():
            if name.endswith(".running_var"):
                value[...] = 1
        self.initialize_parts(init_rng)
        self.rng = numpy.random.default_rng([self.seed, 1])  # noise stream, apart from init

        self._decoder_class = decoder_class
        self._decoder_options = {}
        if self.likelihood != "bernoulli":
            self._decoder_options["output_activation"] = self.output_activation
        if self.likelihood == "gaussian-fixed":
            self._decoder_options["variance"] = self.decoder_variance
        # Persistent pieces for code that drives them by hand (tutorials 04-06); the
        # model's own passes never use them.
        pieces = self._pieces(training=True)
        self.encoder, self.decoder = pieces.encoder, pieces.decoder
        self.kl = KLDiagonalGaussians() if self.learned_prior else KLStandardNormal()
        self.reparameterize = Reparameterize()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        """Everything but the array module and the hand-driven pieces (rebuilt on load);
        the parameters travel as host arrays (ParameterDict.__reduce__)."""
        state = dict(self.__dict__)
        for name in ("xp", "encoder", "decoder"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.xp = self.params.xp
        pieces = self._pieces(training=True)
        self.encoder, self.decoder = pieces.encoder, pieces.decoder

    @property
    def beta(self):
        """The KL weight of the "elbo" objective (1: the ELBO). Setting it is checked
        like the constructor's argument; a schedule can pass ``beta=`` per call instead."""
        return self._beta

    @beta.setter
    def beta(self, value):
        if "objective_part" not in self.__dict__:   # being built: checked with the rest
            self._beta = value
            return
        self._beta = self._check_beta(value)
        self.objective_part.beta = self._beta if self.objective != "iwae" else 1.0

    # ------------------------------------------------------------------- parts
    def posterior_part(self):
        """The posterior family q(z|x, c): a diagonal Gaussian unless a member says."""
        return DiagonalGaussianPosterior(self.z_dim)

    def prior_part(self):
        """The prior p(z|c): N(0, I), or a prior network of the condition."""
        if self.learned_prior:
            return ConditionalGaussianPrior(self.condition_dim, self.prior_hidden, self.z_dim,
                                            self.activation, self.batch_norm)
        return StandardNormalPrior(self.z_dim)

    def objective_part_for(self):
        """What training maximizes: the ELBO (beta-weighted) or the IWAE bound."""
        return IwaeBound(self.k) if self.objective == "iwae" else Elbo(self.beta, self.samples)

    def settle_options(self):
        """Options a member derives from others once all are read (none here)."""

    def initialize_parts(self, rng):
        """Initial values a member's parts need beyond the networks' (none here)."""

    def networks(self, decoder_class):
        """Descriptions of the encoder and the decoder (numpyvae.networks): MLPs, or
        conv nets with ``net="conv"``, the decoder the encoder's mirror."""
        if self.net == "mlp":
            trunk = self.encoder_sizes[:-1]
            return (MLPNetwork(trunk, self._heads, self.activation, "encoder", self.batch_norm,
                               self.encoder_towers),
                    MLPNetwork(self.decoder_sizes[:-1], decoder_class.heads(self.x_dim),
                               self.activation, "decoder", self.batch_norm))
        geometry = self.conv_geometry()
        latent = self.conv_latent
        encoder = ConvNetwork(geometry, self._heads, self.activation, "encoder", "encode",
                              latent, self.batch_norm, extra=self.condition_dim)
        decoder = ConvNetwork(geometry, decoder_class.heads(self.x_dim), self.activation,
                              "decoder", "decode", latent, self.batch_norm,
                              in_width=self.decoder_sizes[0])
        return encoder, decoder

    conv_latent = "vector"   # a conv net's latent: a vector (Dense heads) or a grid (VQ-VAE)

    def conv_geometry(self):
        """The conv net's shapes for this model's images (refusing sizes it cannot take)."""
        if self.image_shape is None:
            raise ValueError(f"net='conv' needs image_shape=(C, H, W) of the images "
                             f"(x_dim = {self.x_dim} pixels).")
        return ConvGeometry(self.image_shape, self.channels, self.kernel_size, self.stride,
                            self.padding)

    # ------------------------------------------------------------------ pieces
    def _pieces(self, training, log_q=True):
        """Fresh pieces over the shared parameters and a fresh tape: one pass's state
        (``log_q``: whether anything in the pass reads log q(z|x))."""
        state = (self.params, self.grads, self.buffers, training)
        return SimpleNamespace(
            encoder=self.encoder_network.build(*state),
            decoder=self._decoder_class(self.decoder_network.build(*state),
                                        **self._decoder_options),
            posterior=self.posterior.bind(log_q, *state),
            prior=self.prior.bind(*state),
            tape=Tape())

    @staticmethod
    def _step_updates(pieces):
        """What a training step moves besides the parameters: batch norms' running
        statistics (and a posterior's own, as a VQ codebook's moving averages)."""
        return [update for net in (pieces.encoder, pieces.decoder, pieces.prior, pieces.posterior)
                for update in net.step_updates]

    # ------------------------------------------------------------------ config
    def config(self):
        """The constructor arguments, to rebuild the same architecture
        (``numpyvae.models.create(model.name, **model.config())``)."""
        config = dict(x_dim=self.x_dim)
        for option in self.member_options():
            value = None if option.run else getattr(self, option.name)
            if option.run or (option.omit_when is not None and option.omit_when(self, value)):
                continue
            config[option.name] = json_value(value)
        if self.learned_prior and self.prior_hidden != self.hidden:
            config["prior_hidden"] = json_value(self.prior_hidden)
        return config

    def widest_layer(self):
        """The widest activation a pass computes per sample (sizes evaluation chunks)."""
        return max(self.encoder_network.widest(), self.decoder_network.widest(),
                   self.prior.widest())

    # ---------------------------------------------------- for the training command
    @classmethod
    def options_from_data(cls, image_shape, n_classes):
        """Constructor options that come from the data set: the images' shape (which a
        conv net reads)."""
        return {"image_shape": tuple(image_shape)}

    def architecture(self):
        """The networks and the latent in a few words, for progress lines and errors."""
        if self.net == "mlp":
            net = f"hidden {list(self.hidden)}"
        else:
            net = (f"conv {list(self.channels)} (kernel {self.kernel_size}, stride "
                   f"{self.stride}, padding {self.padding})")
        return f"{net}, {self.latent_label}"

    @property
    def latent_label(self):
        """The latent in a figure's title."""
        return f"z_dim {self.z_dim}"

    @property
    def objective_label(self):
        """What the objective is called in progress lines and figures."""
        if self.objective == "iwae":
            return f"IWAE bound (k={self.k})"
        return "ELBO" if self.beta == 1.0 else f"beta-objective (beta={self.beta:g})"

    @property
    def samples_label(self):
        """What ``sample`` and the samples figure show, in words."""
        given = "" if self.condition_kind is None else ", each under a test example's condition"
        return f"samples: {self.prior.sample_label}{given}, decoder means E[x|z]"

    def figure_conditions(self, count, condition=None):
        """The condition of ``count`` samples a figure shows: none for an unconditional
        model; for an input-conditioned one, the rows of ``condition`` in turn."""
        if self.condition_kind is None or condition is None:
            return None
        rows = backend.to_device(numpy.arange(count) % int(condition.shape[0]))
        return condition[rows]

    # ------------------------------------------------------------------- data
    def inputs(self, images, labels=None):
        """(x, condition) of a data set's rows: the images, and no condition."""
        return images, None

    def images(self, x, condition=None):
        """Rows of x as whole images, for figures (x itself for most models)."""
        return x

    def figures(self, directory, images, labels, image_shape, rng, title="",
                class_names=None):
        """The member's own figures beyond the common ones: paths written (none here)."""
        return []

    def _check_values(self, x, what="x"):
        """Host data only: a device array would make every step wait for the GPU.

        Two reductions decide everything: min and max carry a NaN along, and all of x
        lies between them, so they are finite exactly when every entry is.
        """
        if not isinstance(x, numpy.ndarray) or not x.size:
            return
        if not (self.check_finite or numpy.issubdtype(x.dtype, numpy.integer)):
            return
        low, high = float(x.min()), float(x.max())
        if numpy.issubdtype(x.dtype, numpy.integer) and high > 1:
            raise ValueError(
                f"{what} holds integers up to {int(high)}: pass pixel intensities scaled to "
                "[0, 1] (x / 255.0), or use numpyvae.datasets.load, which scales them.")
        if not self.check_finite:
            return
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{what} contains NaN or infinity; clean or drop those examples.")
        bounded = self.likelihood == "bernoulli" or self.output_activation == "sigmoid"
        if bounded and (low < 0 or high > 1):
            decoder = ("a Bernoulli decoder" if self.likelihood == "bernoulli"
                       else "a decoder whose mean is a sigmoid")
            raise ValueError(
                f"{what} has values in [{low:.4g}, {high:.4g}] but {decoder} "
                "models values in [0, 1]: scale the data to [0, 1]"
                + ("" if self.likelihood == "bernoulli"
                   else ", or use output_activation='identity'") + ".")

    def _data(self, x, width=None, what="x"):
        """x as a (N, width) array of the model's dtype on the model's device."""
        width = self.x_dim if width is None else width
        if not hasattr(x, "shape"):
            x = numpy.asarray(x)
        if (x.ndim == 4 and what == "x" and self.image_shape is not None
                and tuple(x.shape[1:]) == self.image_shape):
            x = x.reshape(x.shape[0], -1)     # images (N, C, H, W): rows, as every net reads
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(
                f"{what} must have shape (batch, {width}), got {tuple(x.shape)}. "
                "Flatten images to rows (x.reshape(len(x), -1)).")
        if x.shape[0] < 1:
            raise ValueError(f"{what} is empty: the batch needs at least one example.")
        self._check_values(x, what)
        return self.xp.asarray(x, dtype=self.dtype)

    def _features(self, condition, n):
        """The condition as (n, condition_dim) rows, or None for an unconditional model."""
        if self.condition_kind is None:
            if condition is not None:
                raise ValueError(f"The {self.name} model takes no condition; drop it.")
            return None
        if condition is None:
            raise ValueError(f"The {self.name} model needs a condition ({self.condition_kind}s "
                             f"of shape ({n}, ...)).")
        features = self._condition_features(condition)
        if features.shape[0] != n:
            raise ValueError(f"condition has {features.shape[0]} rows but x has {n}.")
        return features

    def _condition_features(self, condition):
        raise NotImplementedError

    def _noise(self, n, eps, rng, count):
        """eps of shape (count, n, z_dim): given, or drawn by a host NumPy Generator."""
        if eps is None:
            generator = as_generator(rng, self.rng)
            eps = generator.standard_normal((count, n, self.z_dim), dtype=self.dtype)
        elif not hasattr(eps, "shape"):
            eps = numpy.asarray(eps, dtype=self.dtype)      # a list, say
        elif isinstance(eps, numpy.ndarray) and not numpy.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity: pass standard normal draws.")
        shape = tuple(eps.shape)
        if not (len(shape) in (2, 3) and shape[-2:] == (n, self.z_dim)):
            raise ValueError(
                f"eps must have shape (N, z_dim) = ({n}, {self.z_dim}) or (L, N, z_dim) "
                f"= (L, {n}, {self.z_dim}), got {shape}.")
        eps = self.xp.asarray(eps, dtype=self.dtype)
        return eps if eps.ndim == 3 else eps[None]

    def _draws(self):
        """Samples per example of the training objective: L for the ELBO, K for IWAE."""
        return self.k if self.objective == "iwae" else self.samples

    # ---------------------------------------------------------------- forward
    def _forward(self, pieces, x, features, eps, local=None):
        """The chain up to the terms every objective uses, on the pass's tape:
        q's heads, z and log q(z|x) (S, N), log p(x|z) (S, N), the prior's parameters."""
        tape = self._posterior_on_tape(pieces, x, features, eps, local)
        self._log_likelihood(pieces, "z", features)
        pieces.prior.record(tape)
        return tape

    def _posterior_on_tape(self, pieces, x, features, eps, local=None):
        """q's heads, then z and log q(z|x) (S, N), on the pass's tape. The heads come
        from the encoder, or are ``local`` (a tuple in head order): constants on the tape,
        whose gradients ``tape.backward`` then returns."""
        tape = pieces.tape
        tape.constant("x", x)
        tape.constant("eps", eps)
        if features is not None:
            tape.constant("features", features)
        if local is None:
            encoder_input = "x"
            if features is not None:
                tape.apply(Concatenate(), ("x", "features"), ("encoder_input",))
                encoder_input = "encoder_input"
            tape.apply(pieces.encoder, (encoder_input,), self._q_names)
        else:
            for name, value in zip(self._q_names, local):
                tape.constant(name, value)
        tape.apply(pieces.posterior, self._q_names + ("eps",), self.posterior.outputs,
                   grads_for=self._q_names)
        return tape

    def _log_likelihood(self, pieces, z, features):
        """log p(x|z, c) on the tape, from the tape's value ``z``."""
        tape = pieces.tape
        decoder_input = z
        if features is not None:
            tape.apply(Concatenate(), (z, "features"), ("decoder_input",), grads_for=(z,))
            decoder_input = "decoder_input"
        return tape.apply(pieces.decoder, ("x", decoder_input), ("log_likelihood",),
                          grads_for=(decoder_input,), method="log_likelihood")

    # ------------------------------------------------------------- public API
    def weight_prior_penalty(self):
        """prior_scale * sum theta^2 / (2 sigma_w^2): the prior's share of the loss."""
        if self.weight_prior_std is None:
            return 0.0
        flat = self.params.flat
        return self.weight_prior_scale * (flat @ flat) / (2.0 * self.weight_prior_std ** 2)

    def _prepare(self, x, condition, eps, rng, count=None):
        if count is not None:
            count = positive_int(count, "samples")
        x = self._data(x)
        features = self._features(condition, x.shape[0])
        eps = self._noise(x.shape[0], eps, rng, self._draws() if count is None else count)
        return x, features, eps

    def _check_beta(self, beta):
        if beta is None:
            return None
        beta = finite_number(beta, "beta (the KL weight)", 0.0)
        if self.objective == "iwae" and beta != 1.0:
            raise ValueError(f"beta = {beta} has no meaning for the IWAE bound: use "
                             "objective='elbo' for a beta-VAE, or beta = 1.")
        return beta

    def _training_pass(self, x, condition, eps, rng, samples, beta, objective=None):
        """The loss's forward pass in training mode: (loss, pieces, N)."""
        beta = self._check_beta(beta)
        x, features, eps = self._prepare(x, condition, eps, rng, samples)
        if self.batch_norm and x.shape[0] < 2:
            raise ValueError("Batch norm in training mode normalizes each unit over the batch: "
                             "with one example every unit becomes its shift. Train on batches "
                             "of 2 or more.")
        objective = objective or self.objective_part
        pieces = self._pieces(training=True, log_q=objective.needs_log_q(self.posterior))
        tape = self._forward(pieces, x, features, eps)
        objective = objective.record(tape, self.posterior, pieces.prior, beta)
        loss = -objective.mean() + self.weight_prior_penalty()
        return loss, pieces, x.shape[0]

    def loss(self, x, condition=None, eps=None, rng=None, samples=None, beta=None):
        """-mean objective (+ the weight prior's penalty): the scalar training minimizes
        (batch norm in training mode, as in loss_and_grads; running statistics unmoved).
        ``beta`` replaces the model's KL weight for this call (a warm-up schedule)."""
        return self._training_pass(x, condition, eps, rng, samples, beta)[0]

    def loss_and_grads(self, x, condition=None, eps=None, rng=None, samples=None, beta=None):
        """The loss and its gradient with respect to every array in ``params``.

        ``eps`` (N, z_dim) or (L or K, N, z_dim) fixes the noise, making the loss a
        deterministic function of the parameters. ``beta`` replaces the KL weight for
        this step. The returned ``grads`` is the model's own gradient buffer: overwritten
        by the next call, so copy it to keep it. A call in training mode also moves
        batch norms' running statistics.
        """
        loss, pieces, n = self._training_pass(x, condition, eps, rng, samples, beta)
        # d(-1/N sum_n objective_n) / d objective_n = -1/N; the tape does the rest.
        pieces.tape.backward({"objective": self.xp.full((n,), -1.0 / n, dtype=self.dtype)})
        for update in self._step_updates(pieces):
            update.update_running_statistics()
        if self.weight_prior_std is not None:
            # d/d theta of scale * theta^2 / (2 sigma_w^2) = scale * theta / sigma_w^2
            self.grads.flat += (self.weight_prior_scale / self.weight_prior_std ** 2) * self.params.flat
        return loss, self.grads

    def metrics(self, x, condition=None, eps=None, rng=None, beta=None):
        """Per-example (N,) arrays: "elbo" (log_likelihood - kl, the true bound),
        "log_likelihood" (1/S sum_s log p(x|z_s, c)), "kl" (closed form where the
        posterior/prior pair has one, else Monte Carlo) and "objective" (the training
        objective; the IWAE bound for objective "iwae"; ``beta`` replaces the KL weight).
        Batch norm in evaluation mode."""
        beta = self._check_beta(beta)
        pieces, tape, parts = self._evaluation_pass(x, condition, eps, rng, None)
        elbo, log_likelihood, kl = parts
        result = {"elbo": elbo, "log_likelihood": log_likelihood, "kl": kl}
        result["objective"] = self.objective_part.record(tape, self.posterior, pieces.prior, beta)
        return result

    def elbo(self, x, condition=None, eps=None, rng=None, samples=None):
        """Per-example ELBO and its parts (an :class:`ElboParts` of (N,) arrays), with
        L = ``samples`` draws (default: the model's L)."""
        count = self.samples if samples is None else positive_int(samples, "samples")
        return self._evaluation_pass(x, condition, eps, rng, count)[2]

    def _evaluation_pass(self, x, condition, eps, rng, count):
        """A forward pass in evaluation mode: (pieces, tape, ElboParts)."""
        x, features, eps = self._prepare(x, condition, eps, rng, count)
        pieces = self._pieces(training=False,
                              log_q=self.objective_part.needs_log_q(self.posterior)
                              or Elbo.needs_log_q(self.posterior))
        tape = self._forward(pieces, x, features, eps)
        kl = kl_term(tape, self.posterior, pieces.prior)
        log_likelihood = tape["log_likelihood"].mean(axis=0)
        return pieces, tape, ElboParts(log_likelihood - kl, log_likelihood, kl)

    def log_importance_weights(self, x, condition=None, eps=None, rng=None, samples=None,
                               local=None):
        """log w_k = log p(x|z_k, c) + log p(z_k|c) - log q(z_k|x, c), z_k ~ q: (K, N).

        logsumexp_k(log w_k) - log K is the importance-sampled estimate of log p(x|c)
        (Burda et al., 2016); its expectation is a bound that tightens as K grows.
        ``local`` (name -> (N, width), as ``local_parameters`` gives) replaces the
        encoder's q by another of the same family: a refined q* as the proposal.
        """
        count = 1 if samples is None else positive_int(samples, "samples (K)")
        x, features, eps = self._prepare(x, condition, eps, rng, count)
        pieces = self._pieces(training=False)
        tape = self._forward(pieces, x, features, eps, self._local_heads(local, x.shape[0]))
        return log_weights(tape, pieces.prior)

    # ------------------------------------------- q's local (per-example) parameters
    def local_parameters(self, x, condition=None):
        """q's per-example parameters for x as the encoder gives them: head name ->
        (N, width) (mu and logvar; a planar flow's flow_u, flow_w, flow_b too)."""
        return dict(zip((name for name, _ in self._heads), self.encode(x, condition)))

    def _local_heads(self, local, n):
        """``local`` (name -> (N, width)) as a tuple in head order on the model's device
        and dtype, checked against q's heads; None stays None (the encoder's q)."""
        if local is None:
            return None
        if self.discrete_latent:
            raise ValueError(f"The {self.name} model's q is deterministic (codes): it has no "
                             "local parameters to refine.")
        names = [name for name, _ in self._heads]
        if sorted(local) != sorted(names):
            raise ValueError(f"local parameters must be exactly q's heads {names}, got "
                             f"{sorted(local)}.")
        heads = []
        for name, width in self._heads:
            value = self.xp.asarray(local[name], dtype=self.dtype)
            if tuple(value.shape) != (n, width):
                raise ValueError(f"local[{name!r}] must have shape ({n}, {width}), got "
                                 f"{tuple(value.shape)}.")
            heads.append(value)
        return tuple(heads)

    def local_elbo(self, x, local, condition=None, eps=None, rng=None, samples=None,
                   grads=False):
        """The ELBO (N,) of each example under the q whose local parameters are ``local``
        (name -> (N, width)) instead of the encoder's, the model held fixed: closed-form KL
        where the pair has one, else Monte Carlo; L = ``samples`` draws (default 1).
        With ``grads=True``, also dELBO_n / d local_n, name -> (N, width), from the parts'
        backward passes (the tape returns the gradients of its constants); for per-example
        refinement of q (numpyvae.inference.refinement). Batch norm in evaluation mode."""
        count = 1 if samples is None else positive_int(samples, "samples")
        x, features, eps = self._prepare(x, condition, eps, rng, count)
        heads = self._local_heads(local, x.shape[0])
        pieces = self._pieces(training=False, log_q=Elbo.needs_log_q(self.posterior))
        tape = self._forward(pieces, x, features, eps, heads)
        elbo = Elbo().record(tape, self.posterior, pieces.prior)
        if not grads:
            return elbo
        # Example n's ELBO reads only row n of each head: the gradient of the sum is
        # every example's own gradient.
        found = tape.backward({"objective": self.xp.ones(x.shape[0], dtype=self.dtype)})
        return elbo, {name: found[q_name] for (name, _), q_name in zip(self._heads, self._q_names)}

    def log_joint(self, x, z, condition=None):
        """log p(x, z | c) = log p(x|z, c) + log p(z|c) for z (S, N, z_dim): (S, N).
        Batch norm in evaluation mode. What the exactness checks integrate over z."""
        x = self._data(x)
        z = self.xp.asarray(z, dtype=self.dtype)
        if z.ndim != 3 or z.shape[1:] != (x.shape[0], self.z_dim):
            raise ValueError(f"z must have shape (S, N, z_dim) = (S, {x.shape[0]}, "
                             f"{self.z_dim}), got {tuple(z.shape)}.")
        pieces, log_prior = self._log_prior_pass(z, condition)
        pieces.tape.constant("x", x)
        return self._log_likelihood(pieces, "z", pieces.tape.values.get("features")) + log_prior

    def log_prior(self, z, condition=None):
        """log p(z|c) for z (S, N, z_dim): (S, N). Batch norm in evaluation mode."""
        return self._log_prior_pass(self.xp.asarray(z, dtype=self.dtype), condition)[1]

    def _log_prior_pass(self, z, condition):
        """An evaluation pass holding z (and the condition) with log p(z|c) on its tape."""
        features = self._features(condition, z.shape[-2])
        pieces = self._pieces(training=False)
        pieces.tape.constant("z", z)
        if features is not None:
            pieces.tape.constant("features", features)
        pieces.prior.record(pieces.tape)
        return pieces, pieces.prior.log_density(pieces.tape, "z")

    def encode(self, x, condition=None):
        """The encoder's heads for x: (mu, logvar) of q(z|x, c), each (N, z_dim), for a
        diagonal Gaussian posterior (a flow's base Gaussian, then its parameters)."""
        x = self._data(x)
        features = self._features(condition, x.shape[0])
        pieces = self._pieces(training=False)
        encoder_input = x if features is None else Concatenate().forward(x, features)
        return pieces.encoder.forward(encoder_input)

    def latent_point(self, x, condition=None):
        """One point in z per example, (N, z_dim), for figures: the posterior at zero
        noise (q's mean for a diagonal Gaussian; the flow of the base mean for a flow)."""
        x = self._data(x)
        features = self._features(condition, x.shape[0])
        eps = self.xp.zeros((1, x.shape[0], self.z_dim), dtype=self.dtype)
        pieces = self._pieces(training=False, log_q=False)
        return self._posterior_on_tape(pieces, x, features, eps)["z"][0]

    def latent_path(self, x_ends, steps, condition=None):
        """``steps`` points z_t = (1 - t) z_a + t z_b, t evenly spaced from 0 to 1, between
        the latent points z_a, z_b of the two rows of ``x_ends`` (``condition``: theirs,
        two rows): (steps, z_dim)."""
        z_a, z_b = self.latent_point(x_ends, condition)
        t = self.xp.linspace(0.0, 1.0, steps, dtype=self.dtype)[:, None]
        return (1 - t) * z_a + t * z_b

    def _decoder_input(self, pieces, z, condition):
        z = self.xp.asarray(z, dtype=self.dtype)
        if z.ndim < 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have shape (N, z_dim) = (N, {self.z_dim}), got "
                             f"{tuple(z.shape)}.")
        features = self._features(condition, z.shape[-2])
        return z if features is None else Concatenate().forward(z, features)

    def decode(self, z, condition=None):
        """E[x|z, c], (N, x_dim): sigma(logits) for Bernoulli, the mean for Gaussians."""
        pieces = self._pieces(training=False)
        return pieces.decoder.mean(self._decoder_input(pieces, z, condition))

    def prior_parameters(self, condition=None, n=None):
        """mu_p, logvar_p of a Gaussian p(z|c), each (n, z_dim): the prior network's
        output, or zeros for N(0, I). n defaults to the condition's rows (1 without a
        condition)."""
        rows = n if condition is None or n is not None else len(condition)
        features = self._features(condition, rows)   # validates the condition
        return self._pieces(training=False).prior.parameters(features, rows or 1)

    def prior_sample(self, n, rng=None, condition=None):
        """n draws z ~ p(z|c): (n, z_dim)."""
        n = positive_int(n, "n")
        generator = as_generator(rng, self.rng)
        features = self._features(condition, n)
        eps = self.xp.asarray(generator.standard_normal((n, self.z_dim)), dtype=self.dtype)
        return self._pieces(training=False).prior.sample(eps, features, generator)

    def sample(self, n, rng=None, mean=True, condition=None):
        """n samples from the model: z ~ p(z|c), then E[x|z, c] (``mean=True``, what
        figures show) or a draw x ~ p(x|z, c)."""
        generator = as_generator(rng, self.rng)
        z = self.prior_sample(n, generator, condition)
        pieces = self._pieces(training=False)
        decoder_input = self._decoder_input(pieces, z, condition)
        if mean:
            return pieces.decoder.mean(decoder_input)
        return pieces.decoder.sample(decoder_input, generator)
