"""Issue 17, items 11-13: one naming rule for run directories and figure titles; the
figures a run draws (during training, at a stop, atomically), their labels and sizes;
interpolation and traversal of a trained model, and the README's recipe for both."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy
import pytest

import numpyvae as nv
from conftest import need_data
from numpyvae import datasets, figures, rundir
from numpyvae import train as train_module
from numpyvae.train import main

TINY = ["--dataset", "frey", "--hidden", "20", "--evals-per-decade", "4"]
README = Path(__file__).resolve().parents[1] / "README.md"


needs_frey = pytest.mark.usefixtures("frey_data")


def train(*argv):
    return main([str(a) for a in argv])


# ------------------------------------------------------------ item 11: naming
def test_run_name_says_data_model_beta_and_latent():
    stamp = "20261206-101500"
    assert train_module.run_name("frey", "vae", 1.0, 10, stamp) == f"frey-vae-z10-{stamp}"
    assert train_module.run_name("mnist", "vae", 4.0, 20, stamp) == f"mnist-vae-beta4-z20-{stamp}"
    assert train_module.run_name("mnist", "iwae", 0.5, 20, stamp) == f"mnist-iwae-beta0.5-z20-{stamp}"
    assert train_module.model_label("vae", 4.0) == "vae, \u03b2 = 4"
    assert train_module.model_label("cvae", 1.0) == "cvae"
    # --help's --out text gives the same rule.
    (out,) = [action.help for action in train_module.build_parser()._actions
              if "--out" in action.option_strings]
    assert "runs/<dataset>-<model>[-beta<beta>]-z<z_dim>-<YYYYmmdd-HHMMSS>" in out


@needs_frey
def test_a_beta_vae_run_is_named_and_titled_as_one(tmp_path, monkeypatch):
    titles = []
    real = figures.learning_curve

    def capture(records, path, title="", *args, **kwargs):
        titles.append(title)
        return real(records, path, title, *args, **kwargs)

    monkeypatch.setattr(figures, "learning_curve", capture)
    monkeypatch.chdir(tmp_path)
    assert train(*TINY, "--beta", 4, "--samples", 200) == 0
    assert train(*TINY, "--beta", 4, "--samples", 200, "--no-figures") == 0
    first, second = sorted((tmp_path / "runs").iterdir())
    assert re.fullmatch(r"frey-vae-beta4-z10-\d{8}-\d{6}", first.name), first.name
    # A clash within the same second gets -2 (or the clock moved on: another stamp).
    assert second.name == first.name + "-2" or re.fullmatch(
        r"frey-vae-beta4-z10-\d{8}-\d{6}", second.name)
    assert titles and all(title == "frey, vae, \u03b2 = 4, z_dim 10" for title in titles)


def test_readme_names_runs_by_the_rule():
    text = README.read_text()
    names = re.findall(r"runs/([A-Za-z0-9<>_.-]+-\d{8}-\d{6}|[a-z0-9-]+-<timestamp>)", text)
    assert names, "the README shows default run directory names"
    for name in names:
        assert re.fullmatch(r"[a-z0-9-]+-(vae|iwae|cvae|cvae-quadrant|planar-flow|vade|vq-vae)"
                            r"(-beta[0-9.]+)?-z\d+-(\d{8}-\d{6}|<timestamp>)", name), name


# ------------------------------------------------------------ item 13: figures
def warmup_records(beta=4.0, warmup=1000, objective_offset=True):
    """Learning-curve records as a --beta-warmup run writes them (numbers made up):
    the objective differs from the ELBO wherever beta is not 1."""
    records = []
    for seen in (100, 200, 400, 800, 1600, 3200):
        b = beta * min(1.0, seen / warmup)
        elbo = -100.0 - 1e4 / seen
        kl = 10.0
        objective = elbo + (1 - b) * kl if objective_offset else elbo
        records.append(dict(samples_seen=seen, train_elbo=elbo, test_elbo=elbo - 1,
                            train_objective=objective, test_objective=objective - 1, beta=b))
    return records


def test_learning_curve_of_a_warmup_run_shows_beta_and_the_objective():
    figure = figures.learning_curve_figure(warmup_records(), "t", objective_label="beta-objective")
    main_axis, beta_axis = figure.axes
    labels = main_axis.get_legend().get_texts()
    labels = [text.get_text() for text in labels]
    assert "ELBO, train" in labels and "ELBO, test" in labels
    assert any(label.startswith("objective") and label.endswith("train") for label in labels)
    assert "KL weight" in beta_axis.get_ylabel()
    (line,) = beta_axis.get_lines()
    assert numpy.allclose(line.get_ydata(), [r["beta"] for r in warmup_records()])


def test_learning_curve_of_a_plain_run_has_one_axis_and_the_elbo_only():
    records = warmup_records(beta=1.0, warmup=1, objective_offset=False)
    for record in records:
        record["beta"] = 1.0
    figure = figures.learning_curve_figure(records, "t")
    (axis,) = figure.axes
    curves = [line.get_label() for line in axis.get_lines() if line.get_marker() != "v"]
    assert curves == ["ELBO, train", "ELBO, test"]


def test_early_points_below_the_axis_are_marked_not_lost():
    records = [dict(samples_seen=seen, train_elbo=value, test_elbo=value)
               for seen, value in ((100, -5000.0), (200, -900.0), (400, -120.0), (800, -110.0),
                                   (1600, -105.0), (3200, -102.0), (6400, -101.0))]
    figure = figures.learning_curve_figure(records, "t")
    (axis,) = figure.axes
    lower, upper = axis.get_ylim()
    assert -120 < lower < -110 and -101 < upper < -99  # the later half fills the axis
    texts = [text.get_text() for text in axis.texts]
    assert any("below the axis" in text and "-5000" in text for text in texts), texts
    marks = [line for line in axis.get_lines() if line.get_marker() == "v"]
    assert marks and all(numpy.allclose(line.get_ydata(), lower) for line in marks)


def test_conditional_grid_rows_are_named_by_class(tmp_path, monkeypatch):
    drawn = []
    real_save = figures._save

    def capture(figure, path, tight=True):
        texts = sorted(figure.texts, key=lambda t: -t.get_position()[1])   # top first
        drawn.append((Path(path).name, [t.get_text() for t in texts]))
        return real_save(figure, path, tight)

    monkeypatch.setattr(figures, "_save", capture)
    model = nv.CVAE(784, n_classes=10, hidden=[8], z_dim=2)
    rng = numpy.random.default_rng(0)
    images = rng.random((4, 784)).astype(numpy.float32)
    names = datasets.class_names("fashion-mnist")
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    model.figures(tmp_path, images, numpy.arange(4), (28, 28), rng, "t", class_names=names)
    texts = dict(drawn)
    assert texts["conditional_samples.png"] == list(names)
    assert sorted(texts["style_transfer.png"]) == sorted(["data"] + list(names))


def test_frey_manifold_is_large_enough_to_read(tmp_path):
    shape = (28, 20)
    path = figures.manifold(lambda z: numpy.zeros((len(z), 560)), shape, tmp_path / "m.png",
                            points_per_axis=20, title="")
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width >= 1000 and height >= 1000 * 28 / 20


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "curve.png"
    figures.learning_curve(warmup_records(), path, "first")
    before = path.read_bytes()

    def interrupted(self, handle, **kwargs):
        handle.write(b"\x89PNG half a figure")
        raise KeyboardInterrupt     # a second signal, mid-write

    monkeypatch.setattr(figures.plt.Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        figures.learning_curve(warmup_records(), path, "second")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]


def test_orphan_figure_temporaries_are_removed(tmp_path):
    (tmp_path / "figures").mkdir()
    orphan = tmp_path / "figures" / ".samples.png.abcd1234.tmp"
    orphan.write_bytes(b"torn")
    assert rundir.remove_orphan_temporaries(tmp_path) == [orphan.name]
    assert not orphan.exists()


def test_figures_are_drawn_within_their_share_of_the_time(monkeypatch):
    drawn = []
    monkeypatch.setattr(train_module, "write_figures", lambda run, title: drawn.append(title) or [])
    schedule = train_module.FigureSchedule(run=None, title="t")
    schedule.evaluated()                       # at once: drawing would be all of the time
    assert drawn == []
    schedule.started -= 1000.0                 # 1000 s in: 3% is 30 s
    schedule.spent, schedule.cost = 28.5, 1.0
    schedule.evaluated()
    assert drawn == ["t"]
    schedule.spent, schedule.cost = 29.5, 1.0
    schedule.evaluated()
    assert drawn == ["t"]


@needs_frey
def test_a_run_stopped_by_sigterm_has_its_figures(tmp_path):
    run_dir = tmp_path / "run"
    err_path = tmp_path / "child.err"
    with open(err_path, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "numpyvae.train", *TINY, "--z-dim", "2", "--samples", "1e8",
             "--out", str(run_dir), "--checkpoint-seconds", "1e6"], cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=err,
            env=dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg"))
    try:
        deadline = time.monotonic() + 60
        while "train ELBO" not in err_path.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143, err_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    written = {p.name for p in (run_dir / "figures").iterdir()}
    assert {"learning_curve.png", "reconstructions.png", "samples.png", "latent.png",
            "manifold.png", "interpolation.png", "traversal.png"} <= written, written
    assert not [name for name in written if name.endswith(".tmp")]
    for name in written:
        assert (run_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------- item 12: interpolate, traverse
def small(model_class=nv.VAE, **options):
    options = dict(dict(hidden=[8], z_dim=3, seed=1, dtype="float64"), **options)
    return model_class(12, **options)


def test_interpolation_runs_from_one_latent_point_to_the_other():
    model = small()
    x = numpy.random.default_rng(0).random((2, 12))
    path = nv.interpolate(model, x[0], x[1], steps=5)
    ends = model.latent_point(x)
    t = numpy.linspace(0, 1, 5)[:, None]
    assert numpy.allclose(path, model.decode((1 - t) * ends[0] + t * ends[1]))
    assert numpy.allclose(path[[0, -1]], model.decode(ends))
    with pytest.raises(ValueError, match="one example"):
        nv.interpolate(model, x, x[1])
    with pytest.raises(ValueError, match="at least 2"):
        nv.interpolate(model, x[0], x[1], steps=1)


def test_conditional_interpolation_holds_the_condition():
    model = nv.CVAE(12, n_classes=3, hidden=[8], z_dim=2, seed=1, dtype="float64")
    x = numpy.random.default_rng(0).random((2, 12))
    path = nv.interpolate(model, x[0], x[1], steps=4, condition=2)
    ends = model.latent_point(x, numpy.array([2, 2]))
    t = numpy.linspace(0, 1, 4)[:, None]
    assert numpy.allclose(path, model.decode((1 - t) * ends[0] + t * ends[1], numpy.full(4, 2)))
    one_hot = numpy.eye(3)[2]
    assert numpy.allclose(path, nv.interpolate(model, x[0], x[1], steps=4, condition=one_hot))


def test_traversal_moves_one_coordinate():
    model = small()
    x = numpy.random.default_rng(0).random(12)
    values = numpy.linspace(-3, 3, 7)
    row = nv.traverse(model, x, 1, values)
    z = numpy.repeat(model.latent_point(x[None]), 7, axis=0)
    z[:, 1] = values
    assert numpy.allclose(row, model.decode(z))
    with pytest.raises(ValueError, match="0..2"):
        nv.traverse(model, x, 3, values)
    order, variances = nv.active_dimensions(numpy.array([[0.0, 5.0, 1.0], [0.0, -5.0, 0.0]]))
    assert order.tolist() == [1, 2, 0] and variances[0] == 0


def test_vq_vae_interpolates_codes_and_refuses_traversal():
    model = nv.VQVAE(12, net="mlp", hidden=[8], code_dim=2, z_dim=4, codebook_size=5, seed=1,
                     dtype="float64")
    x = numpy.random.default_rng(0).random((2, 12))
    path = model.latent_path(x, 6)
    codebook = numpy.asarray(model.codebook)
    for vector in path.reshape(-1, 2):        # every point quantized: vectors of the codebook
        assert numpy.isclose(numpy.abs(codebook - vector).sum(axis=1), 0).any()
    assert numpy.allclose(path[[0, -1]], model.latent_point(x))
    assert nv.interpolate(model, x[0], x[1], steps=6).shape == (6, 12)
    with pytest.raises(ValueError, match="codebook"):
        nv.traverse(model, x[0], 0, [0.0])


def test_readme_recipe_runs(tmp_path):
    """Every line of the README's numpyvae.load block, on a small CVAE run."""
    need_data("mnist")
    run_dir = tmp_path / "run"
    assert train("--model", "cvae", "--dataset", "mnist", "--hidden", "16", "--samples", "200",
                 "--eval-size", "100", "--out", run_dir, "--no-figures") == 0
    text = README.read_text()
    block = re.search(r"```python\n(import numpy as np, numpyvae as nv\nmodel = nv\.load\(.*?)```",
                      text, re.S).group(1)
    assert "nv.interpolate" in block and "nv.traverse" in block and "model.sample" in block
    block = re.sub(r'nv\.load\("[^"]+"\)', f"nv.load({str(run_dir)!r})", block)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["path"].shape == (8, 784) and namespace["row"].shape == (7, 784)
    assert namespace["reconstruction"].shape == (16, 784)


@needs_frey
def test_drawing_figures_while_training_changes_nothing_of_the_training(tmp_path, monkeypatch):
    """Figures drawn at every evaluation (their time share made unlimited) leave the run's
    parameters and random streams exactly those of a run that draws none."""
    from numpyvae import checkpoint

    drawn = []
    real = train_module.write_figures
    monkeypatch.setattr(train_module, "write_figures",
                        lambda run, title: drawn.append(run.samples_seen) or real(run, title))
    monkeypatch.setattr(train_module, "FIGURE_TIME_SHARE", 1e9)
    flags = ["--dataset", "frey", "--hidden", "20", "--evals-per-decade", "2", "--samples", 1000]
    assert train(*flags, "--out", tmp_path / "drawn") == 0
    assert drawn == [100, 400, 1000, 1000]     # each evaluation (whole batches), the end
    assert train(*flags, "--out", tmp_path / "plain", "--no-figures") == 0
    params_a, optim_a, meta_a, _ = checkpoint.load(tmp_path / "drawn" / "checkpoint.npz")
    params_b, optim_b, meta_b, _ = checkpoint.load(tmp_path / "plain" / "checkpoint.npz")
    for name in params_b:
        assert numpy.array_equal(params_a[name], params_b[name]), name
    assert meta_a["rng"] == meta_b["rng"]
