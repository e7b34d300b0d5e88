"""The Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))), also the shape of a
learned conditional prior p(z|c) (the structured-output CVAE's prior network)."""
from .layers import MLP, Dense


class GaussianEncoder:
    """An MLP trunk h = MLP(x), then two linear heads: mu = h W_mu + b_mu and
    logvar = h W_logvar + b_logvar. x (N, in_dim) -> mu, logvar (N, z_dim).

    Parameters are named ``{prefix}.hidden{i}.W/b``, ``{prefix}.mu.W/b`` and
    ``{prefix}.logvar.W/b`` in the model's ParameterDict (prefix ``encoder`` by default).
    """

    def __init__(self, sizes, activation, params, grads, prefix="encoder", batch_norm=False,
                 buffers=None, training=True):
        self.trunk = MLP(sizes[:-1], activation, params, grads, f"{prefix}.hidden",
                         batch_norm=batch_norm, buffers=buffers, training=training)
        self.batch_norms = self.trunk.batch_norms
        self.mu_head = Dense(params[f"{prefix}.mu.W"], params[f"{prefix}.mu.b"],
                             grads[f"{prefix}.mu.W"], grads[f"{prefix}.mu.b"])
        self.logvar_head = Dense(params[f"{prefix}.logvar.W"], params[f"{prefix}.logvar.b"],
                                 grads[f"{prefix}.logvar.W"], grads[f"{prefix}.logvar.b"])

    @staticmethod
    def layout(sizes, prefix="encoder", batch_norm=False):
        """``sizes`` = (in_dim, *hidden, z_dim)."""
        width, z_dim = sizes[-2], sizes[-1]
        return MLP.layout(sizes[:-1], f"{prefix}.hidden", batch_norm) + [
            (f"{prefix}.mu.W", (width, z_dim)), (f"{prefix}.mu.b", (z_dim,)),
            (f"{prefix}.logvar.W", (width, z_dim)), (f"{prefix}.logvar.b", (z_dim,)),
        ]

    @staticmethod
    def buffer_layout(sizes, prefix="encoder", batch_norm=False):
        return MLP.buffer_layout(sizes[:-1], f"{prefix}.hidden", batch_norm)

    def forward(self, x):
        h = self.trunk.forward(x)
        return self.mu_head.forward(h), self.logvar_head.forward(h)

    def backward(self, grad_mu, grad_logvar, need_input_grad=False):
        grad_h = self.mu_head.backward(grad_mu)
        grad_h += self.logvar_head.backward(grad_logvar)
        return self.trunk.backward(grad_h, need_input_grad=need_input_grad)
