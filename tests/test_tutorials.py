"""The tutorials run: every notebook in tutorials/ executes top to bottom in a fresh
kernel, in quick mode (NUMPYVAE_TUTORIAL_QUICK=1), and fails on the first cell that
raises. The assertions inside the notebooks are the checks.

Notebooks that load a data set with ``datasets.load("name", "split")`` are skipped,
naming the missing file, when that data is not in the data directory
(``$NUMPYVAE_DATA``); nothing is downloaded here.

A second test keeps the notebooks free of outputs in the repository: they are
committed as sources, never with (possibly stale, possibly hand-edited) results.
"""
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 300


def _repository_notebooks():
    """Every .ipynb under the repository, skipping hidden folders, build output and
    virtual environments (a folder holding pyvenv.cfg)."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(
            name for name in subfolders
            if not name.startswith(".") and name not in ("build", "dist", "node_modules", "__pycache__")
            and not (Path(folder) / name / "pyvenv.cfg").exists())
        found += [Path(folder) / name for name in files if name.endswith(".ipynb")]
    return sorted(found)


REPOSITORY_NOTEBOOKS = _repository_notebooks()

# datasets.load("frey", "train"), load('binarized-mnist'), ... : (name, optional split).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")   # colours in IPython's tracebacks
DATA_LOAD = re.compile(r"""\bload\(\s*["']([\w-]+)["']\s*(?:,\s*(?:split\s*=\s*)?["'](\w+)["'])?""")


def _code(notebook_path):
    cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")


def _skip_without_data(notebook_path):
    """Skip, naming the file, when a data set the notebook loads is not available."""
    uses = sorted(set(DATA_LOAD.findall(_code(notebook_path))))
    if not uses:
        return
    from numpyvae import datasets

    for name, split in uses:
        if name not in datasets.names():
            continue
        try:
            datasets.load(name, split or "train", download=False)
        except datasets.DataError as error:
            pytest.skip(f"{notebook_path.name} needs the {name!r} data set, which is not "
                        f"available: {error}")


@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(notebook_path, monkeypatch):
    nbformat = pytest.importorskip(
        "nbformat", reason="running the tutorials needs nbformat: pip install -e '.[test]'")
    nbclient = pytest.importorskip(
        "nbclient", reason="running the tutorials needs nbclient: pip install -e '.[test]'")
    pytest.importorskip(
        "ipykernel", reason="running the tutorials needs ipykernel: pip install -e '.[test]'")
    _skip_without_data(notebook_path)

    # The kernel inherits this process's environment.
    monkeypatch.setenv("NUMPYVAE_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The notebooks multiply small matrices (a minibatch of 100 by a layer of 200), where a
    # second BLAS thread gains nothing and, on a busy two-core machine, makes threads wait
    # for each other: training in tutorial 06 ran 8 times slower with two threads than one.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")

    notebook = nbformat.read(notebook_path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
        resources={"metadata": {"path": str(TUTORIALS)}})
    failure = None
    try:
        client.execute()
    except nbclient.exceptions.CellTimeoutError as error:
        failure = f"a cell ran longer than {CELL_TIMEOUT_SECONDS} s.\n{error}"
    except nbclient.exceptions.CellExecutionError as error:
        failure = f"a cell failed.\n{error}"
    if failure is not None:
        pytest.fail(f"{notebook_path.name}: {ANSI_ESCAPE.sub('', failure)}", pytrace=False)


def test_there_are_tutorials():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"


@pytest.mark.parametrize("notebook_path", REPOSITORY_NOTEBOOKS,
                         ids=[str(path.relative_to(ROOT)) for path in REPOSITORY_NOTEBOOKS])
def test_notebook_is_stored_without_outputs(notebook_path):
    cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
    dirty = [index for index, cell in enumerate(cells) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (
        f"{notebook_path.relative_to(ROOT)}: code cells {dirty} hold outputs or execution counts. "
        f"Clear them before committing: jupyter nbconvert --clear-output --inplace "
        f"{notebook_path.relative_to(ROOT)}")
