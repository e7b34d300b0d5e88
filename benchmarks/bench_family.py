"""The family's training steps and the optimizer step against PyTorch twins (issue 18, goal 3).

    python benchmarks/bench_family.py [--threads 1 2] [--rounds 7] [--round-seconds 0.3]
                                      [--shapes frey mnist ...] [--quick] [--no-torch]
                                      [--no-optimizer] [--optimizer-pause 0.5]

The shapes (aevb_models.FAMILY): AEVB's Frey (560-200-z20, Gaussian) and MNIST (784-500-z20)
models and the large one (784-2048-z20, batch 1000), Adagrad as AEVB trains them; the IWAE
paper's architecture (784-200-200-z50, tanh, batch 20, Adam) as a VAE and as an IWAE with
k = 5; Wang's label CVAE (784+10-500-500-z3, labels into both networks); the Chen thesis's
FC FGVAE (784-512-256-128-z20, batch norm and ReLU, batch 128, Adam). Float32.

For each thread count, in a process of its own (a BLAS fixes its thread count when it
loads; the parent sets it in the child's environment, as bench_threads.py does), the child:

1. builds each numpyvae model and its PyTorch twin from the same weights
   (torch_twins.py), feeds both the same batches and noise for three optimizer steps and
   checks the first loss (relative difference under torch_twins.LOSS_TOLERANCE, 1e-6),
   every gradient (max-abs relative error under GRAD_TOLERANCE, 1e-3, per array) and the
   batch norms' running statistics; the script exits with status 1 if they disagree;
2. times training steps of both in interleaved rounds (the order reversed every round),
   each drawing its own noise: numpyvae through its public API (``loss_and_grads``, then
   ``opt.step``) with ``numpyvae.threads`` workers set to the thread count, as the training
   command sets them; PyTorch with the same optimizer, ``foreach=True``;
3. the optimizer alone: Adam (lr 1e-3) and Adagrad (lr 0.01) on the parameters of three
   models, 425k (the IWAE paper's), 816k (AEVB MNIST) and 2.04M (784-1250-z20), with
   gradients from ``loss_and_grads``: numpyvae's flat update at workers 1 and 2 against
   ``torch.optim.Adam/Adagrad(foreach=True)`` on one tensor per array holding the same
   values, interleaved. Then the updates bit for bit: three steps, PyTorch handed
   numpyvae's parameters and state before each, so every step compares the two formulas
   alone; and PyTorch's formulas replayed in NumPy, in PyTorch's order, to show where
   the last digits part (see ``torch_order_step``).

It prints samples/s of both, the ratio and whether goal 3 is met per shape (numpyvae
>= 1.25x PyTorch at two threads, >= 1.0x at one), and the optimizer step's times with
the same verdict (numpyvae's step at workers = threads no slower than PyTorch's).
``--quick`` runs one thread, one short round (the test suite runs it). PyTorch is a
benchmark extra, never a dependency.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from aevb_models import FAMILY, IWAE_ARCHITECTURE, MODELS  # beside this script
from timing import (IDLE_PAUSE, add_round_arguments, child_record, interleaved_ms,
                    run_and_describe, settle_round_arguments, shape_runners, steps_for)

import numpyvae as nv

MARKER = "BENCH_FAMILY_RESULT "
CHECK_STEPS = 3
TARGETS = {1: 1.0, 2: 1.25}  # goal 3: numpyvae / PyTorch samples/s, by thread count
# The optimizer's parameter counts: name -> numpyvae.VAE options.
OPTIMIZER_MODELS = {
    "425k (IWAE paper)": dict(IWAE_ARCHITECTURE),
    "816k (AEVB MNIST)": dict(x_dim=784, hidden=MODELS["mnist"][1], z_dim=20,
                              likelihood="bernoulli"),
    "2.04M (784-1250-z20)": dict(x_dim=784, hidden=(1250,), z_dim=20, likelihood="bernoulli"),
}
OPTIMIZERS = {"adam": {"lr": 1e-3}, "adagrad": {"lr": 0.01}}
# The optimizers' state, as state_for_torch gives numpyvae's -> PyTorch's names.
TORCH_STATE = {"adam": {"first_moment": "exp_avg", "second_moment": "exp_avg_sq"},
               "adagrad": {"sum_of_squares": "sum"}}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_arguments(parser, 7, 0.3, "every shape")
    parser.add_argument("--shapes", nargs="+", default=list(FAMILY), choices=list(FAMILY))
    parser.add_argument("--no-optimizer", action="store_true", help="skip the optimizer part")
    parser.add_argument("--optimizer-pause", type=float, default=IDLE_PAUSE,
                        help="seconds idle before each optimizer round (default %(default)s, so "
                             "that neither side's spinning threads run into the other's round; "
                             "0 times back-to-back steps, as training runs them)")
    return settle_round_arguments(parser, parser.parse_args())


ARGUMENTS = parse_arguments()
PAUSE = 0.0 if ARGUMENTS.quick else IDLE_PAUSE   # quick: checks that it runs, times nothing
OPTIMIZER_PAUSE = 0.0 if ARGUMENTS.quick else ARGUMENTS.optimizer_pause
torch = None
if ARGUMENTS.child is not None and not ARGUMENTS.no_torch:   # the parent only prints
    try:
        import torch
    except ImportError:
        pass
if torch is not None:
    import torch_twins as twins  # noqa: E402  (beside this script)


# ====================================================================== the child
def time_shape(shape):
    """Median ms/step of numpyvae and PyTorch, interleaved."""
    runners = shape_runners(shape, torch is not None)
    steps = max(steps_for(run, ARGUMENTS.round_seconds, least=2) for run in runners.values())
    return interleaved_ms(runners, ARGUMENTS.rounds, steps, PAUSE)


# --------------------------------------------------------------- the optimizer
def ulps(a, b, scale):
    """|a - b| in float32 units in the last place of ``scale`` (per element)."""
    spacing = np.spacing(np.abs(np.asarray(scale, np.float32))).astype(np.float64)
    return np.abs(np.asarray(a, np.float64) - b) / spacing


def fma(a, b, c):
    """a b + c rounded once to float32, as a fused multiply-add does: float64 holds the
    product of two float32 exactly (rounding the sum twice is rare: not exact, but close)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + c).astype(np.float32)


def torch_sqrt(a):
    """PyTorch's float32 square root, for NumPy arrays."""
    return torch.sqrt(torch.from_numpy(a)).numpy()


def torch_order_step(name, options, step, param, grad, state, sqrt=np.sqrt):
    """The new parameters by PyTorch 2.13's foreach formulas on the CPU, in their order
    (torch/optim/adam.py, adagrad.py; its addcmul and lerp kernels fuse a multiply-add):

        Adagrad: s = fma(g, g, s);  p + (g * -lr) / (sqrt(s) + eps)
        Adam:    m = fma(1 - b1, g - m, m);  v = fma((1 - b2) g, g, v b2)
                 p + ((-lr / bc1) m) / (sqrt(v) / sqrt(bc2) + eps)

    where numpyvae (numpyvae/optim.py; NumPy has no fused multiply-add) computes

        Adagrad: s = s + g g;  p - (g / (sqrt(s) + eps)) lr
        Adam:    M = M b1 + g;  V = V b2 + g g    (M = m / (1 - b1), V = v / (1 - b2))
                 p - M / (sqrt(V) (b / a) + eps / a),  a = lr (1 - b1) / bc1,
                                                       b = sqrt((1 - b2) / bc2)

    ``state`` holds the state PyTorch was given before the step (Adam: m and v, numpyvae's
    M and V times 1 - beta rounded to float32; read, not changed); ``sqrt`` NumPy's
    (correctly rounded) or PyTorch's."""
    f32 = np.float32
    if name == "adagrad":
        total = fma(grad, grad, state["sum"])
        return param + (grad * f32(-options["lr"])) / (sqrt(total) + f32(1e-10))
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, options["lr"]
    m = fma(f32(1 - beta1), grad - state["exp_avg"], state["exp_avg"])
    v = fma(f32(1 - beta2) * grad, grad, state["exp_avg_sq"] * f32(beta2))
    denominator = sqrt(v) / f32((1 - beta2 ** step) ** 0.5) + f32(eps)
    return param + (f32(-lr / (1 - beta1 ** step)) * m) / denominator


def state_for_torch(name, optimizer):
    """numpyvae's optimizer state as PyTorch keeps it, PyTorch's name -> {array name:
    array}: Adam's m and v (``moments()``: its state holds the decayed sums), Adagrad's
    running sum as it is."""
    ours = optimizer.moments() if name == "adam" else optimizer.state
    return {torch_key: ours[key] for key, torch_key in TORCH_STATE[name].items() if key in ours}


def clone(params):
    """A ParameterDict of the same layout holding a copy of the values."""
    copy = params.zeros_like()
    copy.flat[...] = params.flat
    return copy


def optimizer_case(model_options):
    """A model's parameters and CHECK_STEPS gradients from loss_and_grads."""
    model = nv.VAE(seed=0, **model_options)
    rng = np.random.default_rng(2)
    grads = []
    for _ in range(CHECK_STEPS):
        x = (rng.random((100, model.x_dim), dtype=np.float32) > 0.5).astype(np.float32)
        grads.append(clone(model.loss_and_grads(x, rng=rng)[1]))
    return model.params, grads


def torch_optimizer(name, tensors, lr):
    kind = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad}[name]
    extra = {"eps": 1e-10} if name == "adagrad" else {}
    return kind(tensors, lr=lr, foreach=True, **extra)


def tensors_of(params, grads=None):
    """One PyTorch tensor per array (a copy), with ``.grad`` from ``grads``."""
    tensors = [torch.from_numpy(np.array(value)).requires_grad_(True) for value in params.values()]
    if grads is not None:
        for tensor, grad in zip(tensors, grads.values()):
            tensor.grad = torch.from_numpy(np.array(grad))
    return tensors


def compare_updates(name, params, grads):
    """Per step from the same state, the worst: the share of parameters that differ and
    the largest difference in float32 ulps; the share where PyTorch's order replayed in
    NumPy differs from PyTorch, with NumPy's square root and with PyTorch's (0: the
    formulas and that square root explain every difference)."""
    options = OPTIMIZERS[name]
    ours_params = clone(params)
    ours = nv.optim.OPTIMIZERS[name](**options)
    ours.initialize_state(ours_params)
    tensors = tensors_of(params)
    theirs = torch_optimizer(name, tensors, options["lr"])
    worst = dict(differ=0.0, ulps=0.0, replay_differ=0.0, replay_torch_sqrt_differ=0.0)
    for step, grad in enumerate(grads, 1):
        before = ours_params.flat.copy()
        given = state_for_torch(name, ours)
        state = {torch_key: np.concatenate([np.ravel(array) for array in arrays.values()])
                 for torch_key, arrays in given.items()}
        with torch.no_grad():               # PyTorch starts from numpyvae's parameters and state
            for tensor, key in zip(tensors, ours_params):
                tensor.copy_(torch.from_numpy(np.array(ours_params[key])))
                tensor.grad = torch.from_numpy(np.array(grad[key]))
                for torch_key, arrays in given.items():
                    if tensor in theirs.state:          # PyTorch's state exists after a step
                        theirs.state[tensor][torch_key].copy_(torch.from_numpy(np.array(arrays[key])))
        ours.step(ours_params, grad)
        theirs.step()
        mine = ours_params.flat
        reference = np.concatenate([tensor.detach().numpy().ravel() for tensor in tensors])
        # The last addition rounds to the larger operand's last place (the old parameter,
        # or the update): differences are counted in those units.
        scale = np.maximum(np.abs(before), np.abs(reference - before))
        worst["differ"] = max(worst["differ"], float(np.mean(mine != reference)))
        worst["ulps"] = max(worst["ulps"], float(ulps(mine, reference, scale).max()))
        for key, sqrt in (("replay_differ", np.sqrt), ("replay_torch_sqrt_differ", torch_sqrt)):
            replay = torch_order_step(name, options, step, before, grad.flat, state, sqrt)
            worst[key] = max(worst[key], float(np.mean(replay != reference)))
    return worst


def time_optimizer(name, params, grad):
    """Median ms/step: numpyvae's update at workers 1 and 2 (the split forced whatever the
    size), PyTorch's foreach update."""
    options = dict(OPTIMIZERS[name], lr=1e-12)    # the parameters stay put over the rounds
    runners = {}
    for workers in (1, 2):
        optimizer, own = nv.optim.OPTIMIZERS[name](**options), clone(params)

        def run(steps, optimizer=optimizer, own=own, workers=workers):
            saved, nv.threads._state["workers"] = nv.threads._state["workers"], workers
            least, nv.optim.PARALLEL_MIN_ELEMENTS = nv.optim.PARALLEL_MIN_ELEMENTS, 0
            for _ in range(steps):
                optimizer.step(own, grad)
            nv.threads._state["workers"], nv.optim.PARALLEL_MIN_ELEMENTS = saved, least
        runners[f"numpyvae_w{workers}"] = run
    if torch is not None:
        tensors = tensors_of(params, grad)
        optimizer = torch_optimizer(name, tensors, options["lr"])

        def run_torch(steps, optimizer=optimizer):
            for _ in range(steps):
                optimizer.step()
        runners["pytorch"] = run_torch
    steps = max(steps_for(run, ARGUMENTS.round_seconds / 3) for run in runners.values())
    return interleaved_ms(runners, ARGUMENTS.rounds, steps, OPTIMIZER_PAUSE)


def child(threads):
    if torch is not None:
        torch.set_num_threads(threads)
    nv.threads._state["workers"] = threads     # what the training command sets
    result = child_record(threads, nv, torch, shapes={}, optimizer=[])
    for name in ARGUMENTS.shapes:
        shape = FAMILY[name]
        entry = {}
        if torch is not None:
            entry["check"] = twins.check_shape(shape, CHECK_STEPS)
        time.sleep(PAUSE)
        entry["ms"] = time_shape(shape)
        result["shapes"][name] = entry
    if not ARGUMENTS.no_optimizer:
        for label, model_options in OPTIMIZER_MODELS.items():
            params, grads = optimizer_case(model_options)
            for name in OPTIMIZERS:
                row = {"model": label, "size": int(params.flat.size), "optimizer": name,
                       "ms": time_optimizer(name, params, grads[0]),
                       "parallel_min": nv.optim.PARALLEL_MIN_ELEMENTS}
                if torch is not None:
                    row["bits"] = compare_updates(name, params, grads)
                result["optimizer"].append(row)
    result["load_end"] = os.getloadavg()
    print(MARKER + json.dumps(result))
    return 0


# ===================================================================== the parent
def verdict(ratio, threads):
    target = TARGETS.get(threads)
    if target is None:
        return "no target"
    return f"{'met' if ratio >= target else 'NOT met'} (target {target}x)"


def print_agreement(results):
    print("\n### Agreement with PyTorch (same weights, batches and noise; "
          f"{CHECK_STEPS} optimizer steps)\n")
    print("| shape | threads | first loss, relative difference | worst gradient (max-abs "
          "relative) | BN running stats | later losses | ok |")
    print("|---|---|---|---|---|---|---|")
    status = 0
    for result in results:
        for name, entry in result["shapes"].items():
            check = entry["check"]
            worst, error = check["worst_grad"]
            print(f"| {name} | {result['threads']} | {check['losses'][0]:.1e} | {error:.1e} "
                  f"({worst}) | {check['buffers']:.1e} | {max(check['losses'][1:], default=0):.1e} "
                  f"| {'yes' if check['ok'] else 'NO'} |")
            status |= not check["ok"]
    return status


def print_training(results):
    print("\n### Training step, numpyvae against PyTorch\n")
    print("| shape | batch | threads | numpyvae samples/s | PyTorch samples/s | ratio "
          "(numpyvae / PyTorch) | goal 3 |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        for name, entry in result["shapes"].items():
            batch, ms = FAMILY[name]["batch"], entry["ms"]
            ours = batch / ms["numpyvae"] * 1e3
            if "pytorch" in ms:
                theirs = batch / ms["pytorch"] * 1e3
                ratio = ours / theirs
                torch_text, ratio_text = f"{theirs:,.0f}", f"{ratio:.2f}x"
                goal = verdict(ratio, result["threads"])
            else:
                torch_text = ratio_text = goal = "n/a"
            print(f"| {name}: {FAMILY[name]['label']} | {batch} | {result['threads']} | "
                  f"{ours:,.0f} | {torch_text} | {ratio_text} | {goal} |")


def print_optimizer(results):
    print("\n### The optimizer step alone (numpyvae's flat update; PyTorch foreach)\n")
    print("| parameters | optimizer | threads | numpyvae workers 1, ms | numpyvae workers 2, ms "
          "| PyTorch foreach, ms | numpyvae as the training command runs it / PyTorch time "
          "| at or below PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        for row in result["optimizer"]:
            ms = row["ms"]
            # The command's workers: its thread count, from PARALLEL_MIN_ELEMENTS on.
            workers = min(result["threads"], 2) if row["size"] >= row["parallel_min"] else 1
            ours = ms[f"numpyvae_w{workers}"]
            torch_text = f"{ms['pytorch']:.3f}" if "pytorch" in ms else "n/a"
            ratio_text = f"{ours / ms['pytorch']:.2f}" if "pytorch" in ms else "n/a"
            met = ("n/a" if "pytorch" not in ms else "met" if ours <= ms["pytorch"] else "NOT met")
            print(f"| {row['model']}: {row['size']:,} | {row['optimizer']} | {result['threads']} "
                  f"| {ms['numpyvae_w1']:.3f} | {ms['numpyvae_w2']:.3f} | {torch_text} | "
                  f"{ratio_text} | {met} |")
    rows = [row for row in results[0]["optimizer"] if "bits" in row]
    if not rows:
        return
    print(f"\nThe updates bit for bit ({results[0]['threads']} thread(s); {CHECK_STEPS} steps, "
          "PyTorch given numpyvae's parameters and state before each; worst step):\n")
    print("| parameters | optimizer | parameters not bit-identical | max difference, ulps "
          "| PyTorch's order replayed in NumPy: not bit-identical | the same with PyTorch's "
          "sqrt |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        bits = row["bits"]
        print(f"| {row['size']:,} | {row['optimizer']} | {bits['differ']:.1%} | "
              f"{bits['ulps']:.1f} | {bits['replay_differ']:.3%} | "
              f"{bits['replay_torch_sqrt_differ']:.4%} |")
    print("\nUlps: of the larger of the old parameter and the update, the last place the "
          "update's final addition rounds to. Why the last digits differ (torch_order_step "
          "has both formulas): PyTorch's CPU addcmul and lerp fuse a multiply-add (one "
          "rounding where NumPy, which has no such operation, rounds twice); PyTorch divides "
          "by sqrt(bc2) and scales the numerator before the division, where numpyvae's Adam "
          "folds both scalings into the denominator's two constants and keeps M = m / (1 - b1) "
          "and V = v / (1 - b2) (PyTorch is given them multiplied back, one more rounding); "
          "and PyTorch's float32 "
          "sqrt is not the correctly rounded one for some inputs (the last column: with it, "
          "PyTorch's order in NumPy gives PyTorch's bits). Each rounding differs by at most "
          "half an ulp of its result, so the update differs in its last one to three bits; "
          "in Adam more where m = b1 m + (1 - b1) g nearly cancels (the gradient turning "
          "against the momentum): half an ulp of its terms is then many ulps of m, and the "
          "update carries them.")


def parent():
    status, results = run_and_describe(__file__, ARGUMENTS, MARKER,
                                       "; numpyvae's optimizer workers = threads")
    if status:
        return status
    first = results[0]
    if first["torch"]:
        status = print_agreement(results)
    print_training(results)
    if not ARGUMENTS.no_optimizer:
        print_optimizer(results)
    if status:
        print("\nnumpyvae and PyTorch DISAGREE (see the agreement table).")
    return status


if __name__ == "__main__":
    sys.exit(child(ARGUMENTS.child) if ARGUMENTS.child is not None else parent())
