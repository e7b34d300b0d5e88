"""Your own data: ``python -m numpyvae.train --dataset PATH`` on a .npy, .npz or .csv file.

Covers (issue 17, "Your own data"): each bad file refused in one line that says what is
wrong and where; the decoder chosen by the values (0/1: Bernoulli; within [0, 1]: a
sigmoid-mean Gaussian; else an identity-mean Gaussian on standardized columns) or by the
flags, and refused where the values do not fit it; the fixed, recorded split; and tiny
runs on each format that train, resume exactly, evaluate, and refuse a changed file.
"""
import json
import pickle
import shutil
from pathlib import Path

import numpy
import pytest

from numpyvae import checkpoint, datasets
from numpyvae.evaluate import load_split, main as evaluate_main
from numpyvae.train import main

TINY = ["--hidden", "8", "--evals-per-decade", "2", "--no-figures"]


def train(*argv):
    return main([str(a) for a in argv])


def evaluate(*argv):
    return evaluate_main([str(a) for a in argv])


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def table(n=60, d=4, seed=0):
    """Rows outside [0, 1]: a linear map of 2 latent values, shifted and noisy."""
    rng = numpy.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    return z @ rng.normal(size=(2, d)) * 3 + 10 + 0.1 * rng.normal(size=(n, d))


def config_of(run_dir):
    return json.loads((Path(run_dir) / "config.json").read_text())


# ----------------------------------------------------------------- bad files
def _save_object_array(path):
    numpy.save(path, numpy.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)


def _save_pickle(path):
    path.write_bytes(pickle.dumps([[1.0, 2.0], [3.0, 4.0]]))


def _save_with_non_finite(path):
    x = table()
    x[3, 1], x[7, 0] = numpy.nan, numpy.inf
    numpy.save(path, x)


def _save_truncated(path):
    numpy.save(path, table())
    path.write_bytes(path.read_bytes()[:200])


BAD_FILES = [
    # (file name, how to write it, what the one line must say)
    ("objects.npy", _save_object_array, ["Python objects", "not loaded"]),
    ("pickled.npy", _save_pickle, ["not a .npy array", "Python pickle"]),
    ("text.npy", lambda p: numpy.save(p, numpy.array([["a", "b"], ["c", "d"]])),
     ["holds text of dtype <U1", "not real numbers"]),
    ("complex.npy", lambda p: numpy.save(p, numpy.ones((5, 2), dtype=complex)),
     ["complex numbers"]),
    ("records.npy", lambda p: numpy.save(p, numpy.zeros(5, dtype=[("a", "f8"), ("b", "i4")])
                                         .reshape(5, 1)),
     ["fields a, b", "structured_to_unstructured"]),
    ("nan.npy", _save_with_non_finite,
     ["2 non-finite values (1 NaN, 1 infinite)", "the first, nan, is at index [3, 1]"]),
    ("nan.csv", lambda p: p.write_text("a,b\n1,2\n3,nan\n4,5\n"),
     ["1 non-finite value (1 NaN, 0 infinite)", "line 3, column 2"]),
    ("one.npy", lambda p: numpy.save(p, table()[:1]), ["1 example(s); at least 2"]),
    ("flat.npy", lambda p: numpy.save(p, numpy.arange(5.0)),
     ["1-D array of 5 values", "reshape(-1, 1)"]),
    ("scalar.npy", lambda p: numpy.save(p, numpy.float64(3)), ["a single number"]),
    ("word.csv", lambda p: p.write_text("1,2\n3,abc\n5,6\n"),
     ["line 2, column 2 is 'abc', not a number"]),
    ("hole.csv", lambda p: p.write_text("x,y\n1,2\n3,\n5,6\n"), ["line 3, column 2 is empty"]),
    ("mixed.csv", lambda p: p.write_text("a,1\n1,2\n3,4\n"),
     ["line 1 mixes names and numbers (column 1: 'a')"]),
    ("ragged.csv", lambda p: p.write_text("1,2\n3,4\n5,6,7\n"),
     ["line 3 has 3 cells but line 1 has 2"]),
    ("latin1.csv", lambda p: p.write_bytes("\xe9,b\n1,2\n3,4\n".encode("latin-1")),
     ["not UTF-8 text"]),
    ("many.npz", lambda p: numpy.savez(p, a=table(), b=table()),
     ["holds arrays a, b", "name the examples 'x'"]),
    ("half.npz", lambda p: numpy.savez(p, train=table()), ["give both 'train' and 'test'"]),
    ("unlike.npz", lambda p: numpy.savez(p, train=table(d=4), test=table(d=5)),
     ["train holds examples of shape (4,) but test (5,)"]),
    ("objects.npz", lambda p: numpy.savez(p, x=numpy.array([[1, "a"]], dtype=object)),
     ["(array 'x') holds Python objects"]),
    ("notzip.npz", lambda p: p.write_bytes(b"hello"), ["not a .npz archive"]),
    ("square.npy", lambda p: numpy.save(p, numpy.zeros((4, 3, 5, 3)) + numpy.arange(3)),
     ["channels first (N, C, H, W) and last (N, H, W, C) both fit"]),
    ("rgba.npy", lambda p: numpy.save(p, numpy.zeros((4, 6, 6, 4)) + numpy.arange(4)),
     ["images need 1 or 3 channels"]),
    ("video.npy", lambda p: numpy.save(p, numpy.arange(2 * 3 * 4 * 5 * 6.0).reshape(2, 3, 4, 5, 6)),
     ["has 5 dimensions"]),
    ("constant.csv", lambda p: p.write_text("3,3\n3,3\n3,3\n"), ["every value", "is 3.0",
                                                                "nothing to learn"]),
    ("cut.npy", _save_truncated, ["cannot be read as a numpy array", "is it whole"]),
    ("missing.csv", None, ["no such file"]),
]


@pytest.mark.parametrize("name, write, expected", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_is_refused_in_one_line(tmp_path, capsys, name, write, expected):
    path = tmp_path / name
    if write is not None:
        write(path)
    assert train("--dataset", path, "--out", tmp_path / "run", *TINY) == 2
    err = one_line_error(capsys)
    assert str(path) in err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "run").exists()


def test_another_file_kind_is_an_unknown_data_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train("--dataset", tmp_path / "table.txt")
    assert exit_info.value.code == 2
    err = one_line_error(capsys)
    assert "unknown data set" in err and ".npy, .npz or .csv file" in err


@pytest.mark.parametrize("flags, expected", [
    (["--likelihood", "bernoulli"], "--likelihood bernoulli models values in [0, 1]"),
    (["--output-activation", "sigmoid"], "a gaussian decoder with a sigmoid mean"),
    (["--model", "vade"], "--likelihood bernoulli models values in [0, 1]"),   # its protocol's
    (["--net", "conv"], "--net conv reads images"),
])
def test_a_decoder_the_values_do_not_fit_is_refused(tmp_path, capsys, flags, expected):
    path = tmp_path / "wide.npy"
    numpy.save(path, table())
    assert train("--dataset", path, "--out", tmp_path / "run", *TINY, *flags) == 2
    err = one_line_error(capsys)
    assert expected in err, err
    if "--net" not in flags:
        assert "values lie in [1.3" in err        # and the range they lie in
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------- likelihood and scaling
def _decoder(path, likelihood=None, output_activation=None):
    data = datasets.files.read(path)
    chosen = datasets.files.likelihood_for(data)
    record = datasets.files.describe(data, likelihood or chosen["likelihood"],
                                     output_activation or chosen["output_activation"])
    return chosen, record


def test_the_values_choose_the_decoder_and_the_scaling(tmp_path):
    rng = numpy.random.default_rng(0)
    numpy.save(tmp_path / "binary.npy", rng.random((50, 6)) < 0.3)            # bool
    numpy.save(tmp_path / "unit.npy", rng.random((50, 6)))
    numpy.save(tmp_path / "wide.npy", table())
    numpy.save(tmp_path / "grey.npy", rng.integers(0, 256, (50, 5, 4), dtype=numpy.uint8))
    numpy.save(tmp_path / "ink.npy", 255 * (rng.random((50, 5, 4)) < 0.5).astype(numpy.uint8))
    numpy.save(tmp_path / "signed.npy", rng.uniform(-1, 1, (50, 3, 4, 4)))

    chosen, record = _decoder(tmp_path / "binary.npy")
    assert chosen["likelihood"] == "bernoulli" and record["scaling"] == {"kind": "none"}
    chosen, record = _decoder(tmp_path / "unit.npy")
    assert chosen == dict(likelihood="gaussian", output_activation="sigmoid")
    assert record["scaling"] == {"kind": "none"}
    chosen, record = _decoder(tmp_path / "wide.npy")
    assert chosen == dict(likelihood="gaussian", output_activation="identity")
    assert record["scaling"]["kind"] == "standardize"
    # Standardized by the training rows: there, every column has mean 0 and std 1.
    train_rows = datasets.files.load(record, numpy.float64)["train"]
    assert numpy.allclose(train_rows.mean(axis=0), 0) and numpy.allclose(train_rows.std(axis=0), 1)
    std = numpy.array(record["scaling"]["std"])
    assert record["scaling"]["log_jacobian"] == pytest.approx(-numpy.log(std).sum())

    chosen, record = _decoder(tmp_path / "grey.npy")               # uint8 images: / 255
    assert chosen == dict(likelihood="gaussian", output_activation="sigmoid")
    assert record["scaling"]["kind"] == "unit-range" and record["scaling"]["width"] == 255
    assert record["image_shape"] == [5, 4]
    chosen, record = _decoder(tmp_path / "ink.npy")                # 0 or 255: binary
    assert chosen["likelihood"] == "bernoulli" and record["scaling"]["width"] == 255
    chosen, record = _decoder(tmp_path / "signed.npy")             # [-1, 1] images: min, max
    assert chosen["output_activation"] == "sigmoid" and record["image_shape"] == [3, 4, 4]
    rows = numpy.concatenate(list(datasets.files.load(record, numpy.float64).values()))
    assert rows.min() == 0 and rows.max() == 1

    # A flag wins: rows within [0, 1] under an identity mean are used as they are.
    _, record = _decoder(tmp_path / "unit.npy", "gaussian", "identity")
    assert record["scaling"] == {"kind": "none"}


def test_channel_last_images_are_stored_channel_first(tmp_path):
    images = numpy.random.default_rng(0).random((20, 6, 5, 3))
    numpy.savez(tmp_path / "colour.npz", x=images, labels=numpy.arange(20))
    data = datasets.files.read(tmp_path / "colour.npz")
    assert data.image_shape == (3, 6, 5) and data.ignored == ["labels"]
    assert numpy.array_equal(data.rows, images.transpose(0, 3, 1, 2).reshape(20, -1))


def test_a_header_row_is_read_as_column_names(tmp_path):
    (tmp_path / "named.csv").write_text("height, weight\n1.5,60\n\n1.7,72\n1.8,80\n")
    data = datasets.files.read(tmp_path / "named.csv")
    assert data.header == ["height", "weight"]
    assert numpy.array_equal(data.rows, [[1.5, 60], [1.7, 72], [1.8, 80]])


def test_the_command_records_and_prints_the_choice(tmp_path, capsys):
    path = tmp_path / "grey.npy"
    numpy.save(path, numpy.random.default_rng(0).random((40, 6)))
    assert train("--dataset", path, "--likelihood", "bernoulli", "--samples", 40,
                 "--out", tmp_path / "run", *TINY) == 0
    err = capsys.readouterr().err
    assert "bernoulli (as set)" in err and "values used as they are" in err
    config = config_of(tmp_path / "run")
    assert config["dataset"] == "grey" and config["settings"]["likelihood"] == "bernoulli"
    assert config["dynamic_binarization"] is True        # grey levels, drawn afresh
    assert config["data_file"]["likelihood_by_data"]["likelihood"] == "gaussian"


def test_a_small_table_gets_a_small_latent_and_minibatch(tmp_path, capsys, monkeypatch):
    path = tmp_path / "mytable.csv"
    numpy.savetxt(path, table(n=30, d=3), delimiter=",")
    monkeypatch.chdir(tmp_path)
    assert train("--dataset", path, "--samples", 60, *TINY) == 0
    err = capsys.readouterr().err
    assert "mytable has 27 training rows: --batch-size 27" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("mytable") and "csv" not in run_dir.name
    config = config_of(run_dir)
    assert config["model"]["z_dim"] == 3 and config["settings"]["batch_size"] == 27
    assert config["data_file"]["header"] is None


# ------------------------------------------------------------------------ split
def test_the_split_is_fixed_and_recorded(tmp_path):
    numpy.save(tmp_path / "wide.npy", table(n=95))
    _, record = _decoder(tmp_path / "wide.npy")
    split = record["split"]
    assert split == dict(given=False, seed=0, test_fraction=0.1, train=85, test=10)
    first = datasets.files.split_indices(95, split)
    again = datasets.files.split_indices(95, split)
    assert all(numpy.array_equal(first[name], again[name]) for name in ("train", "test"))
    assert sorted(numpy.concatenate([first["train"], first["test"]])) == list(range(95))
    permutation = numpy.random.default_rng(0).permutation(95)      # the documented recipe
    assert numpy.array_equal(first["test"], numpy.sort(permutation[85:]))
    with pytest.raises(datasets.DataError, match="recorded 85 / 10"):
        datasets.files.split_indices(96, split)       # a row more: not the run's split


def test_a_file_with_its_own_split_keeps_it(tmp_path):
    train_rows, test_rows = table(n=20), table(n=7, seed=1)
    numpy.savez(tmp_path / "split.npz", train=train_rows, test=test_rows)
    _, record = _decoder(tmp_path / "split.npz")
    assert record["split"] == dict(given=True, train=20, test=7)
    rows = datasets.files.load(record, numpy.float64)
    assert numpy.allclose(rows["test"], datasets.files.scale(test_rows, record))
    assert numpy.allclose(rows["train"], datasets.files.scale(train_rows, record))


# ------------------------------------------------------------------ end to end
def _write(kind, directory):
    """A tiny file of each format: a table (.csv, with a header), grey images (.npy, uint8),
    and colour images channel-last with the file's own split (.npz)."""
    rng = numpy.random.default_rng(3)
    if kind == "csv":
        path = directory / "mytable.csv"
        numpy.savetxt(path, table(n=120), delimiter=",", header="a,b,c,d", comments="")
    elif kind == "npy":
        path = directory / "faces.npy"
        numpy.save(path, rng.integers(0, 256, (120, 6, 5), dtype=numpy.uint8))
    else:
        path = directory / "colour.npz"
        numpy.savez(path, train=rng.random((100, 4, 4, 3)), test=rng.random((20, 4, 4, 3)))
    return path


@pytest.mark.parametrize("kind", ["csv", "npy", "npz"])
def test_train_resume_and_evaluate_a_file(tmp_path, capsys, kind):
    path = _write(kind, tmp_path)
    run_dir, whole = tmp_path / "run", tmp_path / "whole"
    figures = ["--no-figures"] if kind != "npz" else []
    flags = ["--hidden", "8", "--z-dim", "2", "--evals-per-decade", "2", *figures]
    assert train("--dataset", path, "--samples", 200, "--out", run_dir, *flags) == 0
    assert train("--resume", run_dir, "--samples", 400) == 0
    assert train("--dataset", path, "--samples", 400, "--out", whole, *flags) == 0
    # Resumed on the same rows, scaled alike: the parameters of an uninterrupted run.
    resumed, uninterrupted = (checkpoint.load(d / "checkpoint.npz")[0] for d in (run_dir, whole))
    assert all(numpy.array_equal(resumed[name], uninterrupted[name]) for name in uninterrupted)
    if kind == "npz":
        assert (run_dir / "figures" / "reconstructions.png").exists()

    config = config_of(run_dir)
    record = config["data_file"]
    assert record["path"] == str(path) and record["format"] == kind
    assert record["sha256"] == datasets.files.read(path).sha256
    # evaluate reads the test rows that training evaluated on.
    test_rows = load_split(config, "test", None, 0)[0]
    assert numpy.array_equal(test_rows, datasets.files.load_split(record, "test"))
    assert len(test_rows) == record["split"]["test"]
    capsys.readouterr()
    assert evaluate(run_dir, "--k", 10, "--draws", 2) == 0
    result = json.loads((run_dir / "evaluation.json").read_text())
    (saved,) = result["results"].values()
    assert saved["dataset"] == path.stem and saved["n_examples"] == record["split"]["test"]
    assert numpy.isfinite(saved["log_likelihood"])


def test_a_changed_or_moved_file_is_refused_and_a_moved_one_can_be_named(tmp_path, capsys):
    path = _write("csv", tmp_path)
    run_dir = tmp_path / "run"
    assert train("--dataset", path, "--samples", 100, "--out", run_dir, *TINY) == 0
    moved = tmp_path / "elsewhere.csv"
    shutil.move(path, moved)
    capsys.readouterr()
    assert train("--resume", run_dir, "--samples", 200) == 2
    assert "no such file" in one_line_error(capsys)
    assert evaluate(run_dir, "--k", 5) == 2
    assert "put it back there" in one_line_error(capsys)
    # Named on --resume, the same bytes at a new place are read, and the place recorded.
    assert train("--resume", run_dir, "--dataset", moved, "--samples", 200) == 0
    assert config_of(run_dir)["data_file"]["path"] == str(moved)

    moved.write_text(moved.read_text().replace("\n1", "\n2", 1))       # one digit changed
    capsys.readouterr()
    assert train("--resume", run_dir, "--samples", 300) == 2
    assert "has changed since the run was trained on it" in one_line_error(capsys)
    assert evaluate(run_dir, "--k", 5) == 2
    assert "has changed since the run was trained on it" in one_line_error(capsys)
    assert train("--resume", run_dir, "--dataset", moved, "--samples", 300) == 2
    assert "is not the file" in one_line_error(capsys)
    assert train("--resume", run_dir, "--dataset", "frey") == 2
    assert "was trained on" in one_line_error(capsys)
