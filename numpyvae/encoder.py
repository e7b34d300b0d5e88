"""Encoders: an MLP trunk and linear heads, x -> (head_1(h), head_2(h), ...), or one MLP
per head with no trunk shared (``Towers``: Wang (2023)'s code computes mu and logvar
with two separate networks).

The Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))) has the heads mu and
logvar; a planar flow posterior adds the flow's per-example parameters as heads; a
learned conditional prior p(z|c) (the structured-output CVAE's prior network) has the
Gaussian encoder's shape.
"""
import functools

from .layers import MLP, Dense


def head_entries(prefix, width, heads):
    """(head name, weight name, bias name, weight shape, bias shape) of each head: the
    one place the heads' parameter names are made."""
    return _head_entries(prefix, width, tuple(tuple(head) for head in heads))


@functools.lru_cache(maxsize=None)   # every pass builds its networks: make the names once
def _head_entries(prefix, width, heads):
    return tuple((name, f"{prefix}.{name}.W", f"{prefix}.{name}.b", (width, size), (size,))
                 for name, size in heads)


class Encoder:
    """h = MLP(x), then linear heads y_i = h W_i + b_i. x (..., in_dim) -> a tuple of
    (..., size_i), one per head. Backward sums the heads' gradients into the trunk.

    ``sizes`` = (in_dim, *hidden); ``heads`` = ((name, size), ...). Parameters are named
    ``{trunk}{i}.W/b`` (``trunk`` default ``{prefix}.hidden``) and ``{prefix}.{head}.W/b``
    in the model's ParameterDict.
    """

    def __init__(self, sizes, heads, activation, params, grads, prefix="encoder",
                 batch_norm=False, buffers=None, training=True, trunk=None):
        self.trunk = MLP(sizes, activation, params, grads, trunk or f"{prefix}.hidden",
                         batch_norm=batch_norm, buffers=buffers, training=training)
        self.step_updates = self.trunk.step_updates
        self.heads = [Dense(params[weight], params[bias], grads[weight], grads[bias])
                      for _, weight, bias, _, _ in head_entries(prefix, sizes[-1], heads)]

    @staticmethod
    def layout(sizes, heads, prefix="encoder", batch_norm=False, trunk=None):
        entries = MLP.layout(sizes, trunk or f"{prefix}.hidden", batch_norm)
        for _, weight, bias, weight_shape, bias_shape in head_entries(prefix, sizes[-1], heads):
            entries += [(weight, weight_shape), (bias, bias_shape)]
        return entries

    @staticmethod
    def buffer_layout(sizes, prefix="encoder", batch_norm=False, trunk=None):
        return MLP.buffer_layout(sizes, trunk or f"{prefix}.hidden", batch_norm)

    def forward(self, x):
        self.lead = x.shape[:-1]
        h = self.trunk.forward(x if x.ndim == 2 else x.reshape(-1, x.shape[-1]))
        outputs = tuple(head.forward(h) for head in self.heads)
        if x.ndim != 2:
            outputs = tuple(out.reshape(self.lead + out.shape[-1:]) for out in outputs)
        return outputs

    def backward(self, *grad_heads, need_input_grad=False):
        grad_h = None
        for head, grad in zip(self.heads, grad_heads):
            if grad is None:
                continue
            part = head.backward(grad if grad.ndim == 2 else grad.reshape(-1, grad.shape[-1]))
            if grad_h is None:
                grad_h = part
            else:
                grad_h += part
        grad_x = self.trunk.backward(grad_h, need_input_grad=need_input_grad)
        if grad_x is not None and len(self.lead) != 1:
            grad_x = grad_x.reshape(self.lead + grad_x.shape[-1:])
        return grad_x


class Towers:
    """One MLP per head, no trunk shared: y_i = MLP_i(x) W_i + b_i, x (..., in_dim) -> a
    tuple of (..., size_i). Each tower is an :class:`Encoder` of one head, its hidden
    layers named ``{prefix}.{head}.hidden{i}`` and its head ``{prefix}.{head}.W/b`` (the
    names a shared encoder gives its heads). Backward adds the towers' input gradients.
    """

    def __init__(self, sizes, heads, activation, params, grads, prefix="encoder",
                 batch_norm=False, buffers=None, training=True):
        self.towers = [Encoder(sizes, (head,), activation, params, grads, prefix, batch_norm,
                               buffers, training, trunk=Towers.trunk(prefix, head))
                       for head in heads]
        self.step_updates = [norm for tower in self.towers for norm in tower.step_updates]

    @staticmethod
    def trunk(prefix, head):
        """The name stem of one tower's hidden layers."""
        return f"{prefix}.{head[0]}.hidden"

    @staticmethod
    def layout(sizes, heads, prefix="encoder", batch_norm=False):
        return [entry for head in heads
                for entry in Encoder.layout(sizes, (head,), prefix, batch_norm,
                                            Towers.trunk(prefix, head))]

    @staticmethod
    def buffer_layout(sizes, heads, prefix="encoder", batch_norm=False):
        return [entry for head in heads
                for entry in Encoder.buffer_layout(sizes, prefix, batch_norm,
                                                   Towers.trunk(prefix, head))]

    def forward(self, x):
        self.outputs = tuple(tower.forward(x)[0] for tower in self.towers)
        return self.outputs

    def backward(self, *grad_heads, need_input_grad=False):
        grad_x = None
        for tower, output, grad in zip(self.towers, self.outputs, grad_heads):
            if grad is None:   # an unread head: its tower's gradients are zero, not stale
                grad = output * 0
            part = tower.backward(grad, need_input_grad=need_input_grad)
            if part is not None:
                grad_x = part if grad_x is None else grad_x + part
        return grad_x


class GaussianEncoder(Encoder):
    """mu = h W_mu + b_mu and logvar = h W_logvar + b_logvar on h = MLP(x):
    x (N, in_dim) -> mu, logvar (N, z_dim). ``sizes`` = (in_dim, *hidden, z_dim)."""

    def __init__(self, sizes, activation, params, grads, prefix="encoder", batch_norm=False,
                 buffers=None, training=True):
        super().__init__(sizes[:-1], self.gaussian_heads(sizes[-1]), activation, params, grads,
                         prefix, batch_norm, buffers, training)
        self.mu_head, self.logvar_head = self.heads

    @staticmethod
    def gaussian_heads(z_dim):
        return (("mu", z_dim), ("logvar", z_dim))

    @staticmethod
    def layout(sizes, prefix="encoder", batch_norm=False):
        """``sizes`` = (in_dim, *hidden, z_dim)."""
        return Encoder.layout(sizes[:-1], GaussianEncoder.gaussian_heads(sizes[-1]), prefix,
                              batch_norm)

    @staticmethod
    def buffer_layout(sizes, prefix="encoder", batch_norm=False):
        return Encoder.buffer_layout(sizes[:-1], prefix, batch_norm)

    def backward(self, grad_mu, grad_logvar, need_input_grad=False):
        return super().backward(grad_mu, grad_logvar, need_input_grad=need_input_grad)
