"""How the training step's cost grows, numpyvae against PyTorch (issue 18, goal 5).

    python benchmarks/bench_scaling.py [--threads 1 2] [--rounds 5] [--round-seconds 0.25]
                                       [--axes batch width k latent] [--quick] [--no-torch]

From AEVB's MNIST model (784-500-z20, Bernoulli, tanh, batch 100, Adagrad lr 0.02,
float32), one axis at a time:

    batch   the batch size, 25 ... 1600
    width   the hidden layer's width, 100 ... 2000
    k       K, the IWAE bound's samples per example (the IWAE objective), 1 ... 50
    latent  the latent size z_dim, 2 ... 200

For each thread count, in a process of its own (a BLAS fixes its thread count when it
loads), each point builds the numpyvae model and its PyTorch twin (torch_twins.py) from
the same weights, checks one step against it (loss and every gradient, the same noise),
then times full training steps of both (numpyvae through ``loss_and_grads`` and
``opt.step`` with its optimizer workers = threads; PyTorch with Adagrad, foreach) in
interleaved rounds, and prints one table per axis: ms/step of both and the speed ratio
(PyTorch's time / numpyvae's: above 1, numpyvae is faster) per thread count, then
where each side wins. ``--quick`` runs a few small points once (the test suite runs it).
"""
import argparse
import json
import os
import sys
import time

from aevb_models import aevb_shape  # beside this script
from timing import (IDLE_PAUSE, add_round_arguments, child_record, interleaved_ms,
                    run_and_describe, settle_round_arguments, shape_runners, steps_for)

MARKER = "BENCH_SCALING_RESULT "
BASE = aevb_shape("mnist")
AXES = {
    # name: (what varies, values, the full run's defaults; values in --quick)
    "batch": ("batch size", (25, 50, 100, 200, 400, 800, 1600), (25, 50)),
    "width": ("hidden width", (100, 200, 500, 1000, 2000), (100,)),
    "k": ("K (IWAE samples)", (1, 2, 5, 10, 20, 50), (1, 2)),
    "latent": ("latent size", (2, 5, 10, 20, 50, 100, 200), (2,)),
}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_arguments(parser, 5, 0.25, "a few small points")
    parser.add_argument("--axes", nargs="+", default=list(AXES), choices=list(AXES))
    return settle_round_arguments(parser, parser.parse_args())


ARGUMENTS = parse_arguments()
PAUSE = 0.0 if ARGUMENTS.quick else IDLE_PAUSE   # quick: checks that it runs, times nothing


def point(axis, value):
    """The base shape with one axis at ``value``."""
    model = dict(BASE["model"])
    batch = BASE["batch"]
    if axis == "batch":
        batch = value
    elif axis == "width":
        model["hidden"] = (value,)
    elif axis == "k":
        model.update(name="iwae", k=value)
    else:
        model["z_dim"] = value
    return dict(BASE, model=model, batch=batch)


def values(axis):
    return AXES[axis][2] if ARGUMENTS.quick else AXES[axis][1]


# ====================================================================== the child
def child(threads):
    import numpyvae as nv  # noqa: PLC0415
    torch = None
    if not ARGUMENTS.no_torch:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            pass
    if torch is not None:
        torch.set_num_threads(threads)
        import torch_twins  # noqa: PLC0415  (beside this script)
    nv.threads._state["workers"] = threads     # what the training command sets
    result = child_record(threads, nv, torch, points=[])
    for axis in ARGUMENTS.axes:
        for value in values(axis):
            shape = point(axis, value)
            entry = {"axis": axis, "value": value}
            if torch is not None:
                check = torch_twins.check_shape(shape, 1)
                entry["check"] = [check["losses"][0], check["worst_grad"][1], check["ok"]]
            runners = shape_runners(shape, torch is not None)
            steps = max(steps_for(run, ARGUMENTS.round_seconds, least=2)
                        for run in runners.values())
            time.sleep(PAUSE)
            entry["ms"] = interleaved_ms(runners, ARGUMENTS.rounds, steps, PAUSE)
            result["points"].append(entry)
    result["load_end"] = os.getloadavg()
    print(MARKER + json.dumps(result))
    return 0


# ===================================================================== the parent
def spans(values_won):
    """'25-200, 800' from the values an axis's winner won, in order."""
    return ", ".join(str(group[0]) if len(group) == 1 else f"{group[0]}-{group[-1]}"
                     for group in values_won)


def winners(axis, results):
    """One line per thread count: at which values each side is faster."""
    lines = []
    for result in results:
        rows = [row for row in result["points"] if row["axis"] == axis]
        if not rows or "pytorch" not in rows[0]["ms"]:
            continue
        groups = []                          # runs of neighbouring values with one winner
        for row in rows:
            side = "numpyvae" if row["ms"]["pytorch"] >= row["ms"]["numpyvae"] else "PyTorch"
            if groups and groups[-1][0] == side:
                groups[-1][1].append(row["value"])
            else:
                groups.append((side, [row["value"]]))
        by_side = {side: spans([g for s, g in groups if s == side]) for side in ("numpyvae", "PyTorch")}
        said = "; ".join(f"{side} faster at {AXES[axis][0]} {text}"
                         for side, text in by_side.items() if text)
        lines.append(f"{result['threads']} thread(s): {said}")
    return lines


def print_axis(axis, results):
    print(f"\n### {AXES[axis][0]} (the rest as AEVB's MNIST model)\n")
    header = f"| {AXES[axis][0]} |"
    rule = "|---|"
    for result in results:
        count = result["threads"]
        header += (f" numpyvae ms/step, {count} thr. | PyTorch ms/step, {count} thr. | "
                   f"speed ratio, {count} thr. |")
        rule += "---|---|---|"
    print(header)
    print(rule)
    for value in values(axis):
        line = f"| {value} |"
        for result in results:
            row = next(row for row in result["points"] if row["axis"] == axis
                       and row["value"] == value)
            ours, theirs = row["ms"]["numpyvae"], row["ms"].get("pytorch")
            line += (f" {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x |" if theirs
                     else f" {ours:.2f} | n/a | n/a |")
        print(line)
    for line in winners(axis, results):
        print(f"\n{line}")


def parent():
    status, results = run_and_describe(__file__, ARGUMENTS, MARKER, ", Adagrad; speed ratio = "
                                       "PyTorch's time / numpyvae's")
    if status:
        return status
    for axis in ARGUMENTS.axes:
        print_axis(axis, results)
    checks = [(row["axis"], row["value"], result["threads"], *row["check"])
              for result in results for row in result["points"] if "check" in row]
    if checks:
        bad = [check for check in checks if not check[-1]]
        print(f"\nEvery point checked against its twin (one step, the same noise): worst first "
              f"loss {max(c[3] for c in checks):.1e}, worst gradient {max(c[4] for c in checks):.1e}"
              + (f"; DISAGREE at {[c[:3] for c in bad]}" if bad else "; all agree."))
        if bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(child(ARGUMENTS.child) if ARGUMENTS.child is not None else parent())
