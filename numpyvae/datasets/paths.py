"""Where data files and caches live.

Data directory, in order of precedence:

1. the ``data_dir`` argument (``--data-dir`` on the command line);
2. the ``NUMPYVAE_DATA`` environment variable;
3. ``<user cache>/numpyvae/data``, where ``<user cache>`` is
   ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux and other POSIX systems,
   ``~/Library/Caches`` on macOS and ``%LOCALAPPDATA%`` on Windows.

The data directory may be read-only (a shared copy): loading never writes into
it.  What loading does write -- parsed arrays and the record of which files were
already verified -- goes to the cache directory: ``NUMPYVAE_CACHE`` if set
(``NUMPYVAE_CACHE=off`` disables caching), else ``<user cache>/numpyvae/cache``.
"""

import os
import sys
from pathlib import Path

DATA_ENVIRONMENT_VARIABLE = "NUMPYVAE_DATA"
CACHE_ENVIRONMENT_VARIABLE = "NUMPYVAE_CACHE"
_CACHE_DISABLED_VALUES = {"off", "none", "0", "false", "no"}


def user_cache_root():
    """The platform's per-user cache folder (not created)."""
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA")
        if base:
            return Path(base)
        return Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    base = os.environ.get("XDG_CACHE_HOME")
    # The XDG specification says relative values must be ignored.
    if base and os.path.isabs(base):
        return Path(base)
    return Path.home() / ".cache"


def default_data_dir():
    """The data directory used when neither ``data_dir`` nor ``NUMPYVAE_DATA`` is given."""
    return user_cache_root() / "numpyvae" / "data"


def resolve_data_dir(data_dir=None):
    """Return the data directory as an absolute ``Path`` (not created).

    ``data_dir`` wins, then the ``NUMPYVAE_DATA`` environment variable, then the
    per-user default (see the module docstring).  ``~`` is expanded.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_ENVIRONMENT_VARIABLE) or default_data_dir()
    return Path(os.path.abspath(Path(data_dir).expanduser()))


def cache_dir():
    """Folder for parsed arrays and verification records, or None when caching is off."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured is not None and configured.strip().lower() in _CACHE_DISABLED_VALUES:
        return None
    if configured:
        return Path(os.path.abspath(Path(configured).expanduser()))
    return user_cache_root() / "numpyvae" / "cache"
