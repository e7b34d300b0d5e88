"""numpyvae.conv: Conv2D, ConvTranspose2D and BatchNorm2D.

The backward passes are checked against central differences in the gradient registry
(tests/conv_cases.py). Here: agreement with PyTorch's functional ops on many random
shapes (skipped without torch), and properties that need no reference: the transposed
convolution is the adjoint of the convolution, im2col and col2im are adjoint, output
sizes follow the formulas, bad shapes and arguments raise, float32 stays float32, and
parameters have PyTorch's shapes.
"""
import numpy as np
import pytest

from numpyvae.conv import (BatchNorm2D, Conv2D, ConvTranspose2D, conv_output_size,
                           gather_windows, scatter_windows, transposed_output_size)

SHAPE_CASES = 60


# ------------------------------------------------------------------------ helpers
def random_conv_config(rng, transposed):
    """(n, c_in, c_out, kernel, stride, padding, output_padding, image size) with a
    non-empty output: kernels and strides drawn per side (non-square, stride > kernel
    included), image sides odd, even and non-square."""
    while True:
        n, c_in, c_out = (int(v) for v in rng.integers(1, 4, size=3))
        kernel = tuple(int(v) for v in rng.integers(1, 5, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
        output_padding = tuple(int(rng.integers(0, s)) for s in stride) if transposed else (0, 0)
        size = tuple(int(v) for v in rng.integers(1, 10, size=2))
        if transposed:
            out = ConvTranspose2D.output_size(size, kernel, stride, padding, output_padding)
        else:
            out = Conv2D.output_size(size, kernel, stride, padding)
        if min(out) >= 1:
            return n, c_in, c_out, kernel, stride, padding, output_padding, size


def make_layer(rng, config, transposed, dtype=np.float64):
    n, c_in, c_out, kernel, stride, padding, output_padding, size = config
    if transposed:
        layer = ConvTranspose2D.create(c_in, c_out, kernel, stride, padding, output_padding,
                                       rng=rng, dtype=dtype)
    else:
        layer = Conv2D.create(c_in, c_out, kernel, stride, padding, rng=rng, dtype=dtype)
    layer.params["b"][...] = rng.normal(size=c_out)
    return layer


def batch_norm(rng, channels, training, dtype=np.float64):
    return BatchNorm2D(scale=rng.normal(1.0, 0.5, size=channels).astype(dtype),
                       shift=rng.normal(size=channels).astype(dtype),
                       grad_scale=np.zeros(channels, dtype), grad_shift=np.zeros(channels, dtype),
                       running_mean=rng.normal(size=channels).astype(dtype),
                       running_var=rng.uniform(0.2, 3.0, size=channels).astype(dtype),
                       training=training)


def inner(a, b):
    return float(np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)))


# ---------------------------------------------------------------- against PyTorch
def torch_conv_pass(layer, x, grad_out, transposed):
    """torch's forward and input, weight and bias gradients for the layer's settings."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x_t = torch.tensor(x, requires_grad=True)
    w_t = torch.tensor(np.array(layer.params["W"]), requires_grad=True)
    b_t = torch.tensor(np.array(layer.params["b"]), requires_grad=True)
    if transposed:
        y_t = functional.conv_transpose2d(x_t, w_t, b_t, stride=layer.stride,
                                          padding=layer.padding,
                                          output_padding=layer.output_padding)
    else:
        y_t = functional.conv2d(x_t, w_t, b_t, stride=layer.stride, padding=layer.padding)
    y_t.backward(torch.tensor(grad_out))
    return [t.detach().numpy() for t in (y_t, x_t.grad, w_t.grad, b_t.grad)]


def compare_with_torch(rng, transposed, dtype, rtol, atol):
    config = random_conv_config(rng, transposed)
    n, c_in, c_out, kernel, stride, padding, output_padding, size = config
    layer = make_layer(rng, config, transposed, dtype)
    x = rng.normal(size=(n, c_in) + size).astype(dtype)
    y = layer.forward(x)
    grad_out = rng.normal(size=y.shape).astype(dtype)
    grad_x = layer.backward(grad_out)
    expected = torch_conv_pass(layer, x, grad_out, transposed)
    assert y.shape == expected[0].shape, config
    for name, ours, theirs in zip(("y", "grad x", "grad W", "grad b"),
                                  (y, grad_x, layer.grads["W"], layer.grads["b"]), expected):
        assert ours.dtype == dtype, (name, config)
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol,
                                   err_msg=f"{name} for {config}")


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2D", "ConvTranspose2D"])
def test_convolutions_match_torch_float64(transposed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(11 + transposed)
    for _ in range(SHAPE_CASES):
        compare_with_torch(rng, transposed, np.float64, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2D", "ConvTranspose2D"])
def test_convolutions_match_torch_float32(transposed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(21 + transposed)
    for _ in range(5):
        compare_with_torch(rng, transposed, np.float32, rtol=1e-4, atol=1e-4)


def test_batch_norm_2d_training_matches_torch():
    """Output, input/scale/shift gradients and two running-statistics updates (torch's
    running_var takes the unbiased batch variance, momentum 0.1)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(3)
    for n, c, height, width in [(4, 3, 5, 3), (1, 2, 3, 4), (2, 1, 1, 2), (3, 5, 7, 6)]:
        norm = batch_norm(rng, c, training=True)
        running_mean_t = torch.tensor(np.array(norm.running_mean))
        running_var_t = torch.tensor(np.array(norm.running_var))
        for _ in range(2):
            x = rng.normal(1.5, 2.0, size=(n, c, height, width))
            grad_out = rng.normal(size=x.shape)
            y = norm.forward(x)
            grad_x = norm.backward(grad_out)
            norm.update_running_statistics()
            x_t = torch.tensor(x, requires_grad=True)
            scale_t = torch.tensor(np.array(norm.params["scale"]), requires_grad=True)
            shift_t = torch.tensor(np.array(norm.params["shift"]), requires_grad=True)
            y_t = functional.batch_norm(x_t, running_mean_t, running_var_t, scale_t, shift_t,
                                        training=True, momentum=0.1, eps=1e-5)
            y_t.backward(torch.tensor(grad_out))
            np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(norm.grads["scale"], scale_t.grad.numpy(), rtol=1e-10,
                                       atol=1e-11)
            np.testing.assert_allclose(norm.grads["shift"], shift_t.grad.numpy(), rtol=1e-10,
                                       atol=1e-11)
            np.testing.assert_allclose(norm.running_mean, running_mean_t.numpy(), rtol=1e-12,
                                       atol=1e-14)
            np.testing.assert_allclose(norm.running_var, running_var_t.numpy(), rtol=1e-12,
                                       atol=1e-14)


def test_batch_norm_2d_evaluation_matches_torch():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(4)
    for n, c, height, width in [(1, 3, 5, 3), (2, 4, 1, 1), (3, 2, 6, 7)]:
        norm = batch_norm(rng, c, training=False)
        running_mean, running_var = norm.running_mean.copy(), norm.running_var.copy()
        x = rng.normal(size=(n, c, height, width)) * 3.0
        grad_out = rng.normal(size=x.shape)
        y = norm.forward(x)
        grad_x = norm.backward(grad_out)
        x_t = torch.tensor(x, requires_grad=True)
        scale_t = torch.tensor(np.array(norm.params["scale"]), requires_grad=True)
        shift_t = torch.tensor(np.array(norm.params["shift"]), requires_grad=True)
        y_t = functional.batch_norm(x_t, torch.tensor(running_mean), torch.tensor(running_var),
                                    scale_t, shift_t, training=False, eps=1e-5)
        y_t.backward(torch.tensor(grad_out))
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(norm.grads["scale"], scale_t.grad.numpy(), rtol=1e-10,
                                   atol=1e-11)
        np.testing.assert_allclose(norm.grads["shift"], shift_t.grad.numpy(), rtol=1e-10,
                                   atol=1e-11)
        # Evaluation reads the running statistics and never moves them.
        np.testing.assert_array_equal(norm.running_mean, running_mean)
        np.testing.assert_array_equal(norm.running_var, running_var)
        with pytest.raises(RuntimeError):
            norm.update_running_statistics()


def test_create_shapes_match_torch_modules():
    torch = pytest.importorskip("torch")
    conv = Conv2D.create(3, 5, (4, 2))
    transposed = ConvTranspose2D.create(3, 5, (4, 2))
    assert conv.params["W"].shape == tuple(torch.nn.Conv2d(3, 5, (4, 2)).weight.shape)
    assert transposed.params["W"].shape == tuple(
        torch.nn.ConvTranspose2d(3, 5, (4, 2)).weight.shape)
    assert conv.params["b"].shape == transposed.params["b"].shape == (5,)


# ------------------------------------------------------------- without a reference
@pytest.mark.parametrize("seed", range(5))
def test_transposed_convolution_is_adjoint_of_convolution(seed):
    """<conv(x), y> = <x, conv_transpose(y)> for the same weight tensor, no bias, with
    output_padding chosen so that conv_transpose maps back onto x's size."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        n, c_in, c_out, kernel, stride, padding, _, size = random_conv_config(rng, False)
        conv = Conv2D.create(c_in, c_out, kernel, stride, padding, rng=rng, init="normal",
                             init_std=1.0)
        out_size = Conv2D.output_size(size, kernel, stride, padding)
        output_padding = tuple(h - transposed_output_size(o, k, s, p)
                               for h, o, k, s, p in zip(size, out_size, kernel, stride, padding))
        assert all(0 <= e < s for e, s in zip(output_padding, stride))
        transposed = ConvTranspose2D(conv.params["W"], np.zeros(c_in), np.zeros_like(
            conv.params["W"]), np.zeros(c_in), stride, padding, output_padding)
        x = rng.normal(size=(n, c_in) + size)
        y = rng.normal(size=(n, c_out) + out_size)
        back = transposed.forward(y)
        assert back.shape == x.shape
        left, right = inner(conv.forward(x), y), inner(x, back)
        assert left == pytest.approx(right, rel=1e-12, abs=1e-12)
        # And the transposed convolution's forward is the convolution's input gradient.
        conv.forward(x)
        np.testing.assert_allclose(conv.backward(y), back, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_gather_and_scatter_windows_are_adjoint(seed):
    """<gather(a), b> = <a, scatter(b)>, also where strides skip pixels or windows overlap."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        channels, n = (int(v) for v in rng.integers(1, 4, size=2))
        kernel = tuple(int(v) for v in rng.integers(1, 5, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        canvas = tuple(k + int(rng.integers(0, 7)) for k in kernel)
        out = tuple(conv_output_size(c, k, s, 0) for c, k, s in zip(canvas, kernel, stride))
        a = rng.normal(size=(channels, n) + canvas)
        b = rng.normal(size=(channels,) + kernel + (n,) + out)
        gathered = gather_windows(a, kernel, stride, out)
        assert gathered.shape == b.shape
        scattered = scatter_windows(b, stride, canvas)
        assert scattered.shape == a.shape
        assert inner(gathered, b) == pytest.approx(inner(a, scattered), rel=1e-12, abs=1e-12)


def test_gather_windows_reads_the_windows():
    """cols[c, i, j, n, h, w] = padded[n, c, s h + i, s w + j] on a numbered image."""
    padded = np.arange(2 * 1 * 5 * 6, dtype=float).reshape(2, 1, 5, 6)
    cols = gather_windows(padded, (2, 3), (2, 1), (2, 4))
    for c, i, j, h, w in np.ndindex(2, 2, 3, 2, 4):
        assert cols[c, i, j, 0, h, w] == padded[c, 0, 2 * h + i, w + j]


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (28, 20), (7, 5), (9, 13), (1, 3)])
@pytest.mark.parametrize("kernel,stride,padding", [
    (3, 1, 1), (4, 2, 1), (3, 2, 1), (5, 2, 2), ((3, 2), (2, 1), (1, 0)), (1, 3, 0)])
def test_output_sizes_follow_the_formulas(size, kernel, stride, padding):
    k, s, p = ((v, v) if isinstance(v, int) else v for v in (kernel, stride, padding))
    expected = tuple((h + 2 * pi - ki) // si + 1 for h, ki, si, pi in zip(size, k, s, p))
    assert Conv2D.output_size(size, kernel, stride, padding) == expected
    assert tuple(conv_output_size(*args) for args in zip(size, k, s, p)) == expected
    if min(expected) < 1:
        return
    rng = np.random.default_rng(0)
    conv = Conv2D.create(2, 3, kernel, stride, padding, rng=rng)
    assert conv.forward(rng.normal(size=(2, 2) + size)).shape == (2, 3) + expected
    # The transposed convolution maps expected back onto size with output_padding
    # (H + 2p - k) mod s, and every output_padding < s onto a size the convolution
    # maps onto expected again.
    output_padding = tuple((h + 2 * pi - ki) % si for h, ki, si, pi in zip(size, k, s, p))
    assert ConvTranspose2D.output_size(expected, kernel, stride, padding,
                                       output_padding) == size
    transposed = ConvTranspose2D.create(3, 2, kernel, stride, padding, output_padding, rng=rng)
    assert transposed.forward(rng.normal(size=(2, 3) + expected)).shape == (2, 2) + size
    for extra in np.ndindex(*s):
        back = ConvTranspose2D.output_size(expected, kernel, stride, padding, extra)
        assert back == tuple((e - 1) * si - 2 * pi + ki + xi
                             for e, ki, si, pi, xi in zip(expected, k, s, p, extra))
        if min(back) >= 1:
            assert Conv2D.output_size(back, kernel, stride, padding) == expected


def test_encoder_decoder_sizes_round_trip():
    """28x28 -> 14x14 -> 7x7 and back with 4x4 kernels, stride 2, padding 1 (Frey's
    28x20 -> 14x10 -> 7x5 too); 3x3 kernels on odd sizes need output_padding."""
    assert Conv2D.output_size((28, 28), 4, 2, 1) == (14, 14)
    assert Conv2D.output_size((14, 14), 4, 2, 1) == (7, 7)
    assert ConvTranspose2D.output_size((7, 7), 4, 2, 1) == (14, 14)
    assert ConvTranspose2D.output_size((14, 14), 4, 2, 1) == (28, 28)
    assert Conv2D.output_size((28, 20), 4, 2, 1) == (14, 10)
    assert Conv2D.output_size((14, 10), 4, 2, 1) == (7, 5)
    assert ConvTranspose2D.output_size((7, 5), 4, 2, 1) == (14, 10)
    assert Conv2D.output_size((32, 32), 3, 2, 1) == (16, 16)
    assert ConvTranspose2D.output_size((16, 16), 3, 2, 1, 1) == (32, 32)
    assert Conv2D.output_size((7, 5), 3, 2, 1) == (4, 3)
    assert ConvTranspose2D.output_size((4, 3), 3, 2, 1) == (7, 5)
    assert ConvTranspose2D.output_size((4, 3), 3, 2, 1, (1, 1)) == (8, 6)


def test_too_small_image_raises_with_its_size():
    conv = Conv2D.create(1, 2, 4)
    with pytest.raises(ValueError, match="2x2") as error:
        conv.forward(np.zeros((1, 1, 2, 2)))
    assert "4x4" in str(error.value)
    with pytest.raises(ValueError, match="3x5"):
        Conv2D.create(1, 1, (4, 2), stride=2).forward(np.zeros((1, 1, 3, 5)))
    # Padding makes the same image large enough.
    assert Conv2D.create(1, 2, 4, padding=1).forward(np.zeros((1, 1, 2, 2))).shape == (1, 2, 1, 1)
    # A transposed convolution whose padding crops everything away.
    with pytest.raises(ValueError, match="1x1"):
        ConvTranspose2D.create(1, 1, 1, padding=1).forward(np.zeros((1, 1, 1, 1)))


def test_wrong_channel_count_raises():
    x = np.zeros((2, 3, 6, 6))
    with pytest.raises(ValueError, match="C = 2"):
        Conv2D.create(2, 4, 3).forward(x)
    with pytest.raises(ValueError, match="C = 4"):
        ConvTranspose2D.create(4, 2, 3).forward(x)
    with pytest.raises(ValueError, match="N, C, H, W"):
        Conv2D.create(3, 4, 3).forward(np.zeros((3, 6, 6)))


def test_output_padding_must_be_smaller_than_stride():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D.create(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D.create(1, 1, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D.create(1, 1, 3, stride=(2, 3), output_padding=(1, 3))
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D.create(1, 1, 3, stride=2, output_padding=-1)
    layer = ConvTranspose2D.create(1, 1, 3, stride=(2, 3), output_padding=(1, 2))
    assert layer.output_padding == (1, 2)


def test_bad_kernel_size_raises():
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D.create(1, 1, (1, 2, 3))
    with pytest.raises(ValueError, match="stride"):
        Conv2D.create(1, 1, 3, stride="two")


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2D", "ConvTranspose2D"])
def test_float32_stays_float32(transposed):
    rng = np.random.default_rng(5)
    config = (2, 3, 4, (3, 2), (2, 1), (1, 0), (1, 0) if transposed else (0, 0), (7, 6))
    layer = make_layer(rng, config, transposed, dtype=np.float32)
    assert layer.params["W"].dtype == layer.grads["W"].dtype == np.float32
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    grad_x = layer.backward(np.ones_like(y))
    assert grad_x.dtype == np.float32 and grad_x.shape == x.shape
    assert layer.grads["W"].dtype == layer.grads["b"].dtype == np.float32
    # float32 against a float64 copy of the same layer.
    reference = make_layer(np.random.default_rng(5), config, transposed)
    np.testing.assert_allclose(y, reference.forward(x.astype(np.float64)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_x, reference.backward(np.ones(y.shape)), rtol=1e-4,
                               atol=1e-5)


def test_batch_norm_2d_float32_stays_float32():
    norm = batch_norm(np.random.default_rng(6), 3, training=True, dtype=np.float32)
    x = np.random.default_rng(7).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = norm.forward(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    # Normalized per channel over (N, H, W): mean shift, standard deviation |scale|.
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), norm.params["shift"], atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.abs(norm.params["scale"]), rtol=1e-3)
    grad_x = norm.backward(np.ones_like(y))
    assert grad_x.dtype == np.float32 and grad_x.shape == x.shape
    assert norm.grads["scale"].dtype == np.float32
    norm.update_running_statistics()
    assert norm.running_mean.dtype == norm.running_var.dtype == np.float32


def test_batch_norm_2d_statistics_are_per_channel_over_batch_and_pixels():
    """Training mode normalizes each channel by its mean and biased variance over
    (N, H, W); update_running_statistics moves the running values by momentum 0.1
    towards them, with the unbiased variance (N H W / (N H W - 1))."""
    rng = np.random.default_rng(10)
    norm = batch_norm(rng, 3, training=True)
    old_mean, old_var = norm.running_mean.copy(), norm.running_var.copy()
    x = rng.normal(2.0, 3.0, size=(2, 3, 4, 5))
    y = norm.forward(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    expected = ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
                * norm.params["scale"][:, None, None] + norm.params["shift"][:, None, None])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    norm.update_running_statistics()
    np.testing.assert_allclose(norm.running_mean, 0.9 * old_mean + 0.1 * mean, rtol=1e-13)
    np.testing.assert_allclose(norm.running_var,
                               0.9 * old_var + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-13)


def test_create_gives_pytorch_shapes():
    conv = Conv2D.create(3, 5, (4, 2), stride=2, padding=(1, 0))
    # (C_out, C_in, kH, kW)
    assert conv.params["W"].shape == conv.grads["W"].shape == (5, 3, 4, 2)
    assert conv.params["b"].shape == conv.grads["b"].shape == (5,)
    assert conv.stride == (2, 2) and conv.padding == (1, 0)
    transposed = ConvTranspose2D.create(3, 5, 3, stride=2, padding=1, output_padding=1)
    assert transposed.params["W"].shape == (3, 5, 3, 3)   # (C_in, C_out, kH, kW)
    assert transposed.params["b"].shape == transposed.grads["b"].shape == (5,)
    assert transposed.output_padding == (1, 1)
    assert not np.any(conv.params["b"]) and not np.any(transposed.params["b"])


def test_create_initialization():
    """Glorot: uniform within sqrt(6 / (fan_in + fan_out)), fans C kH kW; the same rng seed
    gives the same weights; init="normal" draws with init_std."""
    conv = Conv2D.create(8, 16, 3, rng=np.random.default_rng(0))
    limit = np.sqrt(6.0 / (8 * 9 + 16 * 9))
    assert np.abs(conv.params["W"]).max() <= limit
    assert np.abs(conv.params["W"]).max() > 0.9 * limit
    again = Conv2D.create(8, 16, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(conv.params["W"], again.params["W"])
    normal = ConvTranspose2D.create(16, 8, 3, rng=np.random.default_rng(1), init="normal",
                                    init_std=0.5)
    assert normal.params["W"].std() == pytest.approx(0.5, rel=0.1)
    float32 = Conv2D.create(2, 2, 2, dtype=np.float32)
    assert float32.params["W"].dtype == np.float32 and np.any(float32.params["W"])


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2D", "ConvTranspose2D"])
def test_backward_without_input_gradient_still_writes_parameter_gradients(transposed):
    rng = np.random.default_rng(8)
    config = (2, 2, 3, (2, 3), (2, 2), (1, 1), (1, 0) if transposed else (0, 0), (5, 4))
    layer = make_layer(rng, config, transposed)
    x = rng.normal(size=(2, 2, 5, 4))
    grad_out = rng.normal(size=layer.forward(x).shape)
    full = layer.backward(grad_out)
    grad_w, grad_b = layer.grads["W"].copy(), layer.grads["b"].copy()
    layer.grads["W"][...], layer.grads["b"][...] = 0.0, 0.0
    layer.forward(x)
    assert layer.backward(grad_out, need_input_grad=False) is None
    assert full.shape == x.shape
    np.testing.assert_allclose(layer.grads["W"], grad_w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(layer.grads["b"], grad_b, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(grad_b, grad_out.sum(axis=(0, 2, 3)), rtol=1e-12)
    assert np.any(grad_w)


def test_layers_chain_on_channel_first_views():
    """A layer's output (a transposed view of channel-first memory) is a valid input for
    the next layer, and gradients flow back through the chain with the right shapes."""
    rng = np.random.default_rng(9)
    down = Conv2D.create(1, 4, 4, stride=2, padding=1, rng=rng)
    norm = batch_norm(rng, 4, training=True)
    up = ConvTranspose2D.create(4, 1, 4, stride=2, padding=1, rng=rng)
    x = rng.normal(size=(3, 1, 28, 20))
    h = down.forward(x)
    assert h.shape == (3, 4, 14, 10)
    y = up.forward(norm.forward(h))
    assert y.shape == x.shape
    np.testing.assert_allclose(
        y, up.forward(np.ascontiguousarray(norm.forward(np.ascontiguousarray(h)))),
        rtol=1e-12, atol=1e-12)
    grad_x = down.backward(norm.backward(up.backward(np.ones(y.shape))))
    assert grad_x.shape == x.shape and np.all(np.isfinite(grad_x))
