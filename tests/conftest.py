"""Fixtures shared by the test modules."""
import hashlib

import pytest


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Point the parsed-array and verification cache at a temporary folder for the
    module that uses it (``pytestmark = pytest.mark.usefixtures("isolated_cache")``)."""
    folder = tmp_path_factory.mktemp("numpyvae-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NUMPYVAE_CACHE", str(folder))
        yield folder


def sha256(data):
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()
