"""The reproduction scripts of experiments/ run end to end in their --quick form (so they
cannot rot), resume what is on disk, and print their tables from it with --report-only."""
import pathlib
import subprocess
import sys

from conftest import need_data

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def run_script(name, *arguments):
    completed = subprocess.run([sys.executable, str(EXPERIMENTS / name), *map(str, arguments)],
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def test_amortization_gap_quick_trains_evaluates_and_reports(tmp_path):
    need_data("mnist")
    common = ["--quick", "--only", "mnist-ffg", "mnist-flow", "--runs-dir", tmp_path / "runs",
              "--figures-dir", tmp_path / "figures"]
    first = run_script("amortization_gap.py", *common)
    assert "| MNIST | FFG | 200-200 |" in first.stdout
    assert "| MNIST | planar flow, K = 10 | 200-200 |" in first.stdout
    assert (tmp_path / "figures" / "amortization_gap_svi.png").stat().st_size > 0
    assert (tmp_path / "runs" / "svi_curves.json").exists()
    # Again, at the same budget: nothing is trained or evaluated anew.
    again = run_script("amortization_gap.py", *common)
    assert "numpyvae.train" not in again.stderr and "numpyvae.evaluate" not in again.stderr
    report = run_script("amortization_gap.py", *common, "--report-only")
    assert report.stdout.split("\n\n")[1:3] == first.stdout.split("\n\n")[1:3]
    assert "numpyvae" not in report.stderr
