"""Planar normalizing flows (Rezende & Mohamed, 2015, "Variational Inference with
Normalizing Flows"), each piece with its backward pass. Derived and used in
tutorials/10_normalizing_flows.ipynb.

**Change of variables.** Push z0 ~ q0 through an invertible, differentiable map
f: R^D -> R^D. The density of z1 = f(z0) is q1(z1) = q0(z0) |det df/dz0|^{-1}: a small
box around z0 is carried onto a box around z1 whose volume is |det df/dz0| times larger,
and it holds the same probability. For a chain z_k = f_k(z_{k-1}), k = 1..K,

    log q_K(z_K) = log q0(z0) - sum_k log |det df_k/dz(z_{k-1})|,

so the density of a sample z_K is known exactly, from z0 and the K log-determinants
collected on the way, without ever inverting the maps.

**Planar steps.** f(z) = z + u_hat h(w^T z + b) with h = tanh, u_hat, w in R^D, b in R:
it bends space along the direction u_hat across the hyperplane w^T z + b = 0. Its
Jacobian is the identity plus a rank-one matrix,

    df/dz = I + u_hat psi(z)^T,   psi(z) = h'(w^T z + b) w,

and the matrix determinant lemma, det(I + a c^T) = 1 + c^T a (the only eigenvalue of
I + a c^T that differs from 1 belongs to the eigenvector a), gives its determinant in
O(D) instead of O(D^3):

    log |det df/dz| = log |1 + u_hat^T psi(z)| = log |1 + h'(w^T z + b) w^T u_hat|.

**Invertibility.** Split z into its component along w and the rest. The part of z
orthogonal to w only shifts by u_hat h(.), so f is invertible exactly when the scalar
map alpha = w^T z -> w^T f(z) = alpha + (w^T u_hat) h(alpha + b) is. With h' in (0, 1]
its derivative 1 + (w^T u_hat) h'(alpha + b) is positive for every alpha when
w^T u_hat > -1 (and non-negative, still monotone, at -1), so the scalar map is strictly
increasing, hence one-to-one and onto R. Given y = f(z), one solves
w^T y = alpha + (w^T u_hat) h(alpha + b) for alpha and then z = y - u_hat h(alpha + b).
If w^T u_hat < -1, the derivative is negative near alpha = -b: the map folds, and
the log-determinant formula no longer gives a density. The paper keeps the condition
for an unconstrained u with

    u_hat = u + (m(w^T u) - w^T u) w / |w|^2,   m(a) = -1 + softplus(a),

which sets w^T u_hat = m(w^T u) > -1 and leaves the part of u orthogonal to w alone.
"""
from . import backend
from .layers import sigmoid, softplus


class PlanarInvertibility:
    """u_hat = u + c w with c = (m(a) - a) / s, a = w^T u, s = |w|^2, m(a) = -1 + softplus(a),
    so that w^T u_hat = softplus(a) - 1 > -1. Shapes: u, w (..., D) -> u_hat (..., D);
    w must not be zero.

    m(a) - a = softplus(a) - a - 1 = softplus(-a) - 1 is computed in that form, which
    does not cancel when a << 0. With g = dL/du_hat and dc/da = (sigma(a) - 1) / s
    = -sigma(-a) / s, ds/dw = 2 w:

        dL/du = g + (g^T w) dc/da w
        dL/dw = c g + (g^T w) (dc/da u - 2 c / s w)
    """

    params = grads = {}

    def forward(self, u, w):
        self.u, self.w = u, w
        a = (w * u).sum(axis=-1)
        self.squared_norm = (w * w).sum(axis=-1)
        self.c = (softplus(-a) - 1.0) / self.squared_norm
        self.dc_da = -sigmoid(-a) / self.squared_norm
        return u + self.c[..., None] * w

    def backward(self, grad_u_hat):
        along_w = (grad_u_hat * self.w).sum(axis=-1)            # g^T w
        slope = (along_w * self.dc_da)[..., None]
        grad_u = grad_u_hat + slope * self.w
        grad_w = self.c[..., None] * grad_u_hat + slope * self.u
        grad_w -= (2.0 * along_w * self.c / self.squared_norm)[..., None] * self.w
        return grad_u, grad_w


class PlanarStep:
    """One planar step, per-example parameters, several samples per example:

        alpha = w^T z + b,  t = tanh(alpha),  z_next = z + u_hat t,
        log_abs_det = log |d|,  d = 1 + (1 - t^2) beta,  beta = w^T u_hat,

    z (S, N, D); u_hat, w (N, D); b (N,) -> z_next (S, N, D), log_abs_det (S, N).

    Backward, for upstream G = dL/dz_next (S, N, D) and g = dL/dlog_abs_det (S, N)
    (either may be None, meaning zero), in reverse order of the forward lines:

        dL/dd     = g / d                      (d log|d| / dd = 1/d, for either sign)
        dL/dbeta  = sum_S dL/dd (1 - t^2)
        dL/dt     = G^T u_hat - 2 t beta dL/dd
        dL/dalpha = dL/dt (1 - t^2)
        dL/dz     = G + dL/dalpha w
        dL/du_hat = sum_S G t + dL/dbeta w
        dL/dw     = sum_S dL/dalpha z + dL/dbeta u_hat
        dL/db     = sum_S dL/dalpha

    Parameter gradients are summed over the sample axis S.
    """

    params = grads = {}

    def forward(self, z, u_hat, w, b):
        xp = backend.namespace_of(z)
        self.z, self.u_hat, self.w = z, u_hat, w
        self.t = xp.tanh((z * w).sum(axis=-1) + b)               # (S, N)
        self.slope = 1.0 - self.t * self.t                       # h'(alpha)
        self.beta = (w * u_hat).sum(axis=-1)                     # (N,)
        self.d = 1.0 + self.slope * self.beta
        return z + self.t[..., None] * u_hat, xp.log(xp.abs(self.d))

    def backward(self, grad_z_next, grad_log_abs_det):
        xp = backend.namespace_of(self.z)
        if grad_z_next is None:
            grad_t = xp.zeros_like(self.t)
            grad_z = xp.zeros_like(self.z)
            grad_u_hat = xp.zeros_like(self.u_hat)
        else:
            grad_t = (grad_z_next * self.u_hat).sum(axis=-1)
            grad_z = grad_z_next.copy()
            grad_u_hat = (grad_z_next * self.t[..., None]).sum(axis=0)
        if grad_log_abs_det is None:
            grad_beta = xp.zeros_like(self.beta)
        else:
            grad_d = grad_log_abs_det / self.d
            grad_beta = (grad_d * self.slope).sum(axis=0)
            grad_t -= 2.0 * self.t * self.beta * grad_d
        grad_alpha = grad_t * self.slope                         # (S, N)
        grad_z += grad_alpha[..., None] * self.w
        grad_u_hat += grad_beta[:, None] * self.w
        grad_w = (grad_alpha[..., None] * self.z).sum(axis=0) + grad_beta[:, None] * self.u_hat
        grad_b = grad_alpha.sum(axis=0)
        return grad_z, grad_u_hat, grad_w, grad_b


class PlanarFlow:
    """K = ``length`` planar steps, z_k = z_{k-1} + u_hat_k tanh(w_k^T z_{k-1} + b_k),
    each u_hat_k = PlanarInvertibility(u_k, w_k), so every step is invertible whatever
    u, w (w_k != 0) and b are:

    z0 (S, N, D); u, w (N, K, D); b (N, K) -> z_K (S, N, D), sum_k log|det df_k/dz| (S, N).

    Then log q_K(z_K) = log q0(z0) - sum_log_abs_det. Backward runs the steps in
    reverse: step k receives dL/dz_k from step k + 1 (or the caller) and the caller's
    dL/d(sum_log_abs_det) unchanged (a sum passes its gradient to every term); its
    dL/du_hat_k goes through the reparameterization's backward, and w_k's two paths
    (the step and the reparameterization) add up. Either upstream gradient may be None.
    The forward pass's state lives on the instance: use a fresh one per pass.
    """

    params = grads = {}

    def __init__(self, length):
        if int(length) != length or length < 1:
            raise ValueError(f"A planar flow needs length >= 1 steps, got {length!r}.")
        self.length = int(length)

    def forward(self, z0, u, w, b):
        xp = backend.namespace_of(z0)
        n, d = z0.shape[-2:] if z0.ndim == 3 else (None, None)
        if (u.shape != (n, self.length, d) or w.shape != u.shape
                or b.shape != (n, self.length)):
            raise ValueError(
                f"A flow of length {self.length} needs z0 of shape (S, N, D), u and w "
                f"(N, {self.length}, D), b (N, {self.length}); got z0 {tuple(z0.shape)}, "
                f"u {tuple(u.shape)}, w {tuple(w.shape)}, b {tuple(b.shape)}.")
        self.shapes = (u.shape, b.shape)
        self.pieces = []
        z = z0
        total = xp.zeros_like(z0[..., 0])
        for k in range(self.length):
            invertibility, step = PlanarInvertibility(), PlanarStep()
            u_hat = invertibility.forward(u[:, k], w[:, k])
            z, log_abs_det = step.forward(z, u_hat, w[:, k], b[:, k])
            total += log_abs_det
            self.pieces.append((invertibility, step))
        return z, total

    def backward(self, grad_z_K, grad_sum_log_det):
        u_shape, b_shape = self.shapes
        xp = backend.namespace_of(self.pieces[0][1].z)
        grad_u = xp.zeros(u_shape, dtype=self.pieces[0][1].z.dtype)
        grad_w = xp.zeros_like(grad_u)
        grad_b = xp.zeros(b_shape, dtype=grad_u.dtype)
        grad_z = grad_z_K
        for k in reversed(range(self.length)):
            invertibility, step = self.pieces[k]
            grad_z, grad_u_hat, grad_w_step, grad_b[:, k] = step.backward(grad_z, grad_sum_log_det)
            grad_u[:, k], grad_w_reparameterized = invertibility.backward(grad_u_hat)
            grad_w[:, k] = grad_w_step + grad_w_reparameterized
        return grad_z, grad_u, grad_w, grad_b
