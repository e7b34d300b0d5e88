"""The Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x)))."""
from .layers import MLP, Dense


class GaussianEncoder:
    """An MLP trunk h = MLP(x), then two linear heads: mu = h W_mu + b_mu and
    logvar = h W_logvar + b_logvar. x (N, x_dim) -> mu, logvar (N, z_dim).

    Parameters are named ``encoder.hidden{i}.W/b``, ``encoder.mu.W/b`` and
    ``encoder.logvar.W/b`` in the model's ParameterDict.
    """

    def __init__(self, sizes, activation, params, grads):
        self.trunk = MLP(sizes[:-1], activation, params, grads, "encoder.hidden")
        self.mu_head = Dense(params["encoder.mu.W"], params["encoder.mu.b"],
                             grads["encoder.mu.W"], grads["encoder.mu.b"])
        self.logvar_head = Dense(params["encoder.logvar.W"], params["encoder.logvar.b"],
                                 grads["encoder.logvar.W"], grads["encoder.logvar.b"])

    @staticmethod
    def layout(sizes):
        """``sizes`` = (x_dim, *hidden, z_dim)."""
        width, z_dim = sizes[-2], sizes[-1]
        return MLP.layout(sizes[:-1], "encoder.hidden") + [
            ("encoder.mu.W", (width, z_dim)), ("encoder.mu.b", (z_dim,)),
            ("encoder.logvar.W", (width, z_dim)), ("encoder.logvar.b", (z_dim,)),
        ]

    def forward(self, x):
        h = self.trunk.forward(x)
        return self.mu_head.forward(h), self.logvar_head.forward(h)

    def backward(self, grad_mu, grad_logvar, need_input_grad=False):
        grad_h = self.mu_head.backward(grad_mu)
        grad_h += self.logvar_head.backward(grad_logvar)
        return self.trunk.backward(grad_h, need_input_grad=need_input_grad)
