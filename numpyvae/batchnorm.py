"""Batch normalization (Ioffe & Szegedy, 2015) as a forward/backward pair.

Training mode normalizes each feature by the batch's own statistics,

    x_hat = (x - mean_B) / sqrt(var_B + eps),   y = scale * x_hat + shift,

with var_B the biased batch variance; evaluation mode uses running averages of the
batch statistics instead, so a single example gets the same output alone as in a
batch. Backward in training mode (the batch statistics depend on every row):

    dL/dx = (1 / (N sqrt(var_B + eps))) (N g' - sum_n g' - x_hat sum_n g' x_hat),  g' = g scale

and in evaluation mode dL/dx = g scale / sqrt(running_var + eps). Derived in
tutorials/05_backpropagation_by_hand.ipynb's style in tutorials/07 (appendix).
"""
from . import backend

DEFAULT_MOMENTUM = 0.1
DEFAULT_EPS = 1e-5


class BatchNorm:
    """Normalizes x (N, F) feature by feature, then y = scale * x_hat + shift.

    ``scale``/``shift`` (F,) are trainable (views into a model's ParameterDict, with
    gradient views ``grad_scale``/``grad_shift``); ``running_mean``/``running_var``
    (F,) are buffers, updated only by :meth:`update_running_statistics`, so that
    re-evaluating a loss (a gradient check) never moves them.
    """

    def __init__(self, scale, shift, grad_scale, grad_shift, running_mean, running_var,
                 training=True, momentum=DEFAULT_MOMENTUM, eps=DEFAULT_EPS):
        self.params = {"scale": scale, "shift": shift}
        self.grads = {"scale": grad_scale, "shift": grad_shift}
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, float(momentum), float(eps)

    @classmethod
    def named(cls, names, params, grads, buffers, training):
        """The batch norm whose arrays are ``names["scale"/"shift"/"running_mean"/
        "running_var"]`` in a model's params, grads and buffers."""
        return cls(params[names["scale"]], params[names["shift"]], grads[names["scale"]],
                   grads[names["shift"]], buffers[names["running_mean"]],
                   buffers[names["running_var"]], training=training)

    def forward(self, x):
        # Two (N, F) arrays where the formulas as written make five: the centred x becomes
        # x_hat in place, and the output holds the squares before it holds y. The same
        # operations in the same order: the same bits.
        xp = backend.namespace_of(x)
        out = xp.empty_like(x)
        if self.training:
            self.batch_mean = x.mean(axis=0)
            centered = x - self.batch_mean
            self.batch_var = xp.multiply(centered, centered, out=out).mean(axis=0)
            self.count = x.shape[0]
            variance = self.batch_var
        else:
            centered = x - self.running_mean
            variance = self.running_var
        self.inverse_std = 1.0 / xp.sqrt(variance + self.eps)
        centered *= self.inverse_std
        self.x_hat = centered
        xp.multiply(self.x_hat, self.params["scale"], out=out)
        out += self.params["shift"]
        return out

    def backward(self, grad_out):
        xp = backend.namespace_of(grad_out)
        scratch = grad_out * self.x_hat
        xp.sum(scratch, axis=0, out=self.grads["scale"])
        xp.sum(grad_out, axis=0, out=self.grads["shift"])
        grad_x_hat = grad_out * self.params["scale"]
        if not self.training:
            grad_x_hat *= self.inverse_std
            return grad_x_hat
        n = grad_out.shape[0]
        projection = xp.multiply(grad_x_hat, self.x_hat, out=scratch).sum(axis=0)
        grad_x = xp.multiply(grad_x_hat, n, out=scratch)
        grad_x -= grad_x_hat.sum(axis=0)
        grad_x -= xp.multiply(self.x_hat, projection, out=grad_x_hat)
        grad_x *= self.inverse_std / n
        return grad_x

    def update_running_statistics(self):
        """running <- (1 - momentum) running + momentum batch (variance unbiased), after a
        training-mode forward pass."""
        if not self.training:
            raise RuntimeError("update_running_statistics needs a training-mode forward pass.")
        unbiased = self.batch_var * (self.count / max(self.count - 1, 1))
        self.running_mean *= 1.0 - self.momentum
        self.running_mean += self.momentum * self.batch_mean
        self.running_var *= 1.0 - self.momentum
        self.running_var += self.momentum * unbiased
