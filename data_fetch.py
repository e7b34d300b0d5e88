#!/usr/bin/env python
"""Download -- or import from a local folder -- and verify numpyvae's data sets.

    python data_fetch.py frey binarized-mnist                # download into the data directory
    python data_fetch.py --from ~/Downloads frey              # import local copies, no network
    python data_fetch.py all --data-dir /data/numpyvae        # every data set, chosen directory
    python data_fetch.py --list                               # what is present and verified

The data directory is --data-dir, else $NUMPYVAE_DATA, else the per-user cache
folder (~/.cache/numpyvae/data on Linux).  Every file is checked against its
registered size and SHA-256 and written atomically, so an interrupted or failed
run leaves no partial file behind.  A file that is present but fails
verification is replaced by a verified copy.  Exit status: 0 when every
requested file is present and verified, 1 otherwise.

This is a thin front end over ``numpyvae.datasets``; ``load()`` uses the same code.
"""

import argparse
import sys

from numpyvae.datasets import DATASETS, DataError, fetch_file, get_dataset, resolve_data_dir
from numpyvae.datasets.errors import ChecksumError
from numpyvae.datasets.fetch import DEFAULT_TIMEOUT_SECONDS
from numpyvae.datasets.integrity import locate, verify


def _parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="data_fetch.py",
        description="Download (or import with --from) and verify numpyvae data sets.",
        epilog=f"Data sets: {', '.join(DATASETS)}, or 'all'.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="data sets to fetch, or 'all'")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="data directory (default: $NUMPYVAE_DATA, else the per-user cache folder)")
    parser.add_argument("--from", dest="source_dir", metavar="LOCAL_DIR",
                        help="import the files from this local folder instead of downloading them")
    parser.add_argument("--list", action="store_true", help="show each file's status and exit")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help=f"network timeout per connection and read (default {DEFAULT_TIMEOUT_SECONDS:g})")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    arguments = parser.parse_args(argv)
    if not arguments.names and not arguments.list:
        parser.error("name at least one data set (or 'all'), or use --list")
    names = list(DATASETS) if "all" in arguments.names else arguments.names
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)} or 'all'")
    arguments.names = list(dict.fromkeys(names))
    return arguments


def _list_status(names, data_dir):
    print(f"data directory: {resolve_data_dir(data_dir)}")
    all_verified = True
    for name in names:
        dataset = get_dataset(name)
        directory = resolve_data_dir(data_dir) / dataset.directory
        print(f"{name}: {dataset.title} (splits: {', '.join(dataset.splits)})")
        for spec in dataset.files:
            path = locate(spec, directory)
            if path is None:
                status = "missing"
            else:
                try:
                    verify(spec, path, name)
                    status = f"verified  {path}"
                except ChecksumError:
                    status = f"CORRUPT   {path} (fails verification; run `python data_fetch.py {name}` to replace it)"
            all_verified = all_verified and status.startswith("verified")
            print(f"  {spec.filename:32s} {status}")
    return 0 if all_verified else 1


def main(argv=None):
    """Run the command; return the exit status."""
    arguments = _parse_arguments(argv)
    if arguments.list:
        return _list_status(arguments.names or list(DATASETS), arguments.data_dir)

    print(f"data directory: {resolve_data_dir(arguments.data_dir)}")
    failures = 0
    for name in arguments.names:
        dataset = get_dataset(name)
        for spec in dataset.files:
            label = f"{name}/{spec.filename}"
            try:
                result = fetch_file(dataset, spec, arguments.data_dir, arguments.source_dir,
                                    timeout=arguments.timeout, progress=False if arguments.quiet else None)
            except DataError as error:
                failures += 1
                print(f"FAILED {label}:\n  " + str(error).replace("\n", "\n  "), file=sys.stderr)
                continue
            replaced = f" (replaced {', '.join(str(path) for path in result.replaced)}, which failed verification)" \
                if result.replaced else ""
            verb = {"present": "already present", "downloaded": "downloaded", "imported": "imported"}[result.action]
            print(f"ok     {label}: {verb}, verified: {result.path}{replaced}")
    if failures:
        hint = ("Files in the --from folder are looked for under <LOCAL_DIR>/<data set folder>/ and <LOCAL_DIR>/."
                if arguments.source_dir else
                "If you are offline, download the files elsewhere and import them with --from LOCAL_DIR.")
        print(f"{failures} file(s) could not be fetched; see the messages above. {hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; no partial file was kept", file=sys.stderr)
        sys.exit(130)
