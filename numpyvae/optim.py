"""Optimizers, written out by hand, updating parameters in place.

``opt.step(params, grads)`` takes two mappings name -> array with the same names and
shapes. When both are :class:`~numpyvae.parameters.ParameterDict` s with one layout
(a model's ``params`` and the ``grads`` from ``loss_and_grads``), the update runs
on their flat buffers: a few long element-wise operations instead of a few per
array. Any other mapping is updated array by array. The math is the same.

On the CPU the flat buffers are updated in blocks of ``BLOCK_ELEMENTS``. An update
is several passes (Adagrad: seven); over a whole AEVB model (816k float32 for the
MNIST one, 3.3 MB per array) each pass would stream every array through memory
again, while a block's arrays stay in the core's cache from the first pass to the
last. On the MNIST model that takes the Adagrad step from 1.46 ms to 0.92 ms on a
2-core Xeon (``python benchmarks/bench_optimizer.py``). The result is the same to the
last bit: every element goes through the same operations. Two workers share
larger blocks (``PARALLEL_BLOCK_ELEMENTS``; see ``Optimizer.step``). A GPU gets the
whole buffer in one go: there the number of kernel launches is what costs.

Optimizer state (momentum, running sums) lives in ``opt.state``; ``state_dict()``
and ``load_state_dict()`` save and restore it, for checkpoints.
"""
import numpy

from . import backend, threads
from .parameters import ParameterDict, same_layout

# 32768 float32 = 128 KiB per array; an update touches at most five arrays, which
# then fit in the 1-2 MiB L2 cache of current x86 and Arm cores.
BLOCK_ELEMENTS = 1 << 15
# With two workers every NumPy call is a point where the threads trade the GIL, and a
# block of 32768 costs five to ten calls: in such blocks the second worker gained little
# or lost (Adam at 816k parameters: 2.36 ms on one worker, 2.44 on two). Blocks four
# times as large, 2.5 MB across an update's arrays, take a quarter of the calls and
# gain 30-50% from the second core (Adam at 816k: 1.45 ms; 425k-2M, Adam and Adagrad:
# ``python benchmarks/bench_family.py``, the optimizer table).
PARALLEL_BLOCK_ELEMENTS = 1 << 17
# Below this a second worker has too few blocks to share.
PARALLEL_MIN_ELEMENTS = 1 << 18


class Optimizer:
    """Common bookkeeping: state buffers shaped like the parameters, scratch space,
    and the choice between the flat path and the per-array path.

    ``transient_updates``: how many first updates move the parameters by an amount that
    says nothing of the gradient's size, so that the loss right after them is no sign
    of divergence (the training command's check leaves those losses out)."""

    state_names = ()
    transient_updates = 0
    # Set by load_state_dict where it converted an older checkpoint's state (the run then
    # goes on to float rounding, not bit for bit; the training command says so).
    converted_state = False

    def __init__(self, lr):
        if not lr > 0:
            raise ValueError(f"The learning rate must be > 0, got {lr}.")
        self.lr = float(lr)
        self.steps = 0
        self.state = {}
        self._scratch = {}
        self._flat_runs = (None, (), None)   # ((workers, block), flat buffers, their blocks)

    def _state_buffers(self, params):
        for name in self.state_names:
            if name not in self.state:
                if isinstance(params, ParameterDict):
                    self.state[name] = params.zeros_like()
                else:
                    xp = backend.namespace_of(*params.values())
                    self.state[name] = {key: xp.zeros_like(value) for key, value in params.items()}
        return [self.state[name] for name in self.state_names]

    def _segments(self, params, grads, workers=1):
        """Lists of (parameter, gradient, scratch, *state) arrays to update together, one
        list per worker: the flat buffers' blocks split into ``workers`` runs of
        neighbouring blocks, each run with its own scratch."""
        if set(params) != set(grads):
            raise ValueError("params and grads must have the same names; differing: "
                             f"{sorted(set(params) ^ set(grads))}.")
        states = self._state_buffers(params)
        if same_layout(params, grads) and all(isinstance(s, ParameterDict) for s in states):
            flats = [params.flat, grads.flat, *[state.flat for state in states]]
            size = flats[0].size
            if size < PARALLEL_MIN_ELEMENTS:
                workers = 1
            if backend.namespace_of(flats[0]) is not numpy:
                block = max(size, 1)
            else:
                block = PARALLEL_BLOCK_ELEMENTS if workers > 1 else BLOCK_ELEMENTS
            # The blocks are views of the same flat buffers from step to step: cut them
            # once (cutting them anew cost 4% of an Adam step at 425k parameters).
            cut = (workers, block)
            cached_cut, cached_flats, cached_runs = self._flat_runs
            if cached_cut == cut and len(cached_flats) == len(flats) and all(
                    cached is flat for cached, flat in zip(cached_flats, flats)):
                return cached_runs
            starts = list(range(0, size, block))
            workers = max(1, min(workers, len(starts)))
            runs = []
            for worker in range(workers):
                scratch = self._scratch_for(f"flat{worker}", flats[1][:min(block, size)])
                mine = starts[worker * len(starts) // workers:(worker + 1) * len(starts) // workers]
                runs.append([(*(flat[start:min(start + block, size)] for flat in flats[:2]),
                              scratch[:min(block, size - start)],
                              *(flat[start:min(start + block, size)] for flat in flats[2:]))
                             for start in mine])
            self._flat_runs = (cut, flats, runs)
            return runs
        segments = []
        for key, value in params.items():
            grad = grads[key]
            if tuple(grad.shape) != tuple(value.shape):
                raise ValueError(f"grads[{key!r}] has shape {tuple(grad.shape)}, "
                                 f"params[{key!r}] has {tuple(value.shape)}.")
            segments.append((value, grad, self._scratch_for(key, grad),
                             *[state[key] for state in states]))
        return [segments]

    def _scratch_for(self, key, like):
        scratch = self._scratch.get(key)
        if scratch is None or scratch.shape != like.shape or scratch.dtype != like.dtype:
            scratch = self._scratch[key] = backend.namespace_of(like).empty_like(like)
        return scratch

    def initialize_state(self, params):
        """Create the (zero) state for ``params`` now rather than at the first step, so a
        checkpoint written before any step already holds it."""
        self._state_buffers(params)

    def step(self, params, grads):
        """One update of every array in ``params``, in place. With ``threads.workers()``
        above 1 and at least PARALLEL_MIN_ELEMENTS parameters, the flat buffer is cut
        into blocks of PARALLEL_BLOCK_ELEMENTS and a second thread updates the second
        half of them: NumPy releases the GIL inside each element-wise pass, and every
        element goes through the same operations, so the result is the same to the
        last bit."""
        self.steps += 1
        runs = self._segments(params, grads, threads.workers())
        pending = [threads.pool().submit(self._update_all, run) for run in runs[1:]]
        self._update_all(runs[0])
        for job in pending:
            job.result()

    def _update_all(self, segments):
        for segment in segments:
            self._update(*segment)

    def state_dict(self):
        """Host copies of the state, for a checkpoint: {'steps', 'name/key': array}."""
        saved = {"steps": numpy.asarray(self.steps)}
        for name, buffers in self.state.items():
            for key, value in buffers.items():
                saved[f"{name}/{key}"] = numpy.array(backend.to_numpy(value))
        return saved

    def load_state_dict(self, saved, params):
        """Restore what :meth:`state_dict` returned, for the parameters ``params``."""
        self.steps = int(saved["steps"])
        for name, buffers in zip(self.state_names, self._state_buffers(params)):
            for key, value in buffers.items():
                stored = saved.get(f"{name}/{key}")
                if stored is None or tuple(stored.shape) != tuple(value.shape):
                    raise ValueError(f"Optimizer state {name}/{key} is missing or has the "
                                     "wrong shape: the checkpoint is from another model or optimizer.")
                value[...] = backend.namespace_of(value).asarray(stored, dtype=value.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum:

        v <- momentum * v + g
        theta <- theta - lr * v

    With momentum = 0 this is plain theta <- theta - lr * g. (The same convention as
    PyTorch's SGD, so the two can be compared step for step.)
    """

    state_names = ("velocity",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum = float(momentum)

    def _update(self, param, grad, scratch, velocity):
        velocity *= self.momentum
        velocity += grad
        backend.namespace_of(param).multiply(velocity, self.lr, out=scratch)
        param -= scratch


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011), the optimizer of AEVB:

        G <- G + g * g
        theta <- theta - lr * g / (sqrt(G) + eps)

    Each coordinate's step shrinks with the history of its squared gradients. The first
    update is g / |g|: every parameter moves by lr whatever its gradient.
    """

    state_names = ("sum_of_squares",)
    transient_updates = 1

    def __init__(self, lr=0.01, eps=1e-10):
        super().__init__(lr)
        self.eps = float(eps)

    def _update(self, param, grad, scratch, sum_of_squares):
        xp = backend.namespace_of(param)
        xp.multiply(grad, grad, out=scratch)
        sum_of_squares += scratch
        xp.sqrt(sum_of_squares, out=scratch)
        scratch += self.eps
        xp.divide(grad, scratch, out=scratch)
        scratch *= self.lr
        param -= scratch


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with bias correction, at step t:

        m <- beta1 m + (1 - beta1) g          v <- beta2 v + (1 - beta2) g * g
        m_hat = m / (1 - beta1^t)             v_hat = v / (1 - beta2^t)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    The first update is m_hat / sqrt(v_hat) = g / |g|: every parameter moves by lr.

    The state holds the moments without their (1 - beta) factors, the decayed sums
    M = m / (1 - beta1) = sum_s beta1^(t-s) g_s and V = v / (1 - beta2), so that

        M <- beta1 M + g                      V <- beta2 V + g * g
        theta <- theta - a M / (b sqrt(V) + eps),   a = lr (1 - beta1) / (1 - beta1^t),
                                                    b = sqrt((1 - beta2) / (1 - beta2^t))

    is the same update in ten passes over the arrays instead of thirteen: the two
    (1 - beta) multiplications, and the scaling of the quotient (folded into the
    denominator's two constants), were whole passes of their own. :meth:`moments`
    gives m and v.
    """

    state_names = ("decayed_gradient_sum", "decayed_square_sum")
    # What checkpoints written before the decayed sums held, and the factor to them.
    _legacy_state = {"decayed_gradient_sum": ("first_moment", "beta1"),
                     "decayed_square_sum": ("second_moment", "beta2")}
    transient_updates = 1

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def moments(self):
        """{"first_moment": m, "second_moment": v}, name -> array (new arrays), the
        moments of the docstring's first form."""
        return {moment: {key: value * (1.0 - getattr(self, beta))
                         for key, value in self.state[name].items()}
                for name, (moment, beta) in self._legacy_state.items() if name in self.state}

    def load_state_dict(self, saved, params):
        """As :meth:`Optimizer.load_state_dict`; a checkpoint written before the state
        held the decayed sums (it holds m and v) is converted, M = m / (1 - beta1) and
        V = v / (1 - beta2): the run goes on to float rounding, not bit for bit."""
        self.converted_state = not any(key.startswith(f"{name}/") for key in saved
                                       for name in self.state_names)
        if self.converted_state:
            converted = {"steps": saved["steps"]}
            for name, (moment, beta) in self._legacy_state.items():
                factor = 1.0 - getattr(self, beta)
                converted.update({f"{name}/{key[len(moment) + 1:]}": value / factor
                                  for key, value in saved.items() if key.startswith(f"{moment}/")})
            saved = converted
        super().load_state_dict(saved, params)

    def _update(self, param, grad, scratch, gradient_sum, square_sum):
        xp = backend.namespace_of(param)
        correction1 = 1.0 - self.beta1 ** self.steps
        correction2 = 1.0 - self.beta2 ** self.steps
        gradient_sum *= self.beta1
        gradient_sum += grad
        square_sum *= self.beta2
        xp.multiply(grad, grad, out=scratch)
        square_sum += scratch
        # a M / (b sqrt(V) + eps) = M / ((b / a) sqrt(V) + eps / a)
        inverse_a = correction1 / (self.lr * (1.0 - self.beta1))
        xp.sqrt(square_sum, out=scratch)
        scratch *= inverse_a * ((1.0 - self.beta2) / correction2) ** 0.5
        scratch += inverse_a * self.eps
        xp.divide(gradient_sum, scratch, out=scratch)
        param -= scratch


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}
