"""Tests of downloading, importing and the ``data_fetch.py`` command, all without the internet.

Downloads are served by an HTTP server on 127.0.0.1 started by the tests; it
can answer 404, send the wrong bytes, cut a transfer short or stall.  After
every failure the tests check that nothing was left behind: no final file and
no ``.part-*`` temporary file.
"""

import errno
import http.server
import importlib.util
import io
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from numpyvae import datasets
from numpyvae.datasets import ChecksumError, DataError, DownloadError, FileSpec, registry
from numpyvae.datasets.fetch import download_file, fetch_file, import_file

REPOSITORY = Path(__file__).resolve().parents[1]


from conftest import fake_cifar_archive, sha256, tiny_idx_files  # noqa: E402

pytestmark = pytest.mark.usefixtures("isolated_cache")


def leftovers(directory):
    """Every file under ``directory`` (the tests expect none after a failure)."""
    directory = Path(directory)
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# --------------------------------------------------------------------------
# A local HTTP server with scripted answers
# --------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *arguments):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path, ("status", 404))
        kind = route[0]
        if kind == "status":
            self.send_error(route[1])
            return
        content = route[1]
        if kind == "ok":
            self._send_headers(len(content))
            self.wfile.write(content)
        elif kind == "truncated":
            # Announce the whole file, send part of it, then close the connection.
            self._send_headers(len(content))
            self.wfile.write(content[: route[2]])
            self.wfile.flush()
            self.close_connection = True
        elif kind == "stall":
            self._send_headers(len(content))
            self.wfile.write(content[:5])
            self.wfile.flush()
            time.sleep(route[2])

    def _send_headers(self, length):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1; set ``server.routes[path] = (kind, ...)``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.requests = {}, []
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on a local port nobody listens on (the connection is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing-here"


CONTENT = bytes(range(256)) * 40  # 10240 bytes
SPEC = FileSpec("payload.bin", len(CONTENT), sha256(CONTENT), ())


def test_mirror_is_used_when_the_first_url_answers_404(server, tmp_path):
    server.routes["/mirror/payload.bin"] = ("ok", CONTENT)
    urls = (server.url("/missing/payload.bin"), server.url("/mirror/payload.bin"))
    path = download_file(SPEC, tmp_path, "test", urls=urls, progress=False)
    assert path == tmp_path / "payload.bin" and path.read_bytes() == CONTENT
    assert server.requests == ["/missing/payload.bin", "/mirror/payload.bin"]
    assert leftovers(tmp_path) == ["payload.bin"]


def test_mirror_is_used_when_the_first_host_is_unreachable(server, closed_port_url, tmp_path):
    server.routes["/mirror/payload.bin"] = ("ok", CONTENT)
    path = download_file(SPEC, tmp_path, "test", urls=(closed_port_url, server.url("/mirror/payload.bin")),
                         progress=False)
    assert path.read_bytes() == CONTENT and leftovers(tmp_path) == ["payload.bin"]


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    wrong = bytearray(CONTENT)
    wrong[100] ^= 1
    server.routes["/a"] = ("ok", bytes(wrong))
    server.routes["/b"] = ("ok", bytes(wrong))
    with pytest.raises(DownloadError) as error:
        download_file(SPEC, tmp_path, "test", urls=(server.url("/a"), server.url("/b")), progress=False)
    message = str(error.value)
    assert message.count("checksum mismatch") == 2 and SPEC.sha256 in message and sha256(bytes(wrong)) in message
    assert "test/payload.bin" in message and "Nothing was written" in message
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_keeps_nothing(server, tmp_path):
    server.routes["/cut"] = ("truncated", CONTENT, 3000)
    with pytest.raises(DownloadError, match="interrupted: received 3000 of 10240 bytes"):
        download_file(SPEC, tmp_path, "test", urls=(server.url("/cut"),), progress=False)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_then_good_mirror(server, tmp_path):
    server.routes["/cut"] = ("truncated", CONTENT, 3000)
    server.routes["/good"] = ("ok", CONTENT)
    path = download_file(SPEC, tmp_path, "test", urls=(server.url("/cut"), server.url("/good")), progress=False)
    assert path.read_bytes() == CONTENT and leftovers(tmp_path) == ["payload.bin"]


def test_oversized_answer_keeps_nothing(server, tmp_path):
    server.routes["/big"] = ("ok", CONTENT + b"extra")
    with pytest.raises(DownloadError, match="more than the expected 10240 bytes"):
        download_file(SPEC, tmp_path, "test", urls=(server.url("/big"),), progress=False)
    assert leftovers(tmp_path) == []


def test_stalled_transfer_times_out(server, tmp_path):
    server.routes["/slow"] = ("stall", CONTENT, 2.0)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stalled"):
        download_file(SPEC, tmp_path, "test", urls=(server.url("/slow"),), timeout=0.3, progress=False)
    assert time.monotonic() - started < 1.9
    assert leftovers(tmp_path) == []


def test_offline_message_says_what_to_do(closed_port_url, tmp_path):
    spec = replace(SPEC, urls=(closed_port_url, closed_port_url + "/mirror"))
    with pytest.raises(DownloadError) as error:
        download_file(spec, tmp_path / "frey", "frey", progress=False)
    message = str(error.value)
    assert "you seem to be offline" in message and closed_port_url in message
    assert f"python data_fetch.py frey --from DIR --data-dir {tmp_path}" in message
    assert SPEC.sha256 in message and str(SPEC.size) in message
    assert leftovers(tmp_path) == []


class _InterruptingTerminal(io.StringIO):
    """A 'terminal' whose progress redraw raises KeyboardInterrupt, as Ctrl-C would mid-transfer."""

    def isatty(self):
        return True

    def write(self, text):
        if "%" in text:
            raise KeyboardInterrupt
        return super().write(text)



def test_cifar10_download_failure_says_how_to_get_the_archive(closed_port_url, tmp_path):
    spec = datasets.get_dataset("cifar10").files[0]
    with pytest.raises(DownloadError) as error:
        download_file(spec, tmp_path / "cifar10", "cifar10", urls=(closed_port_url,), progress=False)
    message = str(error.value)
    # Where to download it, what it must be, and the two supported ways to put it in place.
    assert "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "expected size 170498071 bytes" in message and spec.sha256 in message
    assert f"python data_fetch.py cifar10 --from DIR --data-dir {tmp_path}" in message
    assert f"put it at {tmp_path / 'cifar10' / 'cifar-10-python.tar.gz'} yourself" in message
    assert "NUMPYVAE_DATA" in message      # issue 17, item 15: the other way to the data
    assert leftovers(tmp_path) == []


def test_command_lists_and_imports_cifar10(data_fetch_module, tmp_path, monkeypatch, capsys):
    content, _ = fake_cifar_archive(np.random.default_rng(3))
    source = tmp_path / "downloads"
    source.mkdir()
    (source / "cifar-10-python.tar.gz").write_bytes(content)
    spec = replace(registry.CIFAR10.files[0], size=len(content), sha256=sha256(content))
    monkeypatch.setitem(registry.DATASETS, "cifar10", replace(registry.CIFAR10, files=(spec,),
                                                              split_sizes={"train": 10, "test": 3}))
    data_dir = tmp_path / "data"
    assert data_fetch_module.main(["--list", "--data-dir", str(data_dir)]) == 1  # nothing there yet
    assert "cifar10: CIFAR-10 (splits: train, test)" in capsys.readouterr().out
    assert data_fetch_module.main(["cifar10", "--from", str(source), "--data-dir", str(data_dir), "--quiet"]) == 0
    assert "ok     cifar10/cifar-10-python.tar.gz: imported, verified" in capsys.readouterr().out
    x, labels = datasets.load("cifar10", "test", data_dir=data_dir, download=False)
    assert x.shape == (3, 3072) and labels.shape == (3,)
    assert data_fetch_module.main(["all", "--list", "--data-dir", str(data_dir)]) == 1  # the others are missing
    assert "cifar-10-python.tar.gz           verified" in capsys.readouterr().out

def test_ctrl_c_during_download_keeps_nothing(server, tmp_path):
    server.routes["/payload"] = ("ok", CONTENT)
    with pytest.raises(KeyboardInterrupt):
        download_file(SPEC, tmp_path, "test", urls=(server.url("/payload"),), progress=_InterruptingTerminal())
    assert leftovers(tmp_path) == []


def test_stale_temporary_files_are_removed(server, tmp_path):
    stale = tmp_path / "payload.bin.part-0123456789abcdef"
    stale.write_bytes(b"left by a killed process")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    server.routes["/payload"] = ("ok", CONTENT)
    download_file(SPEC, tmp_path, "test", urls=(server.url("/payload"),), progress=False)
    assert leftovers(tmp_path) == ["payload.bin"]


def test_progress_display(server, tmp_path):
    server.routes["/payload"] = ("ok", CONTENT)
    log = io.StringIO()
    download_file(SPEC, tmp_path / "log", "test", urls=(server.url("/payload"),), progress=log)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "payload.bin" in lines[0] and "10.0 KiB" in lines[0]
    assert lines[1].endswith("done, verified")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    download_file(SPEC, tmp_path / "terminal", "test", urls=(server.url("/payload"),), progress=terminal)
    assert "\r" in terminal.getvalue() and "(100.0%)" in terminal.getvalue()


def test_fetch_file_replaces_a_corrupt_file(server, tmp_path):
    dataset = replace(registry.FREY, name="test", directory="test",
                      files=(replace(SPEC, urls=(server.url("/payload"),)),))
    server.routes["/payload"] = ("ok", CONTENT)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "payload.bin").write_bytes(b"corrupt")
    with pytest.raises(ChecksumError):
        fetch_file(dataset, dataset.files[0], tmp_path, replace_corrupt=False, progress=False)
    result = fetch_file(dataset, dataset.files[0], tmp_path, progress=False)
    assert result.action == "downloaded" and result.replaced == (tmp_path / "test" / "payload.bin",)
    assert result.path.read_bytes() == CONTENT
    again = fetch_file(dataset, dataset.files[0], tmp_path, progress=False)
    assert again.action == "present" and server.requests == ["/payload"]


# --------------------------------------------------------------------------
# load(download=True) end to end
# --------------------------------------------------------------------------


@pytest.fixture
def tiny_remote(server, monkeypatch):
    """A tiny IDX data set 'tiny' whose files are served by the local server."""
    files, arrays = tiny_idx_files(np.random.default_rng(7), (4, 2), (2, 2))
    specs = []
    for filename, content in files:
        server.routes[f"/primary/{filename}"] = ("status", 503)
        server.routes[f"/mirror/{filename}"] = ("ok", content)
        urls = (server.url(f"/primary/{filename}"), server.url(f"/mirror/{filename}"))
        specs.append(FileSpec(filename, len(content), sha256(content), urls))
    dataset = replace(registry.MNIST, name="tiny", title="tiny", directory="tiny", image_shape=(2, 2),
                      files=tuple(specs), split_sizes={"train": 4, "test": 2})
    monkeypatch.setitem(registry.DATASETS, "tiny", dataset)
    return dataset, arrays


def test_load_downloads_a_missing_data_set_once(tiny_remote, server, tmp_path, capsys):
    _, arrays = tiny_remote
    x, labels = datasets.load("tiny", "test", data_dir=tmp_path)
    images, expected_labels = arrays["t10k"]
    np.testing.assert_array_equal(x.reshape(-1, 2, 2), images / np.float32(255))
    assert labels.tolist() == expected_labels.tolist()
    assert leftovers(tmp_path) == ["tiny/t10k-images-idx3-ubyte.gz", "tiny/t10k-labels-idx1-ubyte.gz"]
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err  # progress on stderr
    requests = list(server.requests)
    datasets.load("tiny", "test", data_dir=tmp_path)
    assert server.requests == requests  # present and verified: no second download


def test_load_without_download_or_network_says_what_to_do(tiny_remote, server, tmp_path):
    server.routes.clear()  # every URL now answers 404
    with pytest.raises(DownloadError) as error:
        datasets.load("tiny", "train", data_dir=tmp_path)
    message = str(error.value)
    assert "tiny/train-images-idx3-ubyte.gz" in message and "HTTP error 404" in message
    assert server.url("/mirror/train-images-idx3-ubyte.gz") in message and "--from DIR" in message
    assert leftovers(tmp_path) == []


def everything(directory):
    """Every file and folder under ``directory``, as relative paths."""
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*"))


@pytest.fixture
def offline_frey(closed_port_url, monkeypatch):
    """The Frey data set with every URL on a port nobody listens on (as when offline)."""
    frey = registry.FREY
    spec = replace(frey.files[0], urls=(closed_port_url, closed_port_url + "/mirror"))
    monkeypatch.setitem(registry.DATASETS, "frey", replace(frey, files=(spec,)))
    return spec


def test_failed_offline_load_leaves_no_empty_folder(offline_frey, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "mnist").mkdir(parents=True)
    with pytest.raises(DownloadError, match="you seem to be offline"):
        datasets.load("frey", "train", data_dir=data_dir)
    assert everything(data_dir) == ["mnist"]  # no empty frey/ folder


def test_failed_offline_load_removes_only_the_folders_it_created(offline_frey, tmp_path):
    # A data directory that does not exist yet: the call creates it and frey/, then removes both.
    with pytest.raises(DownloadError):
        datasets.load("frey", "test", data_dir=tmp_path / "new" / "data")
    assert everything(tmp_path) == []
    # An empty frey/ folder that was there before the call stays.
    (tmp_path / "data" / "frey").mkdir(parents=True)
    with pytest.raises(DownloadError):
        datasets.load("frey", "test", data_dir=tmp_path / "data")
    assert everything(tmp_path) == ["data", "data/frey"]


def make_read_only(directory, monkeypatch):
    """Make ``directory`` (and what is under it) unwritable for this process.

    chmod is enough for an ordinary user; root writes regardless, so then the
    two ways the fetch code writes (creating a folder, creating its temporary
    file) are made to fail for paths inside ``directory`` as they would.
    """
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o555)
    probe = directory / "write-probe"
    try:
        probe.mkdir()
    except PermissionError:
        return
    probe.rmdir()

    def refused(path):
        path = os.path.abspath(path)
        if os.path.commonpath([path, str(directory)]) == str(directory):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(self, *arguments, **keywords):
        if not self.exists():  # an existing folder gives "exists", as the kernel checks that first
            refused(self)
        return real_mkdir(self, *arguments, **keywords)

    def open_file(path, flags, *arguments, **keywords):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refused(path)
        return real_open(path, flags, *arguments, **keywords)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_file)


@pytest.mark.parametrize("folder_exists", [False, True], ids=["no-frey-folder", "read-only-frey-folder"])
def test_read_only_data_directory_error_names_the_missing_file(offline_frey, tmp_path, monkeypatch, folder_exists):
    data_dir = tmp_path / "shared"
    (data_dir / "mnist").mkdir(parents=True)
    if folder_exists:
        (data_dir / "frey").mkdir()
    before = everything(data_dir)
    make_read_only(data_dir, monkeypatch)
    try:
        with pytest.raises(DataError) as error:
            datasets.load("frey", "train", data_dir=data_dir)
    finally:
        monkeypatch.undo()
        for path in [data_dir, *data_dir.rglob("*")]:
            path.chmod(0o755)
    message = str(error.value)
    assert "\n" not in message
    assert "frey_rawface.mat" in message and str(data_dir / "frey") in message
    assert "python data_fetch.py frey --data-dir DIR" in message and "NUMPYVAE_DATA" in message
    assert everything(data_dir) == before


def shared_file(relative):
    path = datasets.resolve_data_dir() / relative
    if not path.is_file():
        hint = "" if "NUMPYVAE_DATA" in os.environ else " (set NUMPYVAE_DATA to the data folder)"
        pytest.skip(f"needs {path}, which is missing{hint}")
    return path


def test_load_downloads_the_real_frey_file(server, monkeypatch, tmp_path):
    source = shared_file("frey/frey_rawface.mat")
    server.routes["/roweis/frey_rawface.mat"] = ("ok", source.read_bytes())
    frey = registry.FREY
    spec = replace(frey.files[0], urls=(server.url("/dead/frey_rawface.mat"), server.url("/roweis/frey_rawface.mat")))
    monkeypatch.setitem(registry.DATASETS, "frey", replace(frey, files=(spec,)))
    x, labels = datasets.load("frey", "test", data_dir=tmp_path / "new")
    expected, _ = datasets.load("frey", "test", data_dir=source.parent.parent, download=False)
    assert labels is None and np.array_equal(x, expected)


# --------------------------------------------------------------------------
# Import from a local folder (--from)
# --------------------------------------------------------------------------


def test_import_real_files_from_a_folder(tmp_path):
    shared_file("frey/frey_rawface.mat")
    shared_file("binarized_mnist/binarized_mnist_test.amat.gz")
    source_dir = datasets.resolve_data_dir()
    results = datasets.fetch("frey", data_dir=tmp_path, source_dir=source_dir)
    assert [r.action for r in results] == ["imported"]
    result = fetch_file(registry.BINARIZED_MNIST, registry.BINARIZED_MNIST.file("binarized_mnist_test.amat"),
                        tmp_path, source_dir)
    # The gzip copy is imported as it is, verified on its decompressed content.
    assert result.path == tmp_path / "binarized_mnist" / "binarized_mnist_test.amat.gz"
    # Permissions are not copied: a read-only shared source gives a normal file.
    assert result.path.stat().st_mode & 0o200
    assert np.array_equal(datasets.load("frey", "test", data_dir=tmp_path, download=False)[0],
                          datasets.load("frey", "test", download=False)[0])
    assert datasets.load("binarized-mnist", "test", data_dir=tmp_path, download=False)[0].shape == (10000, 784)
    assert leftovers(tmp_path) == ["binarized_mnist/binarized_mnist_test.amat.gz", "frey/frey_rawface.mat"]


def test_import_of_a_corrupt_file_keeps_nothing(tmp_path):
    source = tmp_path / "downloads"
    source.mkdir()
    (source / "payload.bin").write_bytes(CONTENT[:-1] + b"?")
    dataset = replace(registry.FREY, name="test", directory="test", files=(SPEC,))
    with pytest.raises(ChecksumError) as error:
        import_file(dataset, SPEC, source, tmp_path / "data" / "test")
    assert str(source / "payload.bin") in str(error.value) and SPEC.sha256 in str(error.value)
    assert leftovers(tmp_path / "data") == []
    # Nor the folders the failed call created (issue 12, item 15).
    assert everything(tmp_path) == ["downloads", "downloads/payload.bin"]


def test_import_of_a_missing_file_says_where_it_looked(tmp_path):
    dataset = replace(registry.FREY, name="test", directory="test-folder", files=(SPEC,))
    with pytest.raises(DataError) as error:
        import_file(dataset, SPEC, tmp_path, tmp_path / "data")
    message = str(error.value)
    assert "payload.bin" in message and str(tmp_path / "test-folder") in message and str(tmp_path / "test") in message


def test_import_onto_itself_only_verifies(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(CONTENT)
    before = (folder / "payload.bin").stat().st_mtime_ns
    dataset = replace(registry.FREY, name="test", directory="test", files=(SPEC,))
    assert import_file(dataset, SPEC, tmp_path, folder) == folder / "payload.bin"
    assert (folder / "payload.bin").stat().st_mtime_ns == before and leftovers(tmp_path) == ["test/payload.bin"]


def test_fetch_reports_every_failed_file(tmp_path):
    with pytest.raises(DataError) as error:
        datasets.fetch("mnist", data_dir=tmp_path / "data", source_dir=tmp_path)
    assert str(error.value).count("not found in") == 4


# --------------------------------------------------------------------------
# The data_fetch.py command
# --------------------------------------------------------------------------


def run_command(*arguments, cache):
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY), NUMPYVAE_CACHE=str(cache))
    return subprocess.run([sys.executable, str(REPOSITORY / "data_fetch.py"), *arguments],
                          capture_output=True, text=True, env=environment, cwd=REPOSITORY, timeout=120)


@pytest.fixture(scope="module")
def data_fetch_module():
    spec = importlib.util.spec_from_file_location("data_fetch", REPOSITORY / "data_fetch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_imports_and_verifies(tmp_path, isolated_cache):
    shared_file("frey/frey_rawface.mat")
    shared_file("binarized_mnist/binarized_mnist_train.amat.gz")
    source = datasets.resolve_data_dir()
    target = tmp_path / "somewhere"
    done = run_command("--from", str(source), "frey", "binarized-mnist", "--data-dir", str(target), cache=isolated_cache)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported, verified") == 4
    again = run_command("frey", "binarized-mnist", "--data-dir", str(target), cache=isolated_cache)
    assert again.returncode == 0 and again.stdout.count("already present, verified") == 4
    listing = run_command("--list", "frey", "--data-dir", str(target), cache=isolated_cache)
    assert listing.returncode == 0 and "verified" in listing.stdout


def test_command_fails_clearly_on_a_missing_file(tmp_path, isolated_cache):
    done = run_command("--from", str(tmp_path), "frey", "--data-dir", str(tmp_path / "data"), cache=isolated_cache)
    assert done.returncode == 1
    assert "FAILED frey/frey_rawface.mat" in done.stderr and "not found in" in done.stderr
    assert leftovers(tmp_path / "data") == []


def test_command_rejects_bad_usage(isolated_cache):
    assert run_command(cache=isolated_cache).returncode == 2
    unknown = run_command("cifar", cache=isolated_cache)
    assert unknown.returncode == 2 and "unknown data set" in unknown.stderr


def test_command_downloads_with_mirror(tiny_remote, data_fetch_module, tmp_path, capsys):
    assert data_fetch_module.main(["tiny", "--data-dir", str(tmp_path), "--quiet"]) == 0
    output = capsys.readouterr().out
    assert output.count("downloaded, verified") == 4
    assert leftovers(tmp_path) == sorted(f"tiny/{spec.filename}" for spec in tiny_remote[0].files)
    assert data_fetch_module.main(["--list", "tiny", "--data-dir", str(tmp_path)]) == 0


def test_command_reports_corrupt_files_in_list(tiny_remote, data_fetch_module, tmp_path, capsys):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not the file")
    assert data_fetch_module.main(["--list", "tiny", "--data-dir", str(tmp_path)]) == 1
    output = capsys.readouterr().out
    assert "CORRUPT" in output and "missing" in output
    assert data_fetch_module.main(["tiny", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert "which failed verification" in capsys.readouterr().out
