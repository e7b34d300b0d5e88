"""Reconstructions of the same test images by several trained runs, side by side
(Wang 2023's comparison of the VAE, the beta-VAE, the CVAE and the VQ-VAE):

    python benchmarks/compare_reconstructions.py OUT.png RUN_DIR[=LABEL] ... [--count 16]

Each run reconstructs the first ``--count`` images of a fixed random draw of its data
set's test split, E[x|z] at z = the posterior at zero noise (q's mean; z_q for a VQ
model); a conditional run is given the images' labels. All runs must share a data set.
"""
import argparse
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from numpyvae import backend, datasets, figures  # noqa: E402
from numpyvae.evaluate import load_model, load_split  # noqa: E402


def reconstruct(model, images, labels):
    x, condition = model.inputs(backend.to_device(images), backend.to_device(labels))
    return backend.to_numpy(model.images(model.decode(model.latent_point(x, condition),
                                                      condition), condition))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    panels, dataset = [], None
    for spec in args.runs:
        run_dir, _, label = spec.partition("=")
        model, config, meta = load_model(run_dir)
        if dataset not in (None, config["dataset"]):
            parser.error(f"{run_dir} trained on {config['dataset']}, the others on {dataset}")
        dataset = config["dataset"]
        images, labels = load_split(config, "test", config.get("data_dir"), args.seed)
        if not panels:
            chosen = numpy.sort(datasets.fixed_subset(len(images), args.count, args.seed, stream=13))
            panels.append((images[chosen], "test images"))
        panels.append((reconstruct(model, images[chosen], None if labels is None else labels[chosen]),
                       label or f"{config['model_name']} ({meta['samples_seen']} samples)"))
    shape = datasets.image_shape(dataset)
    columns = int(numpy.ceil(numpy.sqrt(args.count)))
    path = figures.side_by_side(panels, shape, Path(args.out), columns,
                                f"{dataset}: the same test images")
    print(f"Written {path}")


if __name__ == "__main__":
    main()
